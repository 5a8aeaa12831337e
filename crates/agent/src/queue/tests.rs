use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn small_opts() -> QueueOptions {
    QueueOptions {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
        segment_bytes: 1024,
        fsync: false,
        memory_fallback_bytes: 1 << 20,
        reserve_bytes: 0,
    }
}

fn open(dir: &Path, opts: QueueOptions) -> (DiskQueue, OpenReport) {
    let (mut q, r) = DiskQueue::open(dir, opts).unwrap();
    // Persist every watermark advance so tests can predict what a crash replays.
    q.wm_interval = Duration::ZERO;
    (q, r)
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn ids_of(recs: &[Record]) -> Vec<u64> {
    recs.iter().map(|r| r.id.0).collect()
}

#[test]
fn queue_can_move_to_a_blocking_task() {
    fn send<T: Send + 'static>() {}
    send::<DiskQueue>();
    send::<QueueError>();
}

#[test]
fn append_take_ack_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep, OpenReport::default());
    let a = q.append(10, b"hello").unwrap();
    let b = q.append(20, b"").unwrap();
    assert!(a < b);
    assert_eq!(q.len_records(), 2);
    assert_eq!(q.len_bytes(), 32 + 5 + 32);
    assert_eq!(q.oldest_created_unix_ms(), Some(10));
    let recs = q.take(10).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(&recs[0].payload[..], b"hello");
    assert_eq!(recs[0].created_unix_ms, 10);
    assert!(recs[1].payload.is_empty());
    assert!(
        q.take(10).unwrap().is_empty(),
        "in-flight records are not handed out twice"
    );
    q.ack(a).unwrap();
    assert_eq!(q.oldest_created_unix_ms(), Some(20));
    q.ack(b).unwrap();
    q.ack(b).unwrap(); // idempotent
    q.ack(RecordId(999)).unwrap(); // unknown
    assert_eq!(q.len_records(), 0);
    assert_eq!(q.len_bytes(), 0);
    assert_eq!(q.oldest_created_unix_ms(), None);
    assert!(!q.memory_fallback_active());
}

#[test]
fn crash_replays_unacked_in_order_and_skips_acked_below_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    let appended: Vec<RecordId> = (0..50)
        .map(|i| q.append(i, &payload(i as u64, 100)).unwrap())
        .collect();
    let taken = q.take(20).unwrap();
    assert_eq!(taken.len(), 20);
    for r in &taken[..10] {
        q.ack(r.id).unwrap();
    }
    q.ack(appended[15]).unwrap(); // out of order: above the watermark
    drop(q); // crash: no shutdown call
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.corrupt_records, 0);
    // Id 16, acknowledged above the watermark, is listed as done in the watermark file.
    assert_eq!(rep.replayable_records, 39);
    let again = q.take(100).unwrap();
    assert_eq!(
        ids_of(&again),
        (11..=50).filter(|&id| id != 16).collect::<Vec<_>>()
    );
    for r in &again {
        assert_eq!(r.payload[..], payload(r.created_unix_ms as u64, 100)[..]);
    }
    // New ids continue above the old ones.
    assert!(q.append(0, b"x").unwrap().0 > 50);
}

#[test]
fn requeued_records_come_back_in_id_order_before_newer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..6 {
        q.append(i, b"p").unwrap();
    }
    let t = q.take(4).unwrap();
    q.requeue(&[t[2].id, t[0].id]);
    q.requeue(&[RecordId(12345)]); // ignored
    q.requeue(&[t[0].id]); // twice: ignored
    assert_eq!(ids_of(&q.take(3).unwrap()), vec![1, 3, 5]);
    assert_eq!(ids_of(&q.take(3).unwrap()), vec![6]);
    q.requeue(&[t[1].id]);
    q.ack(t[1].id).unwrap(); // acked after requeue: not handed out again
    assert!(q.take(3).unwrap().is_empty());
}

#[test]
fn segments_roll_and_are_deleted_when_fully_acked_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    // 300-byte records: 3 per 1024-byte segment.
    let appended: Vec<_> = (0..9).map(|i| q.append(i, &[0u8; 268]).unwrap()).collect();
    assert_eq!(segment_files(dir.path()).len(), 3);
    assert_eq!(q.disk_bytes(), 3 * (8 + 3 * 300));
    q.take(9).unwrap();
    // Second segment first (out of order): kept while the first is still needed, so that
    // every deleted id is below the watermark.
    for id in &appended[3..6] {
        q.ack(*id).unwrap();
    }
    assert_eq!(segment_files(dir.path()).len(), 3);
    for id in &appended[..3] {
        q.ack(*id).unwrap();
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("00000000000000000007.seg"));
    // The watermark stops at 7; 1..6 were deleted with their segments.
    drop(q);
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.replayable_records, 3);
    assert_eq!(ids_of(&q.take(10).unwrap()), vec![7, 8, 9]);
}

#[test]
fn ids_stay_monotonic_after_everything_was_acked_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..10 {
        q.append(i, &[1u8; 268]).unwrap();
    }
    for r in q.take(10).unwrap() {
        q.ack(r.id).unwrap();
    }
    q.flush().unwrap();
    drop(q);
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.replayable_records, 0);
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(q.append(0, b"x").unwrap(), RecordId(11));
}

#[test]
fn max_bytes_drops_oldest_segments_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        max_bytes: 4 * 908,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts.clone());
    assert_eq!(q.segment_bytes, 908);
    for i in 0..12 {
        q.append(i, &[0u8; 268]).unwrap();
    }
    assert_eq!(q.disk_bytes(), 4 * 908);
    let inflight = q.take(2).unwrap();
    q.append(12, &[0u8; 268]).unwrap();
    // The oldest segment (ids 1..3, two of them in flight) made room.
    assert_eq!(q.drops().max_bytes, 3);
    assert!(q.disk_bytes() <= opts.max_bytes);
    assert_eq!(q.len_records(), 10);
    // Dropped while in flight: its sender must not deliver it after all.
    assert!(!q.is_live(inflight[0].id));
    assert!(q.is_live(RecordId(4)));
    q.ack(inflight[0].id).unwrap(); // no-op
    assert_eq!(ids_of(&q.take(100).unwrap()), (4..=13).collect::<Vec<_>>());
    assert_eq!(q.oldest_created_unix_ms(), Some(3));
}

#[test]
fn max_bytes_smaller_than_a_segment_keeps_newest() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        max_bytes: 400,
        segment_bytes: 8 << 20,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts);
    for i in 0..5 {
        q.append(i, &[7u8; 300]).unwrap();
    }
    assert_eq!(q.drops().max_bytes, 4);
    assert_eq!(q.len_records(), 1);
    assert_eq!(q.take(5).unwrap()[0].created_unix_ms, 4);
}

#[test]
fn record_larger_than_max_bytes_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        max_bytes: 1000,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts);
    let err = q.append(0, &[0u8; 1000]).unwrap_err();
    assert!(matches!(err, QueueError::RecordTooLarge { .. }), "{err}");
    assert_eq!(q.len_records(), 0);
    // The largest record that fits is accepted.
    q.append(0, &[0u8; 1000 - 40]).unwrap();
    assert!(DiskQueue::open(
        dir.path(),
        QueueOptions {
            max_bytes: 10,
            ..small_opts()
        }
    )
    .is_err());
}

#[test]
fn expire_drops_old_pending_records_but_not_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        max_age: Duration::from_millis(100),
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts);
    for t in [0, 10, 50, 500, 20] {
        q.append(t, b"x").unwrap();
    }
    let t = q.take(1).unwrap(); // created 0, in flight
    assert_eq!(q.expire(130).unwrap(), 2); // 10 and 20
    assert_eq!(q.drops().max_age, 2);
    assert_eq!(q.len_records(), 3);
    q.requeue(&[t[0].id]);
    assert_eq!(q.expire(155).unwrap(), 2); // 0 and 50
    assert_eq!(ids_of(&q.take(10).unwrap()), vec![4]);
    assert_eq!(q.drops().max_age, 4);
    assert_eq!(q.expire(i64::MIN).unwrap(), 0);
    assert_eq!(q.expire(i64::MAX).unwrap(), 0, "in flight");
}

#[test]
fn torn_tail_is_truncated_counted_and_the_queue_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..5 {
        q.append(i, &payload(i as u64, 50)).unwrap();
    }
    drop(q);
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let f = OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 10).unwrap(); // record 5 torn
    let (mut q, rep) = open(dir.path(), small_opts());
    // Record 5's append had returned (the watermark file's next id says so): it is lost.
    assert_eq!(rep.corrupt_records, 1);
    assert_eq!(rep.lost_bytes, 82 - 10);
    assert_eq!(rep.replayable_records, 4);
    assert_eq!(q.drops().corrupt_bytes, 72);
    assert_eq!(fs::metadata(&last).unwrap().len(), len - 82);
    q.append(9, b"new").unwrap();
    let got = q.take(10).unwrap();
    assert_eq!(ids_of(&got), vec![1, 2, 3, 4, 6]);
    assert_eq!(&got[4].payload[..], b"new");
    drop(q);
    let (_, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.lost_bytes, 0, "damage is reported once");
    assert_eq!(rep.corrupt_records + rep.missing_records, 0);
    assert_eq!(rep.replayable_records, 5);
}

#[test]
fn corrupt_record_in_a_middle_segment_is_skipped_and_reading_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..9 {
        q.append(i, &payload(i as u64, 268)).unwrap();
    }
    drop(q);
    let files = segment_files(dir.path());
    let mut b = fs::read(&files[1]).unwrap();
    b[8 + 300 + 30] ^= 0xff; // payload of the 2nd record of the 2nd segment (id 5)
    fs::write(&files[1], &b).unwrap();
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.corrupt_records, 1);
    assert_eq!(rep.missing_records, 0);
    assert_eq!(rep.lost_bytes, 300);
    assert_eq!(ids_of(&q.take(20).unwrap()), vec![1, 2, 3, 4, 6, 7, 8, 9]);
    drop(q);
    let (_, rep) = open(dir.path(), small_opts());
    assert_eq!(
        (rep.corrupt_records, rep.lost_bytes),
        (0, 0),
        "the damaged segment was rewritten: reported once"
    );
}

#[test]
fn bad_segment_header_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..6 {
        q.append(i, &[1u8; 268]).unwrap();
    }
    drop(q);
    let files = segment_files(dir.path());
    let mut b = fs::read(&files[0]).unwrap();
    b[0] = b'X';
    fs::write(&files[0], &b).unwrap();
    fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    fs::write(dir.path().join("00000000000000000099.seg"), b"").unwrap();
    fs::write(dir.path().join("acked"), b"garbage").unwrap();
    let (mut q, rep) = open(dir.path(), small_opts());
    // A damaged segment header costs those 8 bytes only: the records behind it are found.
    assert_eq!(rep.corrupt_records, 0);
    assert_eq!(rep.lost_bytes, 8);
    assert_eq!(ids_of(&q.take(20).unwrap()), vec![1, 2, 3, 4, 5, 6]);
    assert!(
        q.append(0, b"").unwrap().0 >= 100,
        "ids stay above every file name"
    );
}

#[test]
fn damage_found_on_read_is_dropped_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..3 {
        q.append(i, &payload(i as u64, 40)).unwrap();
    }
    let f = segment_files(dir.path()).pop().unwrap();
    let mut b = fs::read(&f).unwrap();
    b[8 + 72 + 32 + 1] ^= 1; // id 2's payload
    fs::write(&f, &b).unwrap();
    assert_eq!(ids_of(&q.take(10).unwrap()), vec![1, 3]);
    assert_eq!(q.drops().corrupt, 1);
    assert_eq!(q.drops().corrupt_bytes, 72);
    assert_eq!(q.len_records(), 2);
}

#[test]
fn write_failure_falls_back_to_memory_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    q.append(0, b"on disk").unwrap();
    q.set_fail_writes(true);
    let a = q.append(1, b"mem 1").unwrap(); // partial write into the active segment
    let b = q.append(2, b"mem 2").unwrap(); // partial write of a new segment
    assert!(q.memory_fallback_active());
    assert_eq!(q.len_records(), 3);
    let got = q.take(2).unwrap();
    assert_eq!(ids_of(&got), vec![1, a.0]);
    assert_eq!(&got[1].payload[..], b"mem 1");
    q.ack(a).unwrap(); // delivered straight from memory
    q.set_fail_writes(false);
    let c = q.append(3, b"disk again").unwrap();
    assert!(!q.memory_fallback_active());
    assert_eq!(ids_of(&q.take(5).unwrap()), vec![b.0, c.0]);
    drop(q);
    let (mut q, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.corrupt_records, 0, "partial writes were cut off");
    let got = q.take(10).unwrap();
    assert_eq!(ids_of(&got), vec![1, b.0, c.0]);
    assert_eq!(&got[1].payload[..], b"mem 2");
}

#[test]
fn memory_fallback_is_bounded_and_counts_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        memory_fallback_bytes: 3 * 42,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts);
    q.set_fail_writes(true);
    for i in 0..5 {
        q.append(i, &[i as u8; 10]).unwrap();
    }
    assert_eq!(q.drops().max_bytes, 2);
    assert_eq!(q.len_records(), 3);
    let err = q.append(9, &[0u8; 200]).unwrap_err();
    assert!(matches!(err, QueueError::FallbackFull { .. }), "{err}");
    assert_eq!(q.len_records(), 3);
    assert_eq!(ids_of(&q.take(10).unwrap()), vec![3, 4, 5]);
    q.set_fail_writes(false);
    q.flush().unwrap();
    drop(q);
    let (mut q, _) = open(dir.path(), small_opts());
    assert_eq!(ids_of(&q.take(10).unwrap()), vec![3, 4, 5]);
}

/// The case: receiver down, disk full, graceful shutdown. Everything held in memory
/// (pending, in flight, requeued) reaches the disk through the reserve and is replayed.
#[test]
fn a_full_disk_at_shutdown_writes_the_memory_fallback_into_the_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        memory_fallback_bytes: 30 << 10,
        reserve_bytes: 32 << 10,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts.clone());
    assert_eq!(q.reserve_len(), 32 << 10);
    q.append(0, &payload(0, 100)).unwrap();
    q.set_free_space(Some(0));
    let mut ids = vec![1];
    for i in 1..=200u64 {
        ids.push(q.append(i as i64, &payload(i, 100)).unwrap().0);
    }
    assert!(q.memory_fallback_active());
    assert_eq!(
        q.drops(),
        DropCounts::default(),
        "all of it fits the fallback"
    );
    let taken = q.take(7).unwrap();
    q.requeue(&[taken[3].id, taken[5].id]);
    // Without the reserve this is where the records were lost.
    q.flush().unwrap();
    assert!(q.unwritten().is_empty());
    assert_eq!(q.reserve_len(), 0, "spent");
    assert!(!dir.path().join("reserve").exists());
    // Once the disk takes writes again, the reserve is topped up.
    q.set_free_space(None);
    q.refill_reserve().unwrap();
    assert_eq!(q.reserve_len(), 32 << 10);
    drop(q);
    let (mut q, rep) = open(dir.path(), opts);
    assert_eq!(rep.replayable_records, 201);
    assert_eq!(rep.corrupt_records + rep.missing_records, 0);
    let got = q.take(1000).unwrap();
    assert_eq!(ids_of(&got), ids);
    assert!(got
        .iter()
        .zip(0u64..)
        .all(|(r, i)| r.payload[..] == payload(i, 100)[..]));
}

/// What does not fit the reserve is not silently gone: the failed flush leaves it listed by
/// `unwritten`, and what did fit is on disk.
#[test]
fn records_beyond_the_reserve_are_listed_as_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        memory_fallback_bytes: 64 << 10,
        reserve_bytes: 4 << 10,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts.clone());
    q.set_free_space(Some(0));
    for i in 0..100u64 {
        q.append(i as i64, &payload(i, 100)).unwrap();
    }
    assert!(q.flush().is_err());
    let unwritten = q.unwritten();
    assert!(
        !unwritten.is_empty() && unwritten.len() < 100,
        "{}",
        unwritten.len()
    );
    // The last ones, in order.
    let first_lost = 100 - unwritten.len() as u64;
    assert_eq!(unwritten[0][..], payload(first_lost, 100)[..]);
    drop(q);
    let (mut q, rep) = open(dir.path(), opts);
    assert_eq!(rep.replayable_records + unwritten.len() as u64, 100);
    assert_eq!(
        ids_of(&q.take(1000).unwrap()),
        (1..=first_lost).collect::<Vec<_>>()
    );
}

/// The reserve holds real blocks of incompressible bytes: a sparse file of the right length
/// (as `set_len` makes) would free nothing when deleted.
#[test]
fn the_reserve_is_allocated_and_incompressible() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        reserve_bytes: 256 << 10,
        ..small_opts()
    };
    let path = dir.path().join("reserve");
    fs::File::create(&path).unwrap().set_len(256 << 10).unwrap();
    assert_eq!(
        reserve_on_disk(dir.path()),
        0,
        "a sparse file counts as nothing"
    );
    let (q, _) = open(dir.path(), opts.clone());
    assert_eq!(q.reserve_len(), 256 << 10);
    assert_eq!(reserve_on_disk(dir.path()), 256 << 10);
    let bytes = fs::read(&path).unwrap();
    let zeros = bytes.iter().filter(|&&b| b == 0).count();
    assert!(zeros < bytes.len() / 100, "{zeros} zero bytes");
    drop(q);
    // A lowered option shrinks it at the next open.
    let (q, _) = open(
        dir.path(),
        QueueOptions {
            reserve_bytes: 64 << 10,
            ..opts
        },
    );
    assert_eq!(q.reserve_len(), 64 << 10);
    assert_eq!(fs::metadata(&path).unwrap().len(), 64 << 10);
}

#[test]
fn lowered_max_bytes_applies_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    for i in 0..9 {
        q.append(i, &[0u8; 268]).unwrap();
    }
    drop(q);
    let opts = QueueOptions {
        max_bytes: 2000,
        ..small_opts()
    };
    let (mut q, rep) = open(dir.path(), opts);
    assert_eq!(rep.replayable_records, 6);
    assert_eq!(q.drops().max_bytes, 3);
    assert_eq!(ids_of(&q.take(10).unwrap()), (4..=9).collect::<Vec<_>>());
}

#[test]
fn fsync_mode_works() {
    let dir = tempfile::tempdir().unwrap();
    let opts = QueueOptions {
        fsync: true,
        ..small_opts()
    };
    let (mut q, _) = open(dir.path(), opts.clone());
    for i in 0..5 {
        q.append(i, &[0u8; 300]).unwrap();
    }
    let r = q.take(1).unwrap();
    q.ack(r[0].id).unwrap();
    drop(q);
    let (_, rep) = open(dir.path(), opts);
    assert_eq!(rep.replayable_records, 4);
}

// ---- model check ----

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Take(usize),
    Ack(prop::sample::Index),
    AckAny(u8),
    Requeue(prop::sample::Index),
    Expire(u8),
    Crash(Option<prop::sample::Index>),
    Reopen,
    /// Make disk writes fail (ENOSPC after a partial write) or work again.
    FailWrites(bool),
    /// Shut down cleanly, damage one segment file (which, where), reopen.
    Damage(Damage, prop::sample::Index, prop::sample::Index),
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// XOR one byte with 0xff.
    Flip,
    /// Cut the file at the position.
    Truncate,
    /// Delete the file.
    Delete,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Append),
        3 => (1usize..6).prop_map(Op::Take),
        4 => any::<prop::sample::Index>().prop_map(Op::Ack),
        1 => any::<u8>().prop_map(Op::AckAny),
        1 => any::<prop::sample::Index>().prop_map(Op::Requeue),
        1 => (0u8..120).prop_map(Op::Expire),
        1 => proptest::option::of(any::<prop::sample::Index>()).prop_map(Op::Crash),
        1 => Just(Op::Reopen),
        1 => any::<bool>().prop_map(Op::FailWrites),
        2 => (
            prop_oneof![Just(Damage::Flip), Just(Damage::Truncate), Just(Damage::Delete)],
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(d, f, at)| Op::Damage(d, f, at)),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct MRec {
    payload: Vec<u8>,
    created: i64,
    in_flight: bool,
}

struct Model {
    live: BTreeMap<u64, MRec>,
    /// Appended, then acked or dropped: may come back after a crash if above the watermark.
    gone: BTreeMap<u64, MRec>,
    clock: i64,
}

impl Model {
    fn watermark(&self, next_id: u64) -> u64 {
        self.live.keys().next().copied().unwrap_or(next_id)
    }

    fn finish(&mut self, id: u64) {
        if let Some(r) = self.live.remove(&id) {
            self.gone.insert(id, r);
        }
    }

    /// `n` records dropped for `max_bytes`: whole oldest segments, so the lowest live ids.
    fn drop_oldest(&mut self, n: u64) {
        for _ in 0..n {
            let (&lowest, _) = self.live.iter().next().unwrap();
            self.finish(lowest);
        }
    }
}

/// Truncates the newest segment inside its last record, as a crash mid-write would.
/// Returns the torn record's id and whether bytes of it remain.
fn tear_last_record(dir: &Path, at: prop::sample::Index) -> Option<(u64, bool)> {
    let last = segment_files(dir).pop()?;
    let scan = scan_segment(&last).unwrap();
    let f = scan.recs.last()?;
    let keep = at.index(rec_size(f.header.len as usize) as usize) as u64;
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(f.offset + keep)
        .unwrap();
    Some((f.header.id, keep > 0))
}

/// Applies `damage` to one segment file. Returns the ids of the records it destroyed and the
/// bytes that no longer form valid records.
fn damage_segment(
    dir: &Path,
    damage: Damage,
    which: prop::sample::Index,
    at: prop::sample::Index,
) -> (Vec<u64>, u64) {
    let files = segment_files(dir);
    if files.is_empty() {
        return (Vec::new(), 0);
    }
    let file = &files[which.index(files.len())];
    let mut b = fs::read(file).unwrap();
    let scan = scan_segment(file).unwrap();
    assert!(
        scan.damage.is_empty(),
        "{file:?} damaged before the test damaged it"
    );
    let range = |f: &format::Found| f.offset..f.offset + rec_size(f.header.len as usize);
    match damage {
        Damage::Delete => {
            fs::remove_file(file).unwrap();
            (scan.recs.iter().map(|f| f.header.id).collect(), 0)
        }
        Damage::Flip => {
            let pos = at.index(b.len());
            b[pos] ^= 0xff;
            fs::write(file, &b).unwrap();
            match scan.recs.iter().find(|f| range(f).contains(&(pos as u64))) {
                Some(f) => (vec![f.header.id], rec_size(f.header.len as usize)),
                None => (Vec::new(), SEG_HEADER_LEN),
            }
        }
        Damage::Truncate => {
            let pos = at.index(b.len()) as u64;
            b.truncate(pos as usize);
            fs::write(file, &b).unwrap();
            let lost: Vec<u64> = scan
                .recs
                .iter()
                .filter(|f| range(f).end > pos)
                .map(|f| f.header.id)
                .collect();
            let bytes = match scan.recs.iter().find(|f| range(f).contains(&pos)) {
                Some(f) => pos - f.offset,
                // Inside the segment header: the rest is unreadable.
                None if pos < SEG_HEADER_LEN => pos,
                None => 0,
            };
            (lost, bytes)
        }
    }
}

fn check_counts(q: &DiskQueue, m: &Model) {
    assert_eq!(q.len_records(), m.live.len() as u64);
    let bytes: u64 = m.live.values().map(|r| rec_size(r.payload.len())).sum();
    assert_eq!(q.len_bytes(), bytes);
    assert!(q.disk_bytes() <= q.opts.max_bytes);
}

fn run_model(ops: Vec<Op>, opts: &QueueOptions) {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), opts.clone());
    let mut m = Model {
        live: BTreeMap::new(),
        gone: BTreeMap::new(),
        clock: 0,
    };
    for op in ops {
        match op {
            Op::Append(len) => {
                m.clock += 1;
                let before = q.drops().max_bytes;
                let p = payload(m.clock as u64, len);
                let id = q.append(m.clock, &p).unwrap().0;
                m.drop_oldest(q.drops().max_bytes - before);
                let max_known = m
                    .live
                    .keys()
                    .chain(m.gone.keys())
                    .max()
                    .copied()
                    .unwrap_or(0);
                assert!(id > max_known, "id {id} not above {max_known}");
                m.live.insert(
                    id,
                    MRec {
                        payload: p,
                        created: m.clock,
                        in_flight: false,
                    },
                );
            }
            Op::Take(n) => {
                // Records held in memory are retried first, which may drop old segments.
                let before = q.drops().max_bytes;
                let got = q.take(n).unwrap();
                m.drop_oldest(q.drops().max_bytes - before);
                let want: Vec<u64> = m
                    .live
                    .iter()
                    .filter(|(_, r)| !r.in_flight)
                    .map(|(id, _)| *id)
                    .take(n)
                    .collect();
                assert_eq!(ids_of(&got), want);
                for r in got {
                    let mr = m.live.get_mut(&r.id.0).unwrap();
                    assert_eq!(r.payload[..], mr.payload[..]);
                    assert_eq!(r.created_unix_ms, mr.created);
                    mr.in_flight = true;
                }
            }
            Op::Ack(i) | Op::Requeue(i) => {
                let inflight: Vec<u64> = m
                    .live
                    .iter()
                    .filter(|(_, r)| r.in_flight)
                    .map(|(id, _)| *id)
                    .collect();
                if inflight.is_empty() {
                    continue;
                }
                let id = inflight[i.index(inflight.len())];
                if matches!(op, Op::Ack(_)) {
                    q.ack(RecordId(id)).unwrap();
                    m.finish(id);
                } else {
                    q.requeue(&[RecordId(id)]);
                    m.live.get_mut(&id).unwrap().in_flight = false;
                }
            }
            Op::AckAny(k) => {
                // Pending, finished or never-issued ids: allowed, idempotent.
                let id = u64::from(k) % 64;
                q.ack(RecordId(id)).unwrap();
                m.finish(id);
            }
            Op::Expire(age) => {
                let now = m.clock + i64::from(age);
                let cutoff = now - opts.max_age.as_millis() as i64;
                let old: Vec<u64> = m
                    .live
                    .iter()
                    .filter(|(_, r)| !r.in_flight && r.created < cutoff)
                    .map(|(id, _)| *id)
                    .collect();
                let before = q.drops().max_age;
                assert_eq!(q.expire(now).unwrap(), old.len() as u64);
                assert_eq!(q.drops().max_age - before, old.len() as u64);
                for id in old {
                    m.finish(id);
                }
            }
            Op::FailWrites(fail) => q.set_fail_writes(fail),
            Op::Damage(damage, which, at) => {
                if q.fail_writes {
                    continue;
                }
                // A clean shutdown first: the watermark file is current, memory is on disk.
                let before = q.drops().max_bytes;
                q.flush().unwrap();
                m.drop_oldest(q.drops().max_bytes - before);
                let wm = m.watermark(q.next_id);
                drop(q);
                let (destroyed, bytes) = damage_segment(dir.path(), damage, which, at);
                let lost: Vec<u64> = destroyed
                    .into_iter()
                    .filter(|id| m.live.contains_key(id))
                    .collect();
                for id in &lost {
                    m.live.remove(id);
                }
                let (q2, rep) = open(dir.path(), opts.clone());
                q = q2;
                let counted = rep.corrupt_records + rep.missing_records;
                assert_eq!(
                    counted,
                    lost.len() as u64,
                    "{damage:?} lost {lost:?}: {rep:?}"
                );
                assert_eq!(rep.lost_bytes, bytes, "{damage:?}: {rep:?}");
                match damage {
                    Damage::Delete => assert_eq!(rep.corrupt_records, 0, "{rep:?}"),
                    Damage::Flip => assert_eq!(rep.missing_records, 0, "{rep:?}"),
                    Damage::Truncate => {}
                }
                assert_eq!(q.drops().corrupt, rep.corrupt_records);
                assert_eq!(q.drops().missing, rep.missing_records);
                replay_matches_model(&mut q, &rep, &mut m, wm);
            }
            Op::Crash(_) | Op::Reopen => {
                let wm = m.watermark(q.next_id);
                if matches!(op, Op::Reopen) {
                    // Fails while writes fail and records wait in memory: then it is a crash.
                    // Retrying a memory record may first drop the oldest segments for room.
                    let before = q.drops().max_bytes;
                    assert_eq!(q.flush().is_ok(), !q.fail_writes || q.memory.is_empty());
                    m.drop_oldest(q.drops().max_bytes - before);
                }
                // Records only in memory are lost by a crash; that is the documented trade-off.
                for r in &q.memory {
                    m.live.remove(&r.id);
                }
                let in_memory = q.memory.len() as u64;
                drop(q);
                let (mut torn, mut torn_partial) = (false, false);
                if let Op::Crash(Some(at)) = op {
                    if let Some((id, partial)) = tear_last_record(dir.path(), at) {
                        // That append never completed, as far as a real crash goes.
                        m.live.remove(&id);
                        m.gone.remove(&id);
                        (torn, torn_partial) = (true, partial);
                    }
                }
                let (q2, rep) = open(dir.path(), opts.clone());
                q = q2;
                // Ids at or above `next_id` never reached the disk and may be reused.
                m.gone.retain(|id, _| *id < q.next_id);
                assert_eq!(rep.lost_bytes > 0, torn_partial, "{rep:?}");
                // The torn record and those only in memory are lost (and may be counted).
                assert!(
                    rep.corrupt_records + rep.missing_records <= u64::from(torn) + in_memory,
                    "{rep:?}"
                );
                replay_matches_model(&mut q, &rep, &mut m, wm);
            }
        }
        check_counts(&q, &m);
    }
}

/// Takes every record of a freshly opened queue: in id order, every live record of the model,
/// no record below the watermark, payloads intact; then gives them back.
fn replay_matches_model(q: &mut DiskQueue, rep: &OpenReport, m: &mut Model, wm: u64) {
    {
        {
            let got = q.take(usize::MAX).unwrap();
            let got_ids = ids_of(&got);
            assert!(
                got_ids.windows(2).all(|w| w[0] < w[1]),
                "replay not in order: {got_ids:?}"
            );
            for id in m.live.keys() {
                assert!(
                    got_ids.contains(id),
                    "lost record {id}; replayed {got_ids:?}"
                );
            }
            let mut live = BTreeMap::new();
            for r in &got {
                let id = r.id.0;
                let mr = match m.live.get(&id) {
                    Some(mr) => mr,
                    None => {
                        assert!(id >= wm, "record {id} below the watermark {wm} replayed");
                        m.gone
                            .get(&id)
                            .unwrap_or_else(|| panic!("unknown record {id} replayed"))
                    }
                };
                assert_eq!(r.payload[..], mr.payload[..]);
                assert_eq!(r.created_unix_ms, mr.created);
                let mr = MRec {
                    in_flight: false,
                    ..mr.clone()
                };
                m.gone.remove(&id);
                live.insert(id, mr);
            }
            m.live = live;
            assert_eq!(rep.replayable_records, got.len() as u64);
            q.requeue(&got.iter().map(|r| r.id).collect::<Vec<_>>());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_check(
        ops in proptest::collection::vec(op(), 1..80),
        segment_bytes in 200u64..2000,
        max_bytes in 1500u64..8000,
    ) {
        run_model(ops, &QueueOptions {
            max_bytes,
            max_age: Duration::from_millis(40),
            segment_bytes,
            fsync: false,
            memory_fallback_bytes: 1 << 20,
            reserve_bytes: 0,
        });
    }

    #[test]
    fn damaged_files_never_fail_open(
        sizes in proptest::collection::vec(0usize..120, 1..25),
        target in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        foreign in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = QueueOptions { segment_bytes: 300, ..small_opts() };
        let (mut q, _) = open(dir.path(), opts.clone());
        let mut written = BTreeMap::new();
        for (i, len) in sizes.iter().enumerate() {
            let p = payload(i as u64, *len);
            let id = q.append(i as i64, &p).unwrap().0;
            written.insert(id, p);
        }
        drop(q);
        let files = segment_files(dir.path());
        let layout: Vec<Vec<(u64, u64)>> = files
            .iter()
            .map(|f| scan_segment(f).unwrap().recs.iter().map(|f| (f.header.id, f.offset + rec_size(f.header.len as usize))).collect())
            .collect();
        let t = target.index(files.len());
        let mut b = fs::read(&files[t]).unwrap();
        let mut damage_at = b.len() as u64;
        for (at, x) in &flips {
            let pos = at.index(b.len());
            b[pos] ^= x;
            damage_at = damage_at.min(pos as u64);
        }
        b.extend_from_slice(&garbage);
        fs::write(&files[t], &b).unwrap();
        if let Some(f) = &foreign {
            fs::write(dir.path().join("00000000000000000007.seg"), f).unwrap();
        }

        let (mut q, rep) = DiskQueue::open(dir.path(), opts).unwrap();
        let got = q.take(usize::MAX).unwrap();
        let got_ids = ids_of(&got);
        prop_assert!(got_ids.windows(2).all(|w| w[0] < w[1]));
        for r in &got {
            prop_assert_eq!(&r.payload[..], &written[&r.id.0][..]);
        }
        if foreign.is_none() {
            for (fi, recs) in layout.iter().enumerate() {
                for &(id, end) in recs {
                    if fi != t || end <= damage_at {
                        prop_assert!(got_ids.contains(&id), "record {} lost", id);
                    }
                }
            }
            if flips.is_empty() && garbage.is_empty() {
                prop_assert_eq!(rep.corrupt_records, 0);
                prop_assert_eq!(rep.lost_bytes, 0);
            }
        }
    }
}

#[test]
fn exhausted_ids_are_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("18446744073709551615.seg"), b"").unwrap();
    fs::write(
        dir.path().join("99999999999999999999.seg"),
        b"not a u64: ignored",
    )
    .unwrap();
    let (mut q, _) = open(dir.path(), small_opts());
    assert!(matches!(q.append(0, b"x"), Err(QueueError::IdsExhausted)));
}

/// Found by the model check at 600 cases: a reopen's flush retries a record held in memory,
/// drops the oldest segments (counted as `max_bytes`) to make room, and the write fails again.
/// (`take` retries memory records the same way; the model credits drops after both.)
#[test]
fn flush_after_failed_write_counts_the_segments_it_drops() {
    use Op::*;
    run_model(
        vec![
            Append(134),
            Append(266),
            Append(137),
            Append(264),
            Append(172),
            Crash(None),
            Append(36),
            Append(125),
            Append(212),
            Append(66),
            Append(63),
            FailWrites(true),
            Append(258),
            Reopen,
        ],
        &QueueOptions {
            segment_bytes: 467,
            max_bytes: 2037,
            max_age: Duration::from_millis(40),
            ..small_opts()
        },
    );
}

#[test]
fn a_second_queue_on_the_same_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = open(dir.path(), small_opts());
    first.append(0, b"x").unwrap();
    let err = DiskQueue::open(dir.path(), small_opts()).unwrap_err();
    let QueueError::Locked { holder, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(holder, &format!("pid {}", std::process::id()));
    let text = err.to_string();
    assert!(
        text.contains("locked by another agent") && text.contains("lock"),
        "{text}"
    );
    // Released with the queue: a restart opens it again and finds the record.
    drop(first);
    let (_, rep) = open(dir.path(), small_opts());
    assert_eq!(rep.replayable_records, 1);
}

/// The real-file version of the model check's damage cases, with exact counts: a flipped byte
/// in one record, a truncated segment and a deleted segment, each on its own queue.
#[test]
fn each_kind_of_damage_is_counted_exactly_once() {
    // 300-byte records, 3 per segment: files 1, 4, 7, 10.
    let fill = |dir: &Path| {
        let (mut q, _) = open(dir, small_opts());
        for i in 0..12 {
            q.append(i, &payload(i as u64, 268)).unwrap();
        }
        q.flush().unwrap();
    };
    // (name, damage, corrupt records, missing records, lost bytes, surviving ids)
    type Case = (&'static str, fn(&[PathBuf]), u64, u64, u64, Vec<u64>);
    let cases: [Case; 3] = [
        (
            "flip",
            |f| {
                let mut b = fs::read(&f[1]).unwrap();
                b[8 + 300 + 100] ^= 0xff; // id 5
                fs::write(&f[1], b).unwrap();
            },
            1,
            0,
            300,
            vec![1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12],
        ),
        (
            "truncate",
            |f| {
                let file = OpenOptions::new().write(true).open(&f[1]).unwrap();
                file.set_len(8 + 300 + 50).unwrap(); // keeps id 4, cuts 5 and 6
            },
            2,
            0,
            50,
            vec![1, 2, 3, 4, 7, 8, 9, 10, 11, 12],
        ),
        (
            "delete",
            |f| fs::remove_file(&f[2]).unwrap(),
            0,
            3,
            0,
            vec![1, 2, 3, 4, 5, 6, 10, 11, 12],
        ),
    ];
    for (name, damage, corrupt, missing, bytes, survivors) in cases {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        damage(&segment_files(dir.path()));
        let (mut q, rep) = open(dir.path(), small_opts());
        assert_eq!(
            (rep.corrupt_records, rep.missing_records, rep.lost_bytes),
            (corrupt, missing, bytes),
            "{name}"
        );
        assert_eq!(q.drops().corrupt, corrupt, "{name}");
        assert_eq!(q.drops().missing, missing, "{name}");
        assert_eq!(ids_of(&q.take(100).unwrap()), survivors, "{name}");
        drop(q);
        let (_, rep) = open(dir.path(), small_opts());
        assert_eq!(
            (rep.corrupt_records, rep.missing_records, rep.lost_bytes),
            (0, 0, 0),
            "{name}: reported once"
        );
    }
}
