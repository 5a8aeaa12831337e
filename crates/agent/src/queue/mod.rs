//! Durable on-disk queue for encoded remote-write batches.
//!
//! Every batch is appended here before it is sent and stays until the sender acknowledges it
//! (delivered, or deliberately dropped after a non-retryable status). After `kill -9` and a
//! restart, every appended but unacknowledged record is replayed in id order; records
//! acknowledged shortly before the crash may be replayed again (duplicates are acceptable, loss
//! is not), but never records below the watermark or listed as done in it (so a dropped
//! poison record does not come back).
//!
//! # Directory layout
//!
//! - `<first id, 20 decimal digits>.seg`: segment files, named by the id of their first record.
//!   Ids increase across segments, so sorting the names sorts the records.
//! - `acked`: the ack watermark (see below), replaced atomically via `acked.tmp` + rename.
//! - `lock`: held with an exclusive `flock` while a queue is open, and holding its pid: a second
//!   queue (a second agent) on the same directory fails with [`QueueError::Locked`] naming it.
//! - `reserve`: [`QueueOptions::reserve_bytes`] of disk space held back for a shutdown on a
//!   full disk (see below).
//!
//! Other files are ignored.
//!
//! # Segment format (all integers little-endian)
//!
//! Version 2 (written since 0.2; version 1 segments are still read, see below):
//!
//! ```text
//! segment := header record*
//! header  := "SLOGWQ" version:u16 (= 2)                                         8 bytes
//! record  := sync:[d5 51 52 5a] len:u32 crc:u32 skipped:u32 id:u64 created_unix_ms:i64 payload
//!                                                                              32 + len bytes
//! ```
//!
//! `crc` is CRC-32 (IEEE, as computed by `crc32fast`) over every byte of the record except the
//! `crc` field itself. `skipped` is the number of ids right below `id` that were never written
//! on purpose (records evicted from the memory fallback), so that on open every other hole in
//! the id sequence is a loss: the records on disk form a chain. A segment header and its first
//! record are written with a single `write`, later records with one `write` each, so a crash
//! leaves at most one torn record at the end of the newest segment. A segment is closed (rolled)
//! when the next record would make it larger than [`QueueOptions::segment_bytes`]; a single
//! record larger than that gets a segment of its own.
//!
//! Version 1 records are `len:u32 crc:u32 id:u64 created_unix_ms:i64 payload` (24-byte header,
//! no sync marker, no `skipped`); a version 1 segment is read up to its first damage, and its
//! records are not chain-checked. New records always go to version 2 segments.
//!
//! # Ack watermark
//!
//! ```text
//! acked := "SLOGWA" version:u16 (= 2) watermark:u64 next_id:u64 count:u32
//!           (first:u64 last:u64){count} crc:u32
//! ```
//!
//! All records with `id < watermark` are acknowledged or dropped, and so are the ids of the
//! `done` ranges above it (acknowledged out of order, dropped, or found lost by an open; at most
//! 65,536 ranges are listed); `next_id` lets ids keep increasing after all segments were
//! deleted and reveals a deleted newest segment. `crc` covers everything before it. Version 1
//! (`watermark next_id crc`, 28 bytes) is still read. The file is rewritten (tmp + rename,
//! fsynced with the directory when [`QueueOptions::fsync`] is set) when any of it changed and
//! either a segment file was deleted or at least one second passed since the last write, and on
//! [`DiskQueue::flush`]. A missing or damaged file means watermark 0: everything on disk is
//! replayed (duplicates, never loss). Only whole leading segments are deleted (a fully
//! acknowledged segment behind an unacknowledged one stays until the watermark passes it), so
//! every deleted id is below the watermark.
//!
//! # Damage
//!
//! On [`DiskQueue::open`] every record's length and checksum is verified. After a bad record
//! (flipped bytes, a torn write, a damaged segment header) the scan resynchronises at the next
//! valid record: the next sync marker followed by a header and payload whose checksum matches.
//! Then:
//!
//! - every damaged byte is counted ([`OpenReport::lost_bytes`], [`DropCounts::corrupt_bytes`]);
//! - every lost record is counted ([`OpenReport::corrupt_records`], [`DropCounts::corrupt`]),
//!   from the hole in the id chain that the next valid record reveals, not counting ids below
//!   the watermark or listed as done, and up to the `next_id` of the watermark file for damage
//!   at the very end (a torn write whose append never returned is no loss); damage in a
//!   version 1 segment counts as one lost record;
//! - a hole in the chain with no damage around it is a missing segment file
//!   ([`OpenReport::missing_records`], [`DropCounts::missing`]), and so is a newest id below the
//!   `next_id` of the watermark file (a deleted newest segment, or records that were only in
//!   memory at a crash);
//! - each event is logged once at `warn` with the segment file name.
//!
//! The newest segment is truncated after its last valid record when its tail is damaged, so a
//! torn write is reported once; other damaged segments keep their bytes for inspection until
//! their records are acknowledged, and their damage is reported again by an open before that.
//! A segment with an unreadable header is scanned as version 2 from its first byte. No file
//! content makes `open` fail or panic; only I/O errors and the lock do. Checksums are verified
//! again when records are read back by [`DiskQueue::take`]; a record that fails then is
//! dropped and counted as corrupt.
//!
//! # Limits
//!
//! - [`QueueOptions::max_bytes`] bounds the total size of the segment files. An append that would
//!   exceed it deletes the oldest segments first, including records not yet acknowledged or in
//!   flight; those count as [`DropCounts::max_bytes`]. The newest data is always kept. To keep that
//!   loss granular, segments are at most a quarter of `max_bytes`.
//! - [`QueueOptions::max_age`]: [`DiskQueue::expire`] drops records created before
//!   `now - max_age` ([`DropCounts::max_age`]). Set it to the SLO Prometheus'
//!   `storage.tsdb.out_of_order_time_window` (default here: 1h): older samples would be rejected
//!   by the TSDB anyway, so sending them only wastes the link.
//!
//! # Disk failures
//!
//! When writing a record fails (ENOSPC, EIO, …) the record is kept in an in-memory fallback
//! buffer bounded by [`QueueOptions::memory_fallback_bytes`] (oldest dropped first, counted as
//! `max_bytes` drops) and [`DiskQueue::memory_fallback_active`] reports it. Later appends and
//! takes first try to move the buffered records to disk, in id order, so disk mode resumes by
//! itself once space returns. A partially written record is truncated away when possible;
//! otherwise the segment is closed and its torn tail is counted on the next open. Records in
//! memory are lost on a crash.
//!
//! A graceful shutdown loses none of them as long as they fit the reserve: [`DiskQueue::flush`]
//! deletes the `reserve` file when the disk cannot take them otherwise, and writes them into the
//! space it frees. The reserve is filled again at the next open (or, while the disk is still
//! full then, by [`DiskQueue::refill_reserve`] once it takes writes). What still cannot be
//! written is listed by [`DiskQueue::unwritten`], for the caller to count.
//!
//! All calls are synchronous `std::fs` I/O, each short (one record write, one read per run of
//! records); call them from a blocking task.
//!
//! # Performance
//!
//! `benches/queue.rs` (append + take + ack per record, 2 shared cores, ext4 on a virtual disk):
//! about 1.4 GB/s of payload with 4 KiB records and 2.8 GB/s with 64 KiB records without fsync;
//! 16 MB/s (about 3,900 records/s) with 4 KiB records and `fsync`, which is bound by the disk.
//!
//! <!-- Absolute paths: an outer doc comment on `mod queue` would change the link scope. -->
//! [`DiskQueue::expire`]: crate::queue::DiskQueue::expire
//! [`DiskQueue::flush`]: crate::queue::DiskQueue::flush
//! [`DiskQueue::refill_reserve`]: crate::queue::DiskQueue::refill_reserve
//! [`DiskQueue::unwritten`]: crate::queue::DiskQueue::unwritten
//! [`QueueOptions::reserve_bytes`]: crate::queue::QueueOptions::reserve_bytes
//! [`DiskQueue::memory_fallback_active`]: crate::queue::DiskQueue::memory_fallback_active
//! [`DiskQueue::open`]: crate::queue::DiskQueue::open
//! [`DiskQueue::take`]: crate::queue::DiskQueue::take
//! [`DropCounts::corrupt`]: crate::queue::DropCounts::corrupt
//! [`DropCounts::corrupt_bytes`]: crate::queue::DropCounts::corrupt_bytes
//! [`DropCounts::missing`]: crate::queue::DropCounts::missing
//! [`DropCounts::max_age`]: crate::queue::DropCounts::max_age
//! [`DropCounts::max_bytes`]: crate::queue::DropCounts::max_bytes
//! [`OpenReport::corrupt_records`]: crate::queue::OpenReport::corrupt_records
//! [`OpenReport::missing_records`]: crate::queue::OpenReport::missing_records
//! [`OpenReport::lost_bytes`]: crate::queue::OpenReport::lost_bytes
//! [`QueueError::Locked`]: crate::queue::QueueError::Locked
//! [`QueueOptions::fsync`]: crate::queue::QueueOptions::fsync
//! [`QueueOptions::max_age`]: crate::queue::QueueOptions::max_age
//! [`QueueOptions::max_bytes`]: crate::queue::QueueOptions::max_bytes
//! [`QueueOptions::memory_fallback_bytes`]: crate::queue::QueueOptions::memory_fallback_bytes
//! [`QueueOptions::segment_bytes`]: crate::queue::QueueOptions::segment_bytes

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

mod files;
mod format;
mod index;
mod lock;
mod memory;
mod open;
mod options;
mod ranges;
mod reserve;
#[cfg(test)]
mod tests;

use format::{
    encode_header, encode_watermark, parse_record, parse_segment_name, read_watermark, rec_size,
    scan_segment, segment_name, sync_dir, Version, Watermark, REC_HEADER_LEN, SEG_HEADER_LEN,
    SEG_MAGIC_V2, WM_FILE, WM_MAX_DONE_RANGES, WM_TMP,
};
use lock::{lock_dir, DirLock};
use ranges::IdRanges;
use reserve::reserve_on_disk;

use index::{Loc, Meta, Segment, State};
use memory::MemRecord;
pub use options::QueueOptions;
use options::WM_INTERVAL;

/// Identifier of a queued record; increases monotonically with every append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// A record handed out by [`DiskQueue::take`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Id to pass to [`DiskQueue::ack`] or [`DiskQueue::requeue`].
    pub id: RecordId,
    /// Creation time given to [`DiskQueue::append`].
    pub created_unix_ms: i64,
    /// The appended bytes.
    pub payload: Bytes,
}

/// What [`DiskQueue::open`] found on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Unacknowledged records that will be handed out again.
    pub replayable_records: u64,
    /// Encoded size (32-byte header + payload) of those records.
    pub replayable_bytes: u64,
    /// Unacknowledged records lost to damaged bytes.
    pub corrupt_records: u64,
    /// Unacknowledged records lost with a missing segment file (a hole in the id chain).
    pub missing_records: u64,
    /// Bytes of segment files that do not form valid records (skipped or truncated).
    pub lost_bytes: u64,
}

/// Records dropped without delivery since the queue was opened, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Dropped to stay within `max_bytes` (or the memory fallback bound).
    pub max_bytes: u64,
    /// Dropped by [`DiskQueue::expire`] as older than `max_age`.
    pub max_age: u64,
    /// Found damaged on open or when read back.
    pub corrupt: u64,
    /// Found missing on open (a deleted segment file).
    pub missing: u64,
    /// Damaged bytes found on open or when read back.
    pub corrupt_bytes: u64,
}

/// Errors of the disk queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file system operation failed.
    #[error("disk queue I/O on {path}: {source}")]
    Io {
        /// File or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The record can never fit into the queue.
    #[error("record of {size} bytes exceeds the queue limit of {limit} bytes")]
    RecordTooLarge {
        /// Encoded record size.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// Writing to disk failed and the record does not fit into the memory fallback either.
    #[error(
        "disk write failed and a record of {size} bytes does not fit the memory fallback: {source}"
    )]
    FallbackFull {
        /// Encoded record size.
        size: u64,
        /// The disk error.
        #[source]
        source: io::Error,
    },
    /// The record id space is used up (a file on disk claims id `u64::MAX`).
    #[error("disk queue record ids exhausted; remove the queue directory")]
    IdsExhausted,
    /// The options are unusable.
    #[error("invalid disk queue options: {0}")]
    InvalidOptions(&'static str),
    /// Another queue (another agent) has the directory open.
    #[error("{} is locked by another agent ({holder}); one agent per buffer.path", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote into it (`pid N`).
        holder: String,
    },
}

fn io_err(path: &Path, source: io::Error) -> QueueError {
    QueueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Durable FIFO of byte records in a directory; see the module documentation.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    opts: QueueOptions,
    /// `opts.segment_bytes` capped to a quarter of `max_bytes`.
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Append handle of the last segment; `None` means the next write starts a new segment.
    writer: Option<File>,
    disk_bytes: u64,
    /// Records whose disk write failed; their ids are all above those on disk.
    memory: VecDeque<MemRecord>,
    memory_bytes: u64,
    write_failed: bool,
    next_id: u64,
    /// Records with ids at or above this have never been handed out.
    next_take: u64,
    /// Pending ids below `next_take` (given back by `requeue`); may hold stale ids.
    requeued: BTreeSet<u64>,
    live_records: u64,
    live_bytes: u64,
    drops: DropCounts,
    persisted_wm: u64,
    last_wm_write: Option<Instant>,
    wm_interval: Duration,
    /// A segment was deleted: persist the watermark without waiting for the interval.
    wm_force: bool,
    scratch: Vec<u8>,
    /// Test hook: every write fails (after writing half of its bytes).
    fail_writes: bool,
    /// Test hook: simulated free disk space; a write larger fails like `fail_writes`, deleting a
    /// segment or the reserve adds to it. `None`: the real disk decides.
    free_space: Option<u64>,
    /// Bytes held in the reserve file (see `reserve`).
    reserve_len: u64,
    /// Highest id written to disk: the chain link (`skipped`) of the next record.
    last_written: u64,
    /// Done id ranges above the watermark as last persisted.
    persisted_done: Vec<(u64, u64)>,
    /// Done ids above the watermark that no segment holds any more: read from the watermark
    /// file, or found lost by `open`.
    done_extra: IdRanges,
    /// `next_id` as last persisted.
    persisted_next: u64,
    /// A record was finished since the watermark was last persisted.
    done_dirty: bool,
    /// Held while the queue is open.
    _lock: DirLock,
}

impl DiskQueue {
    /// Appends a record: written to the segment file (fdatasynced with `fsync`) before
    /// returning, so it survives a crash. Drops the oldest segments when `max_bytes` would be
    /// exceeded. On a disk error the record is kept in the memory fallback instead.
    pub fn append(&mut self, created_unix_ms: i64, payload: &[u8]) -> Result<RecordId, QueueError> {
        let size = rec_size(payload.len());
        if payload.len() > u32::MAX as usize || size + SEG_HEADER_LEN > self.opts.max_bytes {
            return Err(QueueError::RecordTooLarge {
                size,
                limit: self.opts.max_bytes.min(u64::from(u32::MAX)),
            });
        }
        let id = self.next_id;
        // Only reachable through a crafted file name or watermark; never wrap around.
        self.next_id = id.checked_add(1).ok_or(QueueError::IdsExhausted)?;
        self.live_records += 1;
        self.live_bytes += size;
        // Memory records are older than this one: they must reach the disk first.
        let res = self
            .flush_memory()
            .and_then(|()| self.write_record(id, created_unix_ms, payload, State::Pending));
        match res {
            Ok(()) => self.write_failed = false,
            Err(e) => {
                if !self.write_failed {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "disk queue write failed, buffering in memory");
                }
                self.write_failed = true;
                self.push_memory(id, created_unix_ms, Bytes::copy_from_slice(payload), e)?;
            }
        }
        if let Err(e) = self.maybe_persist_watermark() {
            tracing::warn!(error = %e, "cannot persist ack watermark");
        }
        Ok(RecordId(id))
    }

    /// Hands out up to `max` records not yet handed out (requeued ones first), oldest first.
    ///
    /// They stay in the queue, in flight, until acked or requeued; after a reopen they are
    /// handed out again. On an I/O error nothing is handed out.
    pub fn take(&mut self, max: usize) -> Result<Vec<Record>, QueueError> {
        if !self.memory.is_empty() {
            match self.flush_memory() {
                Ok(()) => self.write_failed = false,
                Err(e) => tracing::debug!(error = %e, "disk queue still cannot write"),
            }
        }
        let mut cands: Vec<Loc> = Vec::new();
        let mut stale = Vec::new();
        for &id in &self.requeued {
            if cands.len() >= max {
                break;
            }
            match self.locate(id) {
                Some(loc) if self.state(loc) == State::Pending => cands.push(loc),
                _ => stale.push(id),
            }
        }
        let mut next_take = self.next_take;
        let mut pos = self.lower_bound(self.next_take);
        while cands.len() < max {
            let Some(loc) = pos else { break };
            if self.state(loc) == State::Pending {
                cands.push(loc);
            }
            next_take = self.loc_id(loc).saturating_add(1);
            pos = self.next_loc(loc);
        }

        // Read first, mutate after, so an I/O error leaves the queue unchanged.
        let mut payloads: Vec<Option<Bytes>> = Vec::with_capacity(cands.len());
        let mut i = 0;
        while i < cands.len() {
            match cands[i] {
                Loc::Mem(mi) => {
                    payloads.push(Some(self.memory[mi].payload.clone()));
                    i += 1;
                }
                Loc::Disk(si, ri) => {
                    let mut run = vec![ri];
                    let mut j = i + 1;
                    while let Some(&Loc::Disk(s2, r2)) = cands.get(j) {
                        if s2 != si || r2 <= run[run.len() - 1] {
                            break;
                        }
                        run.push(r2);
                        j += 1;
                    }
                    payloads.extend(self.read_run(si, &run)?);
                    i = j;
                }
            }
        }

        for id in stale {
            self.requeued.remove(&id);
        }
        let mut out = Vec::with_capacity(cands.len());
        let mut corrupt = false;
        for (loc, payload) in cands.into_iter().zip(payloads) {
            let id = self.loc_id(loc);
            self.requeued.remove(&id);
            match payload {
                Some(payload) => {
                    *self.state_mut(loc) = State::InFlight;
                    out.push(Record {
                        id: RecordId(id),
                        created_unix_ms: self.loc_created(loc),
                        payload,
                    });
                }
                None => {
                    let (segment, bytes) = match loc {
                        Loc::Disk(si, ri) => (
                            self.segments[si].path.display().to_string(),
                            self.segments[si].version.header_len()
                                + u64::from(self.segments[si].recs[ri].len),
                        ),
                        Loc::Mem(_) => (String::new(), 0),
                    };
                    tracing::warn!(
                        id,
                        segment,
                        bytes,
                        "queue record damaged on read, dropping it"
                    );
                    self.finish(loc);
                    self.drops.corrupt += 1;
                    self.drops.corrupt_bytes += bytes;
                    corrupt = true;
                }
            }
        }
        self.next_take = self.next_take.max(next_take);
        if corrupt {
            self.trim_memory();
            self.delete_done_segments()?;
            self.maybe_persist_watermark()?;
        }
        Ok(out)
    }

    /// Gives records back after a failed send; `take` hands them out again, in id order, before
    /// newer records. Ids not in flight are ignored.
    pub fn requeue(&mut self, ids: &[RecordId]) {
        for &RecordId(id) in ids {
            if let Some(loc) = self.locate(id) {
                if self.state(loc) == State::InFlight {
                    *self.state_mut(loc) = State::Pending;
                    self.requeued.insert(id);
                }
            }
        }
    }

    /// Whether record `id` is still to be delivered (not acknowledged, not dropped): a sender
    /// holding a record that was dropped meanwhile (`max_bytes`, `max_age`) must not send it.
    pub fn is_live(&self, id: RecordId) -> bool {
        self.locate(id.0)
            .is_some_and(|loc| self.state(loc) != State::Done)
    }

    /// Marks a record delivered or deliberately dropped. Unknown or already finished ids are
    /// ignored. A segment whose records are all acked is deleted.
    ///
    /// The ack always takes effect in memory; an error means deleting a segment or persisting
    /// the watermark failed (retried on later calls; the worst case is a resend after a crash).
    pub fn ack(&mut self, id: RecordId) -> Result<(), QueueError> {
        let Some(loc) = self.locate(id.0) else {
            return Ok(());
        };
        if self.state(loc) == State::Done {
            return Ok(());
        }
        self.finish(loc);
        self.requeued.remove(&id.0);
        let res = match loc {
            Loc::Disk(..) => self.delete_done_segments(),
            Loc::Mem(_) => {
                self.trim_memory();
                Ok(())
            }
        };
        let wm = self.maybe_persist_watermark();
        res.and(wm)
    }

    /// Drops pending records created before `now_unix_ms - max_age` and returns how many.
    /// Records in flight are left alone (they are acked or requeued, then expire).
    pub fn expire(&mut self, now_unix_ms: i64) -> Result<u64, QueueError> {
        let max_age = i64::try_from(self.opts.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_unix_ms.saturating_sub(max_age);
        let mut n = 0;
        for si in 0..self.segments.len() {
            if self.segments[si].min_created >= cutoff {
                continue;
            }
            for ri in self.segments[si].head..self.segments[si].recs.len() {
                let m = &self.segments[si].recs[ri];
                if m.state == State::Pending && m.created < cutoff {
                    self.finish(Loc::Disk(si, ri));
                    n += 1;
                }
            }
        }
        for mi in 0..self.memory.len() {
            let m = &self.memory[mi];
            if m.state == State::Pending && m.created < cutoff {
                self.finish(Loc::Mem(mi));
                n += 1;
            }
        }
        self.trim_memory();
        self.drops.max_age += n;
        if n > 0 {
            tracing::info!(records = n, "disk queue expired old records");
        }
        let res = self.delete_done_segments();
        let wm = self.maybe_persist_watermark();
        res.and(wm).map(|()| n)
    }

    /// Records not yet acked or dropped (pending and in flight, on disk and in memory).
    pub fn len_records(&self) -> u64 {
        self.live_records
    }

    /// Encoded size (24-byte header + payload) of the records counted by `len_records`.
    pub fn len_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Total size of the segment files (what `max_bytes` bounds; includes acked records in
    /// segments that still hold unacked ones).
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Creation time of the oldest (lowest id) record not yet acked or dropped.
    pub fn oldest_created_unix_ms(&self) -> Option<i64> {
        for s in &self.segments {
            if let Some(m) = s.recs.get(s.head) {
                return Some(m.created);
            }
        }
        self.memory
            .iter()
            .find(|m| m.state != State::Done)
            .map(|m| m.created)
    }

    /// Cumulative drop counts since open.
    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// True while records are held in memory because disk writes fail (or the last one failed).
    pub fn memory_fallback_active(&self) -> bool {
        self.write_failed || !self.memory.is_empty()
    }

    /// Makes the current state durable now: writes buffered records (deleting the reserve
    /// first when the disk cannot take them otherwise), fdatasyncs the active segment and
    /// persists the ack watermark. Call on graceful shutdown. Fails while buffered records still
    /// cannot be written; [`DiskQueue::unwritten`] then lists them.
    pub fn flush(&mut self) -> Result<(), QueueError> {
        if !self.memory.is_empty() {
            let mut res = self.flush_memory();
            // Only now: while the agent runs, space may come back, and the reserve is the one
            // guarantee for the records still held in memory when it stops.
            if res.is_err() && self.release_reserve() {
                res = self.flush_memory();
            }
            let path = self.dir.clone();
            res.map_err(|e| io_err(&path, e))?;
            self.write_failed = false;
        }
        if let (Some(w), Some(seg)) = (&self.writer, self.segments.back()) {
            w.sync_data().map_err(|e| io_err(&seg.path, e))?;
        }
        self.wm_force = true;
        self.maybe_persist_watermark()
    }

    /// Payloads of the records held only in memory and not yet acknowledged or dropped: what is
    /// lost if the process ends now (after a failed [`DiskQueue::flush`]).
    pub fn unwritten(&self) -> Vec<Bytes> {
        self.memory
            .iter()
            .filter(|m| m.state != State::Done)
            .map(|m| m.payload.clone())
            .collect()
    }

    // ---- internals ----

    /// Test hook: make every disk write fail with ENOSPC after writing half its bytes.
    #[cfg(test)]
    pub(crate) fn set_fail_writes(&mut self, fail: bool) {
        self.fail_writes = fail;
    }

    /// Test hook: simulate a disk with `free` bytes left (`None`: the real disk).
    #[cfg(test)]
    pub(crate) fn set_free_space(&mut self, free: Option<u64>) {
        self.free_space = free;
    }
}
