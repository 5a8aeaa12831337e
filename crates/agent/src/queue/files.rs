//! File I/O of the queue: writing records and segments, reading runs of records back, deleting
//! and dropping segments, and persisting the ack watermark.

use super::*;

impl DiskQueue {
    pub(super) fn delete_segment(&mut self, si: usize) -> Result<(), QueueError> {
        let Some(seg) = self.segments.remove(si) else {
            return Ok(());
        };
        self.disk_bytes -= seg.len;
        self.wm_force = true;
        if let Some(free) = &mut self.free_space {
            *free += seg.len;
        }
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
    pub(super) fn delete_done_segments(&mut self) -> Result<(), QueueError> {
        while self.segments.front().is_some_and(|s| s.live == 0) && !self.is_active(0) {
            self.delete_segment(0)?;
        }
        Ok(())
    }

    /// Drops the oldest segment with all its unacked records (counted as `max_bytes`).
    pub(super) fn drop_oldest_segment(&mut self) {
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
    pub(super) fn seal_active(&mut self) {
        if self.writer.take().is_some() {
            if let Err(e) = self.delete_done_segments() {
                tracing::warn!(error = %e, "cannot delete acknowledged segment");
            }
        }
    }

    /// Writes `buf` to `f`. With the test hooks: half of it followed by ENOSPC when `fail`, or
    /// when `free` (simulated free space) is smaller than `buf`; otherwise `free` shrinks by it.
    pub(super) fn write_bytes(
        fail: bool,
        free: &mut Option<u64>,
        f: &mut File,
        buf: &[u8],
    ) -> io::Result<()> {
        let len = buf.len() as u64;
        if fail || free.is_some_and(|free| free < len) {
            f.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected write failure",
            ));
        }
        if let Some(free) = free {
            *free -= len;
        }
        f.write_all(buf)
    }

    /// Writes one record to disk (rolling and making room as needed). On error the disk state
    /// is as before (or the segment is closed with a torn tail when even truncation failed).
    pub(super) fn write_record(
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

    pub(super) fn write_new_segment(
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
        let res =
            Self::write_bytes(self.fail_writes, &mut self.free_space, &mut f, buf).and_then(|()| {
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

    pub(super) fn write_to_active(
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
        let res = Self::write_bytes(fail, &mut self.free_space, f, buf).and_then(|()| {
            if fsync {
                f.sync_data()
            } else {
                Ok(())
            }
        });
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

    /// Reads records `ris` (increasing) of segment `si` with one read; `None` for records that
    /// fail verification.
    pub(super) fn read_run(
        &mut self,
        si: usize,
        ris: &[usize],
    ) -> Result<Vec<Option<Bytes>>, QueueError> {
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
    pub(super) fn low_watermark(&self) -> u64 {
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
    pub(super) fn done_above(&mut self, wm: u64) -> Vec<(u64, u64)> {
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

    pub(super) fn maybe_persist_watermark(&mut self) -> Result<(), QueueError> {
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
}
