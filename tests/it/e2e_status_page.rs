//! The receiver's `/status` page as an operator sees it: a real pipeline (source Prometheus →
//! agent → mTLS → receiver → SLO Prometheus, all real processes) and headless Chromium loading
//! the page from the receiver's admin port. Chromium must be installed (`.ci/run` does): a
//! missing browser fails the test.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::browser::{dump_dom, text_of};
use common::pipeline::{seed_client_files, Options, Pipeline, SEED};
use common::{eventually, heavy, https_client, post_write, write_body, Load};
use slo_gateway::remote_write::{Label, Sample, TimeSeries};

const TARGET: &str = r#"# TYPE shoot:availability gauge
shoot:availability{cluster="shoot--p1--a",kind="seed"} 1
shoot:availability{cluster="shoot--p1--a",kind="shoot"} 1
shoot:availability{cluster="shoot--p2--b",kind="vpn"} 0
shoot:apiserver_latency:percentage{cluster="shoot--p1--a"} 0.25
apiserver_request_total{cluster="shoot--p1--a",code="200",verb="GET"} 1234
apiserver_request_total{cluster="shoot--p1--a",code="503",verb="LIST"} 7
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_status_page_shows_each_seed_and_its_numbers_in_a_browser() {
    let _heavy = heavy(Load::Processes).await;
    let p = Pipeline::start(Options {
        target_body: TARGET.into(),
        receiver_limits_yaml: "{max_series_per_seed: 1000}".into(),
        ..Options::default()
    })
    .await;
    let status_url = format!("http://127.0.0.1:{}/status", p.receiver_admin);
    // The agent's six series flow.
    eventually(
        &format!("six series in the SLO Prometheus\n{}", p.logs()),
        || async {
            (p.slo
                .query_value(&format!("count({{seed=\"{SEED}\"}})"))
                .await
                .ok()
                .flatten()
                == Some(6.0))
            .then_some(())
        },
    )
    .within(Duration::from_secs(60))
    .every(Duration::from_millis(200))
    .await;

    // The same seed certificate pushes a sample three hours old: refused and counted.
    let client = https_client(&seed_client_files(&p.pki, 0));
    let old = TimeSeries {
        labels: vec![Label {
            name: "__name__".into(),
            value: "poison".into(),
        }],
        samples: vec![Sample {
            value: 1.0,
            timestamp: common::now_ms() - 3 * 3_600_000,
        }],
        exemplars: vec![],
    };
    let (status, _, text) =
        post_write(&client, &p.receiver_write_url(), write_body(vec![old])).await;
    assert_eq!(status, 400, "{text}");

    let row = format!("data-seed=\"{SEED}\"");
    let dom = eventually(
        "the status page to show the seed with samples flowing",
        || async {
            let dom = tokio::task::spawn_blocking({
                let url = status_url.clone();
                move || dump_dom(&url)
            })
            .await
            .unwrap();
            let rate: f64 = text_of(&dom, &row, "data-field=\"samples-per-second\"")?
                .parse()
                .ok()?;
            (rate > 0.0).then_some(dom)
        },
    )
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(200))
    .await;
    let field = |name: &str| text_of(&dom, &row, &format!("data-field=\"{name}\"")).unwrap();
    assert!(
        dom.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "{dom}"
    );
    assert_eq!(field("seed"), SEED);
    assert_eq!(field("active-series"), "6 / 1000", "{dom}");
    assert_eq!(field("refused"), "too_old: 1", "{dom}");
    assert!(field("last-push").ends_with('Z'), "{dom}");
    assert!(field("age").ends_with('s'), "{dom}");
    // The agent says when it sent each request; on one machine the skew is a few ms.
    let skew = field("clock-skew");
    assert!(
        skew.starts_with("+0.") || skew.starts_with("-0."),
        "{skew} in {dom}"
    );
    // rcgen's default validity ends in 4096.
    assert!(
        field("certificate-expiry").starts_with("4096-01-01T00:00:00Z (in "),
        "{dom}"
    );
    // Plain HTML: nothing loaded from elsewhere.
    assert!(!dom.contains("<script") && !dom.contains("<link"), "{dom}");
}
