//! A cardinality explosion with real processes over real mTLS: the `slo-gateway agent`
//! and `slo-gateway receiver` binaries, seed certificates from the dev PKI, the receiver
//! forwarding to a recording upstream.
//!
//! A misbehaving recording rule at the source suddenly yields 100,000 `shoot:` series next to the
//! 100 the seed always has. One table, one row per limit that must stop it:
//! - the agent's `scrape.max_series` refuses each such scrape whole: nothing of it is sent, the
//!   old state is kept (no stale markers);
//! - the receiver's `limits.max_series_per_seed` refuses the new series only, as a non-retryable
//!   refusal counted per seed, while the seed's known series keep arriving.
//!
//! In both rows the 100 known series arrive again once the explosion is over (behind the
//! receiver's limit they never stop), nothing of the explosion past the limit goes out, and the
//! agent's resident memory returns near where it was before it.
//!
//! Also here, as it needs the agent binary too: a second agent on the same buffer exits non-zero.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::pipeline::{metric, spawn_named, wait_metric, ReceiverProcess, SEED};
use common::processes::{dev_pki, proc_memory, MetricsTarget, Process};
use common::{eventually, free_port, heavy, now_ms, Load, RecordingUpstream};

/// Series the seed always has.
const BASE: usize = 100;
/// Series the explosion adds.
const EXPLOSION: usize = 100_000;
/// The receiver's per-seed limit in the row where it is the one that refuses.
const RECEIVER_LIMIT: usize = 1000;
/// Scrapes that see the explosion.
const EXPLODED_SCRAPES: f64 = 4.0;

const MIB: f64 = 1048576.0;

/// What the source serves: the base series (Gardener's per-shoot availability SLI inputs), plus
/// `explosion` series of one rule gone wrong.
fn body(explosion: usize) -> String {
    let mut text = String::with_capacity(64 * (BASE + explosion));
    for i in 0..BASE {
        text.push_str(&format!(
            "shoot:availability{{kind=\"shoot\",shoot_uid=\"uid-{i}\",name=\"shoot--p--s{i}\"}} 1\n"
        ));
    }
    for i in 0..explosion {
        text.push_str(&format!(
            "shoot:apiserver_request_total:sum{{request_id=\"r{i}\",name=\"shoot--p--s0\"}} {i}\n"
        ));
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    Agent,
    Receiver,
}

struct Case {
    refused_by: Limit,
    /// The agent's `scrape.max_series`.
    agent_max_series: usize,
    /// The receiver's `limits.max_series_per_seed`.
    receiver_max_series: usize,
}

const CASES: [Case; 2] = [
    Case {
        refused_by: Limit::Agent,
        agent_max_series: 50_000,
        receiver_max_series: 200_000,
    },
    Case {
        refused_by: Limit::Receiver,
        agent_max_series: 500_000,
        receiver_max_series: RECEIVER_LIMIT,
    },
];

fn write_agent_config(
    root: &Path,
    pki: &slo_gateway::certs::DevPki,
    (admin, receiver): (u16, u16),
    target: std::net::SocketAddr,
    max_series: usize,
) -> std::path::PathBuf {
    let (_, cert, key) = &pki.seeds[0];
    let path = root.join("agent.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{admin}\n\
             scrape:\n  interval: 2s\n  timeout: 2s\n  max_series: {max_series}\n  \
             targets:\n    - url: http://{target}/metrics\n      match: ['{{__name__=~\"shoot:.+\"}}']\n\
             remote_write:\n  url: https://127.0.0.1:{receiver}/api/v1/write\n  \
             tls: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n  \
             retry: {{min_backoff: 100ms, max_backoff: 1s}}\n\
             buffer:\n  path: {buffer}\n",
            ca = pki.ca.display(),
            cert = cert.display(),
            key = key.display(),
            buffer = root.join("buffer").display(),
        ),
    )
    .unwrap();
    path
}

async fn agent_metric(admin: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(admin, name, labels).await.unwrap_or(0.0)
}

/// Waits until the agent's metric satisfies `pred`.
async fn wait_agent(
    agent: &Process,
    admin: u16,
    name: &str,
    labels: &[(&str, &str)],
    pred: impl Fn(f64) -> bool,
) -> f64 {
    let what = format!(
        "agent metric {name}{labels:?} (log {})",
        agent.log.display()
    );
    wait_metric(admin, name, labels, Duration::from_secs(120), &what, pred).await
}

/// The newest timestamp the upstream received per series (labels joined), from `since` (ms).
fn newest_per_series(upstream: &RecordingUpstream, since: i64) -> BTreeMap<String, i64> {
    let mut newest = BTreeMap::new();
    for request in upstream.write_requests() {
        for series in request.timeseries {
            let Some(t) = series.samples.iter().map(|s| s.timestamp).max() else {
                continue;
            };
            if t < since {
                continue;
            }
            let key: Vec<String> = series
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let entry = newest.entry(key.join(",")).or_insert(t);
            *entry = (*entry).max(t);
        }
    }
    newest
}

fn base_series_since(upstream: &RecordingUpstream, since: i64) -> usize {
    newest_per_series(upstream, since)
        .keys()
        .filter(|k| k.contains("__name__=shoot:availability,"))
        .count()
}

// One test per limit, each a CPU-bound heavy test (they do not run beside each other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_series_explosion_is_refused_by_the_agent_limit_and_the_agent_memory_returns() {
    explosion_is_refused(&CASES[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_series_explosion_is_refused_by_the_receiver_limit_and_the_agent_memory_returns() {
    explosion_is_refused(&CASES[1]).await;
}

/// A 100,000-series explosion against `case`'s limits: refused by the limit the case names, the
/// known series keep flowing, and the agent's memory returns.
async fn explosion_is_refused(case: &Case) {
    let _heavy = heavy(Load::Cpu).await;
    {
        let row = format!("{:?} limit", case.refused_by);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pki = dev_pki(root, &[SEED]);
        let upstream = RecordingUpstream::start().await;
        let limits = format!("{{max_series_per_seed: {}}}", case.receiver_max_series);
        let receiver =
            ReceiverProcess::start(root, "receiver", &pki, &upstream.url(), &limits).await;
        let target = MetricsTarget::start(&body(0)).await;
        let admin = free_port();
        let config = write_agent_config(
            root,
            &pki,
            (admin, receiver.port),
            target.addr,
            case.agent_max_series,
        );
        let agent = spawn_named(root, "agent", "agent", &config);
        let pid = agent.pid();
        let scrapes = "slo_gateway_agent_scrapes_total";

        // Warm up: a few scrapes delivered, then the baseline.
        wait_agent(&agent, admin, scrapes, &[("result", "success")], |v| {
            v >= 5.0
        })
        .await;
        eventually("base series upstream", || async {
            (base_series_since(&upstream, 0) == BASE).then_some(())
        })
        .within(Duration::from_secs(30))
        .every(Duration::from_millis(200))
        .await;
        let baseline = proc_memory(pid, "VmRSS");

        // The explosion, for a few scrapes.
        let before = agent_metric(admin, scrapes, &[]).await;
        let exploded_at = now_ms();
        target.set(&body(EXPLOSION));
        wait_agent(&agent, admin, scrapes, &[], |v| {
            v >= before + EXPLODED_SCRAPES
        })
        .await;
        // Behind the receiver's limit the known series keep arriving while it lasts (the
        // agent's limit refuses whole scrapes, so there they pause).
        if case.refused_by == Limit::Receiver {
            eventually(
                &format!("{row}: base series during the explosion"),
                || async { (base_series_since(&upstream, exploded_at) == BASE).then_some(()) },
            )
            .within(Duration::from_secs(60))
            .every(Duration::from_millis(200))
            .await;
        }
        let rejected = |reason: &'static str| {
            let receiver = &receiver;
            async move {
                receiver
                    .metric(
                        "slo_gateway_receiver_samples_rejected_total",
                        &[("seed", SEED), ("reason", reason)],
                    )
                    .await
            }
        };
        match case.refused_by {
            Limit::Agent => {
                let refused = agent_metric(admin, scrapes, &[("result", "refused")]).await;
                assert!(
                    refused >= EXPLODED_SCRAPES - 1.0,
                    "{row}: {refused} scrapes refused"
                );
                assert_eq!(rejected("series_limit").await, 0.0, "{row}");
            }
            Limit::Receiver => {
                // Every sample of a new series past the limit, of every exploded scrape: the
                // first one admits what fits under the limit, the others none.
                let over = (EXPLOSION + BASE - RECEIVER_LIMIT) as f64;
                let refused = eventually(&format!("{row}: series_limit refusals"), || async {
                    let r = rejected("series_limit").await;
                    (r >= over * (EXPLODED_SCRAPES - 1.0)).then_some(r)
                })
                .within(Duration::from_secs(120))
                .every(Duration::from_millis(200))
                .await;
                let active = receiver
                    .metric("slo_gateway_receiver_active_series", &[("seed", SEED)])
                    .await;
                assert_eq!(active, RECEIVER_LIMIT as f64, "{row}: {refused} refused");
                // Refused as final (400), so the agent dropped it rather than retrying.
                let dropped =
                    agent_metric(admin, "slo_gateway_agent_samples_dropped_total", &[]).await;
                assert!(
                    dropped >= over,
                    "{row}: the agent dropped {dropped} samples"
                );
            }
        }
        let peak = proc_memory(pid, "VmHWM");

        // Over: back to the 100 series.
        target.set(&body(0));
        let ended_at = now_ms();
        wait_agent(&agent, admin, "slo_gateway_agent_series_active", &[], |v| {
            v == BASE as f64
        })
        .await;
        wait_agent(&agent, admin, scrapes, &[], |v| {
            v >= before + EXPLODED_SCRAPES + 5.0
        })
        .await;
        wait_agent(&agent, admin, "slo_gateway_agent_queue_records", &[], |v| {
            v == 0.0
        })
        .await;
        let stale = agent_metric(admin, "slo_gateway_agent_stale_markers_total", &[]).await;
        let after = proc_memory(pid, "VmRSS");

        // And after it.
        eventually(&format!("{row}: base series after"), || async {
            (base_series_since(&upstream, ended_at) == BASE).then_some(())
        })
        .within(Duration::from_secs(30))
        .every(Duration::from_millis(200))
        .await;
        let explosion_upstream = newest_per_series(&upstream, 0)
            .keys()
            .filter(|k| k.contains("request_id="))
            .count();
        match case.refused_by {
            Limit::Agent => {
                assert_eq!(explosion_upstream, 0, "{row}: explosion series went out");
                assert_eq!(stale, 0.0, "{row}: known series declared vanished");
            }
            Limit::Receiver => {
                assert_eq!(
                    explosion_upstream,
                    RECEIVER_LIMIT - BASE,
                    "{row}: only what fits under the limit is forwarded"
                );
                assert!(stale >= EXPLOSION as f64, "{row}: {stale} stale markers");
            }
        }
        let grown = |bytes: u64| (bytes.saturating_sub(baseline)) as f64 / MIB;
        eprintln!(
            "{row}: agent RSS {:.1} MiB before, peak {:.1} MiB (+{:.1}), {:.1} MiB after (+{:.1})",
            baseline as f64 / MIB,
            peak as f64 / MIB,
            grown(peak),
            after as f64 / MIB,
            grown(after),
        );
        // Near the baseline: at most a quarter of what the explosion added, and within 16 MiB.
        assert!(
            grown(after) <= 16.0 && grown(after) <= grown(peak) / 4.0 + 2.0,
            "{row}: agent RSS {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after the explosion",
            baseline as f64 / MIB,
            peak as f64 / MIB,
            after as f64 / MIB
        );
        drop(agent);
        drop(receiver);
        upstream.close().await;
    }
}

/// One agent per buffer: a second `slo-gateway agent` on the same `buffer.path` exits at once,
/// non-zero, naming the process that holds it; the first keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_buffer_exits_non_zero_naming_the_holder() {
    let _heavy = heavy(Load::Cpu).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki = dev_pki(root, &[SEED]);
    let target = MetricsTarget::start(&body(0)).await;
    let admin = free_port();
    let config = write_agent_config(root, &pki, (admin, free_port()), target.addr, 1000);
    let mut first = spawn_named(root, "agent", "agent", &config);
    wait_agent(&first, admin, "slo_gateway_agent_scrapes_total", &[], |v| {
        v >= 1.0
    })
    .await;

    let mut second = std::process::Command::new(common::processes::slo_gateway_bin())
        .args(["agent", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = eventually("the second agent to exit", || {
        std::future::ready(second.try_wait().unwrap())
    })
    .within(Duration::from_secs(15))
    .every(Duration::from_millis(50))
    .try_wait()
    .await;
    let status = match exited {
        Ok(status) => status,
        Err(_) => {
            second.kill().unwrap();
            panic!("the second agent is still running after 15 s");
        }
    };
    let output = second.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !status.success(),
        "the second agent exited {status}: {text}"
    );
    assert!(
        text.contains("locked by another agent") && text.contains(&format!("pid {}", first.pid())),
        "{text}"
    );
    assert!(first.is_running(), "the first agent stopped");
    assert!(first.terminate(Duration::from_secs(10)));
}
