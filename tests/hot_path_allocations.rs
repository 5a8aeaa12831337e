//! A known series costs no allocation on the agent's hot path: parsing a federate body into the
//! reused scrape buffer and applying it to the series state allocates nothing once every series
//! has been seen; encoding allocates per request, not per sample. On the receiver, a
//! connection's per-seed metric series cost no allocation after their first use. A correctness
//! property (counted allocations), not a timing.

use std::alloc::System;
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::http::StatusCode;
use prometheus_client::registry::Registry;
use slo_gateway::agent::HotPath;
use slo_gateway::receiver::metrics::{RejectReason, SeedHandles};
use slo_gateway::receiver::ReceiverMetrics;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocation counters are global: the tests measure one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

/// A Gardener-shaped federate body of `series` series (labels unsorted, an empty `instance`,
/// an escaped value every tenth series), with HELP/TYPE lines.
fn body(series: usize, value: u64) -> Vec<u8> {
    let mut b = String::new();
    for i in 0..series {
        if i % 100 == 0 {
            let _ = writeln!(
                b,
                "# HELP shoot:availability Availability.\n# TYPE shoot:availability gauge"
            );
        }
        let escaped = if i % 10 == 0 { "a\\\"b" } else { "plain" };
        let _ = writeln!(
            b,
            "shoot:availability{{kind=\"vpn\",instance=\"\",cluster=\"shoot--p{}--s{i}\",note=\"{escaped}\",seed=\"aws-eu1\"}} {value} 1700000000000",
            i % 7
        );
    }
    b.into_bytes()
}

#[test]
fn known_series_cost_no_allocation_and_encoding_allocates_per_request() {
    let _alone = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let series = 5_000;
    let mut hot = HotPath::new(&[("landscape", "live"), ("seed", "agent-side")]);
    // First scrapes: every series is new (allocates its block), buffers grow to size.
    for round in 0..3 {
        assert_eq!(
            hot.scrape(&body(series, round), 1_000 + round as i64),
            series
        );
    }
    let bodies: Vec<Vec<u8>> = (3..6).map(|v| body(series, v)).collect();
    for (i, b) in bodies.iter().enumerate() {
        let region = Region::new(GLOBAL);
        let sent = hot.scrape(b, 10_000 + i as i64);
        let stats = region.change();
        assert_eq!(sent, series);
        // Lines with an escaped value are unescaped by the parser into a String (one per such
        // line); everything else is borrowed or reused.
        let escaped = series / 10;
        assert_eq!(
            stats.allocations + stats.reallocations,
            escaped,
            "scrape {i}: {stats:?}"
        );
    }
    // Encoding: a bounded number of allocations per request (2,000 samples each).
    let region = Region::new(GLOBAL);
    let bytes = hot.encode(4, 2_000);
    let stats = region.change();
    let requests = series.div_ceil(2_000) + 4;
    assert!(bytes > 0);
    assert!(
        stats.allocations + stats.reallocations <= 8 + 4 * requests,
        "{stats:?} for about {requests} requests of {series} samples"
    );
}

#[test]
fn a_connections_seed_series_cost_no_allocation_after_first_use() {
    let _alone = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut registry = Registry::default();
    let metrics = ReceiverMetrics::register(&mut registry);
    let handles = SeedHandles::new("aws-eu1", &metrics);
    let request = |handles: &SeedHandles| {
        handles.clock_skew(0.25);
        handles.pushed(1_700_000_000_000);
        handles.reject(RejectReason::SeriesLimit, 3);
        handles.active_series(42);
        handles.accepted(2_000);
        handles.answered(StatusCode::NO_CONTENT, None);
    };
    // The first request of the connection resolves (and allocates the labels of) each series.
    request(&handles);
    let region = Region::new(GLOBAL);
    for _ in 0..100 {
        request(&handles);
    }
    let stats = region.change();
    assert_eq!(stats.allocations + stats.reallocations, 0, "{stats:?}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("slo_gateway_receiver_samples_accepted_total{seed=\"aws-eu1\"} 202000"),
        "{text}"
    );
}
