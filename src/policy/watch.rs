//! File watching (contract stub).

use std::path::PathBuf;
use std::time::Duration;

/// Keeps a watcher alive.
pub struct WatchHandle;

/// Watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WatchError(pub String);

/// Watch paths; call `on_change` after changes settle.
pub fn spawn_watcher(
    _paths: Vec<PathBuf>,
    _debounce: Duration,
    _on_change: Box<dyn Fn() + Send + Sync>,
) -> Result<WatchHandle, WatchError> {
    Ok(WatchHandle)
}
