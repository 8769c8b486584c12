//! Crash-safe file writes.
//!
//! Invariant: `write_atomic` either replaces the target with the complete new contents or
//! leaves whatever was there before; a reader never sees a partly written file. The bytes
//! go to a temporary file in the target's folder (a rename is only atomic within one file
//! system), which is flushed to disk before it is renamed over the target, and then the
//! folder itself is flushed so that the rename survives a power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writes within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (see the module comment).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp-{}-{n}", file_name.to_string_lossy(), std::process::id()));
    let result = write_and_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir)
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)
}

/// Flushes a folder's entries to disk. Only Unix can open a folder for this; elsewhere
/// the rename is already durable or there is no portable way to ask.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) { File::open(dir)?.sync_all() } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn writes_and_replaces_leaving_no_temporaries() {
        let dir = scratch("replace");
        let path = dir.join("out.txt");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("overwrite");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let entries: Vec<_> = fs::read_dir(&dir).expect("list").collect();
        assert_eq!(entries.len(), 1, "a temporary file was left behind");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let dir = scratch("missing");
        let path = dir.join("no-such-dir").join("out.txt");
        assert!(write_atomic(&path, b"x").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
