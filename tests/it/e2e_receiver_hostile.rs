//! Hostile input at the receiver, with real processes over real mTLS: the `slo-gateway receiver` binary,
//! a real Prometheus 2.42 as the SLO Prometheus (`out_of_order_time_window: 2h`, as README
//! documents), and seed certificates from `slo-gateway certs`' dev PKI.
//!
//! - A poison sample (one the SLO Prometheus can never store) among 20 series is dropped and
//!   counted while the other 19 are stored, and the answer is a 400 (never retried) — whether the
//!   receiver refuses it up front (`limits.max_sample_age`) or Prometheus refuses the whole request
//!   (500 `too old sample`, 400 `duplicate sample for timestamp`) and the receiver isolates it.
//! - A decode-amplification body (1.5 MB → 31 MiB of empty `TimeSeries`) is refused with 413 and
//!   little memory, also four at once next to a good push.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::pipeline::{seed_client_files, ReceiverProcess, SEED, SLO_CONFIG};
use common::processes::{dev_pki, proc_memory, prometheus_available, Prometheus};
use common::{
    eventually, heavy, https_client, post_write, series, write_body, Load, RecordingUpstream,
};
use slo_gateway::remote_write::codec::compress;
use slo_gateway::remote_write::{Label, Sample, TimeSeries};

const HOUR_MS: i64 = 3_600_000;

/// What the 13th of the 20 series carries in a case.
#[derive(Debug, Clone, Copy)]
enum Poison {
    /// One sample at this age before now (ms).
    Age(i64),
    /// One sample at timestamp 0.
    Epoch,
    /// A second value for a timestamp the SLO Prometheus already stored.
    DuplicateTimestamp,
}

struct Case {
    name: &'static str,
    /// Whether the receiver checks `max_sample_age` (default 2h) or not (`0s`).
    age_check: bool,
    poison: Poison,
    /// The `samples_rejected_total` reason the poison is counted under.
    reason: &'static str,
}

fn slo_series(case: &str, i: usize, timestamp: i64, value: f64) -> TimeSeries {
    TimeSeries {
        labels: [
            ("__name__", "slo_test"),
            ("case", case),
            ("i", &format!("{i:02}")),
        ]
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect(),
        samples: vec![Sample { value, timestamp }],
        exemplars: vec![],
    }
}

/// POSTs an RW 1.0 body; status, `X-Prometheus-Remote-Write-Samples-Written`, text.
async fn push(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Option<u64>, String) {
    let (status, headers, text) = post_write(client, url, body).await;
    let written = headers
        .get("x-prometheus-remote-write-samples-written")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (status, written, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poison_sample_among_20_series_never_blocks_the_others() {
    let _heavy = heavy(Load::Processes).await;
    assert!(prometheus_available(), "install prometheus (.ci/run does)");
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path(), &[SEED]);
    let slo = Prometheus::start(
        "slo",
        dir.path(),
        SLO_CONFIG,
        &["--web.enable-remote-write-receiver"],
    )
    .await
    .unwrap();
    let forward = format!("{}/api/v1/write", slo.url());
    let checked = ReceiverProcess::start(dir.path(), "receiver", &pki, &forward, "{}").await;
    let unchecked = ReceiverProcess::start(
        dir.path(),
        "receiver-no-age-check",
        &pki,
        &forward,
        "{max_sample_age: 0s}",
    )
    .await;
    let client = https_client(&seed_client_files(&pki, 0));

    let cases = [
        Case {
            name: "epoch",
            age_check: true,
            poison: Poison::Epoch,
            reason: "too_old",
        },
        Case {
            name: "3h-old",
            age_check: true,
            poison: Poison::Age(3 * HOUR_MS),
            reason: "too_old",
        },
        // Prometheus 2.42 answers 500 "too old sample" for the whole request.
        Case {
            name: "3h-old-upstream",
            age_check: false,
            poison: Poison::Age(3 * HOUR_MS),
            reason: "upstream_refused",
        },
        Case {
            name: "epoch-upstream",
            age_check: false,
            poison: Poison::Epoch,
            reason: "upstream_refused",
        },
        // Prometheus 2.42 answers 400 "duplicate sample for timestamp" for the whole request.
        Case {
            name: "duplicate",
            age_check: true,
            poison: Poison::DuplicateTimestamp,
            reason: "upstream_refused",
        },
    ];
    for case in &cases {
        let receiver = if case.age_check { &checked } else { &unchecked };
        let url = receiver.write_url();
        let refused_before = receiver
            .metric(
                "slo_gateway_receiver_samples_rejected_total",
                &[("seed", SEED), ("reason", case.reason)],
            )
            .await;
        let now = common::now_ms();
        let poison = match case.poison {
            Poison::Age(age) => slo_series(case.name, 13, now - age, 1.0),
            Poison::Epoch => slo_series(case.name, 13, 0, 1.0),
            Poison::DuplicateTimestamp => {
                let stored = slo_series(case.name, 13, now - 1000, 1.0);
                let (status, _, text) = push(&client, &url, write_body(vec![stored])).await;
                assert_eq!(status, 204, "{}: {text}", case.name);
                slo_series(case.name, 13, now - 1000, 2.0)
            }
        };
        let timeseries: Vec<TimeSeries> = (0..20)
            .map(|i| {
                if i == 13 {
                    poison.clone()
                } else {
                    slo_series(case.name, i, now, i as f64)
                }
            })
            .collect();
        let (status, written, text) = push(&client, &url, write_body(timeseries)).await;
        assert_eq!(status, 400, "{}: a data error is final: {text}", case.name);
        assert_eq!(written, Some(19), "{}: {text}", case.name);

        // The 19 others are stored; the poison is counted.
        let query = format!(r#"count(slo_test{{case="{}",i!="13"}})"#, case.name);
        eventually(
            &format!("19 series of case {} in the SLO Prometheus", case.name),
            || async { (slo.query_value(&query).await.ok().flatten() == Some(19.0)).then_some(()) },
        )
        .within(Duration::from_secs(15))
        .every(Duration::from_millis(200))
        .await;
        let refused = receiver
            .metric(
                "slo_gateway_receiver_samples_rejected_total",
                &[("seed", SEED), ("reason", case.reason)],
            )
            .await;
        assert_eq!(refused - refused_before, 1.0, "{}", case.name);

        // And the seed is not blocked: the next push of all 20 series is stored whole.
        let next: Vec<TimeSeries> = (0..20)
            .map(|i| slo_series(case.name, i, now + 1000, 0.5))
            .collect();
        let (status, written, text) = push(&client, &url, write_body(next)).await;
        assert_eq!(status, 204, "{}: {text}", case.name);
        assert_eq!(written, Some(20));
        println!(
            "case {}: poison refused ({}), 19 + 20 samples stored",
            case.name, case.reason
        );
    }
    // Every series of every case, the poisoned ones included from their next push (whose
    // samples lie a second ahead: wait until the query time has passed them).
    let all = 20.0 * cases.len() as f64;
    eventually(
        "every series of every case in the SLO Prometheus",
        || async {
            (slo.query_value("count(count_over_time(slo_test[1h]))")
                .await
                .ok()
                .flatten()
                == Some(all))
            .then_some(())
        },
    )
    .within(Duration::from_secs(15))
    .every(Duration::from_millis(200))
    .await;
}

/// Peak resident memory of `pid`, bytes.
fn peak_rss(pid: u32) -> u64 {
    proc_memory(pid, "VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_amplification_is_refused_with_little_memory() {
    let _heavy = heavy(Load::Processes).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path(), &[SEED, "evil"]);
    let upstream = RecordingUpstream::start().await;
    let receiver =
        ReceiverProcess::start(dir.path(), "receiver", &pki, &upstream.url(), "{}").await;
    let good = https_client(&seed_client_files(&pki, 0));
    let evil = https_client(&seed_client_files(&pki, 1));
    let url = receiver.write_url();
    let good_body = || write_body(vec![series(&[("__name__", "up")], 1)]);
    // Warm up: TLS, pools and the first allocations.
    assert_eq!(push(&good, &url, good_body()).await.0, 204);
    let pid = receiver.process.pid();
    let baseline = peak_rss(pid);

    // 1.5 MB expanding to 31 MiB of empty TimeSeries (1.24 GB of RSS before the cost budget).
    let bomb = compress(&[0x0a_u8, 0x00].repeat(31 << 19));
    let (status, _, text) = push(&evil, &url, bomb.clone()).await;
    assert_eq!(status, 413, "{text}");
    let one = peak_rss(pid).saturating_sub(baseline);

    // Four at once, and a good push in the middle of them that must still get through.
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, bomb) = (evil.clone(), url.clone(), bomb.clone());
            tokio::spawn(async move { push(&client, &url, bomb).await.0 })
        })
        .collect();
    let (status, _, text) = push(&good, &url, good_body()).await;
    assert_eq!(status, 204, "a good push next to four bombs: {text}");
    for bomb in bombs {
        assert_eq!(bomb.await.unwrap(), 413);
    }
    let four = peak_rss(pid).saturating_sub(baseline);
    println!(
        "receiver peak RSS growth: {:.1} MiB for one amplification body, {:.1} MiB after four \
         at once (baseline peak {:.1} MiB)",
        one as f64 / 1048576.0,
        four as f64 / 1048576.0,
        baseline as f64 / 1048576.0
    );
    assert!(one < 64 << 20, "one body grew the peak RSS by {one} bytes");
    // Decode capacity (4 × 32 MiB by default, each body holds 2 × 31 MiB) lets two decode at
    // once: generous bound.
    assert!(
        four < 160 << 20,
        "four bodies grew the peak RSS by {four} bytes"
    );
    assert_eq!(
        upstream.write_requests().len(),
        2,
        "only the good pushes arrive"
    );
}
