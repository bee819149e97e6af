//! Reading the proxy's audit log (one JSON object per line) from a test.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::wait;

/// Every complete line of the audit file at `path` (none if it does not exist yet),
/// parsed. A last line without its newline is still being written and is left out.
pub fn audit_lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        f.read_to_string(&mut text).unwrap();
    }
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until the audit file holds a line matching `pred` (panics after [`wait::HANG`]).
pub fn wait_audit(path: &Path, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + wait::HANG;
    loop {
        if let Some(line) = audit_lines(path).into_iter().find(|l| pred(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no matching audit line in:\n{}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        wait::pause();
    }
}
