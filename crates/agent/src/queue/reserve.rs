//! The reserve: disk space held back in the file `reserve`, so that the records held in the
//! memory fallback while the disk is full can still be written at a graceful shutdown.
//! [`DiskQueue::flush`] deletes the file when they do not fit otherwise and writes them into the
//! space it frees.
//!
//! Its bytes are pseudo-random, so that a compressing or deduplicating file system cannot store
//! it in less space than the records will need, and it is fsynced once written, so that the
//! blocks are allocated rather than promised. It is filled at open and, while short (the disk
//! was full at open, or the reserve was spent at the last shutdown), topped up by
//! [`DiskQueue::refill_reserve`] a step at a time.

use super::*;

/// File name of the reserve in the queue directory.
pub(super) const RESERVE_FILE: &str = "reserve";
/// Bytes written per `write`.
const CHUNK: u64 = 1 << 20;
/// Most bytes [`DiskQueue::refill_reserve`] writes per call (it runs under the queue's lock).
const REFILL_STEP: u64 = 8 << 20;

/// Length of the reserve file in `dir` that is really allocated: 0 for a sparse one (a file
/// made with `set_len` holds no blocks, and freeing it frees nothing).
pub(super) fn reserve_on_disk(dir: &Path) -> u64 {
    let Ok(meta) = fs::metadata(dir.join(RESERVE_FILE)) else {
        return 0;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.blocks().saturating_mul(512) < meta.len() {
            return 0;
        }
    }
    meta.len()
}

impl DiskQueue {
    /// Grows the reserve by at most `step` bytes towards [`QueueOptions::reserve_bytes`], or
    /// shrinks it to that size. On a failed write the file keeps what was written before it.
    pub(super) fn grow_reserve(&mut self, step: u64) -> io::Result<()> {
        let target = self.opts.reserve_bytes;
        if self.reserve_len == target {
            return Ok(());
        }
        let path = self.dir.join(RESERVE_FILE);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if self.reserve_len > target {
            f.set_len(target)?;
            self.reserve_len = target;
            return Ok(());
        }
        // Cut a partial tail (or a sparse file, counted as 0) before writing real bytes.
        f.set_len(self.reserve_len)?;
        f.seek(SeekFrom::Start(self.reserve_len))?;
        let end = self.reserve_len.saturating_add(step).min(target);
        let mut rng = fastrand::Rng::new();
        let mut buf = vec![0u8; CHUNK.min(end - self.reserve_len) as usize];
        while self.reserve_len < end {
            let n = (end - self.reserve_len).min(CHUNK) as usize;
            rng.fill(&mut buf[..n]);
            let res = Self::write_bytes(self.fail_writes, &mut self.free_space, &mut f, &buf[..n])
                .and_then(|()| f.sync_data());
            if let Err(e) = res {
                let _ = f.set_len(self.reserve_len);
                return Err(e);
            }
            self.reserve_len += n as u64;
        }
        Ok(())
    }

    /// Deletes the reserve, giving its space to what must be written now. False when there was
    /// none to give.
    pub(super) fn release_reserve(&mut self) -> bool {
        if self.reserve_len == 0 {
            return false;
        }
        let path = self.dir.join(RESERVE_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::warn!(
                    bytes = self.reserve_len,
                    "disk full at shutdown: released the queue's reserve to write the records held in memory"
                );
                if let Some(free) = &mut self.free_space {
                    *free += self.reserve_len;
                }
                self.reserve_len = 0;
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete the queue's reserve");
                false
            }
        }
    }

    /// Tops the reserve up by one step while it is short of [`QueueOptions::reserve_bytes`]
    /// and the disk takes writes (never while records wait in memory: they come first).
    pub fn refill_reserve(&mut self) -> Result<(), QueueError> {
        if self.reserve_len >= self.opts.reserve_bytes
            || self.write_failed
            || !self.memory.is_empty()
        {
            return Ok(());
        }
        let path = self.dir.join(RESERVE_FILE);
        self.grow_reserve(REFILL_STEP).map_err(|e| io_err(&path, e))
    }

    /// Bytes held in the reserve now.
    pub fn reserve_len(&self) -> u64 {
        self.reserve_len
    }
}
