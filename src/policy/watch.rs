//! A debounced file watcher for reloadable files (policy directories, JWKS files).
//!
//! It watches directories, not files, non-recursively: for a path that is a directory,
//! that directory; for any other path, its parent. Editors save by writing a new file and
//! renaming it over the old one, and Kubernetes updates a ConfigMap volume by swapping
//! its `..data` symlink; a watch on the file itself would follow the old inode and miss
//! both, while a watch on the directory sees them. Any change in a watched directory
//! (creation, modification, removal, rename) counts, so the caller's reload runs even for
//! a sibling file; reloads are cheap and idempotent. Reads (open/close without writing)
//! are ignored, so a reload that reads the files does not trigger itself.
//!
//! Bursts are debounced: after the first event the watcher waits until `debounce` has
//! passed without a new event, then calls `on_change` once. The callback runs on a plain
//! thread owned by the watcher (no async runtime needed). Dropping the [`WatchHandle`]
//! stops watching; a debounce in progress is abandoned.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// The watcher could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The platform watcher could not be created.
    #[error("cannot create a file watcher: {source}")]
    Create {
        /// The underlying error.
        source: notify::Error,
    },
    /// A directory could not be watched.
    #[error("{}: cannot watch: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: notify::Error,
    },
    /// A path has no parent directory to watch.
    #[error("{}: no directory to watch", path.display())]
    NoDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The debounce thread could not be started.
    #[error("cannot start the watcher thread: {source}")]
    Thread {
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What the debounce thread receives.
enum Message {
    /// Something changed in a watched directory.
    Changed,
    /// The handle was dropped.
    Stop,
}

/// A running watcher; dropping it stops watching.
pub struct WatchHandle {
    /// Kept alive for its watches; dropped first, so no events arrive after `Stop`.
    _watcher: RecommendedWatcher,
    stop: Sender<Message>,
    dirs: Vec<PathBuf>,
}

impl WatchHandle {
    /// The directories being watched.
    pub fn directories(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        // The thread may already be gone; nothing to do then.
        let _ = self.stop.send(Message::Stop);
    }
}

/// The directory to watch for `path` (see the module docs).
fn directory_for(path: &Path) -> Result<PathBuf, WatchError> {
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Some(p) => Ok(p.to_owned()),
        None => Err(WatchError::NoDirectory {
            path: path.to_owned(),
        }),
    }
}

/// Whether an event is a change (as opposed to a read).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watches the directories of `paths` and calls `on_change` once per debounced burst of
/// changes. See the module docs for what is watched.
pub fn spawn_watcher(
    paths: Vec<PathBuf>,
    debounce: Duration,
    on_change: Box<dyn Fn() + Send + Sync>,
) -> Result<WatchHandle, WatchError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for path in &paths {
        let dir = directory_for(path)?;
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }

    let (tx, rx) = mpsc::channel::<Message>();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
        let changed = match res {
            Ok(event) => is_change(&event.kind),
            Err(e) => {
                // Lost events (e.g. a queue overflow): reload to be safe.
                tracing::warn!(error = %e, "file watcher error");
                true
            }
        };
        if changed {
            let _ = events.send(Message::Changed);
        }
    })
    .map_err(|source| WatchError::Create { source })?;
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: dir.clone(),
                source,
            })?;
    }

    std::thread::Builder::new()
        .name("mcp-warden-watch".into())
        .spawn(move || debounce_loop(&rx, debounce, on_change.as_ref()))
        .map_err(|source| WatchError::Thread { source })?;

    Ok(WatchHandle {
        _watcher: watcher,
        stop: tx,
        dirs,
    })
}

fn debounce_loop(rx: &mpsc::Receiver<Message>, debounce: Duration, on_change: &dyn Fn()) {
    loop {
        // Wait for the first change of a burst.
        match rx.recv() {
            Ok(Message::Changed) => {}
            Ok(Message::Stop) | Err(_) => return,
        }
        // Wait until the burst has been quiet for `debounce`.
        loop {
            match rx.recv_timeout(debounce) {
                Ok(Message::Changed) => continue,
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        on_change();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const DEBOUNCE: Duration = Duration::from_millis(50);

    fn counter() -> (Arc<AtomicUsize>, Box<dyn Fn() + Send + Sync>) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&n);
        (
            n,
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    /// Waits until `n` exceeds `before`, up to a few seconds.
    fn fired(n: &AtomicUsize, before: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if n.load(Ordering::SeqCst) > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Lets pending events and the debounce settle, then reads the count.
    fn settle(n: &AtomicUsize) -> usize {
        std::thread::sleep(DEBOUNCE * 6);
        n.load(Ordering::SeqCst)
    }

    #[test]
    fn write_rename_and_symlink_swap_fire() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, "a").unwrap();
        let (n, cb) = counter();
        let _h = spawn_watcher(vec![file.clone()], DEBOUNCE, cb).unwrap();

        // In-place write.
        let before = settle(&n);
        std::fs::write(&file, "b").unwrap();
        assert!(fired(&n, before), "write");

        // Editor style: write elsewhere, rename over.
        let before = settle(&n);
        let tmp = dir.path().join("jwks.json.tmp");
        std::fs::write(&tmp, "c").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert!(fired(&n, before), "rename");
    }

    #[test]
    fn configmap_symlink_swap_fires() {
        // Kubernetes layout: file -> ..data/file, ..data -> ..<timestamp>/
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/policies.cedar"), "v1").unwrap();
        std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/policies.cedar", root.join("policies.cedar")).unwrap();

        let (n, cb) = counter();
        let _h = spawn_watcher(vec![root.to_owned()], DEBOUNCE, cb).unwrap();
        let before = settle(&n);

        std::fs::create_dir(root.join("..v2")).unwrap();
        std::fs::write(root.join("..v2/policies.cedar"), "v2").unwrap();
        std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert!(fired(&n, before), "symlink swap");
        assert_eq!(
            std::fs::read_to_string(root.join("policies.cedar")).unwrap(),
            "v2"
        );
    }

    #[test]
    fn bursts_are_debounced_and_reads_do_not_fire() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.cedar");
        std::fs::write(&file, "x").unwrap();
        let path = file.clone();
        let n = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&n);
        // The callback reads the file, as a reload does: that must not re-trigger it.
        let _h = spawn_watcher(
            vec![file.clone()],
            DEBOUNCE,
            Box::new(move || {
                let _ = std::fs::read_to_string(&path);
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        let before = settle(&n);
        for i in 0..5 {
            std::fs::write(&file, format!("{i}")).unwrap();
        }
        assert!(fired(&n, before));
        assert_eq!(settle(&n), before + 1);
    }

    #[test]
    fn dropping_the_handle_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let (n, cb) = counter();
        let h = spawn_watcher(vec![file.clone()], DEBOUNCE, cb).unwrap();
        assert_eq!(h.directories(), [dir.path().to_owned()]);
        let before = settle(&n);
        drop(h);
        std::fs::write(&file, "y").unwrap();
        assert_eq!(settle(&n), before);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let (_, cb) = counter();
        let err = spawn_watcher(
            vec![PathBuf::from("/definitely/not/here/file")],
            DEBOUNCE,
            cb,
        )
        .unwrap_err();
        assert!(matches!(err, WatchError::Watch { .. }), "{err}");
    }
}
