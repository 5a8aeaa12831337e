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

mod format;
mod lock;
mod ranges;
#[cfg(test)]
mod tests;

use format::{
    encode_header, encode_watermark, parse_record, parse_segment_name, read_watermark, rec_size,
    scan_segment, segment_name, sync_dir, Version, Watermark, REC_HEADER_LEN, SEG_HEADER_LEN,
    SEG_MAGIC_V2, WM_FILE, WM_MAX_DONE_RANGES, WM_TMP,
};
use lock::{lock_dir, DirLock};
use ranges::IdRanges;

/// Minimum interval between watermark rewrites that are not forced by a segment deletion.
const WM_INTERVAL: Duration = Duration::from_secs(1);

/// Limits and durability settings of a [`DiskQueue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// Upper bound of the segment files' total size; oldest segments are dropped to stay below.
    pub max_bytes: u64,
    /// Records older than this are dropped by [`DiskQueue::expire`]. Match the SLO Prometheus
    /// `storage.tsdb.out_of_order_time_window`.
    pub max_age: Duration,
    /// Size at which a segment file is closed and a new one started.
    pub segment_bytes: u64,
    /// `fdatasync` every append (and the directory on segment creation) when true.
    pub fsync: bool,
    /// Bound of the in-memory buffer used while disk writes fail.
    pub memory_fallback_bytes: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(3600),
            segment_bytes: 8 << 20,
            fsync: false,
            memory_fallback_bytes: 64 << 20,
        }
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not handed out (or requeued).
    Pending,
    /// Handed out by `take`, neither acked nor requeued.
    InFlight,
    /// Acked or dropped.
    Done,
}

/// In-memory index entry of a record stored in a segment.
#[derive(Debug)]
struct Meta {
    id: u64,
    /// Offset of the record header in the segment file.
    offset: u64,
    len: u32,
    created: i64,
    state: State,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Record layout of the file.
    version: Version,
    /// Id of `recs[0]`; segments are never empty.
    first_id: u64,
    /// File size in bytes.
    len: u64,
    recs: Vec<Meta>,
    /// Records not `Done`.
    live: usize,
    /// Index of the first record not `Done` (== `recs.len()` when none).
    head: usize,
    /// Smallest creation time of any record, to skip segments in `expire`.
    min_created: i64,
    /// Read handle, opened on first `take` from this segment.
    reader: Option<File>,
}

impl Segment {
    /// Accounts a record of `bytes` bytes just written at the end of the file.
    fn push(&mut self, meta: Meta, bytes: u64) {
        if meta.state != State::Done {
            self.live += 1;
        }
        self.min_created = self.min_created.min(meta.created);
        self.recs.push(meta);
        self.advance_head();
        self.len += bytes;
    }

    fn advance_head(&mut self) {
        while self
            .recs
            .get(self.head)
            .is_some_and(|m| m.state == State::Done)
        {
            self.head += 1;
        }
    }
}

#[derive(Debug)]
struct MemRecord {
    id: u64,
    created: i64,
    payload: Bytes,
    state: State,
}

/// Position of a record: segment and record index, or index in the memory fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Disk(usize, usize),
    Mem(usize),
}

/// The id chain while [`DiskQueue::open`] reads the segments in order: which ids are accounted
/// for, and whether damage was seen since the last valid record.
#[derive(Debug)]
struct Chain {
    /// Done ids above the watermark (from the watermark file).
    done: IdRanges,
    /// Ids found lost (to be persisted as done, so they are reported once).
    lost: IdRanges,
    /// Highest id accounted for (found, or below the watermark).
    base: u64,
    /// Damaged bytes since the last valid record.
    damage_pending: bool,
    /// ... beginning with a complete (then damaged) record.
    whole_record_pending: bool,
}

impl Chain {
    fn damaged(&mut self, whole_record: bool) {
        self.damage_pending = true;
        self.whole_record_pending |= whole_record;
    }

    /// The record before the next one found is `prev`: counts the unaccounted ids up to it.
    fn link(&mut self, prev: u64, segment: &str, report: &mut OpenReport) {
        let mut lost = 0;
        if prev > self.base {
            lost = prev - self.base - self.done.count_in(self.base + 1, prev);
            self.lost.insert(self.base + 1, prev);
        }
        // Version 1 damage lost at least one record; it has no chain to tell.
        if self.whole_record_pending {
            lost = lost.max(1);
        }
        if lost > 0 {
            if self.damage_pending {
                report.corrupt_records += lost;
                tracing::warn!(segment, records = lost, "queue records lost to damage");
            } else {
                report.missing_records += lost;
                tracing::warn!(
                    segment,
                    records = lost,
                    first_missing_id = self.base + 1,
                    last_missing_id = prev,
                    "queue records missing before this segment (a deleted segment file?)"
                );
            }
        }
        self.advance(prev);
    }

    fn advance(&mut self, id: u64) {
        self.base = self.base.max(id);
        self.damage_pending = false;
        self.whole_record_pending = false;
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

/// Rewrites a damaged segment with only its valid `recs` (in version 2, each record's
/// `skipped` from `relinked`), via a temporary file and a rename. Updates the offsets; returns
/// the new file length.
fn rewrite_segment(
    path: &Path,
    version: Version,
    recs: &mut [Meta],
    relinked: &[u32],
    fsync: bool,
) -> io::Result<u64> {
    let data = fs::read(path)?;
    let hl = version.header_len() as usize;
    let mut out = SEG_MAGIC_V2.to_vec();
    for (m, &skipped) in recs.iter_mut().zip(relinked) {
        let start = m.offset as usize + hl;
        let payload = data
            .get(start..start + m.len as usize)
            .ok_or_else(|| io::Error::other("segment changed while it was opened"))?;
        m.offset = out.len() as u64;
        out.extend_from_slice(&encode_header(m.id, skipped, m.created, payload));
        out.extend_from_slice(payload);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    if fsync {
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    Ok(out.len() as u64)
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `dir`, verifying every record on disk.
    ///
    /// Damaged data is skipped and reported, never an error; errors are I/O failures and
    /// invalid options.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<(Self, OpenReport), QueueError> {
        if opts.max_bytes < SEG_HEADER_LEN + REC_HEADER_LEN + 1 {
            return Err(QueueError::InvalidOptions("max_bytes is too small"));
        }
        if opts.segment_bytes == 0 {
            return Err(QueueError::InvalidOptions("segment_bytes must be positive"));
        }
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let lock = lock_dir(dir)?;
        let tmp = dir.join(WM_TMP);
        if let Err(e) = fs::remove_file(&tmp) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove stale file");
            }
        }
        let mark = read_watermark(dir);
        let wm = mark.watermark;

        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                files.push((id, entry.path()));
            }
        }
        files.sort();

        let mut report = OpenReport::default();
        let mut chain = Chain {
            done: IdRanges::from_ranges(mark.done.iter().copied()),
            lost: IdRanges::default(),
            base: wm.saturating_sub(1),
            damage_pending: false,
            whole_record_pending: false,
        };
        let mut segments = VecDeque::new();
        let mut prev_max: Option<u64> = None;
        let mut prev_kept = wm.saturating_sub(1);
        let fsync = opts.fsync;
        let max_name = files.last().map_or(0, |(id, _)| *id);
        let n_files = files.len();
        for (i, (_, path)) in files.into_iter().enumerate() {
            let scan = scan_segment(&path).map_err(|e| io_err(&path, e))?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let mut len = scan.file_len;
            let damaged = scan.damaged_bytes();
            if damaged > 0 {
                report.lost_bytes += damaged;
                tracing::warn!(
                    segment = %name,
                    lost_bytes = damaged,
                    regions = scan.damage.len(),
                    header_ok = scan.version.is_some(),
                    "damaged queue segment; reading resumed at the next valid record"
                );
            }
            // Only the newest segment can have a torn tail from a crash; truncate it so the
            // damage is not reported again.
            if i + 1 == n_files && scan.damaged_tail() && scan.version.is_some() {
                let good = scan.good_len();
                match OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(good))
                {
                    Ok(()) => len = good,
                    Err(e) => {
                        tracing::warn!(segment = %name, error = %e, "cannot truncate damaged segment")
                    }
                }
            }
            let mut recs = Vec::with_capacity(scan.recs.len());
            // `skipped` of each kept record if the segment is rewritten: links to the previous
            // record kept, so that the losses found now are not found again.
            let mut relinked = Vec::with_capacity(scan.recs.len());
            let lost_before = report.corrupt_records + report.missing_records;
            let mut damage = scan.damage.iter().zip(&scan.damage_before).peekable();
            for (ri, found) in scan.recs.iter().enumerate() {
                while let Some((d, _)) = damage.next_if(|(_, before)| **before <= ri) {
                    chain.damaged(d.whole_record);
                }
                let h = found.header;
                // A record rewritten after a failed write may exist twice; keep the first.
                if prev_max.is_some_and(|p| h.id <= p) {
                    continue;
                }
                prev_max = Some(h.id);
                if let Some(skipped) = h.skipped {
                    let prev = h.id.saturating_sub(1).saturating_sub(u64::from(skipped));
                    chain.link(prev, &name, &mut report);
                }
                chain.advance(h.id);
                let skipped = h.id.saturating_sub(1).saturating_sub(prev_kept);
                relinked.push(u32::try_from(skipped).unwrap_or(u32::MAX));
                prev_kept = h.id;
                let done = h.id < wm || chain.done.contains(h.id);
                recs.push(Meta {
                    id: h.id,
                    offset: found.offset,
                    len: h.len,
                    created: h.created,
                    state: if done { State::Done } else { State::Pending },
                });
            }
            for (d, _) in damage {
                chain.damaged(d.whole_record);
            }
            let live = recs.iter().filter(|m| m.state != State::Done).count();
            if live == 0 {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(segment = %name, error = %e, "cannot delete acknowledged segment");
                }
                continue;
            }
            let mut version = scan.version.unwrap_or(Version::V2);
            let lost_here = report.corrupt_records + report.missing_records > lost_before;
            if damaged > 0 || lost_here {
                // Keep the valid records only, relinked: the next open finds a clean segment.
                len = rewrite_segment(&path, version, &mut recs, &relinked, fsync)
                    .map_err(|e| io_err(&path, e))?;
                version = Version::V2;
            }
            let mut seg = Segment {
                path,
                version,
                first_id: recs[0].id,
                len,
                min_created: recs.iter().map(|m| m.created).min().unwrap_or(i64::MIN),
                recs,
                live,
                head: 0,
                reader: None,
            };
            seg.advance_head();
            segments.push_back(seg);
        }
        // The next record written links to the newest id accounted for on disk.
        let last_on_disk = chain.base;
        // Records the watermark file knew of but no segment holds: a deleted newest segment,
        // damage at the very end, records only in memory at a crash.
        chain.link(
            mark.next_id.saturating_sub(1),
            "(end of queue)",
            &mut report,
        );
        let lost_any = report.corrupt_records + report.missing_records > 0;
        let next_id = [
            wm,
            mark.next_id,
            prev_max.map_or(0, |p| p.saturating_add(1)),
            max_name.saturating_add(1),
            chain.done.last().map_or(0, |d| d.saturating_add(1)),
            1,
        ]
        .into_iter()
        .max()
        .unwrap_or(1);

        let mut q = Self {
            dir: dir.to_path_buf(),
            segment_bytes: opts
                .segment_bytes
                .min(opts.max_bytes / 4)
                .max(SEG_HEADER_LEN + REC_HEADER_LEN),
            opts,
            disk_bytes: segments.iter().map(|s| s.len).sum(),
            live_records: 0,
            live_bytes: 0,
            segments,
            writer: None,
            memory: VecDeque::new(),
            memory_bytes: 0,
            write_failed: false,
            next_id,
            next_take: 0,
            requeued: BTreeSet::new(),
            drops: DropCounts {
                corrupt: report.corrupt_records,
                missing: report.missing_records,
                corrupt_bytes: report.lost_bytes,
                ..DropCounts::default()
            },
            persisted_wm: wm,
            last_wm_write: None,
            wm_interval: WM_INTERVAL,
            wm_force: false,
            scratch: Vec::new(),
            fail_writes: false,
            last_written: last_on_disk,
            persisted_done: mark.done,
            done_extra: IdRanges::from_ranges(
                chain
                    .done
                    .ranges()
                    .iter()
                    .chain(chain.lost.ranges())
                    .copied(),
            ),
            persisted_next: mark.next_id,
            done_dirty: false,
            _lock: lock,
        };
        for s in &q.segments {
            for m in s.recs.iter().filter(|m| m.state != State::Done) {
                q.live_records += 1;
                q.live_bytes += rec_size(m.len as usize);
            }
        }
        // The limit may have been lowered since the data was written.
        while q.disk_bytes > q.opts.max_bytes && !q.segments.is_empty() {
            q.drop_oldest_segment();
        }
        // Persist the lost ids as done: reported once, not by every open.
        if lost_any {
            q.wm_force = true;
            if let Err(e) = q.maybe_persist_watermark() {
                tracing::warn!(error = %e, "cannot persist ack watermark");
            }
        }
        report.replayable_records = q.live_records;
        report.replayable_bytes = q.live_bytes;
        tracing::info!(dir = %q.dir.display(), ?report, "disk queue opened");
        Ok((q, report))
    }

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

    /// Makes the current state durable now: retries buffered records, fdatasyncs the active
    /// segment and persists the ack watermark. Call on graceful shutdown. Fails while buffered
    /// records still cannot be written.
    pub fn flush(&mut self) -> Result<(), QueueError> {
        if !self.memory.is_empty() {
            let path = self.dir.clone();
            self.flush_memory().map_err(|e| io_err(&path, e))?;
            self.write_failed = false;
        }
        if let (Some(w), Some(seg)) = (&self.writer, self.segments.back()) {
            w.sync_data().map_err(|e| io_err(&seg.path, e))?;
        }
        self.wm_force = true;
        self.maybe_persist_watermark()
    }

    // ---- internals ----

    fn is_active(&self, si: usize) -> bool {
        self.writer.is_some() && si + 1 == self.segments.len()
    }

    fn locate(&self, id: u64) -> Option<Loc> {
        if self.memory.front().is_some_and(|m| id >= m.id) {
            let mi = self.memory.partition_point(|m| m.id < id);
            return (self.memory.get(mi)?.id == id).then_some(Loc::Mem(mi));
        }
        let si = self
            .segments
            .partition_point(|s| s.first_id <= id)
            .checked_sub(1)?;
        let recs = &self.segments[si].recs;
        let ri = recs.partition_point(|m| m.id < id);
        (recs.get(ri)?.id == id).then_some(Loc::Disk(si, ri))
    }

    /// First record with id >= `id`.
    fn lower_bound(&self, id: u64) -> Option<Loc> {
        let si = self
            .segments
            .partition_point(|s| s.recs.last().is_none_or(|m| m.id < id));
        if let Some(s) = self.segments.get(si) {
            return Some(Loc::Disk(si, s.recs.partition_point(|m| m.id < id)));
        }
        let mi = self.memory.partition_point(|m| m.id < id);
        (mi < self.memory.len()).then_some(Loc::Mem(mi))
    }

    fn next_loc(&self, loc: Loc) -> Option<Loc> {
        match loc {
            Loc::Disk(si, ri) if ri + 1 < self.segments[si].recs.len() => {
                Some(Loc::Disk(si, ri + 1))
            }
            Loc::Disk(si, _) if si + 1 < self.segments.len() => Some(Loc::Disk(si + 1, 0)),
            Loc::Disk(..) => (!self.memory.is_empty()).then_some(Loc::Mem(0)),
            Loc::Mem(mi) => (mi + 1 < self.memory.len()).then_some(Loc::Mem(mi + 1)),
        }
    }

    fn state(&self, loc: Loc) -> State {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].state,
            Loc::Mem(mi) => self.memory[mi].state,
        }
    }

    fn state_mut(&mut self, loc: Loc) -> &mut State {
        match loc {
            Loc::Disk(si, ri) => &mut self.segments[si].recs[ri].state,
            Loc::Mem(mi) => &mut self.memory[mi].state,
        }
    }

    fn loc_id(&self, loc: Loc) -> u64 {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].id,
            Loc::Mem(mi) => self.memory[mi].id,
        }
    }

    fn loc_created(&self, loc: Loc) -> i64 {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].created,
            Loc::Mem(mi) => self.memory[mi].created,
        }
    }

    /// Marks a live record done and updates the counters. Does not delete or trim anything,
    /// so other `Loc`s stay valid.
    fn finish(&mut self, loc: Loc) {
        let len = match loc {
            Loc::Disk(si, ri) => {
                let seg = &mut self.segments[si];
                let m = &mut seg.recs[ri];
                debug_assert_ne!(m.state, State::Done);
                m.state = State::Done;
                seg.live -= 1;
                let len = m.len as usize;
                seg.advance_head();
                len
            }
            Loc::Mem(mi) => {
                let m = &mut self.memory[mi];
                m.state = State::Done;
                m.payload.len()
            }
        };
        self.live_records -= 1;
        self.live_bytes -= rec_size(len);
        self.done_dirty = true;
    }

    /// Removes finished records from the front of the memory fallback.
    fn trim_memory(&mut self) {
        while let Some(m) = self.memory.front() {
            if m.state != State::Done {
                break;
            }
            self.memory_bytes -= rec_size(m.payload.len());
            // Never written: remembered as done so that its hole in the chain is no loss.
            self.done_extra.insert(m.id, m.id);
            self.memory.pop_front();
        }
    }

    fn delete_segment(&mut self, si: usize) -> Result<(), QueueError> {
        let Some(seg) = self.segments.remove(si) else {
            return Ok(());
        };
        self.disk_bytes -= seg.len;
        self.wm_force = true;
        drop(seg.reader);
        match fs::remove_file(&seg.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // Left behind: its records are below the watermark or acked duplicates on reopen.
            Err(e) => Err(io_err(&seg.path, e)),
        }
    }

    /// Deletes the leading segments without live records, except the one being appended to.
    /// Only leading ones: then every deleted id is below the watermark, and a hole in the id
    /// chain found by the next open is a loss.
    fn delete_done_segments(&mut self) -> Result<(), QueueError> {
        while self.segments.front().is_some_and(|s| s.live == 0) && !self.is_active(0) {
            self.delete_segment(0)?;
        }
        Ok(())
    }

    /// Drops the oldest segment with all its unacked records (counted as `max_bytes`).
    fn drop_oldest_segment(&mut self) {
        if self.segments.len() == 1 {
            self.writer = None;
        }
        let Some(seg) = self.segments.front() else {
            return;
        };
        let mut n = 0;
        for m in seg.recs.iter().filter(|m| m.state != State::Done) {
            n += 1;
            self.live_bytes -= rec_size(m.len as usize);
        }
        self.live_records -= n;
        self.drops.max_bytes += n;
        if n > 0 {
            tracing::warn!(records = n, path = %seg.path.display(), "disk queue full, dropping oldest segment");
        }
        if let Err(e) = self.delete_segment(0) {
            tracing::warn!(error = %e, "cannot delete dropped segment");
        }
    }

    /// Stops appending to the current segment; deletes it if nothing in it is live.
    fn seal_active(&mut self) {
        if self.writer.take().is_some() {
            if let Err(e) = self.delete_done_segments() {
                tracing::warn!(error = %e, "cannot delete acknowledged segment");
            }
        }
    }

    /// Writes `buf` to `f`, or with the test hook, half of it followed by ENOSPC.
    fn write_bytes(fail: bool, f: &mut File, buf: &[u8]) -> io::Result<()> {
        if fail {
            f.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected write failure",
            ));
        }
        f.write_all(buf)
    }

    /// Writes one record to disk (rolling and making room as needed). On error the disk state
    /// is as before (or the segment is closed with a torn tail when even truncation failed).
    fn write_record(
        &mut self,
        id: u64,
        created: i64,
        payload: &[u8],
        state: State,
    ) -> io::Result<()> {
        let size = rec_size(payload.len());
        if let Some(seg) = self.segments.back() {
            if self.writer.is_some() && seg.len + size > self.segment_bytes {
                self.seal_active();
            }
        }
        loop {
            let need = size
                + if self.writer.is_none() {
                    SEG_HEADER_LEN
                } else {
                    0
                };
            if self.disk_bytes + need <= self.opts.max_bytes || self.segments.is_empty() {
                break;
            }
            self.drop_oldest_segment();
        }

        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let new_segment = self.writer.is_none();
        if new_segment {
            buf.extend_from_slice(&SEG_MAGIC_V2);
        }
        // Ids between the last record on disk and this one never reach the disk (evicted from
        // the memory fallback): say so, or the next open would report them as lost.
        let skipped = id.saturating_sub(1).saturating_sub(self.last_written);
        let skipped = u32::try_from(skipped).unwrap_or(u32::MAX);
        buf.extend_from_slice(&encode_header(id, skipped, created, payload));
        buf.extend_from_slice(payload);
        let res = if new_segment {
            self.write_new_segment(id, created, payload.len(), state, &buf)
        } else {
            self.write_to_active(id, created, payload.len(), state, &buf)
        };
        if res.is_ok() {
            self.last_written = self.last_written.max(id);
        }
        self.scratch = buf;
        res
    }

    fn write_new_segment(
        &mut self,
        id: u64,
        created: i64,
        len: usize,
        state: State,
        buf: &[u8],
    ) -> io::Result<()> {
        let path = self.dir.join(segment_name(id));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let res = Self::write_bytes(self.fail_writes, &mut f, buf).and_then(|()| {
            if self.opts.fsync {
                f.sync_data()?;
                sync_dir(&self.dir)?;
            }
            Ok(())
        });
        if let Err(e) = res {
            drop(f);
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove failed segment");
            }
            return Err(e);
        }
        let mut segment = Segment {
            path,
            version: Version::V2,
            first_id: id,
            len: SEG_HEADER_LEN,
            recs: Vec::new(),
            live: 0,
            head: 0,
            min_created: created,
            reader: None,
        };
        segment.push(
            Meta {
                id,
                offset: SEG_HEADER_LEN,
                len: len as u32,
                created,
                state,
            },
            buf.len() as u64 - SEG_HEADER_LEN,
        );
        self.segments.push_back(segment);
        self.disk_bytes += buf.len() as u64;
        self.writer = Some(f);
        Ok(())
    }

    fn write_to_active(
        &mut self,
        id: u64,
        created: i64,
        len: usize,
        state: State,
        buf: &[u8],
    ) -> io::Result<()> {
        let fsync = self.opts.fsync;
        let fail = self.fail_writes;
        let (Some(f), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no active segment"));
        };
        let offset = seg.len;
        let res =
            Self::write_bytes(fail, f, buf)
                .and_then(|()| if fsync { f.sync_data() } else { Ok(()) });
        if let Err(e) = res {
            // Cut the partial record off so the segment stays valid; append no more to it
            // either way, since its file position is unknown now.
            if let Err(te) = f.set_len(offset) {
                tracing::warn!(path = %seg.path.display(), error = %te, "cannot truncate partial record");
            }
            self.seal_active();
            return Err(e);
        }
        seg.push(
            Meta {
                id,
                offset,
                len: len as u32,
                created,
                state,
            },
            buf.len() as u64,
        );
        self.disk_bytes += buf.len() as u64;
        Ok(())
    }

    /// Moves buffered records to disk in id order; stops at the first failure.
    fn flush_memory(&mut self) -> io::Result<()> {
        self.trim_memory();
        while let Some(m) = self.memory.front() {
            let (id, created, payload, state) = (m.id, m.created, m.payload.clone(), m.state);
            self.write_record(id, created, &payload, state)?;
            self.memory_bytes -= rec_size(payload.len());
            self.memory.pop_front();
            self.trim_memory();
        }
        Ok(())
    }

    /// Keeps a record whose disk write failed; evicts the oldest buffered records to fit.
    fn push_memory(
        &mut self,
        id: u64,
        created: i64,
        payload: Bytes,
        err: io::Error,
    ) -> Result<(), QueueError> {
        let size = rec_size(payload.len());
        if size > self.opts.memory_fallback_bytes {
            self.live_records -= 1;
            self.live_bytes -= size;
            return Err(QueueError::FallbackFull { size, source: err });
        }
        while self.memory_bytes + size > self.opts.memory_fallback_bytes {
            let Some(m) = self.memory.pop_front() else {
                break;
            };
            self.done_extra.insert(m.id, m.id);
            let s = rec_size(m.payload.len());
            self.memory_bytes -= s;
            if m.state != State::Done {
                self.live_records -= 1;
                self.live_bytes -= s;
                self.drops.max_bytes += 1;
            }
        }
        self.memory.push_back(MemRecord {
            id,
            created,
            payload,
            state: State::Pending,
        });
        self.memory_bytes += size;
        Ok(())
    }

    /// Reads records `ris` (increasing) of segment `si` with one read; `None` for records that
    /// fail verification.
    fn read_run(&mut self, si: usize, ris: &[usize]) -> Result<Vec<Option<Bytes>>, QueueError> {
        let seg = &mut self.segments[si];
        let (Some(&first), Some(&last)) = (ris.first(), ris.last()) else {
            return Ok(Vec::new());
        };
        let hl = seg.version.header_len();
        let start = seg.recs[first].offset;
        let end = seg.recs[last].offset + hl + u64::from(seg.recs[last].len);
        let path = &seg.path;
        let reader = match &mut seg.reader {
            Some(r) => r,
            None => seg
                .reader
                .insert(File::open(path).map_err(|e| io_err(path, e))?),
        };
        let mut buf = vec![0u8; (end - start) as usize];
        reader
            .seek(SeekFrom::Start(start))
            .and_then(|_| reader.read_exact(&mut buf))
            .map_err(|e| io_err(path, e))?;
        let buf = Bytes::from(buf);
        Ok(ris
            .iter()
            .map(|&ri| {
                let m = &seg.recs[ri];
                let rel = (m.offset - start) as usize;
                let body = rel + hl as usize;
                let ok = parse_record(seg.version, &buf[rel..body + m.len as usize])
                    .is_some_and(|h| h.len == m.len && h.id == m.id);
                ok.then(|| buf.slice(body..body + m.len as usize))
            })
            .collect())
    }

    /// Lowest id not yet acked or dropped (`next_id` when none).
    fn low_watermark(&self) -> u64 {
        for s in &self.segments {
            if let Some(m) = s.recs.get(s.head) {
                return m.id;
            }
        }
        self.memory
            .iter()
            .find(|m| m.state != State::Done)
            .map_or(self.next_id, |m| m.id)
    }

    /// Done ids above `wm` as ranges, ascending, at most [`WM_MAX_DONE_RANGES`].
    fn done_above(&mut self, wm: u64) -> Vec<(u64, u64)> {
        self.done_extra.retain_from(wm);
        let disk = self.segments.iter().flat_map(|s| s.recs.iter());
        let disk = disk.filter(|m| m.state == State::Done).map(|m| m.id);
        let memory = self.memory.iter().filter(|m| m.state == State::Done);
        let ids = disk.chain(memory.map(|m| m.id)).filter(|&id| id > wm);
        let done = IdRanges::from_ranges(
            ids.map(|id| (id, id))
                .chain(self.done_extra.ranges().iter().copied()),
        );
        done.ranges()
            .iter()
            .copied()
            .take(WM_MAX_DONE_RANGES)
            .collect()
    }

    fn maybe_persist_watermark(&mut self) -> Result<(), QueueError> {
        let wm = self.low_watermark().max(self.persisted_wm);
        // A deletion rewrites the file even without progress, to persist `next_id`: the
        // deleted segment may have held the highest ids.
        let changed = wm != self.persisted_wm
            || self.next_id != self.persisted_next
            || self.done_dirty
            || self.wm_force;
        let due = self.wm_force
            || self
                .last_wm_write
                .is_none_or(|t| t.elapsed() >= self.wm_interval);
        if !changed || !due {
            return Ok(());
        }
        let done = self.done_above(wm);
        if wm == self.persisted_wm
            && self.next_id == self.persisted_next
            && done == self.persisted_done
            && !self.wm_force
        {
            self.done_dirty = false;
            return Ok(());
        }
        let b = encode_watermark(&Watermark {
            watermark: wm,
            next_id: self.next_id,
            done,
        });
        let tmp = self.dir.join(WM_TMP);
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&b)?;
            if self.opts.fsync {
                f.sync_data()?;
            }
            fs::rename(&tmp, self.dir.join(WM_FILE))?;
            if self.opts.fsync {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        self.last_wm_write = Some(Instant::now());
        res.map_err(|e| io_err(&tmp, e))?;
        self.persisted_wm = wm;
        self.persisted_next = self.next_id;
        self.persisted_done = self.done_above(wm);
        // (Computed again: `done` was moved into the file contents.)
        self.done_dirty = false;
        self.wm_force = false;
        Ok(())
    }

    /// Test hook: make every disk write fail with ENOSPC after writing half its bytes.
    #[cfg(test)]
    fn set_fail_writes(&mut self, fail: bool) {
        self.fail_writes = fail;
    }
}
