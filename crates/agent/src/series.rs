//! Per-series state: label normalisation, "only newer samples" and stale markers.
//!
//! Remote Write 1.0 receivers (Prometheus 2.42) reject a whole request for one out-of-order or
//! duplicate-timestamp sample, so a sample goes out only when its timestamp is strictly newer than
//! the last one sent for its series. A series that was in a target's previous complete scrape but
//! is missing now gets one stale marker: `/federate` never returns stale markers, so without it
//! the SLO Prometheus would keep the series alive for its 5-minute lookback.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::labels::{encode_normalized, LabelBlock};
use exposition::{self, parse_line, parse_line_reusing, recycle_labels, ParseError};
use remote_write::{stale_marker, Label};

/// How long a vanished series is remembered after its stale marker. `/federate` returns samples
/// up to the 5-minute lookback old; a series that comes back with such a sample (source
/// timestamps honoured) must not be sent behind its own stale marker.
const TOMBSTONE_MS: i64 = 10 * 60 * 1000;

/// A sample as scraped: where its label block is in the [`ScrapeBuf`], and the source's
/// timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScrapedSample {
    /// Series hash of the normalised labels.
    pub hash: u64,
    /// Label block: `blocks[start..end]` of its buffer.
    start: usize,
    end: usize,
    /// The value.
    pub value: f64,
    /// The source's timestamp, if the line had one.
    pub timestamp_ms: Option<i64>,
}

/// One target's scrape, compact and reused from scrape to scrape: the samples' label blocks
/// back to back, one entry per sample, and the parser's label vector. At steady state parsing a
/// line into it allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ScrapeBuf {
    blocks: Vec<u8>,
    samples: Vec<ScrapedSample>,
    labels: Vec<exposition::Label<'static>>,
}

impl ScrapeBuf {
    /// Empties it for the next scrape (keeping its memory).
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.samples.clear();
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// The samples, in body order.
    pub fn samples(&self) -> &[ScrapedSample] {
        &self.samples
    }

    /// The label block of `sample`.
    pub fn block(&self, sample: &ScrapedSample) -> &[u8] {
        &self.blocks[sample.start..sample.end]
    }

    /// Parses one line; a sample is normalised (see [`encode_normalized`]) and kept. Returns
    /// whether the line was a sample.
    pub fn push_line(&mut self, line: &str, external: &[Label]) -> Result<bool, ParseError> {
        if matches!(line.trim_start().as_bytes().first(), None | Some(b'#')) {
            // Comments and blanks: no labels, no need to lend the vector.
            return parse_line(line).map(|_| false);
        }
        let labels = recycle_labels(std::mem::take(&mut self.labels));
        match parse_line_reusing(line, labels)? {
            exposition::Entry::Sample(mut sample) => {
                let start = self.blocks.len();
                let hash =
                    encode_normalized(sample.name, &mut sample.labels, external, &mut self.blocks);
                self.samples.push(ScrapedSample {
                    hash,
                    start,
                    end: self.blocks.len(),
                    value: sample.value,
                    timestamp_ms: sample.timestamp_ms,
                });
                self.labels = recycle_labels(sample.labels);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Gives memory back after a spike.
    pub fn shrink(&mut self) {
        if self.samples.capacity() > 4 * self.samples.len().max(SHRINK_FLOOR) {
            self.samples.shrink_to(2 * self.samples.len());
        }
        if self.blocks.capacity() > 4 * self.blocks.len().max(64 * SHRINK_FLOOR) {
            self.blocks.shrink_to(2 * self.blocks.len());
        }
    }
}

/// A sample to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutSample {
    /// Series hash.
    pub hash: u64,
    /// The series' label block, shared with the series table.
    pub block: LabelBlock,
    /// Timestamp to send, ms.
    pub timestamp_ms: i64,
    /// Value (the stale marker for a vanished series).
    pub value: f64,
}

/// What one series is known as.
#[derive(Debug)]
struct SeriesEntry {
    block: LabelBlock,
    /// Last timestamp sent (sample or stale marker).
    last_ts: i64,
    /// Target that last returned it: only that target's scrape may declare it vanished.
    target: usize,
    /// Stale marker sent; kept only to order a comeback after it.
    stale: bool,
}

/// Result of applying one scrape (its samples were appended to the caller's vector).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Samples and stale markers appended, scrape order, stale markers last.
    pub samples: usize,
    /// Samples not newer than the last one sent for their series (skipped).
    pub not_newer: u64,
    /// Stale markers among `samples`.
    pub stale_markers: u64,
    /// Samples skipped because another series has the same hash.
    pub collisions: u64,
    /// Samples older than `buffer.max_age` (source timestamps honoured), skipped.
    pub too_old: u64,
}

/// Every series the agent sends, and which ones each target returned last time.
#[derive(Debug)]
pub(crate) struct SeriesState {
    honor_timestamps: bool,
    /// Samples older than this before the scrape (`buffer.max_age`) are dropped: the upstream
    /// would refuse them, and one such sample makes Prometheus refuse the whole request.
    max_age_ms: i64,
    series: HashMap<u64, SeriesEntry>,
    /// Per target: series of its last complete scrape (plus those of incomplete ones since).
    previous: Vec<HashSet<u64>>,
    /// The set `apply` fills, swapped with `previous` (so no set is allocated per scrape).
    spare: HashSet<u64>,
    /// Entries that are not tombstones.
    active: usize,
}

impl SeriesState {
    /// State for `targets` targets; samples older than `max_age` are dropped.
    pub fn new(targets: usize, honor_timestamps: bool, max_age: std::time::Duration) -> Self {
        Self {
            honor_timestamps,
            max_age_ms: i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
            series: HashMap::new(),
            previous: vec![HashSet::new(); targets],
            spare: HashSet::new(),
            active: 0,
        }
    }

    /// Series currently alive (not ended by a stale marker).
    pub fn active(&self) -> usize {
        self.active
    }

    /// Applies a scrape of `target` that started at `scrape_ts`, appending what to send to
    /// `out`. A known series costs no allocation.
    ///
    /// `complete` is false when the body was cut off or broke off: then nothing is declared
    /// vanished (the missing series may just be past the cut).
    pub fn apply(
        &mut self,
        target: usize,
        scrape_ts: i64,
        scraped: &ScrapeBuf,
        complete: bool,
        out: &mut Vec<OutSample>,
    ) -> Applied {
        let mut applied = Applied::default();
        let before = out.len();
        let mut seen = std::mem::take(&mut self.spare);
        seen.clear();
        seen.reserve(scraped.len());
        for sample in scraped.samples() {
            let ts = match (self.honor_timestamps, sample.timestamp_ms) {
                (true, Some(ts)) => ts,
                _ => scrape_ts,
            };
            seen.insert(sample.hash);
            if ts < scrape_ts.saturating_sub(self.max_age_ms) {
                applied.too_old += 1;
                continue;
            }
            let block = scraped.block(sample);
            let block = match self.series.entry(sample.hash) {
                Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    if *e.block != *block {
                        // A 64-bit hash collision (practically never): never send one series'
                        // value under another's labels.
                        applied.collisions += 1;
                        continue;
                    }
                    e.target = target;
                    if ts <= e.last_ts {
                        applied.not_newer += 1;
                        continue;
                    }
                    if e.stale {
                        e.stale = false;
                        self.active += 1;
                    }
                    e.last_ts = ts;
                    e.block.clone()
                }
                Entry::Vacant(v) => {
                    let block: LabelBlock = block.into();
                    v.insert(SeriesEntry {
                        block: block.clone(),
                        last_ts: ts,
                        target,
                        stale: false,
                    });
                    self.active += 1;
                    block
                }
            };
            out.push(OutSample {
                hash: sample.hash,
                block,
                timestamp_ms: ts,
                value: sample.value,
            });
        }
        let Some(previous) = self.previous.get_mut(target) else {
            self.spare = seen;
            applied.samples = out.len() - before;
            return applied;
        };
        if !complete {
            previous.extend(seen.drain());
            self.spare = seen;
            applied.samples = out.len() - before;
            return applied;
        }
        for hash in previous.difference(&seen) {
            let Some(e) = self.series.get_mut(hash) else {
                continue;
            };
            if e.target != target || e.stale {
                continue;
            }
            // Strictly after the last sample, even if the source's clock ran ahead of ours.
            let ts = scrape_ts.max(e.last_ts.saturating_add(1));
            e.last_ts = ts;
            e.stale = true;
            self.active -= 1;
            applied.stale_markers += 1;
            out.push(OutSample {
                hash: *hash,
                block: e.block.clone(),
                timestamp_ms: ts,
                value: stale_marker(),
            });
        }
        self.spare = std::mem::replace(previous, seen);
        applied.samples = out.len() - before;
        // Without source timestamps a comeback is always stamped after its marker, so nothing
        // needs remembering; with them, a vanished series is kept as a tombstone for a while.
        let keep_ms = if self.honor_timestamps {
            TOMBSTONE_MS
        } else {
            0
        };
        self.series
            .retain(|_, e| !e.stale || scrape_ts.saturating_sub(e.last_ts) < keep_ms);
        // Give memory back after a spike: a map keeps its largest capacity otherwise.
        shrink_map(&mut self.series);
        for set in &mut self.previous {
            shrink_set(set);
        }
        // The spare set is next scrape's `seen`: sized like the largest target's series.
        self.spare.clear();
        let live = self.previous.iter().map(HashSet::len).max().unwrap_or(0);
        if self.spare.capacity() > 4 * live.max(SHRINK_FLOOR) {
            self.spare.shrink_to(2 * live);
        }
        applied
    }

    /// Entries held (active series and tombstones).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.series.len()
    }

    /// Capacity of the series table (what its memory is sized for).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.series.capacity()
            + self.spare.capacity()
            + self.previous.iter().map(HashSet::capacity).sum::<usize>()
    }
}

/// Smallest capacity worth shrinking to: below it, churn would cost more than it saves.
const SHRINK_FLOOR: usize = 1024;

/// Shrinks a map that is mostly empty (capacity above four times its length) to twice its
/// length, so memory returns after a spike without reallocating on every small change.
fn shrink_map<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 4 * map.len().max(SHRINK_FLOOR) {
        map.shrink_to(2 * map.len());
    }
}

fn shrink_set<K: Eq + std::hash::Hash>(set: &mut HashSet<K>) {
    if set.capacity() > 4 * set.len().max(SHRINK_FLOOR) {
        set.shrink_to(2 * set.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::decode_block;
    use remote_write::is_stale_marker;

    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

    /// What `apply` produced, with the samples it appended.
    struct Out {
        samples: Vec<OutSample>,
        counts: Applied,
    }

    fn buf<S: AsRef<str>>(lines: &[S]) -> ScrapeBuf {
        let mut b = ScrapeBuf::default();
        for line in lines {
            b.push_line(line.as_ref(), &[]).unwrap();
        }
        b
    }

    fn apply<S: AsRef<str>>(
        state: &mut SeriesState,
        target: usize,
        ts: i64,
        lines: &[S],
        complete: bool,
    ) -> Out {
        let mut samples = Vec::new();
        let counts = state.apply(target, ts, &buf(lines), complete, &mut samples);
        assert_eq!(counts.samples, samples.len());
        Out { samples, counts }
    }

    fn name(s: &OutSample) -> String {
        decode_block(&s.block)
            .unwrap()
            .into_iter()
            .find(|(n, _)| *n == "__name__")
            .unwrap()
            .1
            .to_string()
    }

    #[test]
    fn only_strictly_newer_samples_go_out_with_source_timestamps() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        let a = apply(&mut state, 0, 1000, &["a 1 500", "b 1"], true);
        let ts: Vec<i64> = a.samples.iter().map(|s| s.timestamp_ms).collect();
        // b has no timestamp: scrape time.
        assert_eq!(ts, [500, 1000]);
        // Federate repeats a's old sample: nothing new for a; b's scrape time moved on.
        let a = apply(&mut state, 0, 2000, &["a 1 500", "b 2"], true);
        assert_eq!(a.counts.not_newer, 1);
        assert_eq!(a.samples.len(), 1);
        assert_eq!(a.samples[0].timestamp_ms, 2000);
        // Older than sent: skipped too.
        let a = apply(&mut state, 0, 3000, &["a 1 400", "b 3 2000"], true);
        assert_eq!((a.samples.len(), a.counts.not_newer), (0, 2));
        let a = apply(&mut state, 0, 4000, &["a 7 501", "b 3 2001"], true);
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.samples[0].value, 7.0);
    }

    #[test]
    fn without_honor_timestamps_every_sample_gets_the_scrape_time() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let a = apply(&mut state, 0, 1000, &["a 1 500", "b 1 99999"], true);
        assert!(a.samples.iter().all(|s| s.timestamp_ms == 1000));
        let a = apply(&mut state, 0, 2000, &["a 1 500", "b 1 99999"], true);
        assert!(a.samples.iter().all(|s| s.timestamp_ms == 2000));
        assert_eq!(a.samples.len(), 2);
        // Same scrape time twice (clock did not move): nothing sent twice.
        let a = apply(&mut state, 0, 2000, &["a 1", "b 1"], true);
        assert_eq!((a.samples.len(), a.counts.not_newer), (0, 2));
        // A duplicate line within one scrape goes out once.
        let a = apply(&mut state, 0, 3000, &["a 1", "a 2", "b 1"], true);
        assert_eq!(
            (a.samples.len(), a.counts.not_newer, a.counts.stale_markers),
            (2, 1, 0)
        );
    }

    #[test]
    fn vanished_series_get_one_stale_marker_then_are_forgotten() {
        let mut state = SeriesState::new(2, false, MAX_AGE);
        apply(&mut state, 0, 1000, &["a 1", "b 1"], true);
        apply(&mut state, 1, 1000, &["c 1"], true);
        assert_eq!(state.active(), 3);
        // b vanished from target 0.
        let a = apply(&mut state, 0, 2000, &["a 2"], true);
        assert_eq!(a.counts.stale_markers, 1);
        let stale = &a.samples[1];
        assert!(is_stale_marker(stale.value));
        assert_eq!(stale.timestamp_ms, 2000);
        assert_eq!(name(stale), "b");
        assert_eq!(state.active(), 2);
        // Only one marker.
        let a = apply(&mut state, 0, 3000, &["a 3"], true);
        assert_eq!(a.counts.stale_markers, 0);
        // A failed or cut-off scrape declares nothing vanished.
        let a = apply::<&str>(&mut state, 0, 4000, &[], false);
        assert_eq!(a.counts.stale_markers, 0);
        let a = apply::<&str>(&mut state, 0, 5000, &[], true);
        assert_eq!(a.counts.stale_markers, 1);
        // Target 1's series is not ended by target 0.
        assert_eq!(state.active(), 1);
        // b comes back: a new sample, after its marker.
        let a = apply(&mut state, 0, 6000, &["b 5"], true);
        assert_eq!(a.samples.len(), 1);
        assert!(!is_stale_marker(a.samples[0].value));
        assert_eq!(state.active(), 2);
    }

    #[test]
    fn a_comeback_with_an_old_timestamp_is_not_sent_behind_its_stale_marker() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        apply(&mut state, 0, 10_000, &["a 1 9000"], true);
        let a = apply::<&str>(&mut state, 0, 20_000, &[], true);
        assert_eq!(a.samples[0].timestamp_ms, 20_000);
        let a = apply(&mut state, 0, 30_000, &["a 1 9000"], true);
        assert_eq!((a.samples.len(), a.counts.not_newer), (0, 1));
        // Stale marker after a future-stamped sample stays strictly after it.
        apply(&mut state, 0, 40_000, &["b 1 50000"], true);
        let a = apply::<&str>(&mut state, 0, 41_000, &[], true);
        assert_eq!(a.samples[0].timestamp_ms, 50_001);
    }

    #[test]
    fn a_hash_collision_drops_the_newcomer_instead_of_mislabelling_it() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let mut b = buf(&["a 1", "b 2"]);
        b.samples[1].hash = b.samples[0].hash;
        let mut out = Vec::new();
        let counts = state.apply(0, 1000, &b, true, &mut out);
        assert_eq!((out.len(), counts.collisions), (1, 1));
        assert_eq!(name(&out[0]), "a");
    }

    #[test]
    fn tombstones_expire() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        apply(&mut state, 0, 0, &["a 1"], true);
        apply::<&str>(&mut state, 0, 1, &[], true);
        assert_eq!(state.series.len(), 1);
        apply::<&str>(&mut state, 0, TOMBSTONE_MS + 2, &[], true);
        assert!(state.series.is_empty());
        // Without source timestamps nothing is kept after the marker.
        let mut state = SeriesState::new(1, false, MAX_AGE);
        apply(&mut state, 0, 0, &["a 1"], true);
        let a = apply::<&str>(&mut state, 0, 1, &[], true);
        assert_eq!(a.counts.stale_markers, 1);
        assert!(state.series.is_empty());
    }

    #[test]
    fn samples_older_than_max_age_are_dropped_not_sent() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        let now = 10_000_000;
        let old = now - 3_600_001;
        let a = apply(
            &mut state,
            0,
            now,
            &[format!("a 1 {old}"), format!("b 1 {}", now - 5)],
            true,
        );
        assert_eq!((a.samples.len(), a.counts.too_old), (1, 1));
        assert_eq!(name(&a.samples[0]), "b");
        // The old one's series is not declared vanished by it either.
        let a = apply(&mut state, 0, now + 1, &[format!("a 1 {old}")], true);
        assert_eq!(a.counts.too_old, 1);
        assert_eq!(a.counts.stale_markers, 1);
        assert_eq!(name(&a.samples[0]), "b");
    }

    #[test]
    fn memory_returns_after_a_spike_of_vanished_series() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let base: Vec<String> = (0..100).map(|i| format!("base{i} 1")).collect();
        apply(&mut state, 0, 1000, &base, true);
        let idle = state.capacity();
        let spike: Vec<String> = base
            .iter()
            .cloned()
            .chain((0..100_000).map(|i| format!("spike{i} 1")))
            .collect();
        let mut scraped = buf(&spike);
        let mut out = Vec::new();
        state.apply(0, 2000, &scraped, true, &mut out);
        assert_eq!(state.tracked(), 100_100);
        assert!(state.capacity() >= 200_000);
        // The spike is gone: 100,000 stale markers, then the state is back to its size.
        scraped.clear();
        for line in &base {
            scraped.push_line(line, &[]).unwrap();
        }
        scraped.shrink();
        let mut out = Vec::new();
        let a = state.apply(0, 3000, &scraped, true, &mut out);
        assert_eq!(a.stale_markers, 100_000);
        assert_eq!(state.tracked(), 100);
        assert!(
            state.capacity() <= idle.max(4 * SHRINK_FLOOR) * 2,
            "capacity {} after the spike, {idle} before",
            state.capacity()
        );
        assert!(scraped.samples.capacity() <= 8 * SHRINK_FLOOR);
        assert!(scraped.blocks.capacity() <= 2 * 64 * 4 * SHRINK_FLOOR);
    }
}
