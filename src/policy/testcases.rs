//! Policy test runner (contract stub).

use std::path::Path;

/// Results.
pub struct TestReport;
impl TestReport {
    /// Passed cases.
    pub fn passed(&self) -> usize {
        0
    }
    /// Failed cases.
    pub fn failed(&self) -> usize {
        0
    }
}
impl std::fmt::Display for TestReport {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
/// Bad test file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TestFileError(pub String);
/// Run a file.
pub fn run_test_file(_path: &Path) -> Result<TestReport, TestFileError> {
    todo!()
}
