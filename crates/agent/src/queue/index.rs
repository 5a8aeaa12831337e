//! The in-memory segment index: where each record lives (segment and offset, or the memory
//! fallback), its state, and moving between records in id order.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Not handed out (or requeued).
    Pending,
    /// Handed out by `take`, neither acked nor requeued.
    InFlight,
    /// Acked or dropped.
    Done,
}

/// In-memory index entry of a record stored in a segment.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) id: u64,
    /// Offset of the record header in the segment file.
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) created: i64,
    pub(super) state: State,
}

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) path: PathBuf,
    /// Record layout of the file.
    pub(super) version: Version,
    /// Id of `recs[0]`; segments are never empty.
    pub(super) first_id: u64,
    /// File size in bytes.
    pub(super) len: u64,
    pub(super) recs: Vec<Meta>,
    /// Records not `Done`.
    pub(super) live: usize,
    /// Index of the first record not `Done` (== `recs.len()` when none).
    pub(super) head: usize,
    /// Smallest creation time of any record, to skip segments in `expire`.
    pub(super) min_created: i64,
    /// Read handle, opened on first `take` from this segment.
    pub(super) reader: Option<File>,
}

impl Segment {
    /// Accounts a record of `bytes` bytes just written at the end of the file.
    pub(super) fn push(&mut self, meta: Meta, bytes: u64) {
        if meta.state != State::Done {
            self.live += 1;
        }
        self.min_created = self.min_created.min(meta.created);
        self.recs.push(meta);
        self.advance_head();
        self.len += bytes;
    }

    pub(super) fn advance_head(&mut self) {
        while self
            .recs
            .get(self.head)
            .is_some_and(|m| m.state == State::Done)
        {
            self.head += 1;
        }
    }
}

/// Position of a record: segment and record index, or index in the memory fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    Disk(usize, usize),
    Mem(usize),
}

impl DiskQueue {
    pub(super) fn is_active(&self, si: usize) -> bool {
        self.writer.is_some() && si + 1 == self.segments.len()
    }

    pub(super) fn locate(&self, id: u64) -> Option<Loc> {
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
    pub(super) fn lower_bound(&self, id: u64) -> Option<Loc> {
        let si = self
            .segments
            .partition_point(|s| s.recs.last().is_none_or(|m| m.id < id));
        if let Some(s) = self.segments.get(si) {
            return Some(Loc::Disk(si, s.recs.partition_point(|m| m.id < id)));
        }
        let mi = self.memory.partition_point(|m| m.id < id);
        (mi < self.memory.len()).then_some(Loc::Mem(mi))
    }

    pub(super) fn next_loc(&self, loc: Loc) -> Option<Loc> {
        match loc {
            Loc::Disk(si, ri) if ri + 1 < self.segments[si].recs.len() => {
                Some(Loc::Disk(si, ri + 1))
            }
            Loc::Disk(si, _) if si + 1 < self.segments.len() => Some(Loc::Disk(si + 1, 0)),
            Loc::Disk(..) => (!self.memory.is_empty()).then_some(Loc::Mem(0)),
            Loc::Mem(mi) => (mi + 1 < self.memory.len()).then_some(Loc::Mem(mi + 1)),
        }
    }

    pub(super) fn state(&self, loc: Loc) -> State {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].state,
            Loc::Mem(mi) => self.memory[mi].state,
        }
    }

    pub(super) fn state_mut(&mut self, loc: Loc) -> &mut State {
        match loc {
            Loc::Disk(si, ri) => &mut self.segments[si].recs[ri].state,
            Loc::Mem(mi) => &mut self.memory[mi].state,
        }
    }

    pub(super) fn loc_id(&self, loc: Loc) -> u64 {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].id,
            Loc::Mem(mi) => self.memory[mi].id,
        }
    }

    pub(super) fn loc_created(&self, loc: Loc) -> i64 {
        match loc {
            Loc::Disk(si, ri) => self.segments[si].recs[ri].created,
            Loc::Mem(mi) => self.memory[mi].created,
        }
    }

    /// Marks a live record done and updates the counters. Does not delete or trim anything,
    /// so other `Loc`s stay valid.
    pub(super) fn finish(&mut self, loc: Loc) {
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
}
