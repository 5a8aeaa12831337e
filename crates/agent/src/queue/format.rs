//! The queue's on-disk formats: segment files (versions 1 and 2), the ack watermark file, and
//! the scan that verifies a segment and resynchronises after damage.
//!
//! See the [module documentation](super) for the byte layouts.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Segment file header, format version 1 (read only: records without sync marker).
pub(super) const SEG_MAGIC_V1: [u8; 8] = *b"SLOGWQ\x01\x00";
/// Segment file header, format version 2 (written).
pub(super) const SEG_MAGIC_V2: [u8; 8] = *b"SLOGWQ\x02\x00";
pub(super) const SEG_HEADER_LEN: u64 = 8;
/// Record header of version 1 segments.
pub(super) const REC_HEADER_LEN_V1: u64 = 24;
/// Record header of version 2 segments (what new records cost on top of their payload).
pub(super) const REC_HEADER_LEN: u64 = 32;
/// First bytes of every version 2 record: what the scan looks for after damage.
pub(super) const SYNC: [u8; 4] = [0xd5, 0x51, 0x52, 0x5a];
/// Watermark file header, versions 1 (read only) and 2.
const WM_MAGIC_V1: [u8; 8] = *b"SLOGWA\x01\x00";
const WM_MAGIC_V2: [u8; 8] = *b"SLOGWA\x02\x00";
const WM_LEN_V1: usize = 28;
/// Fixed part of a version 2 watermark file (magic, watermark, next id, count), before the ids.
const WM_FIXED_V2: usize = 28;
/// Most id ranges above the watermark the watermark file lists; the rest are resent after a
/// crash.
pub(super) const WM_MAX_DONE_RANGES: usize = 1 << 16;
pub(super) const WM_FILE: &str = "acked";
pub(super) const WM_TMP: &str = "acked.tmp";
pub(super) const SEG_EXT: &str = ".seg";

/// Format version of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    /// `len crc id created payload`; damage ends the segment.
    V1,
    /// `sync len crc skip id created payload`; the scan resynchronises after damage.
    V2,
}

impl Version {
    /// Bytes in front of a record's payload.
    pub(super) fn header_len(self) -> u64 {
        match self {
            Version::V1 => REC_HEADER_LEN_V1,
            Version::V2 => REC_HEADER_LEN,
        }
    }
}

/// Size of a record (header + payload) as written now.
pub(super) fn rec_size(payload_len: usize) -> u64 {
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

/// A record header as found on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecHeader {
    pub len: u32,
    pub id: u64,
    pub created: i64,
    /// Ids skipped on purpose right before this one (never written: evicted from the memory
    /// fallback). `None` in version 1, which does not record it.
    pub skipped: Option<u32>,
}

/// Encodes a version 2 record header for `payload`.
pub(super) fn encode_header(id: u64, skipped: u32, created: i64, payload: &[u8]) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..4].copy_from_slice(&SYNC);
    // Callers reject payloads above u32::MAX.
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&skipped.to_le_bytes());
    h[16..24].copy_from_slice(&id.to_le_bytes());
    h[24..32].copy_from_slice(&created.to_le_bytes());
    let crc = crc(Version::V2, &h, payload);
    h[8..12].copy_from_slice(&crc.to_le_bytes());
    h
}

/// CRC-32 of a record: every header byte except the crc field, then the payload.
fn crc(version: Version, header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    match version {
        Version::V1 => {
            h.update(&header[0..4]);
            h.update(&header[8..24]);
        }
        Version::V2 => {
            h.update(&header[0..8]);
            h.update(&header[12..32]);
        }
    }
    h.update(payload);
    h.finalize()
}

/// Parses the record at the start of `b` if it is complete and its checksum matches.
pub(super) fn parse_record(version: Version, b: &[u8]) -> Option<RecHeader> {
    let hl = version.header_len() as usize;
    if b.len() < hl {
        return None;
    }
    let header = match version {
        Version::V1 => RecHeader {
            len: le_u32(b, 0),
            id: le_u64(b, 8),
            created: le_u64(b, 16) as i64,
            skipped: None,
        },
        Version::V2 => {
            if b[0..4] != SYNC {
                return None;
            }
            RecHeader {
                len: le_u32(b, 4),
                id: le_u64(b, 16),
                created: le_u64(b, 24) as i64,
                skipped: Some(le_u32(b, 12)),
            }
        }
    };
    // A damaged length must not make us read past the data.
    let end = hl.checked_add(header.len as usize)?;
    let payload = b.get(hl..end)?;
    let stored = match version {
        Version::V1 => le_u32(b, 4),
        Version::V2 => le_u32(b, 8),
    };
    (crc(version, &b[..hl], payload) == stored).then_some(header)
}

/// A valid record found by [`scan_segment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub header: RecHeader,
    /// Offset of its header in the file.
    pub offset: u64,
}

/// Bytes of a segment that do not form valid records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Damage {
    /// Offset of the first damaged byte.
    pub start: u64,
    /// Damaged bytes.
    pub len: u64,
    /// Counts as (at least) one lost record whatever the id chain says: version 1 damage.
    pub whole_record: bool,
}

/// Result of verifying one segment file.
#[derive(Debug)]
pub(super) struct Scan {
    /// `None` when the header is damaged (then the file is scanned as version 2).
    pub version: Option<Version>,
    /// Valid records in file order (id order not yet checked).
    pub recs: Vec<Found>,
    /// Damaged regions in file order, each followed by a valid record or the end of the file.
    pub damage: Vec<Damage>,
    /// Index into `recs` of the first record after each damage (`recs.len()` for the tail).
    pub damage_before: Vec<usize>,
    pub file_len: u64,
}

impl Scan {
    /// End of the last valid record (the segment header when none): what a torn tail is
    /// truncated to.
    pub fn good_len(&self) -> u64 {
        let hl = self.version.unwrap_or(Version::V2).header_len();
        self.recs
            .last()
            .map_or(SEG_HEADER_LEN, |f| f.offset + hl + u64::from(f.header.len))
    }

    /// The file ends in damage.
    pub fn damaged_tail(&self) -> bool {
        self.damage_before.last() == Some(&self.recs.len())
    }

    /// Total damaged bytes.
    pub fn damaged_bytes(&self) -> u64 {
        self.damage.iter().map(|d| d.len).sum()
    }
}

/// Reads and verifies a segment file. Version 2 resynchronises at the next valid record after
/// damage (a [`SYNC`] marker followed by a header and payload whose checksum matches); version 1
/// has no marker, so damage ends it.
pub(super) fn scan_segment(path: &Path) -> io::Result<Scan> {
    let data = fs::read(path)?;
    Ok(scan_bytes(&data))
}

pub(super) fn scan_bytes(data: &[u8]) -> Scan {
    let file_len = data.len() as u64;
    let mut scan = Scan {
        version: None,
        recs: Vec::new(),
        damage: Vec::new(),
        damage_before: Vec::new(),
        file_len,
    };
    if data.is_empty() {
        scan.version = Some(Version::V2);
        return scan;
    }
    let head = data.get(..SEG_HEADER_LEN as usize);
    scan.version = match head {
        Some(h) if h == SEG_MAGIC_V1 => Some(Version::V1),
        Some(h) if h == SEG_MAGIC_V2 => Some(Version::V2),
        _ => None,
    };
    let version = scan.version.unwrap_or(Version::V2);
    let hl = version.header_len() as usize;
    let mut off = if scan.version.is_some() {
        SEG_HEADER_LEN as usize
    } else {
        0
    };
    while off < data.len() {
        if let Some(header) = parse_record(version, &data[off..]) {
            scan.recs.push(Found {
                header,
                offset: off as u64,
            });
            off += hl + header.len as usize;
            continue;
        }
        // Version 2 counts lost records by the id chain; version 1 has none, so its damage
        // counts as one lost record (it cannot tell a torn write from flipped bytes).
        let whole_record = version == Version::V1;
        let next = match version {
            Version::V1 => data.len(),
            Version::V2 => resync(data, off + 1).unwrap_or(data.len()),
        };
        scan.damage.push(Damage {
            start: off as u64,
            len: (next - off) as u64,
            whole_record,
        });
        scan.damage_before.push(scan.recs.len());
        off = next;
    }
    scan
}

/// Offset of the next valid version 2 record at or after `from`.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + SYNC.len() <= data.len() {
        let pos = data[at..].windows(SYNC.len()).position(|w| w == SYNC)?;
        let candidate = at + pos;
        if parse_record(Version::V2, &data[candidate..]).is_some() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

/// Contents of the ack watermark file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Watermark {
    /// All ids below are acknowledged or dropped.
    pub watermark: u64,
    /// The next id to assign (at the time of writing).
    pub next_id: u64,
    /// Ids above `watermark` acknowledged, dropped or found lost, as ascending inclusive
    /// ranges (version 2).
    pub done: Vec<(u64, u64)>,
}

/// Encodes a version 2 watermark file.
pub(super) fn encode_watermark(wm: &Watermark) -> Vec<u8> {
    let done = &wm.done[..wm.done.len().min(WM_MAX_DONE_RANGES)];
    let mut b = Vec::with_capacity(WM_FIXED_V2 + 16 * done.len() + 4);
    b.extend_from_slice(&WM_MAGIC_V2);
    b.extend_from_slice(&wm.watermark.to_le_bytes());
    b.extend_from_slice(&wm.next_id.to_le_bytes());
    b.extend_from_slice(&(done.len() as u32).to_le_bytes());
    for (first, last) in done {
        b.extend_from_slice(&first.to_le_bytes());
        b.extend_from_slice(&last.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_watermark(b: &[u8]) -> Option<Watermark> {
    let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != le_u32(crc, 0) {
        return None;
    }
    if b.len() == WM_LEN_V1 && b[0..8] == WM_MAGIC_V1 {
        return Some(Watermark {
            watermark: le_u64(b, 8),
            next_id: le_u64(b, 16),
            done: Vec::new(),
        });
    }
    if body.len() < WM_FIXED_V2 || body[0..8] != WM_MAGIC_V2 {
        return None;
    }
    let count = le_u32(body, 24) as usize;
    if body.len() != WM_FIXED_V2 + 16 * count {
        return None;
    }
    Some(Watermark {
        watermark: le_u64(body, 8),
        next_id: le_u64(body, 16),
        done: (0..count)
            .map(|i| {
                let at = WM_FIXED_V2 + 16 * i;
                (le_u64(body, at), le_u64(body, at + 8))
            })
            .collect(),
    })
}

/// Reads the watermark file; the default (everything replayed) when missing or damaged.
pub(super) fn read_watermark(dir: &Path) -> Watermark {
    let path = dir.join(WM_FILE);
    match fs::read(&path) {
        Ok(b) => decode_watermark(&b).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "damaged ack watermark, replaying everything");
            Watermark::default()
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Watermark::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable ack watermark, replaying everything");
            Watermark::default()
        }
    }
}

pub(super) fn segment_name(first_id: u64) -> String {
    format!("{first_id:020}{SEG_EXT}")
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEG_EXT)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = SEG_MAGIC_V2.to_vec();
        for (id, payload) in records {
            b.extend_from_slice(&encode_header(*id, 0, 7, payload));
            b.extend_from_slice(payload);
        }
        b
    }

    #[test]
    fn resynchronises_after_a_flipped_byte() {
        let mut b = segment(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        b[8 + 36 + 20] ^= 0x40; // inside record 2's header
        let scan = scan_bytes(&b);
        let ids: Vec<u64> = scan.recs.iter().map(|f| f.header.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(scan.damage.len(), 1);
        assert_eq!(scan.damage[0].start, 8 + 36);
        assert_eq!(scan.damage[0].len, 36);
        assert!(!scan.damaged_tail());
    }

    #[test]
    fn a_torn_tail_is_not_a_whole_record() {
        let b = segment(&[(1, b"aaaa"), (2, b"bbbb")]);
        let scan = scan_bytes(&b[..b.len() - 2]);
        assert_eq!(scan.recs.len(), 1);
        assert!(scan.damaged_tail());
        assert_eq!(scan.good_len(), 8 + 36);
    }

    #[test]
    fn watermark_round_trips_and_reads_version_1() {
        let wm = Watermark {
            watermark: 5,
            next_id: 9,
            done: vec![(6, 6), (8, 10)],
        };
        assert_eq!(decode_watermark(&encode_watermark(&wm)), Some(wm));
        let mut v1 = WM_MAGIC_V1.to_vec();
        v1.extend_from_slice(&3u64.to_le_bytes());
        v1.extend_from_slice(&4u64.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_watermark(&v1),
            Some(Watermark {
                watermark: 3,
                next_id: 4,
                done: vec![]
            })
        );
        assert_eq!(decode_watermark(b"garbage"), None);
        assert_eq!(decode_watermark(b""), None);
    }
}
