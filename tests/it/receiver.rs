//! The receiver over real mTLS on loopback (certificates generated per test), plus `oneshot` tests
//! of `receiver::app()` for the HTTP mapping where TLS adds nothing.
//!
//! What is pinned here is the receiver's contract and its security: only a
//! certificate from the client CA in Gardener's convention may write, the seed label always ends
//! up as the certificate identity, limits refuse before allocating, and statuses tell the agent
//! exactly when a retry can help.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use futures_util::StreamExt;
use slo_gateway::certs::{CertificateAuthority, ClientSubject};
use slo_gateway::config::receiver::IdentityMode;
use slo_gateway::receiver::identity::IdentityError;
use slo_gateway::receiver::server::ConnectionIdentity;
use slo_gateway::receiver::{app, WriteState};
use slo_gateway::remote_write::codec::compress;
use slo_gateway::remote_write::TimeSeries;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::ServiceExt;

const ACCEPTED: &str = "slo_gateway_receiver_samples_accepted_total";
const LAST_PUSH: &str = "slo_gateway_receiver_last_push_timestamp_seconds";
const CONN_FAILURES: &str = "slo_gateway_receiver_connection_failures_total";

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Connects with `config` and does one write; `Err` is the TLS/IO error (for TLS 1.3, a refused
/// client certificate surfaces as an alert on the first read).
async fn try_write(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<u16> {
    let mut stream = tls_connect(addr, config).await?;
    let body = up_body();
    let (status, _) =
        raw_request(&mut stream, "POST", "/api/v1/write", &RW1_HEADERS, &body).await?;
    Ok(status)
}

// ---------------------------------------------------------------------------------------------
// Identity over mTLS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_label_is_overwritten_with_the_certificate_identity() {
    let (pki, upstream, receiver) = start_default().await;
    let client = https_client(&pki.seed_client("aws-1"));

    let before = now_ms() as f64 / 1000.0;
    let body = write_body(vec![
        series(&[("__name__", "up"), ("job", "x"), ("seed", "other")], 2),
        series(
            &[
                ("__name__", "shoot:availability"),
                ("job", "y"),
                ("zone", "a"),
            ],
            3,
        ),
    ]);
    let (status, _, text) = post_write(&client, &receiver.write_url(), body).await;
    assert_eq!(status, 204, "body: {text}");

    let requests = upstream.write_requests();
    assert_eq!(requests.len(), 1);
    let forwarded = &requests[0].timeseries;
    assert_eq!(forwarded.len(), 2);
    assert_eq!(
        label_pairs(&forwarded[0]),
        pairs(&[("__name__", "up"), ("job", "x"), ("seed", "aws-1")])
    );
    assert_eq!(
        label_pairs(&forwarded[1]),
        pairs(&[
            ("__name__", "shoot:availability"),
            ("job", "y"),
            ("seed", "aws-1"),
            ("zone", "a")
        ])
    );
    assert_eq!(forwarded[0].samples.len(), 2);
    assert_eq!(forwarded[1].samples.len(), 3);
    let headers = &upstream.received()[0].headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");

    let metrics = receiver.metrics_text();
    assert_eq!(
        metric_value(&metrics, ACCEPTED, r#"{seed="aws-1"}"#),
        Some(5.0),
        "{metrics}"
    );
    let last_push = metric_value(&metrics, LAST_PUSH, r#"{seed="aws-1"}"#).expect("last push");
    assert!(
        last_push >= before - 1.0 && last_push <= now_ms() as f64 / 1000.0 + 1.0,
        "{last_push}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "slo_gateway_receiver_requests_total",
            r#"{seed="aws-1",code="204"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn reject_mode_refuses_a_foreign_seed_label() {
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .config(|c| c.identity.mode = IdentityMode::Reject)
        .start()
        .await;
    let client = https_client(&pki.seed_client("aws-1"));

    let body = write_body(vec![
        series(&[("__name__", "up"), ("seed", "aws-1")], 1),
        series(&[("__name__", "up"), ("job", "x"), ("seed", "other")], 1),
    ]);
    let (status, _, text) = post_write(&client, &receiver.write_url(), body).await;
    assert_eq!(status, 403, "body: {text}");
    assert!(
        text.contains("\"other\"") && text.contains("aws-1"),
        "{text}"
    );
    assert!(upstream.received().is_empty(), "nothing may reach upstream");

    // Its own label, or none, is fine in reject mode.
    let body = write_body(vec![
        series(&[("__name__", "up"), ("seed", "aws-1")], 1),
        series(&[("__name__", "down")], 1),
    ]);
    let (status, _, text) = post_write(&client, &receiver.write_url(), body).await;
    assert_eq!(status, 204, "body: {text}");
    assert_eq!(upstream.write_requests().len(), 1);
}

#[tokio::test]
async fn client_without_certificate_cannot_complete_the_handshake() {
    let (pki, upstream, receiver) = start_default().await;

    let error = try_write(
        receiver.addr,
        client_config_without_cert(&pki.server_ca_file),
    )
    .await
    .expect_err("a client without a certificate must be refused");
    assert!(
        error.to_string().contains("CertificateRequired"),
        "unexpected error: {error}"
    );
    assert!(upstream.received().is_empty());
    assert!(
        eventually("one handshake failure counted", || async {
            metric_value(
                &receiver.metrics_text(),
                CONN_FAILURES,
                r#"{reason="handshake"}"#,
            ) == Some(1.0)
        })
        .within(Duration::from_secs(5))
        .try_wait()
        .await
        .is_ok(),
        "{}",
        receiver.metrics_text()
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_fails_the_handshake() {
    let (pki, upstream, receiver) = start_default().await;
    let foreign = CertificateAuthority::new("someone else's CA").unwrap();
    let files = pki.client_signed_by(&foreign, "foreign", &ClientSubject::gardener_seed("aws-1"));

    let error = try_write(receiver.addr, client_config(&files))
        .await
        .expect_err("a certificate from another CA must be refused");
    assert!(
        error.to_string().contains("UnknownCA"),
        "unexpected error: {error}"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn certificate_outside_gardener_convention_gets_403_with_the_reason() {
    let (pki, upstream, receiver) = start_default().await;
    let admin = pki.client(
        "admin",
        &ClientSubject {
            common_name: "gardener.cloud:system:seed:aws-1".into(),
            organizations: vec!["system:masters".into()],
            ..ClientSubject::default()
        },
    );
    let body = up_body();
    let (status, _, text) = post_write(&https_client(&admin), &receiver.write_url(), body).await;
    assert_eq!(status, 403);
    assert!(
        text.contains("lacks O=gardener.cloud:system:seeds"),
        "{text}"
    );
    assert!(upstream.received().is_empty());
    assert_one_connection_failure(&receiver, "identity").await;
}

/// Waits (bounded) until the receiver counted exactly one connection failure with `reason`.
async fn assert_one_connection_failure(receiver: &RunningReceiver, reason: &str) {
    let labels = format!(r#"{{reason="{reason}"}}"#);
    assert!(
        eventually("one connection failure counted", || async {
            metric_value(&receiver.metrics_text(), CONN_FAILURES, &labels) == Some(1.0)
        })
        .within(Duration::from_secs(5))
        .try_wait()
        .await
        .is_ok(),
        "connection failure {reason} not counted once"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits over mTLS (the rest are oneshot tests below)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn body_above_the_limit_gets_413_over_tls() {
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .limits(|l| l.max_body_bytes = 1024)
        .start()
        .await;
    let client = https_client(&pki.seed_client("aws-1"));

    let big = vec![0u8; 16 * 1024];
    let (status, _, text) = post_write(&client, &receiver.write_url(), big).await;
    assert_eq!(status, 413, "{text}");
    assert!(upstream.received().is_empty());

    // A small body on a fresh request still works.
    let body = up_body();
    let (status, _, text) = post_write(&client, &receiver.write_url(), body).await;
    assert_eq!(status, 204, "{text}");
}

// ---------------------------------------------------------------------------------------------
// Clock skew over mTLS: the agent says when it sent each request (`X-SLO-Gateway-Sent-At`)
// ---------------------------------------------------------------------------------------------

const SKEW: &str = "slo_gateway_receiver_clock_skew_seconds";
const SKEWED: &str = "slo_gateway_receiver_skewed_samples_total";
const TWENTY_MINUTES_MS: i64 = 20 * 60 * 1000;

/// `series` with every timestamp moved by `offset_ms`: what an agent whose clock is off by that
/// much scrapes.
fn shifted(mut series: TimeSeries, offset_ms: i64) -> TimeSeries {
    for sample in &mut series.samples {
        sample.timestamp += offset_ms;
    }
    series
}

/// Posts an RW 1.0 `body` on `stream` as an agent whose clock is off by `offset_ms` would.
async fn write_sent_at<S>(stream: &mut S, offset_ms: i64, body: &[u8]) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sent_at = (now_ms() + offset_ms).to_string();
    let mut headers = RW1_HEADERS.to_vec();
    headers.push((
        slo_gateway::remote_write::headers::SENT_AT,
        sent_at.as_str(),
    ));
    raw_request(stream, "POST", "/api/v1/write", &headers, body)
        .await
        .unwrap()
}

/// The seed's skew gauge and last push, checked against the wall clock around the requests:
/// the skew lies between `-offset` and `-offset` plus the time the requests took.
fn assert_skew_and_last_push(metrics: &str, seed: &str, offset_ms: i64, before_ms: i64) {
    let after_ms = now_ms();
    let labels = format!(r#"{{seed="{seed}"}}"#);
    let skew = metric_value(metrics, SKEW, &labels).expect("a skew gauge");
    let lowest = -offset_ms as f64 / 1000.0;
    let highest = lowest + (after_ms - before_ms) as f64 / 1000.0;
    assert!(
        skew >= lowest && skew <= highest,
        "{skew} not in [{lowest}, {highest}]"
    );
    let last_push = metric_value(metrics, LAST_PUSH, &labels).expect("a last push");
    assert!(
        last_push >= before_ms as f64 / 1000.0 && last_push <= after_ms as f64 / 1000.0,
        "{last_push} not in [{before_ms}, {after_ms}] ms"
    );
}

#[tokio::test]
async fn agent_clock_behind_is_measured_per_seed_and_its_data_stored() {
    let (pki, upstream, receiver) = start_default().await;
    let mut stream = tls_connect(receiver.addr, client_config(&pki.seed_client("aws-1")))
        .await
        .unwrap();
    let before = now_ms();
    // Two requests on one connection: the seed's series are resolved once and counted twice.
    for _ in 0..2 {
        let body = write_body(vec![shifted(
            series(&[("__name__", "up")], 3),
            -TWENTY_MINUTES_MS,
        )]);
        let (status, text) = write_sent_at(&mut stream, -TWENTY_MINUTES_MS, &body).await;
        assert_eq!(status, 204, "{text}");
    }
    // Inside max_sample_age: stored, 20 minutes in the past; only the skew gauge flags it.
    assert_eq!(upstream.write_requests().len(), 2);
    let metrics = receiver.metrics_text();
    assert_skew_and_last_push(&metrics, "aws-1", -TWENTY_MINUTES_MS, before);
    assert_eq!(
        metric_value(&metrics, ACCEPTED, r#"{seed="aws-1"}"#),
        Some(6.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "slo_gateway_receiver_requests_total",
            r#"{seed="aws-1",code="204"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(!metrics.contains(SKEWED), "nothing was refused: {metrics}");

    // A sender without the header (Prometheus itself) leaves no skew figure.
    let client = https_client(&pki.seed_client("aws-2"));
    let (status, _, text) = post_write(&client, &receiver.write_url(), up_body()).await;
    assert_eq!(status, 204, "{text}");
    let metrics = receiver.metrics_text();
    assert_eq!(metric_value(&metrics, SKEW, r#"{seed="aws-2"}"#), None);
    assert!(metric_value(&metrics, LAST_PUSH, r#"{seed="aws-2"}"#).is_some());
}

#[tokio::test]
async fn agent_clock_ahead_has_every_sample_refused_counted_and_still_a_last_push() {
    let (pki, upstream, receiver) = start_default().await;
    let mut stream = tls_connect(receiver.addr, client_config(&pki.seed_client("aws-1")))
        .await
        .unwrap();
    let before = now_ms();
    let body = write_body(vec![
        shifted(series(&[("__name__", "up")], 2), TWENTY_MINUTES_MS),
        shifted(
            series(&[("__name__", "shoot:availability")], 3),
            TWENTY_MINUTES_MS,
        ),
    ]);
    let (status, text) = write_sent_at(&mut stream, TWENTY_MINUTES_MS, &body).await;
    // Beyond limits.future_grace (10m): nothing stored, never retried.
    assert_eq!(status, 400, "{text}");
    assert!(upstream.received().is_empty());
    let metrics = receiver.metrics_text();
    // The seed still has a last push for the silent alert, and its skew says why its data is gone.
    assert_skew_and_last_push(&metrics, "aws-1", TWENTY_MINUTES_MS, before);
    assert_eq!(
        metric_value(&metrics, SKEWED, r#"{seed="aws-1",direction="future"}"#),
        Some(5.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            REJECTED,
            r#"{seed="aws-1",reason="too_far_in_future"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        metric_value(&metrics, SKEWED, r#"{seed="aws-1",direction="past"}"#),
        None
    );
    assert_eq!(metric_value(&metrics, ACCEPTED, r#"{seed="aws-1"}"#), None);
}

#[tokio::test]
async fn samples_older_than_max_sample_age_count_as_skewed_into_the_past() {
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .limits(|l| l.max_sample_age = Duration::from_secs(600))
        .start()
        .await;
    let mut stream = tls_connect(receiver.addr, client_config(&pki.seed_client("aws-1")))
        .await
        .unwrap();
    let before = now_ms();
    let body = write_body(vec![shifted(
        series(&[("__name__", "up")], 4),
        -TWENTY_MINUTES_MS,
    )]);
    let (status, text) = write_sent_at(&mut stream, -TWENTY_MINUTES_MS, &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("limits.max_sample_age"), "{text}");
    assert!(upstream.received().is_empty());
    let metrics = receiver.metrics_text();
    assert_skew_and_last_push(&metrics, "aws-1", -TWENTY_MINUTES_MS, before);
    assert_eq!(
        metric_value(&metrics, SKEWED, r#"{seed="aws-1",direction="past"}"#),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, REJECTED, r#"{seed="aws-1",reason="too_old"}"#),
        Some(4.0)
    );
}

#[tokio::test]
async fn oneshot_status_page_shows_each_seeds_clock_skew() {
    let (_upstream, state, _registry) = WriteSetup::new().start().await;
    let ahead = (now_ms() + TWENTY_MINUTES_MS).to_string();
    let mut headers = RW1_HEADERS.to_vec();
    headers.push((slo_gateway::remote_write::headers::SENT_AT, ahead.as_str()));
    let body = write_body(vec![shifted(
        series(&[("__name__", "up")], 1),
        TWENTY_MINUTES_MS,
    )]);
    let (status, text) = oneshot(state.clone(), Some(seed("aws-1")), &headers, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let response = slo_gateway::receiver::status::router(state)
        .oneshot(Request::get("/status").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let page = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&page);
    let row = page
        .lines()
        .find(|l| l.contains("data-seed=\"aws-1\""))
        .unwrap_or_else(|| panic!("no row for aws-1 in {page}"));
    let cell = row
        .split("<td data-field=\"clock-skew\">")
        .nth(1)
        .and_then(|rest| rest.split("</td>").next())
        .unwrap_or_else(|| panic!("no clock-skew cell in {row}"));
    // Between 20 minutes and 20 minutes less the request's time, highlighted.
    assert!(
        (cell.starts_with("<span class=\"warn\">-20m")
            || cell.starts_with("<span class=\"warn\">-19m"))
            && cell.ends_with(" (agent ahead)</span>"),
        "{cell}"
    );
    assert!(
        !row.contains(">never<"),
        "the refused push is a push: {row}"
    );
}

// ---------------------------------------------------------------------------------------------
// Upstream mapping over mTLS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_results_map_to_statuses_the_agent_acts_on() {
    let (pki, upstream, receiver) = start_default().await;
    let client = https_client(&pki.seed_client("aws-1"));
    let body = up_body;

    upstream.reply_with(400, "out of order sample");
    let (status, headers, text) = post_write(&client, &receiver.write_url(), body()).await;
    assert_eq!(status, 400);
    assert!(text.contains("out of order sample"), "{text}");
    assert!(headers.get("retry-after").is_none());

    upstream.reply_with(500, "tsdb append failed");
    let (status, headers, text) = post_write(&client, &receiver.write_url(), body()).await;
    assert_eq!(status, 503, "{text}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);

    upstream.reply_with(429, "slow down");
    let (status, _, _) = post_write(&client, &receiver.write_url(), body()).await;
    assert_eq!(status, 503, "upstream overload is retryable");

    upstream.reply_with(204, "");
    let (status, _, _) = post_write(&client, &receiver.write_url(), body()).await;
    assert_eq!(status, 204);
    assert_eq!(upstream.received().len(), 4);

    let metrics = receiver.metrics_text();
    assert_eq!(
        metric_value(
            &metrics,
            "slo_gateway_receiver_samples_rejected_total",
            r#"{seed="aws-1",reason="upstream_refused"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, ACCEPTED, r#"{seed="aws-1"}"#),
        Some(1.0)
    );

    // The upstream goes away (idle pooled connections closed too): 503, retryable.
    upstream.close().await;
    let (status, headers, text) = post_write(&client, &receiver.write_url(), body()).await;
    assert_eq!(status, 503, "{text}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn unreachable_upstream_gets_503() {
    let (pki, _upstream, receiver) = ReceiverSetup::new().forward_to_closed_port().start().await;
    let client = https_client(&pki.seed_client("aws-1"));
    let body = up_body();
    let (status, headers, text) = post_write(&client, &receiver.write_url(), body).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(headers.contains_key("retry-after"));
}

// ---------------------------------------------------------------------------------------------
// Rate limit
// ---------------------------------------------------------------------------------------------

/// A client of `files` that sends our agent's `User-Agent`.
fn agent_client(files: &slo_gateway::tls::ClientFiles) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*slo_gateway::tls::client_config(files).unwrap()).clone())
        .user_agent(slo_gateway::remote_write::headers::USER_AGENT)
        .build()
        .unwrap()
}

#[tokio::test]
async fn rate_limit_is_per_seed_and_answers_429_with_retry_after() {
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .limits(|l| {
            l.samples_per_second_per_seed = 10;
            l.burst_samples_per_seed = Some(10);
        })
        .start()
        .await;
    let aws = agent_client(&pki.seed_client("aws-1"));
    let gcp = agent_client(&pki.seed_client("gcp-1"));
    let ten = || write_body(vec![series(&[("__name__", "up")], 10)]);

    let (status, _, text) = post_write(&aws, &receiver.write_url(), ten()).await;
    assert_eq!(status, 204, "{text}");
    let (status, headers, text) = post_write(&aws, &receiver.write_url(), ten()).await;
    assert_eq!(status, 429, "{text}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        upstream.received().len(),
        1,
        "the limited request is not forwarded"
    );

    let (status, _, text) = post_write(&gcp, &receiver.write_url(), ten()).await;
    assert_eq!(status, 204, "another seed is unaffected: {text}");
    assert_eq!(
        metric_value(
            &receiver.metrics_text(),
            "slo_gateway_receiver_samples_rejected_total",
            r#"{seed="aws-1",reason="rate_limited"}"#
        ),
        Some(10.0)
    );
}

/// Senders other than our agent get the rate limit as 503 with the same `Retry-After`:
/// Prometheus (2.42 and later) drops a batch answered 429 unless `retry_on_http_429` is set,
/// while it retries every 5xx. Our agent (by its `User-Agent`) still gets 429.
#[tokio::test]
async fn rate_limit_answers_foreign_senders_503_so_that_they_retry() {
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .limits(|l| {
            l.samples_per_second_per_seed = 10;
            l.burst_samples_per_seed = Some(10);
        })
        .start()
        .await;
    let ten = || write_body(vec![series(&[("__name__", "up")], 10)]);
    for (user_agent, expected) in [
        ("Prometheus/2.42.0", 503),
        ("vmagent", 503),
        ("", 503),
        (slo_gateway::remote_write::headers::USER_AGENT, 429),
    ] {
        let files = pki.seed_client("aws-1");
        let mut client = reqwest::Client::builder()
            .use_preconfigured_tls((*slo_gateway::tls::client_config(&files).unwrap()).clone());
        if !user_agent.is_empty() {
            client = client.user_agent(user_agent);
        }
        let client = client.build().unwrap();
        // Fill the bucket, then one over it.
        let _ = post_write(&client, &receiver.write_url(), ten()).await;
        let (status, headers, text) = post_write(&client, &receiver.write_url(), ten()).await;
        assert_eq!(status, expected, "{user_agent:?}: {text}");
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1, "{user_agent:?}");
        assert!(text.contains("rate limit"), "{user_agent:?}: {text}");
    }
    // Counted as rate limited whatever the status: each round's second request at least.
    let rejected = metric_value(
        &receiver.metrics_text(),
        "slo_gateway_receiver_samples_rejected_total",
        r#"{seed="aws-1",reason="rate_limited"}"#,
    )
    .unwrap();
    assert!(rejected >= 40.0, "{rejected}");
    assert!(upstream.received().len() <= 4);
}

// ---------------------------------------------------------------------------------------------
// Certificate hot reload
// ---------------------------------------------------------------------------------------------

/// The leaf certificate the server presents on a new connection.
async fn presented_server_cert(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Option<Vec<u8>> {
    let stream = tls_connect(addr, config).await.ok()?;
    let leaf = stream.get_ref().1.peer_certificates()?.first()?.to_vec();
    Some(leaf)
}

#[tokio::test]
async fn server_certificate_rotation_applies_to_new_connections_only() {
    let (pki, _upstream, receiver) = start_default().await;
    let seed = client_config(&pki.seed_client("aws-1"));
    let old_cert = cert_der(&pki.server_cert);
    let addr = receiver.addr;
    assert_eq!(
        presented_server_cert(receiver.addr, seed.clone()).await,
        Some(old_cert.clone())
    );

    // A connection made before the rotation.
    let mut existing = tls_connect(receiver.addr, seed.clone()).await.unwrap();
    let body = up_body;
    let (status, _) = raw_request(
        &mut existing,
        "POST",
        "/api/v1/write",
        &RW1_HEADERS,
        &body(),
    )
    .await
    .unwrap();
    assert_eq!(status, 204);

    let rotated = pki.ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    pki.write("server-key.pem", &rotated.key_pem);
    pki.write("server.pem", &rotated.cert_pem);
    let new_cert = cert_der(&pki.server_cert);
    assert_ne!(new_cert, old_cert);

    assert!(
        eventually("the new server certificate", || {
            let seed = seed.clone();
            let new_cert = new_cert.clone();
            async move { presented_server_cert(addr, seed).await == Some(new_cert) }
        })
        .within(Duration::from_secs(10))
        .try_wait()
        .await
        .is_ok(),
        "the new server certificate was not presented within 10 s"
    );
    // Writes over a new connection succeed with the new certificate...
    let (status, _, text) = post_write(
        &https_client(&pki.seed_client("aws-1")),
        &receiver.write_url(),
        body(),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    // ...and the connection from before keeps working.
    let (status, _) = raw_request(
        &mut existing,
        "POST",
        "/api/v1/write",
        &RW1_HEADERS,
        &body(),
    )
    .await
    .unwrap();
    assert_eq!(status, 204);
    assert_eq!(
        existing.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        old_cert
    );
    assert!(
        metric_value(
            &receiver.metrics_text(),
            "slo_gateway_receiver_tls_reloads_total",
            r#"{result="success"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{}",
        receiver.metrics_text()
    );
}

#[tokio::test]
async fn client_ca_rotation_refuses_the_old_ca_on_new_connections() {
    let (pki, _upstream, receiver) = start_default().await;
    let old_seed = client_config(&pki.seed_client("aws-1"));
    let addr = receiver.addr;
    assert_eq!(
        try_write(receiver.addr, old_seed.clone()).await.unwrap(),
        204
    );
    let mut existing = tls_connect(receiver.addr, old_seed.clone()).await.unwrap();

    let new_ca = CertificateAuthority::new("rotated client CA").unwrap();
    let new_seed = client_config(&pki.client_signed_by(
        &new_ca,
        "seed-aws-1-new",
        &ClientSubject::gardener_seed("aws-1"),
    ));
    pki.write("client-ca.pem", &new_ca.cert_pem());

    assert!(
        eventually("the old client CA refused", || {
            let old_seed = old_seed.clone();
            async move { try_write(addr, old_seed).await.is_err() }
        })
        .within(Duration::from_secs(10))
        .try_wait()
        .await
        .is_ok(),
        "a certificate from the old client CA was still accepted after 10 s"
    );
    let error = try_write(receiver.addr, old_seed).await.unwrap_err();
    assert!(error.to_string().contains("UnknownCA"), "{error}");
    assert_eq!(try_write(receiver.addr, new_seed).await.unwrap(), 204);

    // Established connections were verified at their handshake and stay usable.
    let body = up_body();
    let (status, _) = raw_request(&mut existing, "POST", "/api/v1/write", &RW1_HEADERS, &body)
        .await
        .unwrap();
    assert_eq!(status, 204);
}

// ---------------------------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stalled_handshake_neither_blocks_accepts_nor_lives_past_the_timeout() {
    let (pki, _upstream, receiver) = ReceiverSetup::new()
        .config(|c| c.tls.handshake_timeout = Duration::from_millis(300))
        .start()
        .await;

    let started = Instant::now();
    let mut stalled = TcpStream::connect(receiver.addr).await.unwrap();
    // While it sends nothing, another client is served.
    assert_eq!(
        try_write(receiver.addr, client_config(&pki.seed_client("aws-1")))
            .await
            .unwrap(),
        204
    );
    // The server closes the stalled connection: EOF or reset, well within a bounded wait.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("the stalled connection was not closed within 5 s");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected EOF or an error, got {read:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_one_connection_failure(&receiver, "handshake_timeout").await;
}

#[tokio::test]
async fn graceful_shutdown_completes_and_refuses_new_connections() {
    let (pki, _upstream, receiver) = start_default().await;
    let addr = receiver.addr;
    let seed = client_config(&pki.seed_client("aws-1"));
    // An idle keep-alive connection must not hold shutdown for the whole grace period (10 s).
    let mut idle = tls_connect(addr, seed.clone()).await.unwrap();
    let body = up_body();
    let (status, _) = raw_request(&mut idle, "POST", "/api/v1/write", &RW1_HEADERS, &body)
        .await
        .unwrap();
    assert_eq!(status, 204);

    receiver
        .shutdown(Duration::from_secs(5))
        .await
        .expect("run did not return within 5 s of shutdown");
    let refused = TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "the listener still accepts after shutdown"
    );
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the idle connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

// ---------------------------------------------------------------------------------------------
// oneshot tests of app(): the HTTP mapping without TLS
// ---------------------------------------------------------------------------------------------

fn seed(name: &str) -> ConnectionIdentity {
    ConnectionIdentity::for_seed(name)
}

/// Sends `body` with `headers` (name, value) and the identity extension through `app(state)`.
async fn oneshot(
    state: Arc<WriteState>,
    identity: Option<ConnectionIdentity>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let (status, _, text) = oneshot_with_headers(state, identity, headers, body).await;
    (status, text)
}

/// [`oneshot`], also returning the response headers.
async fn oneshot_with_headers(
    state: Arc<WriteState>,
    identity: Option<ConnectionIdentity>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().method("POST").uri("/api/v1/write");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(identity) = identity {
        request = request.extension(identity);
    }
    let response = app(state)
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn rw1(state: Arc<WriteState>, body: Vec<u8>) -> (StatusCode, String) {
    oneshot(state, Some(seed("aws-1")), &RW1_HEADERS, body).await
}

#[tokio::test]
async fn oneshot_body_above_max_body_bytes_is_413() {
    let (upstream, state, _) = WriteSetup::new()
        .limits(|l| l.max_body_bytes = 100)
        .start()
        .await;
    let (status, text) = rw1(state, vec![0; 101]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("100 bytes"), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_trickling_body_is_503_after_body_read_timeout() {
    let (upstream, state, _) = WriteSetup::new()
        .limits(|l| l.body_read_timeout = Duration::from_millis(200))
        .start()
        .await;
    // One chunk, then nothing: a client that holds the connection without finishing its body.
    let stalled = futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![0u8; 8]) })
        .chain(futures_util::stream::pending());
    let mut request = Request::builder().method("POST").uri("/api/v1/write");
    for (name, value) in RW1_HEADERS {
        request = request.header(name, value);
    }
    let request = request
        .extension(seed("aws-1"))
        .body(Body::from_stream(stalled))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), app(state).oneshot(request))
        .await
        .expect("the receiver stops waiting for the body")
        .unwrap();
    // 503, not 4xx: a slow link is no reason for the agent to drop the batch.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_snappy_bomb_is_413_from_its_declared_length() {
    let (upstream, state, _) = WriteSetup::new()
        .limits(|l| l.max_decoded_bytes = 1 << 20)
        .start()
        .await;
    // 6 bytes declaring 4 GiB - 1 of output: refused from the header, nothing allocated.
    let bomb = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let (status, text) = rw1(state, bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("4294967295"), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_garbage_snappy_and_garbage_protobuf_are_400() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    // Declares 16 bytes, then is not a valid block.
    let (status, text) = rw1(state.clone(), b"\x10\xff\xff\xff not snappy".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("snappy"), "{text}");
    // Framed snappy (what some clients send by mistake) is not the block format.
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut framed, b"hello").unwrap();
    let (status, text) = rw1(state.clone(), framed.into_inner().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    let (status, text) = rw1(state, compress(b"\xff\xff\xff\xff")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("protobuf"), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_wrong_encoding_or_unknown_content_type_is_415() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    let body = up_body;

    let (status, text) = oneshot(
        state.clone(),
        Some(seed("aws-1")),
        &[("content-type", "application/x-protobuf")],
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert!(text.contains("snappy"), "{text}");

    let (status, text) = oneshot(
        state.clone(),
        Some(seed("aws-1")),
        &[
            ("content-encoding", "snappy"),
            (
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            ),
            ("x-prometheus-remote-write-version", "3.0.0"),
        ],
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert!(text.contains("io.prometheus.write.v2.Request"), "{text}");

    let (status, text) = oneshot(
        state.clone(),
        Some(seed("aws-1")),
        &[
            ("content-encoding", "snappy"),
            ("content-type", "text/plain"),
        ],
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert!(upstream.received().is_empty());

    // RW 1.0 named explicitly, with different case and spacing, is accepted.
    let (status, text) = oneshot(
        state,
        Some(seed("aws-1")),
        &[
            ("content-encoding", "SNAPPY"),
            (
                "content-type",
                "application/x-protobuf; proto=prometheus.WriteRequest",
            ),
        ],
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn oneshot_too_many_series_is_413() {
    let (upstream, state, _) = WriteSetup::new()
        .limits(|l| l.max_series_per_request = 2)
        .start()
        .await;
    let body = write_body(vec![
        series(&[("__name__", "a")], 1),
        series(&[("__name__", "b")], 1),
        series(&[("__name__", "c")], 1),
    ]);
    let (status, text) = rw1(state, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("more than 2 series"), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_invalid_series_is_named_and_valid_ones_are_forwarded() {
    let (upstream, state, _) = WriteSetup::new().start().await;

    let body = write_body(vec![
        series(&[("job", "x"), ("__name__", "unsorted")], 1),
        series(&[("__name__", "good"), ("job", "x")], 1),
    ]);
    let (status, text) = rw1(state.clone(), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("not sorted"), "{text}");

    let body = write_body(vec![
        series(&[("job", "nameless")], 1),
        series(&[("__name__", "good2")], 1),
    ]);
    let (status, text) = rw1(state.clone(), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("no __name__"), "{text}");

    let forwarded: Vec<Vec<(String, String)>> = upstream
        .write_requests()
        .iter()
        .flat_map(|r| r.timeseries.iter().map(label_pairs))
        .collect();
    assert_eq!(
        forwarded,
        vec![
            pairs(&[("__name__", "good"), ("job", "x"), ("seed", "aws-1")]),
            pairs(&[("__name__", "good2"), ("seed", "aws-1")]),
        ]
    );
}

#[tokio::test]
async fn oneshot_empty_labels_are_dropped_before_validation() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    let body = write_body(vec![series(
        &[("__name__", "up"), ("instance", ""), ("job", "x")],
        1,
    )]);
    let (status, text) = rw1(state, body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(
        label_pairs(&upstream.write_requests()[0].timeseries[0]),
        pairs(&[("__name__", "up"), ("job", "x"), ("seed", "aws-1")])
    );
}

#[tokio::test]
async fn oneshot_missing_or_failed_identity_is_403() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    let body = up_body;

    let (status, text) = oneshot(state.clone(), None, &RW1_HEADERS, body()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("no client certificate"), "{text}");

    let (status, text) = oneshot(
        state,
        Some(ConnectionIdentity::refused(IdentityError::BadCommonName(
            "admin".into(),
        ))),
        &RW1_HEADERS,
        body(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"admin\""), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oneshot_empty_request_is_204_without_forwarding() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    let (status, text) = rw1(state, write_body(Vec::new())).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert!(upstream.received().is_empty());
}

#[test]
fn rate_limit_retry_after_is_rounded_up() {
    use axum::response::IntoResponse;
    use slo_gateway::receiver::ApiError;
    let retry_after = |d: Duration| {
        ApiError::RateLimited {
            seed: "aws-1".into(),
            retry_after: d,
        }
        .into_response()
        .headers()["retry-after"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(retry_after(Duration::from_millis(1500)), "2");
    assert_eq!(retry_after(Duration::from_secs(3)), "3");
    assert_eq!(retry_after(Duration::from_millis(10)), "1");
}

// ---------------------------------------------------------------------------------------------
// More TLS: versions, resumption, SAN identity, broken rotation
// ---------------------------------------------------------------------------------------------

/// `files`' client config restricted to TLS 1.2, or with no certificate when `files` is `None`.
fn tls12_config(
    pki: &TestPki,
    files: Option<&slo_gateway::tls::ClientFiles>,
) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(slo_gateway::tls::load_roots(&pki.server_ca_file).unwrap());
    Arc::new(match files {
        Some(files) => builder
            .with_client_auth_cert(
                slo_gateway::tls::load_certs(&files.cert).unwrap(),
                slo_gateway::tls::load_key(&files.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

#[tokio::test]
async fn tls12_clients_are_served_and_still_need_a_certificate() {
    let (pki, upstream, receiver) = start_default().await;

    let with_cert = tls12_config(&pki, Some(&pki.seed_client("aws-1")));
    let stream = tls_connect(receiver.addr, with_cert.clone()).await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(try_write(receiver.addr, with_cert).await.unwrap(), 204);

    // TLS 1.2 refuses a missing certificate inside the handshake itself.
    let error = tls_connect(receiver.addr, tls12_config(&pki, None))
        .await
        .expect_err("TLS 1.2 without a client certificate must fail the handshake");
    assert!(!error.to_string().is_empty());
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn sessions_are_never_resumed() {
    let (pki, _upstream, receiver) = start_default().await;
    // Resumption would skip client-certificate verification: every handshake of a
    // client that keeps its session cache must still be a full one, for TLS 1.3 and 1.2.
    for config in [
        client_config(&pki.seed_client("aws-1")),
        tls12_config(&pki, Some(&pki.seed_client("aws-1"))),
    ] {
        for attempt in 0..3 {
            let mut stream = tls_connect(receiver.addr, config.clone()).await.unwrap();
            let body = up_body();
            // A full exchange, so a TLS 1.3 ticket (if any were sent) reaches the client.
            let (status, _) =
                raw_request(&mut stream, "POST", "/api/v1/write", &RW1_HEADERS, &body)
                    .await
                    .unwrap();
            assert_eq!(status, 204);
            assert_eq!(
                stream.get_ref().1.handshake_kind(),
                Some(rustls::HandshakeKind::Full),
                "attempt {attempt}"
            );
        }
    }
}

#[tokio::test]
async fn san_dns_identity_over_tls() {
    use slo_gateway::config::receiver::IdentitySource;
    let (pki, upstream, receiver) = ReceiverSetup::new()
        .config(|c| {
            c.identity.source = IdentitySource::SanDns;
            c.identity.san_suffix = Some(".seeds.example.com".into());
        })
        .start()
        .await;
    let files = pki.client(
        "san-seed",
        &ClientSubject {
            common_name: "not a gardener name".into(),
            dns_names: vec!["gcp-2.seeds.example.com".into()],
            ..ClientSubject::default()
        },
    );
    let body = write_body(vec![series(&[("__name__", "up"), ("seed", "aws-1")], 1)]);
    let (status, _, text) = post_write(&https_client(&files), &receiver.write_url(), body).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        label_pairs(&upstream.write_requests()[0].timeseries[0]),
        pairs(&[("__name__", "up"), ("seed", "gcp-2")])
    );
}

#[tokio::test]
async fn half_written_rotation_keeps_the_last_good_certificate() {
    let (pki, _upstream, receiver) = start_default().await;
    let addr = receiver.addr;
    let seed = client_config(&pki.seed_client("aws-1"));
    let old_cert = cert_der(&pki.server_cert);

    // The new certificate lands before its key: the pair does not match, the reload fails.
    let rotated = pki.ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    pki.write("server.pem", &rotated.cert_pem);
    let new_cert = cert_der(&pki.server_cert);
    let failures = || {
        metric_value(
            &receiver.metrics_text(),
            "slo_gateway_receiver_tls_reloads_total",
            r#"{result="failure"}"#,
        )
        .unwrap_or(0.0)
    };
    assert!(
        eventually("a failed reload", || async { failures() >= 1.0 })
            .within(Duration::from_secs(10))
            .try_wait()
            .await
            .is_ok(),
        "{}",
        receiver.metrics_text()
    );
    assert_eq!(
        presented_server_cert(addr, seed.clone()).await,
        Some(old_cert),
        "a broken replacement must keep the last good certificate"
    );
    assert_eq!(try_write(addr, seed.clone()).await.unwrap(), 204);

    // Garbage in the client CA bundle is also survived.
    let good_ca = std::fs::read_to_string(&pki.client_ca_file).unwrap();
    pki.write("client-ca.pem", "not a PEM file\n");
    let before = failures();
    assert!(
        eventually("another failed reload", || async { failures() > before })
            .within(Duration::from_secs(10))
            .try_wait()
            .await
            .is_ok()
    );
    assert_eq!(try_write(addr, seed.clone()).await.unwrap(), 204);
    pki.write("client-ca.pem", &good_ca);

    // The key arrives: the next tick picks up the complete pair.
    pki.write("server-key.pem", &rotated.key_pem);
    assert!(eventually("the new server certificate", || {
        let seed = seed.clone();
        let new_cert = new_cert.clone();
        async move { presented_server_cert(addr, seed).await == Some(new_cert) }
    })
    .within(Duration::from_secs(10))
    .try_wait()
    .await
    .is_ok());
    assert_eq!(try_write(addr, seed).await.unwrap(), 204);
}

// ---------------------------------------------------------------------------------------------
// Hostile input and Remote Write 2.0, through app()
// ---------------------------------------------------------------------------------------------

const REJECTED: &str = "slo_gateway_receiver_samples_rejected_total";

/// The `__name__` of every series the upstream received, in order.
fn forwarded_names(upstream: &RecordingUpstream) -> Vec<String> {
    upstream
        .received()
        .iter()
        .flat_map(|r| r.request.clone().unwrap().timeseries)
        .map(|s| {
            s.labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.clone())
                .unwrap_or_default()
        })
        .collect()
}

const RW2_HEADERS: [(&str, &str); 3] = [
    ("content-encoding", "snappy"),
    (
        "content-type",
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    ),
    ("x-prometheus-remote-write-version", "2.0.0"),
];

#[tokio::test]
async fn oneshot_rw2_is_forwarded_as_rw1_with_written_headers() {
    use slo_gateway::remote_write::v2::encode_v2_request;
    use slo_gateway::remote_write::WriteRequest;
    let (upstream, state, _) = WriteSetup::new().start().await;
    let request = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "up"), ("job", "x"), ("seed", "other")], 2),
            series(&[("__name__", "down"), ("instance", "")], 1),
        ],
        metadata: vec![],
    };
    let (status, headers, text) = oneshot_with_headers(
        state.clone(),
        Some(seed("aws-1")),
        &RW2_HEADERS,
        encode_v2_request(&request),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "3");
    assert_eq!(headers["x-prometheus-remote-write-histograms-written"], "0");
    assert_eq!(headers["x-prometheus-remote-write-exemplars-written"], "0");
    let received = upstream.received();
    assert_eq!(
        received[0].headers["content-type"],
        "application/x-protobuf"
    );
    assert_eq!(
        received[0].headers["x-prometheus-remote-write-version"],
        "0.1.0"
    );
    let forwarded = &received[0].request.as_ref().unwrap().timeseries;
    assert_eq!(
        label_pairs(&forwarded[0]),
        pairs(&[("__name__", "up"), ("job", "x"), ("seed", "aws-1")])
    );
    assert_eq!(
        label_pairs(&forwarded[1]),
        pairs(&[("__name__", "down"), ("seed", "aws-1")])
    );
    assert_eq!(forwarded[0].samples, request.timeseries[0].samples);

    // A 1.0 answer carries the headers too (a 2.0 sender must not rely on them from 1.0).
    let (status, headers, _) =
        oneshot_with_headers(state, Some(seed("aws-1")), &RW1_HEADERS, write_body(vec![])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "0");
}

#[tokio::test]
async fn oneshot_reserved_label_is_400_naming_it_and_the_rest_is_forwarded() {
    let (upstream, state, registry) = WriteSetup::new().start().await;
    let body = write_body(vec![
        series(&[("__name__", "up"), ("__tenant__", "other")], 2),
        series(&[("__name__", "good")], 1),
    ]);
    let (status, headers, text) =
        oneshot_with_headers(state, Some(seed("aws-1")), &RW1_HEADERS, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("\"__tenant__\"") && text.contains("reserved"),
        "{text}"
    );
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "1");
    assert_eq!(forwarded_names(&upstream), ["good"]);
    assert_eq!(
        metric_value(
            &registry_text(&registry),
            REJECTED,
            r#"{seed="aws-1",reason="reserved_label"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn oneshot_samples_older_than_max_sample_age_are_refused_before_forwarding() {
    let (upstream, state, registry) = WriteSetup::new().start().await;
    let mut poison = series(&[("__name__", "poison")], 2);
    poison.samples[0].timestamp = 0;
    poison.samples[1].timestamp = now_ms() - 3 * 3600 * 1000;
    let mut mixed = series(&[("__name__", "mixed")], 2);
    mixed.samples[0].timestamp = now_ms() - 3 * 3600 * 1000;
    let body = write_body(vec![poison, mixed, series(&[("__name__", "fresh")], 1)]);
    let (status, headers, text) =
        oneshot_with_headers(state, Some(seed("aws-1")), &RW1_HEADERS, body).await;
    // Never retried, and everything else is stored.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("limits.max_sample_age"), "{text}");
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "2");
    assert_eq!(forwarded_names(&upstream), ["mixed", "fresh"]);
    assert_eq!(
        metric_value(
            &registry_text(&registry),
            REJECTED,
            r#"{seed="aws-1",reason="too_old"}"#
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn oneshot_series_the_upstream_refuses_are_isolated_and_the_rest_stored() {
    let (upstream, state, registry) = WriteSetup::new()
        .limits(|l| l.max_sample_age = Duration::ZERO)
        .start()
        .await;
    // Prometheus 2.42 answers 500 "too old sample" and stores nothing of the request.
    upstream.refuse_requests_with("poison", "yes", 500, "too old sample");
    let timeseries: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("s{i:02}");
            if i == 13 {
                series(&[("__name__", &name), ("poison", "yes")], 3)
            } else {
                series(&[("__name__", &name)], 1)
            }
        })
        .collect();
    let (status, headers, text) = oneshot_with_headers(
        state,
        Some(seed("aws-1")),
        &RW1_HEADERS,
        write_body(timeseries),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("refused 1 series (3 samples)") && text.contains("too old sample"),
        "{text}"
    );
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "19");
    let stored: Vec<String> = upstream
        .received()
        .iter()
        .filter_map(|r| {
            let request = r.request.as_ref().unwrap();
            let poisoned = request
                .timeseries
                .iter()
                .any(|s| s.labels.iter().any(|l| l.name == "poison"));
            (!poisoned).then(|| request.timeseries.clone())
        })
        .flatten()
        .map(|s| s.labels[0].value.clone())
        .collect();
    let mut sorted = stored.clone();
    sorted.sort();
    let want: Vec<String> = (0..20)
        .filter(|&i| i != 13)
        .map(|i| format!("s{i:02}"))
        .collect();
    assert_eq!(sorted, want, "each good series stored exactly once");
    // Halving 20 down to one series: 1 + 2 per level, 5 levels.
    assert!(
        upstream.received().len() <= 11,
        "{}",
        upstream.received().len()
    );
    let metrics = registry_text(&registry);
    assert_eq!(
        metric_value(
            &metrics,
            REJECTED,
            r#"{seed="aws-1",reason="upstream_refused"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&metrics, ACCEPTED, r#"{seed="aws-1"}"#),
        Some(19.0)
    );
}

#[tokio::test]
async fn oneshot_series_limit_refuses_new_series_only() {
    let (upstream, state, registry) = WriteSetup::new()
        .limits(|l| l.max_series_per_seed = 2)
        .start()
        .await;
    let body = |names: &[&str]| {
        write_body(
            names
                .iter()
                .map(|n| series(&[("__name__", n)], 1))
                .collect(),
        )
    };
    let (status, text) = rw1(state.clone(), body(&["a", "b", "c"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("limits.max_series_per_seed"), "{text}");
    // Known series keep flowing at the limit; a new one is refused again.
    let (status, _) = rw1(state.clone(), body(&["b", "a", "d"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = rw1(state.clone(), body(&["a", "b"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(forwarded_names(&upstream), ["a", "b", "b", "a", "a", "b"]);
    // Another seed has its own set.
    let (status, _) = oneshot(state, Some(seed("gcp-1")), &RW1_HEADERS, body(&["c", "d"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let metrics = registry_text(&registry);
    assert_eq!(
        metric_value(
            &metrics,
            REJECTED,
            r#"{seed="aws-1",reason="series_limit"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "slo_gateway_receiver_active_series",
            r#"{seed="aws-1"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn oneshot_empty_series_amplification_is_413_and_four_gib_declared_too() {
    let (upstream, state, _) = WriteSetup::new().start().await;
    // 31 MiB of empty TimeSeries (2 bytes each) compress to about 1.5 MB.
    let body = compress(&[0x0a_u8, 0x00].repeat(31 << 19));
    assert!(body.len() < 2 << 20, "{}", body.len());
    let (status, text) = rw1(state.clone(), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("more than 50000 series"), "{text}");
    // A header declaring exactly 4 GiB: beyond snappy's own limit, still a size refusal.
    let (status, text) = rw1(state, vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("4294967296"), "{text}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn certificate_with_two_common_names_gets_403() {
    let (pki, upstream, receiver) = start_default().await;
    let ambiguous = pki.client(
        "two-cns",
        &ClientSubject {
            extra_common_names: vec!["gardener.cloud:system:seed:gcp-2".into()],
            ..ClientSubject::gardener_seed("aws-1")
        },
    );
    let body = up_body();
    let (status, _, text) =
        post_write(&https_client(&ambiguous), &receiver.write_url(), body).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("ambiguous") && text.contains("2 CNs"),
        "{text}"
    );
    assert!(upstream.received().is_empty());
    assert_one_connection_failure(&receiver, "identity").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_bombs_in_parallel_do_not_starve_a_good_push() {
    let (pki, upstream, receiver) = start_default().await;
    let attacker = https_client(&pki.seed_client("evil-1"));
    let good = https_client(&pki.seed_client("aws-1"));
    let bomb = compress(&[0x0a_u8, 0x00].repeat(31 << 19));
    let url = receiver.write_url();
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, bomb) = (attacker.clone(), url.clone(), bomb.clone());
            tokio::spawn(async move { post_write(&client, &url, bomb).await.0 })
        })
        .collect();
    // The good push completes within the client's 10 s timeout while the bombs are in flight.
    let body = up_body();
    let (status, _, text) = post_write(&good, &url, body).await;
    assert_eq!(status, 204, "{text}");
    for bomb in bombs {
        assert_eq!(bomb.await.unwrap(), 413);
    }
    assert_eq!(upstream.write_requests().len(), 1);
}
