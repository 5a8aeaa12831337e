//! Durable on-disk queue for encoded remote-write batches.
//!
//! Every batch is appended here before it is sent and stays until the sender acknowledges it
//! (delivered, or deliberately dropped after a non-retryable 4xx). After `kill -9` and a restart,
//! every appended but unacknowledged record is replayed in id order; records acknowledged shortly
//! before the crash may be replayed again (duplicates are acceptable, loss is not).
//!
//! # Directory layout
//!
//! - `<first id, 20 decimal digits>.seg`: segment files, named by the id of their first record.
//!   Ids increase across segments, so sorting the names sorts the records.
//! - `acked`: the ack watermark (see below), replaced atomically via `acked.tmp` + rename.
//!
//! Other files are ignored. One queue per directory; nothing guards against two processes
//! opening the same directory.
//!
//! # Segment format (all integers little-endian)
//!
//! ```text
//! segment := header record*
//! header  := "SLOGWQ" version:u16 (= 1)                           8 bytes
//! record  := len:u32 crc:u32 id:u64 created_unix_ms:i64 payload  24 + len bytes
//! ```
//!
//! `crc` is CRC-32 (IEEE, as computed by `crc32fast`) over `len`, `id`, `created_unix_ms` and
//! `payload`, in that order (every byte of the record except the `crc` field itself).
//! A segment header and its first record are written with a single `write`, later records with
//! one `write` each, so a crash leaves at most one torn record at the end of the newest segment.
//! A segment is closed (rolled) when the next record would make it larger than
//! [`QueueOptions::segment_bytes`]; a single record larger than that gets a segment of its own.
//!
//! # Ack watermark
//!
//! ```text
//! acked := "SLOGWA" version:u16 (= 1) watermark:u64 next_id:u64 crc:u32   28 bytes
//! ```
//!
//! All records with `id < watermark` are acknowledged or dropped; `next_id` lets ids keep
//! increasing after all segments were deleted. `crc` covers the first 24 bytes. The file is
//! rewritten (tmp + rename, fsynced with the directory when [`QueueOptions::fsync`] is set)
//! whenever the low watermark advanced and either a segment file was deleted or at least one
//! second passed since the last write, and on [`DiskQueue::flush`]. A missing or damaged file
//! means watermark 0: everything on disk is replayed (duplicates, never loss). Acks above the
//! watermark (out of order, several shards in flight) are kept in memory only, so those records
//! are resent after a crash.
//!
//! # Damage
//!
//! On [`DiskQueue::open`] every record's length and checksum is verified. The first bad record
//! of a segment (length past the end of the file, checksum mismatch, torn header) ends that
//! segment: the newest segment is truncated to its last good record, older segments keep their
//! bytes but the rest is skipped. Each such event counts as one corrupt record
//! ([`OpenReport::corrupt_records`], [`DropCounts::corrupt`]); the ignored bytes are reported in
//! [`OpenReport::truncated_bytes`]. A segment with a bad header is deleted. No file content
//! makes `open` fail or panic; only I/O errors do. Checksums are verified again when records are
//! read back by [`DiskQueue::take`]; a record that fails then is dropped and counted as corrupt.
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
//! takes first try to move the buffered records to disk, in id order. A partially written record
//! is truncated away when possible; otherwise the segment is closed and its torn tail is counted
//! as corrupt on the next open. Records in memory are lost on a crash.
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
//! [`DiskQueue::expire`]: crate::agent::queue::DiskQueue::expire
//! [`DiskQueue::flush`]: crate::agent::queue::DiskQueue::flush
//! [`DiskQueue::memory_fallback_active`]: crate::agent::queue::DiskQueue::memory_fallback_active
//! [`DiskQueue::open`]: crate::agent::queue::DiskQueue::open
//! [`DiskQueue::take`]: crate::agent::queue::DiskQueue::take
//! [`DropCounts::corrupt`]: crate::agent::queue::DropCounts::corrupt
//! [`DropCounts::max_age`]: crate::agent::queue::DropCounts::max_age
//! [`DropCounts::max_bytes`]: crate::agent::queue::DropCounts::max_bytes
//! [`OpenReport::corrupt_records`]: crate::agent::queue::OpenReport::corrupt_records
//! [`OpenReport::truncated_bytes`]: crate::agent::queue::OpenReport::truncated_bytes
//! [`QueueOptions::fsync`]: crate::agent::queue::QueueOptions::fsync
//! [`QueueOptions::max_age`]: crate::agent::queue::QueueOptions::max_age
//! [`QueueOptions::max_bytes`]: crate::agent::queue::QueueOptions::max_bytes
//! [`QueueOptions::memory_fallback_bytes`]: crate::agent::queue::QueueOptions::memory_fallback_bytes
//! [`QueueOptions::segment_bytes`]: crate::agent::queue::QueueOptions::segment_bytes

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

#[cfg(test)]
mod tests;

/// Segment file header: magic and format version 1.
const SEG_MAGIC: [u8; 8] = *b"SLOGWQ\x01\x00";
const SEG_HEADER_LEN: u64 = 8;
const REC_HEADER_LEN: u64 = 24;
/// Watermark file header: magic and format version 1.
const WM_MAGIC: [u8; 8] = *b"SLOGWA\x01\x00";
const WM_LEN: usize = 28;
const WM_FILE: &str = "acked";
const WM_TMP: &str = "acked.tmp";
const SEG_EXT: &str = ".seg";
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
    /// Encoded size (header + payload) of those records.
    pub replayable_bytes: u64,
    /// Damage events: one per segment whose tail or header was unreadable.
    pub corrupt_records: u64,
    /// Bytes ignored or truncated because of damage.
    pub truncated_bytes: u64,
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
}

fn rec_size(payload_len: usize) -> u64 {
    REC_HEADER_LEN + payload_len as u64
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// CRC of a record: every header byte except the crc field, then the payload.
fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[0..4]);
    h.update(&header[8..24]);
    h.update(payload);
    h.finalize()
}

fn encode_header(id: u64, created: i64, payload: &[u8]) -> [u8; 24] {
    let mut h = [0u8; 24];
    // Callers reject payloads above u32::MAX.
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h[16..24].copy_from_slice(&created.to_le_bytes());
    let crc = record_crc(&h, payload);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

fn segment_name(first_id: u64) -> String {
    format!("{first_id:020}{SEG_EXT}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEG_EXT)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Result of verifying one segment file.
#[derive(Debug)]
struct Scan {
    /// Valid records (id order not yet checked).
    recs: Vec<Meta>,
    /// End of the last valid record.
    good_len: u64,
    file_len: u64,
    /// Bytes after `good_len` do not form a valid record.
    damaged: bool,
}

fn scan_segment(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut scan = Scan {
        recs: Vec::new(),
        good_len: 0,
        file_len,
        damaged: false,
    };
    if file_len == 0 {
        return Ok(scan);
    }
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; 8];
    if file_len < SEG_HEADER_LEN || {
        r.read_exact(&mut magic)?;
        magic != SEG_MAGIC
    } {
        scan.damaged = true;
        return Ok(scan);
    }
    let mut off = SEG_HEADER_LEN;
    scan.good_len = off;
    let mut chunk = vec![0u8; 1 << 16];
    while off < file_len {
        let rest = file_len - off;
        if rest < REC_HEADER_LEN {
            scan.damaged = true;
            break;
        }
        let mut h = [0u8; 24];
        r.read_exact(&mut h)?;
        let len = le_u32(&h, 0);
        // A damaged length must not make us read (or allocate) past the file.
        if u64::from(len) > rest - REC_HEADER_LEN {
            scan.damaged = true;
            break;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[0..4]);
        crc.update(&h[8..24]);
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            r.read_exact(&mut chunk[..n])?;
            crc.update(&chunk[..n]);
            left -= n;
        }
        if crc.finalize() != le_u32(&h, 4) {
            scan.damaged = true;
            break;
        }
        scan.recs.push(Meta {
            id: le_u64(&h, 8),
            offset: off,
            len,
            created: le_u64(&h, 16) as i64,
            state: State::Pending,
        });
        off += REC_HEADER_LEN + u64::from(len);
        scan.good_len = off;
    }
    Ok(scan)
}

/// Reads the watermark file: `(watermark, next_id)`, or zeros when missing or damaged.
fn read_watermark(dir: &Path) -> (u64, u64) {
    let path = dir.join(WM_FILE);
    match fs::read(&path) {
        Ok(b) if b.len() == WM_LEN && b[0..8] == WM_MAGIC => {
            if crc32fast::hash(&b[0..24]) == le_u32(&b, 24) {
                (le_u64(&b, 8), le_u64(&b, 16))
            } else {
                tracing::warn!(path = %path.display(), "damaged ack watermark, replaying everything");
                (0, 0)
            }
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "damaged ack watermark, replaying everything");
            (0, 0)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable ack watermark, replaying everything");
            (0, 0)
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
        let tmp = dir.join(WM_TMP);
        if let Err(e) = fs::remove_file(&tmp) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove stale file");
            }
        }
        let (wm, next_hint) = read_watermark(dir);

        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                files.push((id, entry.path()));
            }
        }
        files.sort();

        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        let mut prev_max: Option<u64> = None;
        let max_name = files.last().map_or(0, |(id, _)| *id);
        let n_files = files.len();
        for (i, (_, path)) in files.into_iter().enumerate() {
            let scan = scan_segment(&path).map_err(|e| io_err(&path, e))?;
            let mut len = scan.file_len;
            if scan.damaged {
                let lost = scan.file_len - scan.good_len;
                report.corrupt_records += 1;
                report.truncated_bytes += lost;
                tracing::warn!(path = %path.display(), good_bytes = scan.good_len, lost_bytes = lost, "damaged queue segment");
                // Only the newest segment can have a torn tail from a crash; truncate it so the
                // damage is not reported again. Older ones keep their bytes for inspection.
                if i + 1 == n_files && scan.good_len >= SEG_HEADER_LEN {
                    match OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(scan.good_len))
                    {
                        Ok(()) => len = scan.good_len,
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "cannot truncate damaged segment")
                        }
                    }
                }
            }
            let mut recs = Vec::with_capacity(scan.recs.len());
            for mut m in scan.recs {
                // A record rewritten after a failed write may exist twice; keep the first.
                if prev_max.is_some_and(|p| m.id <= p) {
                    continue;
                }
                prev_max = Some(m.id);
                if m.id < wm {
                    m.state = State::Done;
                }
                recs.push(m);
            }
            let live = recs.iter().filter(|m| m.state != State::Done).count();
            if live == 0 {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete acknowledged segment");
                }
                continue;
            }
            let mut seg = Segment {
                path,
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
        let next_id = [
            wm,
            next_hint,
            prev_max.map_or(0, |p| p.saturating_add(1)),
            max_name.saturating_add(1),
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
                ..DropCounts::default()
            },
            persisted_wm: wm,
            last_wm_write: None,
            wm_interval: WM_INTERVAL,
            wm_force: false,
            scratch: Vec::new(),
            fail_writes: false,
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
                    tracing::warn!(id, "disk queue record damaged on read, dropping");
                    self.finish(loc);
                    self.drops.corrupt += 1;
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
        let mut res = Ok(());
        match loc {
            Loc::Disk(si, _) => {
                if self.segments[si].live == 0 && !self.is_active(si) {
                    res = self.delete_segment(si);
                }
            }
            Loc::Mem(_) => self.trim_memory(),
        }
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
    }

    /// Removes finished records from the front of the memory fallback.
    fn trim_memory(&mut self) {
        while let Some(m) = self.memory.front() {
            if m.state != State::Done {
                break;
            }
            self.memory_bytes -= rec_size(m.payload.len());
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

    /// Deletes every segment without live records except the one being appended to.
    fn delete_done_segments(&mut self) -> Result<(), QueueError> {
        let mut res = Ok(());
        for si in (0..self.segments.len()).rev() {
            if self.segments[si].live == 0 && !self.is_active(si) {
                let r = self.delete_segment(si);
                if res.is_ok() {
                    res = r;
                }
            }
        }
        res
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
            let last = self.segments.len().wrapping_sub(1);
            if self.segments.get(last).is_some_and(|s| s.live == 0) {
                if let Err(e) = self.delete_segment(last) {
                    tracing::warn!(error = %e, "cannot delete acknowledged segment");
                }
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
            buf.extend_from_slice(&SEG_MAGIC);
        }
        buf.extend_from_slice(&encode_header(id, created, payload));
        buf.extend_from_slice(payload);
        let res = if new_segment {
            self.write_new_segment(id, created, payload.len(), state, &buf)
        } else {
            self.write_to_active(id, created, payload.len(), state, &buf)
        };
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
        let start = seg.recs[first].offset;
        let end = seg.recs[last].offset + rec_size(seg.recs[last].len as usize);
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
                let h = &buf[rel..rel + REC_HEADER_LEN as usize];
                let body = rel + REC_HEADER_LEN as usize;
                let payload = &buf[body..body + m.len as usize];
                let ok = le_u32(h, 0) == m.len
                    && le_u64(h, 8) == m.id
                    && le_u32(h, 4) == record_crc(h, payload);
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

    fn maybe_persist_watermark(&mut self) -> Result<(), QueueError> {
        let wm = self.low_watermark().max(self.persisted_wm);
        // A deletion rewrites the file even without progress, to persist `next_id`: the
        // deleted segment may have held the highest ids.
        if wm == self.persisted_wm && !self.wm_force {
            return Ok(());
        }
        let due = self.wm_force
            || self
                .last_wm_write
                .is_none_or(|t| t.elapsed() >= self.wm_interval);
        if !due {
            return Ok(());
        }
        let mut b = [0u8; WM_LEN];
        b[0..8].copy_from_slice(&WM_MAGIC);
        b[8..16].copy_from_slice(&wm.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_id.to_le_bytes());
        let crc = crc32fast::hash(&b[0..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
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
        self.wm_force = false;
        Ok(())
    }

    /// Test hook: make every disk write fail with ENOSPC after writing half its bytes.
    #[cfg(test)]
    fn set_fail_writes(&mut self, fail: bool) {
        self.fail_writes = fail;
    }
}
