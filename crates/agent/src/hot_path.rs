//! The per-scrape hot path as one public unit, for the benchmark (`benches/agent.rs`) and the
//! allocation test (`tests/hot_path_allocations.rs`): a federate body is split into lines,
//! parsed into a reused [`ScrapeBuf`], applied to the [`SeriesState`] and cut into encoded
//! requests, exactly as the scrape loop does for one target.

use std::time::Duration;

use super::batch::build_batches;
use super::series::{OutSample, ScrapeBuf, SeriesState};
use exposition::LineSplitter;
use remote_write::Label;

/// Scrape state of one target, outside the agent.
#[derive(Debug)]
pub struct HotPath {
    splitter: LineSplitter,
    buf: ScrapeBuf,
    state: SeriesState,
    external: Vec<Label>,
    out: Vec<OutSample>,
}

impl HotPath {
    /// A fresh state with these external labels (sorted by name).
    pub fn new(external: &[(&str, &str)]) -> Self {
        let mut external: Vec<Label> = external
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect();
        external.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            splitter: LineSplitter::new(1 << 20),
            buf: ScrapeBuf::default(),
            state: SeriesState::new(1, false, Duration::from_secs(7200)),
            external,
            out: Vec::new(),
        }
    }

    /// Parses `body` as a complete scrape at `scrape_ts` and applies it; returns the samples
    /// (and stale markers) to send. Unparsable lines are skipped.
    pub fn scrape(&mut self, body: &[u8], scrape_ts: i64) -> usize {
        self.buf.clear();
        let last = self.out.len();
        self.out.clear();
        // As for the scrape buffer: memory sized for a spike is given back.
        if self.out.capacity() > 4 * last.max(1024) {
            self.out.shrink_to(2 * last);
        }
        let (buf, external) = (&mut self.buf, &self.external);
        let mut on_line = |_: usize, line: Result<&str, _>| {
            if let Ok(line) = line {
                let _ = buf.push_line(line, external);
            }
        };
        self.splitter.push(body, &mut on_line);
        self.splitter.finish(&mut on_line);
        let sent = self
            .state
            .apply(0, scrape_ts, &self.buf, true, &mut self.out)
            .samples;
        // As the scrape loop does: buffers sized for a spike are given back.
        self.buf.shrink();
        sent
    }

    /// Encodes the last scrape's samples into requests of at most `max_samples` over `lanes`
    /// lanes; returns the compressed bytes.
    pub fn encode(&self, lanes: usize, max_samples: usize) -> usize {
        build_batches(&self.out, lanes, max_samples)
            .iter()
            .map(|b| b.payload.len())
            .sum()
    }
}
