//! `mcp-warden policy test`: run policy test files (or a directory's `tests.toml`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mcp_warden::policy;

/// `mcp-warden policy …`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run policy test cases (TOML files of principal/action/resource → decision).
    /// A policy directory runs its `tests.toml`.
    Test {
        /// Test files, or policy directories holding a `tests.toml`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the command; failing cases (and unusable files) make the exit code non-zero.
pub fn run(command: PolicyCommand) -> ExitCode {
    let PolicyCommand::Test { files } = command;
    let mut failed = 0usize;
    let mut passed = 0usize;
    for file in &files {
        match policy::testcases::run_test_file(file) {
            Ok(report) => {
                println!("{report}");
                passed += report.cases.len() - report.failed();
                failed += report.failed();
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
