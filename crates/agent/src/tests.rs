//! Scrape → queue → send through real sockets on 127.0.0.1: an axum `/federate` stub, an mTLS
//! remote-write sink (dev PKI in a tempdir) and a CONNECT proxy. Every test runs on tokio's
//! paused clock (a current-thread runtime): when every task waits, the clock jumps to the next
//! timer, so scrape intervals, backoff, pacing and shutdown grace cost no wall time, while the
//! loopback sockets and the disk queue (its blocking work holds the clock) stay real. Every wait
//! polls a condition with a cap in virtual time; nothing asserts on durations.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;
use crate::metrics::{DropReason, ScrapeResult};
use certs::{write_dev_pki, DevPki};
use common::tls::ServerFiles;
use remote_write::{decode_write_request, is_stale_marker, WriteRequest};
use test_wait::eventually;

/// The `/federate` stub: serves `body`, records each query string.
#[derive(Debug, Default)]
struct Federate {
    body: Mutex<String>,
    queries: Mutex<Vec<String>>,
    /// Answer with this status and no body instead (0: serve `body`).
    fail: AtomicUsize,
    /// Answer `/federate` with this status, headers and bytes instead (redirects, bodies the
    /// agent cannot read).
    raw: Mutex<Option<Raw>>,
}

/// A scripted answer of the `/federate` stub.
type Raw = (u16, Vec<(&'static str, String)>, Vec<u8>);

async fn federate(State(f): State<Arc<Federate>>, RawQuery(q): RawQuery) -> Response {
    f.queries.lock().unwrap().push(q.unwrap_or_default());
    if let Some((code, headers, body)) = f.raw.lock().unwrap().clone() {
        let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_str(&value).unwrap());
        }
        return response;
    }
    served(&f)
}

/// `/prefix/federate`: the body, always (the target of a same-origin redirect).
async fn federate_moved(State(f): State<Arc<Federate>>) -> Response {
    served(&f)
}

fn served(f: &Federate) -> Response {
    match u16::try_from(f.fail.load(Ordering::SeqCst)).unwrap() {
        0 => (StatusCode::OK, f.body.lock().unwrap().clone()).into_response(),
        code => StatusCode::from_u16(code).unwrap().into_response(),
    }
}

async fn spawn_federate(body: &str) -> (SocketAddr, Arc<Federate>) {
    let state = Arc::new(Federate::default());
    *state.body.lock().unwrap() = body.to_string();
    let app = Router::new()
        .route("/federate", get(federate))
        .route("/prefix/federate", get(federate_moved))
        .with_state(state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

/// One received sample: labels as (name, value) pairs, value, timestamp.
type Got = (Vec<(String, String)>, f64, i64);

/// The remote-write sink: answers from `script`, then `default`; keeps accepted samples.
#[derive(Debug)]
struct Sink {
    script: Mutex<VecDeque<u16>>,
    default: Mutex<u16>,
    requests: AtomicUsize,
    samples: Mutex<Vec<Got>>,
    /// Client certificate (DER) of each accepted request.
    peers: Mutex<Vec<Vec<u8>>>,
    bad_headers: AtomicUsize,
    /// Remote Write 2.0 requests (answered like Prometheus 2.42: 204, nothing stored).
    v2_requests: AtomicUsize,
    /// Requests holding a series with this label value get 503, forever.
    poison: Mutex<Option<String>>,
}

impl Sink {
    fn new(script: &[u16], default: u16) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.iter().copied().collect()),
            default: Mutex::new(default),
            requests: AtomicUsize::new(0),
            samples: Mutex::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            bad_headers: AtomicUsize::new(0),
            v2_requests: AtomicUsize::new(0),
            poison: Mutex::new(None),
        })
    }
    fn samples(&self) -> Vec<Got> {
        self.samples.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }
}

#[derive(Debug, Clone)]
struct Peer(Vec<u8>);

async fn write(
    State(sink): State<Arc<Sink>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if h("content-type").contains("io.prometheus.write.v2.Request") {
        // As Prometheus 2.42 does: it reads a 2.0 body as an empty 1.0 request, stores nothing
        // and answers 204 without a written count.
        sink.v2_requests.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NO_CONTENT, HeaderMap::new(), "");
    }
    sink.requests.fetch_add(1, Ordering::SeqCst);
    if h("content-encoding") != "snappy"
        || h("content-type") != "application/x-protobuf"
        || h("x-prometheus-remote-write-version") != "0.1.0"
        || !h("user-agent").starts_with("slo-gateway/")
        || !h(remote_write::headers::SENT_AT)
            .parse::<i64>()
            .is_ok_and(|ms| ms > 0)
    {
        sink.bad_headers.fetch_add(1, Ordering::SeqCst);
    }
    let request: WriteRequest = decode_write_request(&body, 32 << 20).unwrap();
    let poisoned = sink.poison.lock().unwrap().as_ref().is_some_and(|p| {
        request
            .timeseries
            .iter()
            .any(|t| t.labels.iter().any(|l| &l.value == p))
    });
    let code = if poisoned {
        503
    } else {
        sink.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*sink.default.lock().unwrap())
    };
    if code == 0 {
        // Never answers: a request in flight at shutdown.
        std::future::pending::<()>().await;
    }
    let mut out = HeaderMap::new();
    if code == 503 {
        out.insert("retry-after", "0".parse().unwrap());
    }
    if !(200..300).contains(&code) {
        let status = StatusCode::from_u16(code).unwrap();
        return (status, out, "out of order sample\nsecond line never logged");
    }
    let mut samples = sink.samples.lock().unwrap();
    for series in request.timeseries {
        let labels: Vec<(String, String)> = series
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for s in series.samples {
            samples.push((labels.clone(), s.value, s.timestamp));
        }
    }
    sink.peers.lock().unwrap().push(peer.0);
    (StatusCode::NO_CONTENT, out, "")
}

/// Serves `sink` over TLS requiring a client certificate of the dev CA.
async fn spawn_sink(pki: &DevPki, sink: Arc<Sink>) -> SocketAddr {
    let config = common::tls::server_config(&ServerFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: pki.ca.clone(),
    })
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let app = Router::new()
        .route("/api/v1/write", post(write))
        .with_state(sink);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec())
                    .unwrap_or_default();
                let service =
                    hyper_util::service::TowerToHyperService::new(app.layer(Extension(Peer(peer))));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A minimal HTTP CONNECT proxy; records each CONNECT target.
async fn spawn_connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut parts = head.split_whitespace();
                let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                log.lock().unwrap().push(target.to_string());
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, seen)
}

struct Setup {
    dir: tempfile::TempDir,
    pki: DevPki,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_dev_pki(dir.path(), &["a".to_string(), "b".to_string()]).unwrap();
    Setup { dir, pki }
}

/// Agent config against the stub and the sink; `extra` is appended under `remote_write:`.
fn agent_config(s: &Setup, federate: SocketAddr, sink: SocketAddr, extra: &str) -> AgentConfig {
    let text = r#"
listen: 127.0.0.1:0
external_labels: {seed: a}
scrape:
  interval: 50ms
  timeout: 50ms
  targets:
    - url: http://FEDERATE/federate
      match: ['{__name__=~"shoot:.+"}', 'up']
remote_write:
  url: https://SINK/api/v1/write
  tls: {ca_file: ca.pem, cert_file: seed-a.pem, key_file: seed-a-key.pem, reload_interval: 50ms}
  shards: 3
  max_samples_per_request: 2
  retry: {min_backoff: 5ms, max_backoff: 20ms}
EXTRA
buffer: {path: buffer, max_bytes: 1048576}
"#
    .replace("FEDERATE", &federate.to_string())
    .replace("SINK", &sink.to_string())
    .replace("EXTRA", extra);
    yaml_config::parse(&s.dir.path().join("agent.yaml"), &text).unwrap()
}

/// A running agent and the means to stop it.
struct Running {
    metrics: AgentMetrics,
    readiness: Readiness,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(config: AgentConfig, dir: &Path) -> Running {
    let mut registry = Registry::default();
    run_agent(Agent::new(config, dir, &mut registry).unwrap())
}

fn run_agent(agent: Agent) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = agent.metrics();
    let readiness = agent.readiness();
    let done = tokio::spawn(agent.run(async move {
        let _ = stopped.await;
    }));
    Running {
        metrics,
        readiness,
        stop,
        done,
    }
}

impl Running {
    async fn stop(self) -> AgentMetrics {
        let (metrics, result) = self.finish().await;
        result.unwrap();
        metrics
    }

    /// Stops the agent and returns what `run` returned.
    async fn finish(self) -> (AgentMetrics, anyhow::Result<()>) {
        let _ = self.stop.send(());
        let result = self.done.await.unwrap();
        (self.metrics, result)
    }
}

/// [`eventually`] for a synchronous condition, with the 30 s these tests allow (tokio's clock:
/// paused in most of them, so the wait costs nothing).
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    eventually(what, || std::future::ready(condition()))
        .within(Duration::from_secs(30))
        .every(Duration::from_millis(20))
        .await;
}

/// Samples the agent queued: scraped, minus skipped, plus stale markers.
fn queued(m: &AgentMetrics) -> u64 {
    m.samples_scraped() - m.samples_dropped(DropReason::NotNewer) + m.stale_markers()
}

/// Restarts the agent on `s`'s buffer against a sink that accepts: every sample of the first
/// run (older than `cut`, `backlog` of them) arrives, in order per series.
async fn delivers_backlog_after_restart(s: &Setup, fed_addr: SocketAddr, cut: i64, backlog: u64) {
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(s, fed_addr, sink_addr, ""), s.dir.path());
    let old = |sink: &Sink| sink.samples().iter().filter(|g| g.2 < cut).count() as u64;
    wait_for("the first run's samples", || old(&sink) >= backlog).await;
    agent.stop().await;
    assert_eq!(old(&sink), backlog);
    assert_per_series_order(&sink.samples());
}

/// Every series' timestamps strictly increase in arrival order (no reordering, no duplicates).
fn assert_per_series_order(samples: &[Got]) {
    let mut last: HashMap<&[(String, String)], i64> = HashMap::new();
    for (labels, _, ts) in samples {
        if let Some(prev) = last.insert(labels.as_slice(), *ts) {
            assert!(prev < *ts, "{labels:?}: {ts} after {prev}");
        }
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const BODY: &str = r#"# HELP shoot:availability Availability.
# TYPE shoot:availability gauge
shoot:availability{kind="vpn",instance="",cluster="shoot--p--a"} 1
shoot:availability{kind="seed",instance="",cluster="shoot--p--a",seed="own"} 0.5
this is { not a valid line
up{job="x"} 1 123
"#;

#[tokio::test(start_paused = true)]
async fn scrape_to_mtls_sink_with_labels_and_stale_markers() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    // Not ready while every scrape fails (asserting before the first scrape would race it).
    fed.fail.store(503, Ordering::SeqCst);
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("a failed scrape", || m.scrapes(ScrapeResult::Error) >= 1).await;
    assert!(!agent.readiness.get());
    fed.fail.store(0, Ordering::SeqCst);
    wait_for("first samples", || sink.count() >= 3).await;
    assert!(agent.readiness.get());
    // `up` vanishes.
    *fed.body.lock().unwrap() = BODY.lines().take(4).collect::<Vec<_>>().join("\n");
    wait_for("stale marker", || {
        sink.samples().iter().any(|(_, v, _)| is_stale_marker(*v))
    })
    .await;
    let metrics = agent.stop().await;

    let samples = sink.samples();
    assert_per_series_order(&samples);
    let vpn = pairs(&[
        ("__name__", "shoot:availability"),
        ("cluster", "shoot--p--a"),
        ("kind", "vpn"),
        ("seed", "a"),
    ]);
    let own = pairs(&[
        ("__name__", "shoot:availability"),
        ("cluster", "shoot--p--a"),
        ("kind", "seed"),
        ("seed", "own"),
    ]);
    let up = pairs(&[("__name__", "up"), ("job", "x"), ("seed", "a")]);
    for (labels, value, ts) in &samples {
        if *labels == vpn {
            assert_eq!(*value, 1.0);
        } else if *labels == own {
            assert_eq!(*value, 0.5);
        } else {
            assert_eq!(*labels, up, "unexpected series");
            // Scrape time, not the source's 123.
            assert!(*ts > 1_000_000_000_000);
        }
    }
    let up_samples: Vec<&Got> = samples.iter().filter(|g| g.0 == up).collect();
    let stale: Vec<&&Got> = up_samples.iter().filter(|g| is_stale_marker(g.1)).collect();
    assert_eq!(stale.len(), 1, "exactly one stale marker");
    assert!(
        is_stale_marker(up_samples.last().unwrap().1),
        "marker is last"
    );
    assert_eq!(metrics.stale_markers(), 1);
    assert!(metrics.parse_errors() >= 1);
    assert_eq!(sink.bad_headers.load(Ordering::SeqCst), 0);
    // remote_write.protocol auto: a first 2.0 request per lane at most (3 lanes in parallel),
    // answered like Prometheus 2.42 (204 without a written count), then those batches and
    // everything else as 1.0; nothing lost (checked above).
    let v2 = sink.v2_requests.load(Ordering::SeqCst);
    assert!((1..=3).contains(&v2), "{v2} 2.0 requests");
    assert!(!metrics.sends_v2());
    assert_eq!(sink.count() as u64, metrics.samples_sent());
    assert!(metrics.bytes_sent() > 0);
    assert!(metrics.last_successful_send_unix() > 0.0);
    // match[] repeated and URL-encoded.
    let query = fed.queries.lock().unwrap()[0].clone();
    assert_eq!(
        query,
        "match%5B%5D=%7B__name__%3D%7E%22shoot%3A.%2B%22%7D&match%5B%5D=up"
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_in_order_without_loss() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[503, 503, 500, 503, 503, 503], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("a few scrapes", || m.scrapes(ScrapeResult::Success) >= 5).await;
    // Everything vanishes: stale markers for all three series, then nothing new.
    fed.body.lock().unwrap().clear();
    wait_for("all queued samples delivered", || {
        m.stale_markers() == 3 && sink.count() as u64 == queued(&m)
    })
    .await;
    let metrics = agent.stop().await;
    let samples = sink.samples();
    assert_per_series_order(&samples);
    assert_eq!(samples.len() as u64, metrics.samples_sent());
    assert!(metrics.requests("503") >= 5 && metrics.requests("500") == 1);
    assert_eq!(metrics.samples_dropped(DropReason::Rejected4xx), 0);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_dropped_and_counted_not_retried() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 400);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("drops", || m.records_dropped(DropReason::Rejected4xx) >= 4).await;
    let metrics = agent.stop().await;
    // One POST per record: nothing was retried.
    assert_eq!(
        sink.requests.load(Ordering::SeqCst) as u64,
        metrics.records_dropped(DropReason::Rejected4xx)
    );
    assert!(metrics.samples_dropped(DropReason::Rejected4xx) >= 4);
    assert_eq!(metrics.samples_sent(), 0);
    assert_eq!(sink.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn unsent_records_survive_a_restart_and_go_first() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 503);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let config = agent_config(&s, fed_addr, sink_addr, "");
    let first = start(config.clone(), s.dir.path());
    let m = first.metrics.clone();
    wait_for("a backlog", || m.scrapes(ScrapeResult::Success) >= 4).await;
    let first = first.stop().await;
    let cut = common::telemetry::now_unix_ms();
    let backlog = queued(&first);
    assert!(backlog >= 12);
    assert_eq!(first.samples_sent(), 0);
    assert!(first.queue_records() > 0 && first.queue_bytes() > 0);

    // The receiver is back; a new agent on the same buffer, catching up at a bounded rate.
    *sink.default.lock().unwrap() = 204;
    let mut config = config;
    config.remote_write.max_catchup_requests_per_second = Some(200.0);
    let second = start(config, s.dir.path());
    let m = second.metrics.clone();
    let old = |sink: &Sink| sink.samples().iter().filter(|g| g.2 < cut).count() as u64;
    wait_for("backlog and fresh data delivered", || {
        old(&sink) >= backlog && m.samples_sent() > backlog
    })
    .await;
    second.stop().await;
    // Every sample of the first run arrived exactly once, and per series before the new ones.
    assert_eq!(old(&sink), backlog);
    assert_per_series_order(&sink.samples());
}

#[tokio::test(start_paused = true)]
async fn sends_through_a_connect_proxy() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let (proxy, seen) = spawn_connect_proxy().await;
    let extra = format!("  proxy_url: http://{proxy}");
    let agent = start(agent_config(&s, fed_addr, sink_addr, &extra), s.dir.path());
    wait_for("samples via proxy", || sink.count() >= 3).await;
    agent.stop().await;
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|t| *t == sink_addr.to_string()), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn rotated_client_certificate_is_used_without_restart() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    // The agent's own copies of its cert and key, replaced in place below.
    let cert = s.dir.path().join("agent.pem");
    let key = s.dir.path().join("agent-key.pem");
    let (_, a_cert, a_key) = &s.pki.seeds[0];
    let (_, b_cert, b_key) = &s.pki.seeds[1];
    std::fs::copy(a_cert, &cert).unwrap();
    std::fs::copy(a_key, &key).unwrap();
    let mut config = agent_config(&s, fed_addr, sink_addr, "");
    config.remote_write.tls.cert_file = PathBuf::from("agent.pem");
    config.remote_write.tls.key_file = PathBuf::from("agent-key.pem");
    let der = |p: &Path| common::tls::load_certs(p).unwrap()[0].to_vec();
    let (a_der, b_der) = (der(a_cert), der(b_cert));
    let agent = start(config, s.dir.path());
    wait_for("a request with cert a", || {
        sink.peers.lock().unwrap().contains(&a_der)
    })
    .await;
    // As cert-manager does: write new files, rename over the old ones.
    for (from, to) in [(b_key, &key), (b_cert, &cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    wait_for("a request with cert b", || {
        sink.peers.lock().unwrap().contains(&b_der)
    })
    .await;
    let metrics = agent.stop().await;
    assert_per_series_order(&sink.samples());
    assert!(metrics.samples_sent() > 0);
}

#[tokio::test(start_paused = true)]
async fn failed_scrapes_keep_state_and_emit_no_stale_markers() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("first samples", || sink.count() >= 3).await;
    fed.fail.store(503, Ordering::SeqCst);
    wait_for("failed scrapes", || m.scrapes(ScrapeResult::Error) >= 3).await;
    assert_eq!(m.stale_markers(), 0);
    fed.fail.store(0, Ordering::SeqCst);
    let before = m.scrapes(ScrapeResult::Success);
    wait_for("recovery", || {
        m.scrapes(ScrapeResult::Success) >= before + 2
    })
    .await;
    let metrics = agent.stop().await;
    assert_eq!(metrics.stale_markers(), 0);
    assert_eq!(metrics.series_active(), 3);
    assert_per_series_order(&sink.samples());
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_cap_is_cut_at_a_line_and_declares_nothing_vanished() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let mut config = agent_config(&s, fed_addr, sink_addr, "");
    let agent = start(config.clone(), s.dir.path());
    wait_for("all three series", || sink.count() >= 3).await;
    let first = agent.stop().await;
    assert_eq!(first.scrapes(ScrapeResult::Truncated), 0);

    // Same buffer, now a cap that ends inside the second sample line.
    let cap = BODY.find("shoot:availability{kind=\"seed\"").unwrap() + 20;
    config.scrape.max_body_bytes = cap as u64;
    // Records the first agent left queued are replayed first; look at new scrapes only.
    let cut = common::telemetry::now_unix_ms();
    let agent = start(config, s.dir.path());
    let m = agent.metrics.clone();
    wait_for("truncated scrapes", || {
        m.scrapes(ScrapeResult::Truncated) >= 3
    })
    .await;
    let metrics = agent.stop().await;
    assert_eq!(metrics.stale_markers(), 0);
    let later: Vec<Got> = sink.samples().into_iter().filter(|g| g.2 >= cut).collect();
    assert!(!later.is_empty());
    // Only the line before the cut; the cut-off line is not parsed from its fragment.
    assert!(
        later
            .iter()
            .all(|g| g.0.contains(&("kind".into(), "vpn".into()))),
        "{later:?}"
    );
    drop(fed);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_bounded_and_keeps_the_request_in_flight_queued() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let hung = Sink::new(&[], 0);
    let hung_addr = spawn_sink(&s.pki, hung.clone()).await;
    // The default grace, 30 s: on the paused clock the wait costs nothing.
    let config = agent_config(&s, fed_addr, hung_addr, "  shutdown_grace: 30s");
    let agent = start(config, s.dir.path());
    let m = agent.metrics.clone();
    wait_for("a request in flight", || {
        hung.requests.load(Ordering::SeqCst) >= 1 && m.scrapes(ScrapeResult::Success) >= 2
    })
    .await;
    let first = agent.stop().await;
    let cut = common::telemetry::now_unix_ms();
    let backlog = queued(&first);
    assert_eq!(first.samples_sent(), 0);

    delivers_backlog_after_restart(&s, fed_addr, cut, backlog).await;
}

#[tokio::test(start_paused = true)]
async fn server_name_is_verified_instead_of_the_url_host() {
    // A PKI whose receiver certificate names only receiver.example, not 127.0.0.1.
    let s = setup();
    let ca = certs::CertificateAuthority::new("server_name test CA").unwrap();
    let server = ca.issue_server(&["receiver.example"]).unwrap();
    let client = ca.issue_seed("a").unwrap();
    let dir = s.dir.path().join("named");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name)
    };
    let pki = DevPki {
        ca: write("ca.pem", &ca.cert_pem()),
        server_cert: write("server.pem", &server.cert_pem),
        server_key: write("server-key.pem", &server.key_pem),
        seeds: vec![(
            "a".into(),
            write("seed-a.pem", &client.cert_pem),
            write("seed-a-key.pem", &client.key_pem),
        )],
    };
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&pki, sink.clone()).await;
    let mut config = agent_config(&s, fed_addr, sink_addr, "");
    config.remote_write.tls.ca_file = dir.join("ca.pem");
    config.remote_write.tls.cert_file = dir.join("seed-a.pem");
    config.remote_write.tls.key_file = dir.join("seed-a-key.pem");

    // Without server_name the certificate does not match 127.0.0.1: nothing gets through.
    let agent = start(config.clone(), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("failed handshakes", || m.requests("network") >= 3).await;
    agent.stop().await;
    assert_eq!(sink.requests.load(Ordering::SeqCst), 0);

    config.remote_write.tls.server_name = Some("receiver.example".into());
    let agent = start(config, s.dir.path());
    wait_for("samples via server_name", || sink.count() >= 3).await;
    agent.stop().await;
    assert_per_series_order(&sink.samples());
}

/// Runs only as a child of `environment_proxy_settings_are_honoured`, which sets `HTTPS_PROXY`
/// (and maybe `NO_PROXY`) for it alone: the environment is process-wide.
#[tokio::test(start_paused = true)]
#[ignore = "run by environment_proxy_settings_are_honoured in a child process"]
async fn env_proxy_child() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    wait_for("samples", || sink.count() >= 3).await;
    agent.stop().await;
    println!("SINK {sink_addr}");
}

#[tokio::test(start_paused = true)]
async fn environment_proxy_settings_are_honoured() {
    let (proxy, seen) = spawn_connect_proxy().await;
    let run = |no_proxy: Option<&str>| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "tests::env_proxy_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("HTTPS_PROXY", format!("http://{proxy}"))
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("no_proxy");
        match no_proxy {
            Some(v) => child.env("NO_PROXY", v),
            None => child.env_remove("NO_PROXY"),
        };
        tokio::task::spawn_blocking(move || child.output().unwrap())
    };
    let output = run(None).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{stdout}");
    let sink = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SINK "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert!(
        seen.lock().unwrap().contains(&sink),
        "HTTPS_PROXY was not used"
    );

    // NO_PROXY exempts the receiver: nothing more goes through the proxy.
    let before = seen.lock().unwrap().len();
    let output = run(Some("127.0.0.1")).await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(seen.lock().unwrap().len(), before, "NO_PROXY was ignored");
}

#[tokio::test(start_paused = true)]
async fn run_from_a_config_file_serves_the_admin_endpoints() {
    common::tls::install_default_crypto_provider();
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let admin = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let text = format!(
        "listen: {admin}\nscrape:\n  interval: 50ms\n  timeout: 50ms\n  targets: [{{url: 'http://{fed_addr}/federate', match: [up]}}]\nremote_write:\n  url: https://{sink_addr}/api/v1/write\n  tls: {{ca_file: ca.pem, cert_file: seed-a.pem, key_file: seed-a-key.pem}}\nbuffer: {{path: buffer}}\n"
    );
    let file = s.dir.path().join("agent.yaml");
    std::fs::write(&file, text).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        serve_from_config(&file, None, async move {
            let _ = stopped.await;
        })
        .await
    });
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{admin}{path}"))
                .send()
                .await
                .ok()?;
            Some((response.status().as_u16(), response.text().await.ok()?))
        }
    };
    let mut ready = false;
    for _ in 0..500 {
        if get("/readyz").await.is_some_and(|(code, _)| code == 200) && sink.count() > 0 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "never ready or nothing delivered");
    assert_eq!(get("/healthz").await.unwrap().0, 200);
    let (_, metrics) = get("/metrics").await.unwrap();
    assert!(
        metrics.contains("slo_gateway_agent_samples_sent_total"),
        "{metrics}"
    );
    assert!(metrics.contains("slo_gateway_agent_scrapes_total{result=\"success\"}"));
    let (code, status) = get("/status").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        status.contains(&format!("http://{fed_addr}/federate")),
        "{status}"
    );
    assert!(status.contains("<th>Mode</th><td>disk</td>"), "{status}");
    // A second agent on the same buffer exits at once, naming the holder.
    let config_file = s.dir.path().join("agent.yaml");
    let second = serve_from_config(&config_file, None, std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second agent must not start")
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("locked by another agent")
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    // The buffer is relative to the config file.
    assert!(s.dir.path().join("buffer").is_dir());
}

#[tokio::test(start_paused = true)]
async fn a_request_refused_until_it_is_older_than_max_age_is_dropped_and_the_rest_flows() {
    let s = setup();
    let body = format!("{BODY}shoot:availability{{kind=\"poison\"}} 1\n");
    let (fed_addr, _fed) = spawn_federate(&body).await;
    let sink = Sink::new(&[], 204);
    *sink.poison.lock().unwrap() = Some("poison".into());
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let mut config = agent_config(&s, fed_addr, sink_addr, "");
    config.buffer.max_age = Duration::from_millis(600);
    let agent = start(config, s.dir.path());
    let m = agent.metrics.clone();
    let vpn = |sink: &Sink| {
        sink.samples()
            .iter()
            .filter(|g| g.0.contains(&("kind".into(), "vpn".into())))
            .count()
    };
    wait_for("poison records dropped and later data delivered", || {
        m.records_dropped(DropReason::MaxAge) >= 3 && vpn(&sink) >= 10
    })
    .await;
    let metrics = agent.stop().await;
    assert!(metrics.samples_dropped(DropReason::MaxAge) >= 3);
    assert!(sink
        .samples()
        .iter()
        .all(|g| !g.0.contains(&("kind".into(), "poison".into()))));
    assert_per_series_order(&sink.samples());
}

#[tokio::test(start_paused = true)]
async fn a_scrape_above_max_series_is_refused_whole_and_the_old_state_is_kept() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let mut config = agent_config(&s, fed_addr, sink_addr, "");
    config.scrape.max_series = 10;
    let agent = start(config, s.dir.path());
    let m = agent.metrics.clone();
    wait_for("first samples", || sink.count() >= 3).await;
    let explosion: String = (0..50)
        .map(|i| format!("shoot:x{{i=\"{i}\"}} 1\n"))
        .collect();
    *fed.body.lock().unwrap() = explosion;
    wait_for("refused scrapes", || m.scrapes(ScrapeResult::Refused) >= 3).await;
    let during = sink.count();
    *fed.body.lock().unwrap() = BODY.to_string();
    wait_for("delivery again", || sink.count() >= during + 6).await;
    let metrics = agent.stop().await;
    // Nothing of the explosion went out, and the old series were not declared vanished.
    assert!(sink
        .samples()
        .iter()
        .all(|g| !g.0[0].1.starts_with("shoot:x")));
    assert_eq!(metrics.stale_markers(), 0);
    assert_eq!(metrics.series_active(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_backlog_is_sent_in_larger_merged_requests_in_order() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 503);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("a backlog", || m.scrapes(ScrapeResult::Success) >= 10).await;
    *sink.default.lock().unwrap() = 204;
    wait_for("the backlog delivered", || {
        m.samples_sent() >= 30 && sink.count() as u64 == m.samples_sent()
    })
    .await;
    let metrics = agent.stop().await;
    let accepted = sink.peers.lock().unwrap().len() as u64;
    // Requests are cut at 2 samples; merged backlog requests carry more.
    assert!(
        metrics.samples_sent() > 2 * accepted,
        "{} samples in {accepted} requests",
        metrics.samples_sent()
    );
    assert_per_series_order(&sink.samples());
    assert_eq!(metrics.samples_dropped(DropReason::Rejected4xx), 0);
}

/// The issue's case: the receiver down, the buffer's disk full, a graceful shutdown. What the
/// agent held in memory is written at shutdown (into the queue's reserve) and delivered after the
/// restart: nothing the receiver did not acknowledge is lost, nothing is counted as dropped.
#[tokio::test(start_paused = true)]
async fn a_full_disk_at_shutdown_loses_nothing_unacknowledged() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let down = Sink::new(&[], 503);
    let down_addr = spawn_sink(&s.pki, down.clone()).await;
    let mut registry = Registry::default();
    let config = agent_config(&s, fed_addr, down_addr, "");
    let agent = Agent::new(config, s.dir.path(), &mut registry).unwrap();
    agent.queue.with(|q| q.set_free_space(Some(0))).await;
    let agent = run_agent(agent);
    let m = agent.metrics.clone();
    wait_for("memory mode and a backlog", || {
        m.queue_memory_mode() && m.scrapes(ScrapeResult::Success) >= 5
    })
    .await;
    let first = agent.stop().await;
    let cut = common::telemetry::now_unix_ms();
    let backlog = queued(&first);
    assert!(backlog > 0);
    assert_eq!(first.samples_sent(), 0);
    for &reason in DropReason::ALL {
        assert_eq!(first.records_dropped(reason), 0, "{reason}");
    }

    delivers_backlog_after_restart(&s, fed_addr, cut, backlog).await;
}

/// When even the reserve cannot take them (the disk fails outright), the records held in memory
/// are lost: counted by reason, with records and samples, and named in the exit error.
#[tokio::test(start_paused = true)]
async fn a_loss_at_shutdown_is_counted_and_named_in_the_exit_error() {
    let s = setup();
    let (fed_addr, _fed) = spawn_federate(BODY).await;
    let down = Sink::new(&[], 503);
    let down_addr = spawn_sink(&s.pki, down.clone()).await;
    let mut registry = Registry::default();
    let config = agent_config(&s, fed_addr, down_addr, "");
    let agent = Agent::new(config, s.dir.path(), &mut registry).unwrap();
    agent.queue.with(|q| q.set_fail_writes(true)).await;
    let agent = run_agent(agent);
    let m = agent.metrics.clone();
    wait_for("memory mode and a backlog", || {
        m.queue_memory_mode() && m.scrapes(ScrapeResult::Success) >= 3
    })
    .await;
    let (m, result) = agent.finish().await;
    let error = format!("{:#}", result.unwrap_err());
    let (records, samples) = (
        m.records_dropped(DropReason::Unwritten),
        m.samples_dropped(DropReason::Unwritten),
    );
    assert!(records > 0);
    assert_eq!(samples, queued(&m));
    assert!(
        error.contains(&format!("{records} queued records ({samples} samples)")),
        "{error}"
    );
}

/// A body the agent cannot read is a failed scrape, counted as `unreadable`: no series goes
/// stale because of it (before, an unrequested gzip body parsed as a body without series and
/// every series got a stale marker).
#[tokio::test(start_paused = true)]
async fn an_unreadable_body_is_a_failed_scrape_and_nothing_goes_stale() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("first samples", || sink.count() >= 3).await;
    // Bytes of a gzip stream (header, then deflate data).
    let mut gzip = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03];
    gzip.extend((0..400u32).map(|i| (i * 7 + 3) as u8));
    let cases: [Raw; 4] = [
        (200, vec![("content-encoding", "gzip".into())], gzip.clone()),
        (200, vec![("content-encoding", "br".into())], BODY.into()),
        (200, vec![], gzip),
        (
            200,
            vec![("content-type", "text/html".into())],
            b"<html>\n<body>upstream error</body>\n</html>\n".to_vec(),
        ),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let before = m.scrapes(ScrapeResult::Unreadable);
        *fed.raw.lock().unwrap() = Some(case);
        wait_for(&format!("unreadable scrapes of case {i}"), || {
            m.scrapes(ScrapeResult::Unreadable) >= before + 2
        })
        .await;
        assert_eq!(m.stale_markers(), 0, "case {i}");
    }
    *fed.raw.lock().unwrap() = None;
    let before = m.scrapes(ScrapeResult::Success);
    wait_for("readable again", || {
        m.scrapes(ScrapeResult::Success) >= before + 2
    })
    .await;
    let metrics = agent.stop().await;
    assert_eq!(metrics.stale_markers(), 0);
    assert_eq!(metrics.series_active(), 3);
    assert!(sink.samples().iter().all(|g| !g.1.is_nan()));
    assert_per_series_order(&sink.samples());
}

/// A redirect to another origin is refused and counted, never followed (its series would be
/// stored under this seed); a redirect on the same origin (a route prefix) is followed.
#[tokio::test(start_paused = true)]
async fn a_redirect_to_another_origin_is_refused_and_counted() {
    let s = setup();
    let (fed_addr, fed) = spawn_federate(BODY).await;
    let (foreign_addr, foreign) =
        spawn_federate("shoot:availability{kind=\"foreign\",cluster=\"x\"} 1\n").await;
    let sink = Sink::new(&[], 204);
    let sink_addr = spawn_sink(&s.pki, sink.clone()).await;
    let agent = start(agent_config(&s, fed_addr, sink_addr, ""), s.dir.path());
    let m = agent.metrics.clone();
    wait_for("first samples", || sink.count() >= 3).await;
    for location in [
        format!("http://{foreign_addr}/federate"),
        format!("http://localhost:{}/federate", fed_addr.port()),
        format!("https://{fed_addr}/prefix/federate"),
    ] {
        let before = m.scrapes(ScrapeResult::RedirectRefused);
        *fed.raw.lock().unwrap() = Some((302, vec![("location", location.clone())], Vec::new()));
        wait_for(&format!("refused redirects to {location}"), || {
            m.scrapes(ScrapeResult::RedirectRefused) >= before + 2
        })
        .await;
    }
    assert!(foreign.queries.lock().unwrap().is_empty(), "followed");
    // Same origin: followed.
    *fed.raw.lock().unwrap() = Some((
        301,
        vec![("location", "/prefix/federate".into())],
        Vec::new(),
    ));
    let before = m.scrapes(ScrapeResult::Success);
    wait_for("scrapes through the same-origin redirect", || {
        m.scrapes(ScrapeResult::Success) >= before + 2
    })
    .await;
    let metrics = agent.stop().await;
    assert!(sink
        .samples()
        .iter()
        .all(|g| !g.0.contains(&("kind".into(), "foreign".into()))));
    assert_eq!(metrics.stale_markers(), 0);
    assert_eq!(metrics.series_active(), 3);
}
