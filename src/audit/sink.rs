//! Where audit lines are written. Each line is written with one `write_all` on an
//! append-mode handle, so concurrent appenders and `logrotate` never see half lines
//! from us.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An audit destination.
pub trait Sink: Send {
    /// Write one or more complete lines (each ending in `\n`) and push them to the OS.
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()>;
    /// Reopen the destination (after rotation, or to recover from an error).
    fn reopen(&mut self) -> std::io::Result<()>;
}

/// Standard output.
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn write_lines(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file opened for appending (created if missing).
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Open `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = open_append(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: cannot open: {e}", path.display()))
        })?;
        Ok(FileSink {
            path: path.to_owned(),
            file,
        })
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Sink for FileSink {
    fn write_lines(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.file.write_all(line)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.file = open_append(&self.path)?;
        Ok(())
    }
}

/// An in-memory sink for tests; `fail` makes writes fail.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct MemorySink {
    /// Everything written.
    pub lines: std::sync::Arc<parking_lot::Mutex<Vec<u8>>>,
    /// While true, writes fail.
    pub fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(test)]
impl Sink for MemorySink {
    fn write_lines(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("disk full"));
        }
        self.lines.lock().extend_from_slice(line);
        Ok(())
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
