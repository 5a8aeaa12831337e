//! What the receiver keeps per seed: the active-series set behind `limits.max_series_per_seed`,
//! and the figures of the `/status` page (last push, samples per second, refusals by reason,
//! clock skew, expiry of the last client certificate).
//!
//! A series is identified by a 64-bit hash of its label bytes as forwarded (identity label
//! included), keyed per process so that a client cannot aim collisions. Each set holds one
//! `u64 → u32` entry (last seen, seconds since start) per series: 20–40 bytes with the hash
//! table's overhead. A series not seen for `series_idle_timeout` is forgotten, so a set never
//! holds more than the series pushed within that time (and never more than the limit). Each
//! receiver replica counts on its own.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::RejectReason;

/// The per-seed book.
#[derive(Debug)]
pub struct SeedBook {
    max_series: usize,
    idle_timeout_s: u64,
    started: Instant,
    hasher: foldhash::quality::RandomState,
    seeds: RwLock<HashMap<String, Arc<Mutex<SeedEntry>>>>,
    /// Seconds since start when every seed's set is swept next.
    next_sweep_s: AtomicU64,
}

/// Keys are already hashes: the table uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed (write_u64); fold anything else for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type ActiveSet = HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>;

#[derive(Debug, Default)]
struct SeedEntry {
    active: ActiveSet,
    last_sweep_s: u64,
    last_push_unix_ms: Option<i64>,
    clock_skew_ms: Option<i64>,
    cert_not_after_unix_s: Option<i64>,
    accepted: RateWindow,
    refused: BTreeMap<RejectReason, u64>,
}

/// Samples per second over about the last minute: two 60-second buckets, the older one weighted
/// by how much of it still lies inside the last 60 seconds.
#[derive(Debug, Default, Clone, Copy)]
struct RateWindow {
    bucket: u64,
    current: u64,
    previous: u64,
}

const RATE_BUCKET_S: u64 = 60;

impl RateWindow {
    fn roll(&mut self, now_s: u64) {
        let bucket = now_s / RATE_BUCKET_S;
        if bucket == self.bucket {
            return;
        }
        self.previous = if bucket == self.bucket + 1 {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.bucket = bucket;
    }

    fn add(&mut self, now_s: u64, count: u64) {
        self.roll(now_s);
        self.current += count;
    }

    fn per_second(&mut self, now_s: u64) -> f64 {
        self.roll(now_s);
        let into_bucket = (now_s % RATE_BUCKET_S) as f64;
        let window = RATE_BUCKET_S as f64;
        (self.previous as f64 * (window - into_bucket) / window + self.current as f64) / window
    }
}

/// One row of the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedStatus {
    /// The seed.
    pub seed: String,
    /// Unix time of the last push that carried samples, stored or refused, ms.
    pub last_push_unix_ms: Option<i64>,
    /// The receiver's clock minus the agent's at the last request that said when it was sent,
    /// ms (positive: the agent's clock is behind).
    pub clock_skew_ms: Option<i64>,
    /// Samples stored per second over about the last minute.
    pub samples_per_second: f64,
    /// Active series (0 while the limit is off: nothing is tracked then).
    pub active_series: usize,
    /// Refused samples (histograms, exemplars) by reason, since start.
    pub refused: BTreeMap<RejectReason, u64>,
    /// Expiry of the client certificate of the last request, Unix seconds.
    pub cert_not_after_unix_s: Option<i64>,
}

impl SeedBook {
    /// A book with at most `max_series` active series per seed (0: no limit, nothing tracked),
    /// forgetting series after `idle_timeout`.
    pub fn new(max_series: usize, idle_timeout: Duration) -> Self {
        Self {
            max_series,
            idle_timeout_s: idle_timeout.as_secs().max(1),
            started: Instant::now(),
            hasher: foldhash::quality::RandomState::default(),
            seeds: RwLock::new(HashMap::new()),
            next_sweep_s: AtomicU64::new(0),
        }
    }

    /// The limit (0: off).
    pub fn max_series(&self) -> usize {
        self.max_series
    }

    fn now_s(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    fn entry(&self, seed: &str) -> Arc<Mutex<SeedEntry>> {
        if let Some(entry) = self
            .seeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(seed)
        {
            return entry.clone();
        }
        self.seeds
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(seed.to_string())
            .or_default()
            .clone()
    }

    fn with_entry<R>(&self, seed: &str, f: impl FnOnce(&mut SeedEntry) -> R) -> R {
        let entry = self.entry(seed);
        let mut entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut entry)
    }

    /// The identity of a series from its label bytes as forwarded.
    pub fn series_hash(&self, label_bytes: &[u8]) -> u64 {
        self.hasher.hash_one(label_bytes)
    }

    /// Admits the series `hashes` of one request from `seed` at `now`: known series are
    /// refreshed, new ones added while the seed is under its limit. Returns the positions (in
    /// `hashes`) of the new series refused, and the seed's active series afterwards.
    pub fn admit(&self, seed: &str, hashes: &[u64], now: Instant) -> (Vec<usize>, usize) {
        if self.max_series == 0 {
            return (Vec::new(), 0);
        }
        let now_s = self.now_s(now);
        self.sweep_all_when_due(now_s);
        let stamp = u32::try_from(now_s).unwrap_or(u32::MAX);
        self.with_entry(seed, |entry| {
            self.sweep(entry, now_s);
            let mut refused = Vec::new();
            for (i, &hash) in hashes.iter().enumerate() {
                let full = entry.active.len() >= self.max_series;
                match entry.active.get_mut(&hash) {
                    Some(seen) => *seen = stamp,
                    None if full => refused.push(i),
                    None => {
                        entry.active.insert(hash, stamp);
                    }
                }
            }
            (refused, entry.active.len())
        })
    }

    fn sweep(&self, entry: &mut SeedEntry, now_s: u64) {
        // A few sweeps per idle timeout keep the set within ~1.1 × the series of that window.
        if now_s.saturating_sub(entry.last_sweep_s) < (self.idle_timeout_s / 8).max(1) {
            return;
        }
        entry.last_sweep_s = now_s;
        let idle = self.idle_timeout_s;
        entry
            .active
            .retain(|_, seen| now_s.saturating_sub(u64::from(*seen)) < idle);
    }

    /// Sweeps seeds that stopped pushing too, once per sweep interval.
    fn sweep_all_when_due(&self, now_s: u64) {
        let due = self.next_sweep_s.load(Ordering::Relaxed);
        if now_s < due
            || self
                .next_sweep_s
                .compare_exchange(
                    due,
                    now_s + (self.idle_timeout_s / 8).max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let entries: Vec<_> = self
            .seeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for entry in entries {
            let mut entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
            self.sweep(&mut entry, now_s);
        }
    }

    /// Records a push of `seed` that carried samples, at `now_unix_ms`, and the expiry of the
    /// certificate it came with.
    pub fn record_push(&self, seed: &str, now_unix_ms: i64, cert_not_after_unix_s: Option<i64>) {
        self.with_entry(seed, |entry| {
            if cert_not_after_unix_s.is_some() {
                entry.cert_not_after_unix_s = cert_not_after_unix_s;
            }
            entry.last_push_unix_ms = Some(now_unix_ms);
        });
    }

    /// Records `samples` of `seed` that the SLO Prometheus stored.
    pub fn record_stored(&self, seed: &str, samples: u64, now: Instant) {
        let now_s = self.now_s(now);
        self.with_entry(seed, |entry| entry.accepted.add(now_s, samples));
    }

    /// Records the clock skew of the latest request of `seed`, seconds.
    pub fn record_clock_skew(&self, seed: &str, seconds: f64) {
        self.with_entry(seed, |entry| {
            entry.clock_skew_ms = Some((seconds * 1000.0).round() as i64);
        });
    }

    /// Counts `count` refused for `seed` with `reason`.
    pub fn record_refusal(&self, seed: &str, reason: RejectReason, count: u64) {
        self.with_entry(seed, |entry| {
            *entry.refused.entry(reason).or_default() += count
        });
    }

    /// Every seed seen, by name.
    pub fn status(&self, now: Instant) -> Vec<SeedStatus> {
        let now_s = self.now_s(now);
        let entries: Vec<(String, Arc<Mutex<SeedEntry>>)> = self
            .seeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(seed, entry)| (seed.clone(), entry.clone()))
            .collect();
        let mut rows: Vec<SeedStatus> = entries
            .into_iter()
            .map(|(seed, entry)| {
                let mut entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
                SeedStatus {
                    seed,
                    last_push_unix_ms: entry.last_push_unix_ms,
                    clock_skew_ms: entry.clock_skew_ms,
                    samples_per_second: entry.accepted.per_second(now_s),
                    active_series: entry.active.len(),
                    refused: entry.refused.clone(),
                    cert_not_after_unix_s: entry.cert_not_after_unix_s,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.seed.cmp(&b.seed));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remote_write::validate::Refusal;

    const TOO_OLD: RejectReason = RejectReason::Data(Refusal::TooOld);

    #[test]
    fn limit_refuses_new_series_only_and_idle_series_expire() {
        let book = SeedBook::new(3, Duration::from_secs(80));
        let t0 = Instant::now();
        let (refused, active) = book.admit("a", &[1, 2, 3, 4, 5], t0);
        assert_eq!((refused, active), (vec![3, 4], 3));
        // Known series stay admitted at the limit; another seed has its own set.
        assert_eq!(book.admit("a", &[3, 1, 6], t0), (vec![2], 3));
        assert_eq!(book.admit("b", &[4, 5], t0), (vec![], 2));
        // 1 and 3 keep being pushed, 2 goes idle and is forgotten; 6 then fits.
        book.admit("a", &[1, 3], t0 + Duration::from_secs(50));
        let later = t0 + Duration::from_secs(100);
        assert_eq!(book.admit("a", &[1, 3, 6], later), (vec![], 3));
        let rows = book.status(later);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].active_series, 3);
        // Seed b pushed nothing since t0: swept by the global sweep.
        assert_eq!(rows[1].active_series, 0, "{rows:?}");
    }

    #[test]
    fn zero_limit_tracks_nothing() {
        let book = SeedBook::new(0, Duration::from_secs(60));
        assert_eq!(book.admit("a", &[1, 2], Instant::now()), (vec![], 0));
    }

    #[test]
    fn status_reports_rate_refusals_and_certificate() {
        let book = SeedBook::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        book.record_push("a", 1_000, Some(2_000_000_000));
        book.record_stored("a", 600, t0);
        assert_eq!(
            book.status(t0)[0].clock_skew_ms,
            None,
            "no header, no figure"
        );
        book.record_clock_skew("a", 1200.0004);
        // A later push whose samples were all refused still counts as a push.
        book.record_push("a", 2_000, None);
        book.record_refusal("a", TOO_OLD, 3);
        book.record_refusal("a", TOO_OLD, 2);
        let row = &book.status(t0)[0];
        assert_eq!(row.last_push_unix_ms, Some(2_000));
        assert_eq!(row.clock_skew_ms, Some(1_200_000));
        assert_eq!(
            row.cert_not_after_unix_s,
            Some(2_000_000_000),
            "a push without a certificate expiry keeps the last one"
        );
        assert_eq!(row.refused.get(&TOO_OLD), Some(&5));
        // 600 samples within the current minute: 10 per second.
        assert!((row.samples_per_second - 10.0).abs() < 1e-9, "{row:?}");
        // Two minutes later, nothing recent.
        let row = &book.status(t0 + Duration::from_secs(180))[0];
        assert_eq!(row.samples_per_second, 0.0);
    }

    #[test]
    fn series_hash_depends_on_every_byte() {
        let book = SeedBook::new(1, Duration::from_secs(1));
        assert_ne!(book.series_hash(b"ab"), book.series_hash(b"ba"));
        assert_eq!(book.series_hash(b"ab"), book.series_hash(b"ab"));
    }
}
