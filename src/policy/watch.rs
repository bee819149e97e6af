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
//!
//! The debounce loop reads its messages through the `Inbox` trait: the real channel and
//! clock in production, a scripted one in the unit tests, where "the quiet period passed"
//! is a message of its own. So the debounce is tested without depending on how fast the
//! machine is (a wall-clock test once saw a burst of five writes become three reloads on a
//! busy machine, which is correct behaviour for a burst slower than the window).

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
#[derive(Debug, PartialEq, Eq)]
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

    let (tx, mut rx) = mpsc::channel::<Message>();
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
        .spawn(move || debounce_loop(&mut rx, debounce, on_change.as_ref()))
        .map_err(|source| WatchError::Thread { source })?;

    Ok(WatchHandle {
        _watcher: watcher,
        stop: tx,
        dirs,
    })
}

/// What the debounce loop is told while it waits for a quiet period.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A message arrived.
    Message(Message),
    /// The quiet period passed with no message.
    Quiet,
    /// Every sender is gone.
    Closed,
}

/// Where the debounce loop gets its messages, and learns that a quiet period passed.
trait Inbox {
    /// The next message, however long it takes (`None`: every sender is gone).
    fn next(&mut self) -> Option<Message>;
    /// The next message if one comes within `quiet`.
    fn next_within(&mut self, quiet: Duration) -> Next;
}

/// Production: the channel, with the real clock for the quiet period.
impl Inbox for mpsc::Receiver<Message> {
    fn next(&mut self) -> Option<Message> {
        self.recv().ok()
    }

    fn next_within(&mut self, quiet: Duration) -> Next {
        match self.recv_timeout(quiet) {
            Ok(message) => Next::Message(message),
            Err(RecvTimeoutError::Timeout) => Next::Quiet,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }
}

/// Calls `on_change` once per burst of `Changed` messages, once the burst has been quiet
/// for `debounce`; returns on `Stop` or when every sender is gone (a debounce in progress
/// is abandoned).
fn debounce_loop(inbox: &mut impl Inbox, debounce: Duration, on_change: &dyn Fn()) {
    loop {
        // Wait for the first change of a burst.
        match inbox.next() {
            Some(Message::Changed) => {}
            Some(Message::Stop) | None => return,
        }
        // Wait until the burst has been quiet for `debounce`.
        loop {
            match inbox.next_within(debounce) {
                Next::Message(Message::Changed) => continue,
                Next::Message(Message::Stop) | Next::Closed => return,
                Next::Quiet => break,
            }
        }
        on_change();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::testing::HANG;

    /// For the tests with real file events; their outcome does not depend on it.
    const DEBOUNCE: Duration = Duration::from_millis(50);

    // -----------------------------------------------------------------------------------
    // The debounce itself, on a script: no clock, no file system.

    /// One step of a scripted inbox.
    #[derive(Clone, Copy)]
    enum Step {
        Changed,
        /// The quiet period passes (the production inbox's timeout).
        QuietPeriod,
        Stop,
    }

    /// An inbox that replays `steps`, then reports every sender gone.
    struct Script(VecDeque<Step>);

    impl Inbox for Script {
        fn next(&mut self) -> Option<Message> {
            loop {
                match self.0.pop_front()? {
                    Step::Changed => return Some(Message::Changed),
                    Step::Stop => return Some(Message::Stop),
                    // No debounce is running: nothing to wait out.
                    Step::QuietPeriod => continue,
                }
            }
        }

        fn next_within(&mut self, _quiet: Duration) -> Next {
            match self.0.pop_front() {
                Some(Step::Changed) => Next::Message(Message::Changed),
                Some(Step::Stop) => Next::Message(Message::Stop),
                Some(Step::QuietPeriod) => Next::Quiet,
                None => Next::Closed,
            }
        }
    }

    /// How many times `on_change` runs for `steps`.
    fn reloads(steps: &[Step]) -> usize {
        let n = AtomicUsize::new(0);
        let mut inbox = Script(steps.iter().copied().collect());
        debounce_loop(&mut inbox, DEBOUNCE, &|| {
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert!(
            inbox.0.is_empty(),
            "the loop stopped before the script ended"
        );
        n.load(Ordering::SeqCst)
    }

    use Step::{Changed, QuietPeriod, Stop};

    #[test]
    fn a_burst_reloads_once_after_the_quiet_period() {
        assert_eq!(
            reloads(&[
                Changed,
                Changed,
                Changed,
                Changed,
                Changed,
                QuietPeriod,
                Stop
            ]),
            1
        );
    }

    #[test]
    fn nothing_reloads_before_the_quiet_period() {
        // The burst never goes quiet before the stop: no reload.
        assert_eq!(reloads(&[Changed, Changed, Changed, Stop]), 0);
        // Likewise when every sender is gone.
        assert_eq!(reloads(&[Changed, Changed]), 0);
    }

    #[test]
    fn each_quiet_burst_reloads_once() {
        assert_eq!(
            reloads(&[
                Changed,
                QuietPeriod,
                Changed,
                Changed,
                QuietPeriod,
                QuietPeriod,
                Changed,
                QuietPeriod,
                Stop
            ]),
            3
        );
    }

    #[test]
    fn quiet_periods_without_changes_do_nothing() {
        assert_eq!(reloads(&[QuietPeriod, QuietPeriod, Stop]), 0);
    }

    #[test]
    fn the_channel_inbox_reports_messages_quiet_and_closed() {
        let (tx, mut rx) = mpsc::channel();
        tx.send(Message::Changed).unwrap();
        assert_eq!(rx.next_within(HANG), Next::Message(Message::Changed));
        assert_eq!(rx.next_within(Duration::ZERO), Next::Quiet);
        drop(tx);
        assert_eq!(rx.next_within(HANG), Next::Closed);
        assert_eq!(rx.next(), None);
    }

    // -----------------------------------------------------------------------------------
    // What counts as a change.

    #[test]
    fn reads_are_not_changes_and_writes_are() {
        use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
        for read in [
            AccessKind::Read,
            AccessKind::Open(AccessMode::Any),
            AccessKind::Open(AccessMode::Read),
            AccessKind::Close(AccessMode::Read),
            AccessKind::Close(AccessMode::Any),
            AccessKind::Any,
        ] {
            assert!(!is_change(&EventKind::Access(read)), "{read:?}");
        }
        for change in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(is_change(&change), "{change:?}");
        }
    }

    /// What the platform reports for reading a file, in order, up to the creation of a
    /// marker file written afterwards (events of one watch arrive in order).
    #[test]
    fn reading_a_file_produces_no_change_event() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.cedar");
        let marker = dir.path().join("marker");
        std::fs::write(&file, "x").unwrap();
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let _ = tx.send(res);
        })
        .unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();

        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        std::fs::write(&marker, "").unwrap();
        loop {
            let event = rx
                .recv_timeout(HANG)
                .expect("the marker's event")
                .expect("no watcher error");
            if event.paths.contains(&marker) {
                break;
            }
            assert!(!is_change(&event.kind), "reading the file: {event:?}");
        }
    }

    // -----------------------------------------------------------------------------------
    // The real watcher: a change leads to a reload that sees it. Each reload sends what
    // it read; the test waits for the content it wrote (a slow machine only makes it wait).

    /// A watcher on `paths` whose reload reads `file` and sends the text.
    fn watch_reading(paths: Vec<PathBuf>, file: PathBuf) -> (WatchHandle, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let handle = spawn_watcher(
            paths,
            DEBOUNCE,
            Box::new(move || {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                let _ = tx.send(text);
            }),
        )
        .unwrap();
        (handle, rx)
    }

    /// Waits for a reload that read `text`.
    fn reload_seeing(rx: &mpsc::Receiver<String>, text: &str) {
        loop {
            let seen = rx.recv_timeout(HANG).expect("a reload");
            if seen == text {
                return;
            }
        }
    }

    #[test]
    fn write_and_rename_fire() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, "a").unwrap();
        let (_h, rx) = watch_reading(vec![file.clone()], file.clone());

        // In-place write.
        std::fs::write(&file, "b").unwrap();
        reload_seeing(&rx, "b");

        // Editor style: write elsewhere, rename over.
        let tmp = dir.path().join("jwks.json.tmp");
        std::fs::write(&tmp, "c").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        reload_seeing(&rx, "c");
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
        let (_h, rx) = watch_reading(vec![root.to_owned()], root.join("policies.cedar"));

        std::fs::create_dir(root.join("..v2")).unwrap();
        std::fs::write(root.join("..v2/policies.cedar"), "v2").unwrap();
        std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        reload_seeing(&rx, "v2");
    }

    #[test]
    fn dropping_the_handle_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let (h, rx) = watch_reading(vec![file.clone()], file.clone());
        assert_eq!(h.directories(), [dir.path().to_owned()]);
        drop(h);
        std::fs::write(&file, "y").unwrap();
        // The thread ends (and drops the callback, closing the channel) without reloading.
        assert_eq!(
            rx.recv_timeout(HANG),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn missing_directory_is_an_error() {
        let n = Arc::new(AtomicUsize::new(0));
        let err = spawn_watcher(
            vec![PathBuf::from("/definitely/not/here/file")],
            DEBOUNCE,
            Box::new(move || {
                n.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap_err();
        assert!(matches!(err, WatchError::Watch { .. }), "{err}");
    }
}
