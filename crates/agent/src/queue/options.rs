//! Sizing and durability settings of the queue.

use super::*;

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
    /// Bound of the in-memory buffer used while disk writes fail. Keep it a little below
    /// `reserve_bytes` (segment headers and file system blocks take some room), so that a
    /// graceful shutdown on a full disk can write all of it.
    pub memory_fallback_bytes: u64,
    /// Disk space held back in the file `reserve` for the records in the memory fallback at a
    /// graceful shutdown on a full disk (see [`DiskQueue::flush`]); not counted in `max_bytes`.
    /// 0: none.
    pub reserve_bytes: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(3600),
            segment_bytes: 8 << 20,
            fsync: false,
            memory_fallback_bytes: 64 << 20,
            reserve_bytes: 0,
        }
    }
}

/// Minimum interval between watermark rewrites that are not forced by a segment deletion.
pub(super) const WM_INTERVAL: Duration = Duration::from_secs(1);
