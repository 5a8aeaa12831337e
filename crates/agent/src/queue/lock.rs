//! One queue per directory: an exclusive advisory lock (`flock`) on `<dir>/lock`, holding the
//! holder's pid for the error message of the next one.
//!
//! The lock belongs to the open file: it ends with the process (also on `kill -9`), so a stale
//! lock file never blocks a restart.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::QueueError;

pub(super) const LOCK_FILE: &str = "lock";
/// Retries of a held lock before giving up, and the pause between them.
const LOCK_ATTEMPTS: u32 = 10;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub(super) struct DirLock {
    _file: File,
}

/// Locks `dir` for this queue, or says who holds it.
pub(super) fn lock_dir(dir: &Path) -> Result<DirLock, QueueError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| QueueError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // A child process forked by this one shares the lock's file description until it execs
    // (close-on-exec): give such a moment a few tries before naming a holder.
    let mut attempt = 0;
    let locked = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if attempt < LOCK_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY);
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Best effort: the holder may be rewriting it right now.
            let _ = file.take(64).read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(QueueError::Locked {
                path,
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.into()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "pid {}", std::process::id()))
        .map_err(io)?;
    Ok(DirLock { _file: file })
}
