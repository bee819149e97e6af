//! Waiting for something to happen, never for a length of time.
//!
//! A test waits for the event it needs — a log line, a metric, a file, a process exit — by
//! polling a condition. The deadline only turns a hang into a failure with a message: it is
//! long ([`HANG`]), so a slow or loaded machine never fails a test that passes on a fast one.
//! Nothing here measures how long something took.
//!
//! This is the one place the tests pause (clippy.toml disallows `sleep` elsewhere).

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a wait may last before it is called a hang.
pub const HANG: Duration = Duration::from_secs(120);

/// The pause between two polls of a condition.
const POLL: Duration = Duration::from_millis(20);

/// Poll `check` until it returns `Some`, and return that; panic naming `what` after
/// [`HANG`].
pub fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {HANG:?}"
        );
        pause();
    }
}

/// [`until`] for an async condition, pausing without blocking the runtime.
pub async fn until_async<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {HANG:?}"
        );
        pause_async().await;
    }
}

/// The pause between polls (blocking).
#[allow(
    clippy::disallowed_methods,
    reason = "the poll interval of a wait for an event, bounded by HANG"
)]
pub fn pause() {
    std::thread::sleep(POLL);
}

/// The pause between polls (async).
#[allow(
    clippy::disallowed_methods,
    reason = "the poll interval of a wait for an event, bounded by HANG"
)]
pub async fn pause_async() {
    tokio::time::sleep(POLL).await;
}
