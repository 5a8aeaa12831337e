//! Per-series state: label normalisation, "only newer samples" and stale markers.
//!
//! Remote Write 1.0 receivers (Prometheus 2.42) reject a whole request for one out-of-order or
//! duplicate-timestamp sample, so a sample goes out only when its timestamp is strictly newer than
//! the last one sent for its series. A series that was in a target's previous complete scrape but
//! is missing now gets one stale marker: `/federate` never returns stale markers, so without it
//! the SLO Prometheus would keep the series alive for its 5-minute lookback.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::exposition;
use crate::remote_write::validate::strip_empty_labels;
use crate::remote_write::{stale_marker, Label, TimeSeries};

/// How long a vanished series is remembered after its stale marker. `/federate` returns samples
/// up to the 5-minute lookback old; a series that comes back with such a sample (source
/// timestamps honoured) must not be sent behind its own stale marker.
const TOMBSTONE_MS: i64 = 10 * 60 * 1000;

/// A sample as scraped: normalised, sorted labels and the source's timestamp.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScrapedSample {
    /// [`series_hash`] of `labels`.
    pub hash: u64,
    /// Sorted by name, `__name__` included, no empty values.
    pub labels: Vec<Label>,
    /// The value.
    pub value: f64,
    /// The source's timestamp, if the line had one.
    pub timestamp_ms: Option<i64>,
}

/// A sample to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutSample {
    /// [`series_hash`] of `labels`.
    pub hash: u64,
    /// The series' labels, shared with the series table.
    pub labels: Arc<[Label]>,
    /// Timestamp to send, ms.
    pub timestamp_ms: i64,
    /// Value (the stale marker for a vanished series).
    pub value: f64,
}

/// Turns a parsed line into a [`ScrapedSample`]: `__name__` from the metric name, empty-valued
/// labels dropped (`/federate` adds `instance=""`), `external` labels added where the series has
/// no label of that name, labels sorted by name.
pub(crate) fn normalize(sample: &exposition::Sample<'_>, external: &[Label]) -> ScrapedSample {
    let mut series = TimeSeries {
        labels: Vec::with_capacity(sample.labels.len() + 1 + external.len()),
        ..TimeSeries::default()
    };
    series.labels.push(Label {
        name: "__name__".into(),
        value: sample.name.into(),
    });
    series.labels.extend(
        sample
            .labels
            .iter()
            // The metric name wins over a (bogus) `__name__` label in the label set.
            .filter(|l| l.name != "__name__")
            .map(|l| Label {
                name: l.name.into(),
                value: l.value.as_ref().into(),
            }),
    );
    strip_empty_labels(&mut series);
    let mut labels = series.labels;
    let own = labels.len();
    for ext in external {
        if !labels[..own].iter().any(|l| l.name == ext.name) {
            labels.push(ext.clone());
        }
    }
    labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    ScrapedSample {
        hash: series_hash(&labels),
        labels,
        value: sample.value,
        timestamp_ms: sample.timestamp_ms,
    }
}

/// FNV-1a over the sorted labels, with separators that cannot occur in names.
///
/// Deliberately not `DefaultHasher`: the hash also picks a record's lane, and must be the same
/// after a restart and an upgrade so replayed and fresh records of a series share a lane.
pub(crate) fn series_hash(labels: &[Label]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for label in labels {
        eat(label.name.as_bytes());
        eat(&[0xff]);
        eat(label.value.as_bytes());
        eat(&[0xfe]);
    }
    hash
}

/// What one series is known as.
#[derive(Debug)]
struct SeriesEntry {
    labels: Arc<[Label]>,
    /// Last timestamp sent (sample or stale marker).
    last_ts: i64,
    /// Target that last returned it: only that target's scrape may declare it vanished.
    target: usize,
    /// Stale marker sent; kept only to order a comeback after it.
    stale: bool,
}

/// Result of applying one scrape.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Samples and stale markers to send, scrape order, stale markers last.
    pub samples: Vec<OutSample>,
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
            active: 0,
        }
    }

    /// Series currently alive (not ended by a stale marker).
    pub fn active(&self) -> usize {
        self.active
    }

    /// Applies a scrape of `target` that started at `scrape_ts`.
    ///
    /// `complete` is false when the body was cut off or broke off: then nothing is declared
    /// vanished (the missing series may just be past the cut).
    pub fn apply(
        &mut self,
        target: usize,
        scrape_ts: i64,
        samples: Vec<ScrapedSample>,
        complete: bool,
    ) -> Applied {
        let mut out = Applied {
            samples: Vec::with_capacity(samples.len()),
            ..Applied::default()
        };
        let mut seen = HashSet::with_capacity(samples.len());
        for sample in samples {
            let ts = match (self.honor_timestamps, sample.timestamp_ms) {
                (true, Some(ts)) => ts,
                _ => scrape_ts,
            };
            seen.insert(sample.hash);
            if ts < scrape_ts.saturating_sub(self.max_age_ms) {
                out.too_old += 1;
                continue;
            }
            let labels = match self.series.entry(sample.hash) {
                Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    if *e.labels != *sample.labels {
                        // A 64-bit hash collision (practically never): never send one series'
                        // value under another's labels.
                        out.collisions += 1;
                        continue;
                    }
                    e.target = target;
                    if ts <= e.last_ts {
                        out.not_newer += 1;
                        continue;
                    }
                    if e.stale {
                        e.stale = false;
                        self.active += 1;
                    }
                    e.last_ts = ts;
                    e.labels.clone()
                }
                Entry::Vacant(v) => {
                    let labels: Arc<[Label]> = sample.labels.into();
                    v.insert(SeriesEntry {
                        labels: labels.clone(),
                        last_ts: ts,
                        target,
                        stale: false,
                    });
                    self.active += 1;
                    labels
                }
            };
            out.samples.push(OutSample {
                hash: sample.hash,
                labels,
                timestamp_ms: ts,
                value: sample.value,
            });
        }
        let Some(previous) = self.previous.get_mut(target) else {
            return out;
        };
        if !complete {
            previous.extend(seen);
            return out;
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
            out.stale_markers += 1;
            out.samples.push(OutSample {
                hash: *hash,
                labels: e.labels.clone(),
                timestamp_ms: ts,
                value: stale_marker(),
            });
        }
        *previous = seen;
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
        out
    }

    /// Entries held (active series and tombstones).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.series.len()
    }

    /// Capacity of the series table (what its memory is sized for).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.series.capacity() + self.previous.iter().map(HashSet::capacity).sum::<usize>()
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::exposition::{parse_line, Entry as Line};
    use crate::remote_write::is_stale_marker;

    fn ext(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn scraped(line: &str, external: &[Label]) -> ScrapedSample {
        let Line::Sample(s) = parse_line(line).unwrap() else {
            panic!("not a sample: {line}")
        };
        normalize(&s, external)
    }

    fn names(s: &ScrapedSample) -> Vec<(String, String)> {
        s.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn labels_sorted_empty_dropped_external_added_but_not_overriding() {
        let external = ext(&[("seed", "aws-eu1"), ("cluster", "from-agent"), ("zz", "z")]);
        let s = scraped(
            r#"shoot:availability{kind="vpn",instance="",cluster="shoot--p--a"} 1 1700000000000"#,
            &external,
        );
        assert_eq!(
            names(&s),
            pairs(&[
                ("__name__", "shoot:availability"),
                ("cluster", "shoot--p--a"),
                ("kind", "vpn"),
                ("seed", "aws-eu1"),
                ("zz", "z"),
            ])
        );
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        // An empty own label does not block the external one (empty = absent).
        let s = scraped(r#"up{seed=""} 1"#, &external);
        assert!(names(&s).contains(&("seed".into(), "aws-eu1".into())));
        // Escaped values are unescaped; the hash depends on labels only.
        let a = scraped(r#"m{a="x\"y"} 1"#, &[]);
        let b = scraped(r#"m{a="x\"y"} 2 5"#, &[]);
        assert_eq!(a.labels[1].value, "x\"y");
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, scraped(r#"m{a="xy"} 1"#, &[]).hash);
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // The lane of replayed records depends on it: changing it reorders series after upgrades.
        let s = scraped(r#"up{job="a"} 1"#, &[]);
        assert_eq!(
            s.hash,
            series_hash(&ext(&[("__name__", "up"), ("job", "a")]))
        );
        assert_eq!(series_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(series_hash(&ext(&[("a", "")])), {
            // FNV-1a("a" 0xff 0xfe) computed by hand-rolled reference.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in [b'a', 0xff, 0xfe] {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            h
        });
    }

    fn sample(line: &str) -> ScrapedSample {
        scraped(line, &[])
    }

    #[test]
    fn only_strictly_newer_samples_go_out_with_source_timestamps() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        let a = state.apply(0, 1000, vec![sample("a 1 500"), sample("b 1")], true);
        let ts: Vec<i64> = a.samples.iter().map(|s| s.timestamp_ms).collect();
        // b has no timestamp: scrape time.
        assert_eq!(ts, [500, 1000]);
        // Federate repeats a's old sample: nothing new for a; b's scrape time moved on.
        let a = state.apply(0, 2000, vec![sample("a 1 500"), sample("b 2")], true);
        assert_eq!(a.not_newer, 1);
        assert_eq!(a.samples.len(), 1);
        assert_eq!(a.samples[0].timestamp_ms, 2000);
        // Older than sent: skipped too.
        let a = state.apply(0, 3000, vec![sample("a 1 400"), sample("b 3 2000")], true);
        assert_eq!((a.samples.len(), a.not_newer), (0, 2));
        let a = state.apply(0, 4000, vec![sample("a 7 501"), sample("b 3 2001")], true);
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.samples[0].value, 7.0);
    }

    #[test]
    fn without_honor_timestamps_every_sample_gets_the_scrape_time() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let a = state.apply(0, 1000, vec![sample("a 1 500"), sample("b 1 99999")], true);
        assert!(a.samples.iter().all(|s| s.timestamp_ms == 1000));
        let a = state.apply(0, 2000, vec![sample("a 1 500"), sample("b 1 99999")], true);
        assert!(a.samples.iter().all(|s| s.timestamp_ms == 2000));
        assert_eq!(a.samples.len(), 2);
        // Same scrape time twice (clock did not move): nothing sent twice.
        let a = state.apply(0, 2000, vec![sample("a 1"), sample("b 1")], true);
        assert_eq!((a.samples.len(), a.not_newer), (0, 2));
        // A duplicate line within one scrape goes out once.
        let a = state.apply(
            0,
            3000,
            vec![sample("a 1"), sample("a 2"), sample("b 1")],
            true,
        );
        assert_eq!((a.samples.len(), a.not_newer, a.stale_markers), (2, 1, 0));
    }

    #[test]
    fn vanished_series_get_one_stale_marker_then_are_forgotten() {
        let mut state = SeriesState::new(2, false, MAX_AGE);
        state.apply(0, 1000, vec![sample("a 1"), sample("b 1")], true);
        state.apply(1, 1000, vec![sample("c 1")], true);
        assert_eq!(state.active(), 3);
        // b vanished from target 0.
        let a = state.apply(0, 2000, vec![sample("a 2")], true);
        assert_eq!(a.stale_markers, 1);
        let stale = &a.samples[1];
        assert!(is_stale_marker(stale.value));
        assert_eq!(stale.timestamp_ms, 2000);
        assert_eq!(stale.labels[0].value, "b");
        assert_eq!(state.active(), 2);
        // Only one marker.
        let a = state.apply(0, 3000, vec![sample("a 3")], true);
        assert_eq!(a.stale_markers, 0);
        // A failed or cut-off scrape declares nothing vanished.
        let a = state.apply(0, 4000, vec![], false);
        assert_eq!(a.stale_markers, 0);
        let a = state.apply(0, 5000, vec![], true);
        assert_eq!(a.stale_markers, 1);
        // Target 1's series is not ended by target 0.
        assert_eq!(state.active(), 1);
        // b comes back: a new sample, after its marker.
        let a = state.apply(0, 6000, vec![sample("b 5")], true);
        assert_eq!(a.samples.len(), 1);
        assert!(!is_stale_marker(a.samples[0].value));
        assert_eq!(state.active(), 2);
    }

    #[test]
    fn a_comeback_with_an_old_timestamp_is_not_sent_behind_its_stale_marker() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        state.apply(0, 10_000, vec![sample("a 1 9000")], true);
        let a = state.apply(0, 20_000, vec![], true);
        assert_eq!(a.samples[0].timestamp_ms, 20_000);
        let a = state.apply(0, 30_000, vec![sample("a 1 9000")], true);
        assert_eq!((a.samples.len(), a.not_newer), (0, 1));
        // Stale marker after a future-stamped sample stays strictly after it.
        state.apply(0, 40_000, vec![sample("b 1 50000")], true);
        let a = state.apply(0, 41_000, vec![], true);
        assert_eq!(a.samples[0].timestamp_ms, 50_001);
    }

    #[test]
    fn a_hash_collision_drops_the_newcomer_instead_of_mislabelling_it() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let a = sample("a 1");
        let mut b = sample("b 2");
        b.hash = a.hash;
        let out = state.apply(0, 1000, vec![a, b], true);
        assert_eq!((out.samples.len(), out.collisions), (1, 1));
        assert_eq!(out.samples[0].labels[0].value, "a");
    }

    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

    #[test]
    fn tombstones_expire() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        state.apply(0, 0, vec![sample("a 1")], true);
        state.apply(0, 1, vec![], true);
        assert_eq!(state.series.len(), 1);
        state.apply(0, TOMBSTONE_MS + 2, vec![], true);
        assert!(state.series.is_empty());
        // Without source timestamps nothing is kept after the marker.
        let mut state = SeriesState::new(1, false, MAX_AGE);
        state.apply(0, 0, vec![sample("a 1")], true);
        let a = state.apply(0, 1, vec![], true);
        assert_eq!(a.stale_markers, 1);
        assert!(state.series.is_empty());
    }

    #[test]
    fn samples_older_than_max_age_are_dropped_not_sent() {
        let mut state = SeriesState::new(1, true, MAX_AGE);
        let now = 10_000_000;
        let old = now - 3_600_001;
        let a = state.apply(
            0,
            now,
            vec![
                sample(&format!("a 1 {old}")),
                sample(&format!("b 1 {}", now - 5)),
            ],
            true,
        );
        assert_eq!((a.samples.len(), a.too_old), (1, 1));
        assert_eq!(a.samples[0].labels[0].value, "b");
        // The old one's series is not declared vanished by it either.
        let a = state.apply(0, now + 1, vec![sample(&format!("a 1 {old}"))], true);
        assert_eq!(a.too_old, 1);
    }

    #[test]
    fn memory_returns_after_a_spike_of_vanished_series() {
        let mut state = SeriesState::new(1, false, MAX_AGE);
        let base: Vec<ScrapedSample> = (0..100).map(|i| sample(&format!("base{i} 1"))).collect();
        state.apply(0, 1000, base.clone(), true);
        let idle = state.capacity();
        let spike: Vec<ScrapedSample> = base
            .iter()
            .cloned()
            .chain((0..100_000).map(|i| sample(&format!("spike{i} 1"))))
            .collect();
        state.apply(0, 2000, spike, true);
        assert_eq!(state.tracked(), 100_100);
        assert!(state.capacity() >= 200_000);
        // The spike is gone: 100,000 stale markers, then the state is back to its size.
        let a = state.apply(0, 3000, base.clone(), true);
        assert_eq!(a.stale_markers, 100_000);
        assert_eq!(state.tracked(), 100);
        assert!(
            state.capacity() <= idle.max(4 * SHRINK_FLOOR) * 2,
            "capacity {} after the spike, {idle} before",
            state.capacity()
        );
    }
}
