//! An in-process remote-write sink standing in for the SLO Prometheus: decodes what the receiver
//! forwards and counts it per seed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

use remote_write::decode_write_request;

/// What the sink has received for one seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedTotals {
    /// Samples received.
    pub samples: u64,
    /// Distinct series seen.
    pub series: usize,
    /// Newest sample timestamp, ms.
    pub last_timestamp_ms: i64,
}

/// Counts per value of the identity label.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<SinkState>>,
}

#[derive(Debug, Default)]
struct SinkState {
    totals: BTreeMap<String, SeedTotals>,
    series: BTreeMap<String, std::collections::HashSet<u64>>,
}

impl Sink {
    /// Totals per seed so far.
    pub fn totals(&self) -> BTreeMap<String, SeedTotals> {
        self.lock().totals.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `POST /api/v1/write`, answering like Prometheus (204, or 400 for an undecodable body).
    pub fn app(&self) -> Router {
        Router::new()
            .route("/api/v1/write", post(receive))
            .with_state(self.clone())
    }
}

async fn receive(State(sink): State<Sink>, body: Bytes) -> StatusCode {
    let Ok(request) = decode_write_request(&body, 64 << 20) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut state = sink.lock();
    for series in request.timeseries {
        let seed = series
            .labels
            .iter()
            .find(|l| l.name == "seed")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            series.labels.hash(&mut h);
            h.finish()
        };
        let known = state.series.entry(seed.clone()).or_default();
        known.insert(key);
        let distinct = known.len();
        let totals = state.totals.entry(seed).or_default();
        totals.series = distinct;
        totals.samples += series.samples.len() as u64;
        if let Some(last) = series.samples.last() {
            totals.last_timestamp_ms = totals.last_timestamp_ms.max(last.timestamp);
        }
    }
    StatusCode::NO_CONTENT
}
