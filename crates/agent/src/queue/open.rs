//! Opening a queue: reading and verifying every segment, resynchronising after damage,
//! counting what was lost, and replaying what was not acknowledged.

use super::*;

/// The id chain while [`DiskQueue::open`] reads the segments in order: which ids are accounted
/// for, and whether damage was seen since the last valid record.
#[derive(Debug)]
pub(super) struct Chain {
    /// Done ids above the watermark (from the watermark file).
    pub(super) done: IdRanges,
    /// Ids found lost (to be persisted as done, so they are reported once).
    pub(super) lost: IdRanges,
    /// Highest id accounted for (found, or below the watermark).
    pub(super) base: u64,
    /// Damaged bytes since the last valid record.
    pub(super) damage_pending: bool,
    /// ... beginning with a complete (then damaged) record.
    pub(super) whole_record_pending: bool,
}

impl Chain {
    pub(super) fn damaged(&mut self, whole_record: bool) {
        self.damage_pending = true;
        self.whole_record_pending |= whole_record;
    }

    /// The record before the next one found is `prev`: counts the unaccounted ids up to it.
    pub(super) fn link(&mut self, prev: u64, segment: &str, report: &mut OpenReport) {
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

    pub(super) fn advance(&mut self, id: u64) {
        self.base = self.base.max(id);
        self.damage_pending = false;
        self.whole_record_pending = false;
    }
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
            free_space: None,
            reserve_len: reserve_on_disk(dir),
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
        // Before any record can need it: a shutdown on a full disk writes the memory fallback
        // into this space.
        if let Err(e) = q.grow_reserve(u64::MAX) {
            tracing::warn!(
                dir = %q.dir.display(),
                error = %e,
                held = q.reserve_len,
                wanted = q.opts.reserve_bytes,
                "cannot fill the queue's disk reserve; topping it up later"
            );
        }
        report.replayable_records = q.live_records;
        report.replayable_bytes = q.live_bytes;
        tracing::info!(dir = %q.dir.display(), ?report, "disk queue opened");
        Ok((q, report))
    }
}
