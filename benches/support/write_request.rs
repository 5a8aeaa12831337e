//! The Remote Write request an agent sends from a Gardener seed, shared by `benches/remote_write.rs`
//! (the receiver's path in process) and `benches/receiver_load.rs` (the receiver over mTLS): one
//! sample per series, ~8 labels each (recording-rule names with `:`,
//! `cluster=shoot--<project>--<name>`, `seed`, `instance=""` as `/federate` emits it, …), labels
//! sorted by name.

use slo_gateway::remote_write::{Label, Sample, TimeSeries, WriteRequest};

/// One series; `extra` are label pairs added before sorting. `cluster` is the only label that
/// differs on every series (`index`), as in a seed with many shoots.
fn series(
    name: &str,
    i: usize,
    index: usize,
    now_ms: i64,
    seed: &str,
    extra: &[(&str, String)],
) -> TimeSeries {
    let mut labels: Vec<(&str, String)> = vec![
        ("__name__", name.to_owned()),
        (
            "cluster",
            format!("shoot--project-{}--cluster-{index}", i % 97),
        ),
        ("instance", String::new()),
        ("job", "shoot-prometheus".to_owned()),
        ("project", format!("project-{}", i % 97)),
        ("seed", seed.to_owned()),
    ];
    labels.extend(extra.iter().cloned());
    labels.sort_by(|a, b| a.0.cmp(b.0));
    TimeSeries {
        labels: labels
            .into_iter()
            .map(|(name, value)| Label {
                name: name.to_owned(),
                value,
            })
            .collect(),
        samples: vec![Sample {
            value: (i % 2) as f64,
            timestamp: now_ms - 15_000 + (i % 1000) as i64,
        }],
        exemplars: Vec::new(),
    }
}

/// `series` series × 1 sample stamped just before `now_ms`, carrying `seed` as their seed label.
/// Requests of different `variant`s have different series (their `cluster` values differ).
pub fn gardener_request(
    series_count: usize,
    now_ms: i64,
    seed: &str,
    variant: usize,
) -> WriteRequest {
    let codes = ["200", "201", "404", "409", "429", "500"];
    let verbs = ["GET", "LIST", "WATCH", "PATCH", "POST"];
    let timeseries = (0..series_count)
        .map(|i| {
            let index = variant * series_count + i;
            match i % 4 {
                0 => series(
                    "shoot:availability",
                    i,
                    index,
                    now_ms,
                    seed,
                    &[("kind", ["apiserver", "etcd", "vpn"][i % 3].to_owned())],
                ),
                1 => series(
                    "apiserver_request_total",
                    i,
                    index,
                    now_ms,
                    seed,
                    &[
                        ("code", codes[i % codes.len()].to_owned()),
                        ("verb", verbs[i % verbs.len()].to_owned()),
                    ],
                ),
                2 => series(
                    "shoot:apiserver_latency_seconds:quantile",
                    i,
                    index,
                    now_ms,
                    seed,
                    &[("quantile", "0.99".to_owned()), ("verb", "GET".to_owned())],
                ),
                _ => series(
                    "probe_success",
                    i,
                    index,
                    now_ms,
                    seed,
                    &[("kind", "external".to_owned()), ("code", "200".to_owned())],
                ),
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}
