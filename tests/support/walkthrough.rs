//! Runs a book page's walkthrough as written: its `sh` blocks, in order, in one `bash`, and
//! compares what each prints with the `text` block right below it.
//!
//! The page is the script. Blocks are read like this:
//! - a fenced `sh` block is a command to run;
//! - a `text` block directly below a run block (only blank lines between) is what that block
//!   must print, stdout and stderr together. `…` in it matches any text (a token, a date, a
//!   cut-short answer), so the rest must match exactly;
//! - `<!-- walkthrough: skip … -->` above a block: the test does what that block does itself
//!   (starting servers on free ports, say), so it is not run and its output not checked;
//! - `<!-- walkthrough: log -->` above a `text` block: each of its lines must match a line the
//!   servers logged (stdout or stderr); the test waits for it to appear.
//!
//! `WALKTHROUGH_SHOW=1 cargo test --test book` prints what each block printed, to update a
//! page after a change.
//!
//! Commands run in a copy of the repository's runnable files, with the servers on free ports:
//! the defaults a page shows (`127.0.0.1:8080`, `:3001`, `:9090`) are replaced by the test's
//! before a command runs.

#![allow(
    clippy::disallowed_methods,
    reason = "polls for a log line pause between tries (bounded by the hang limit)"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one block may run, and how long a log line may take to appear. Only a guard
/// against a hang: nothing is asserted about time.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

const DONE: &str = "__walkthrough_block_done__";

/// One step of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run `code`; when `expect` is set, it must print that.
    Run {
        /// The block's text.
        code: String,
        /// The block below it.
        expect: Option<String>,
        /// Line of the block in the page, for messages.
        line: usize,
    },
    /// A block the test does itself (`<!-- walkthrough: skip -->`); handed to the test's hook.
    Skip {
        /// The block's text.
        code: String,
    },
    /// Each line must match a line of the servers' logs.
    Log {
        /// The block's text.
        expect: String,
        /// Line of the block in the page.
        line: usize,
    },
}

struct Fence {
    info: String,
    body: String,
    directive: Option<String>,
    start: usize,
    end: usize,
}

fn fences(page: &str) -> Vec<Fence> {
    let mut out = Vec::new();
    let mut directive = None;
    let mut open: Option<Fence> = None;
    for (index, line) in page.lines().enumerate() {
        let number = index + 1;
        if let Some(fence) = open.as_mut() {
            if line.trim_start() == "```" {
                let mut fence = open.take().expect("open fence");
                fence.end = number;
                out.push(fence);
            } else {
                fence.body.push_str(line);
                fence.body.push('\n');
            }
            continue;
        }
        if let Some(info) = line.trim_start().strip_prefix("```") {
            open = Some(Fence {
                info: info.trim().to_owned(),
                body: String::new(),
                directive: directive.take(),
                start: number,
                end: 0,
            });
        } else if let Some(rest) = line.trim().strip_prefix("<!-- walkthrough:") {
            directive = Some(rest.trim_end_matches("-->").trim().to_owned());
        } else if !line.trim().is_empty() {
            directive = None;
        }
    }
    assert!(open.is_none(), "unclosed code block");
    out
}

/// The page's steps, in order.
pub fn steps(page: &str) -> Vec<Step> {
    let fences = fences(page);
    let lines: Vec<&str> = page.lines().collect();
    let directly_below = |above: &Fence, below: &Fence| {
        lines[above.end..below.start - 1]
            .iter()
            .all(|line| line.trim().is_empty())
    };
    let mut steps = Vec::new();
    let mut index = 0;
    while index < fences.len() {
        let fence = &fences[index];
        let directive = fence.directive.as_deref().unwrap_or("");
        if fence.info == "text" && directive == "log" {
            steps.push(Step::Log {
                expect: fence.body.clone(),
                line: fence.start,
            });
        } else if fence.info == "sh" && !directive.starts_with("skip") {
            let below = fences
                .get(index + 1)
                .filter(|next| next.info == "text" && next.directive.is_none())
                .filter(|next| directly_below(fence, next));
            steps.push(Step::Run {
                code: fence.body.clone(),
                expect: below.map(|next| next.body.clone()),
                line: fence.start,
            });
            if below.is_some() {
                index += 1;
            }
        } else if fence.info == "sh" {
            steps.push(Step::Skip {
                code: fence.body.clone(),
            });
            // A skipped block's output is not checked either.
            if fences
                .get(index + 1)
                .is_some_and(|next| next.info == "text" && directly_below(fence, next))
            {
                index += 1;
            }
        }
        index += 1;
    }
    steps
}

/// Does `text` match `pattern`, where `…` in the pattern stands for any text?
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// Lines a server printed, shared with the thread that reads them.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Read `pipe` line by line into `lines` until it closes.
pub fn collect_lines(pipe: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().expect("lines").push(line);
        }
    });
}

/// One `bash` that runs a page's blocks, keeping its variables between them.
pub struct Shell {
    child: Child,
    stdin: ChildStdin,
    output: Receiver<String>,
    /// `(default, actual)` address replacements applied to each command.
    pub replace: Vec<(String, String)>,
}

impl Shell {
    /// `bash` in `dir` with `env` set.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Shell {
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start bash");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        writeln!(stdin, "exec 2>&1").expect("write to bash");
        Shell {
            child,
            stdin,
            output,
            replace: Vec::new(),
        }
    }

    /// Run one block; what it printed.
    pub fn run(&mut self, code: &str) -> String {
        let mut code = code.to_owned();
        for (from, to) in &self.replace {
            code = code.replace(from.as_str(), to);
        }
        writeln!(self.stdin, "{code}\necho; echo {DONE}").expect("write to bash");
        self.stdin.flush().expect("flush");
        let mut printed = Vec::new();
        let deadline = Instant::now() + BLOCK_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line == DONE => break,
                Ok(line) => printed.push(line),
                Err(_) => panic!(
                    "block did not finish within {BLOCK_TIMEOUT:?}:\n{code}\nprinted so far:\n{}",
                    printed.join("\n")
                ),
            }
        }
        let mut text = printed.join("\n");
        for (from, to) in &self.replace {
            text = text.replace(to.as_str(), from);
        }
        text
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run every step of `page` (named `name` in messages) in `shell`; log steps look in `logs`;
/// `skipped` is called with each skipped block, to do what it does.
pub fn run_page(
    name: &str,
    page: &str,
    shell: &mut Shell,
    logs: &Lines,
    skipped: &mut dyn FnMut(&str),
) {
    let steps = steps(page);
    assert!(
        steps.iter().any(|s| matches!(s, Step::Run { .. })),
        "{name}: nothing to run"
    );
    let show = std::env::var_os("WALKTHROUGH_SHOW").is_some();
    for step in steps {
        match step {
            Step::Run { code, expect, line } => {
                let printed = shell.run(&code);
                if show {
                    eprintln!("==== {name}:{line}\n{code}---- printed:\n{printed}\n");
                }
                if let Some(expect) = expect {
                    let (want, got) = (normalize(&expect), normalize(&printed));
                    assert!(
                        matches(&want, &got),
                        "{name}:{line}: the block printed something else than the page \
                         shows.\n--- block ---\n{code}--- the page shows ---\n{want}\n--- it \
                         printed ---\n{got}\n"
                    );
                }
            }
            Step::Skip { code } => skipped(&code),
            Step::Log { expect, line } => {
                for wanted in expect.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    wait_for_line(logs, wanted).unwrap_or_else(|seen| {
                        panic!(
                            "{name}:{line}: no log line matches\n  {wanted}\n--- the logs ---\n{seen}"
                        )
                    });
                }
            }
        }
    }
    if show {
        eprintln!("==== logs\n{}", logs.lock().expect("logs").join("\n"));
    }
}

fn wait_for_line(logs: &Lines, pattern: &str) -> Result<(), String> {
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    loop {
        {
            let lines = logs.lock().expect("logs");
            if lines.iter().any(|line| matches(pattern, line.trim_end())) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(lines.join("\n"));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The page `docs/src/<file>` of this checkout.
pub fn page(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
