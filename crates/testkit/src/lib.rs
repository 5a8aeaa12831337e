//! The test kit: helpers shared by the integration tests (`tests/it`, where it is `common`),
//! in a crate of its own so that the product crates never link it. Everything binds to 127.0.0.1 on an ephemeral port
//! and stops when the test's runtime ends; nothing needs a network or a pre-built binary.
//!
//! - [`TestPki`]: a CA kept in memory plus its server certificate, written into a tempdir, that
//!   issues client certificates (Gardener convention or any subject) on demand.
//! - [`client_config`], [`client_config_without_cert`], [`https_client`], [`tls_connect`],
//!   [`raw_request`]: the client side of mTLS, with reqwest or a raw tokio-rustls stream.
//! - [`ReceiverSetup`] (PKI, upstream, receiver), [`receiver_config`], [`start_receiver`],
//!   [`start_receiver_at`] (a restart on the same address), [`RunningReceiver`]: a `Receiver`
//!   on 127.0.0.1:0; [`WriteSetup`]: `receiver::app()`'s state for `oneshot` tests.
//! - [`agent`]: [`agent::AgentSetup`] (the agent in process) and [`agent::FederateSource`] (a
//!   `/federate` stub); the agent, federate source and SLO Prometheus as processes:
//!   [`pipeline::Pipeline`] with [`pipeline::Options`].
//! - [`RecordingUpstream`], [`closed_port_url`]: a Remote Write sink whose answer can be switched.
//! - [`eventually`]: the one bounded polling loop (deadlines times `SLO_GATEWAY_TEST_PATIENCE`);
//!   [`heavy`]: the slot a test holds while it runs real processes; [`free_port`].
//! - [`processes`]: real processes (Prometheus 2.42, the `slo-gateway` binary) and a scrape
//!   target; [`pipeline`]: the whole pipeline as processes, each part stoppable.
//! - [`browser`]: headless Chromium to load status pages as an operator would.
//! - [`series`], [`write_body`]: Remote Write payloads.
//!
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use certs::{CertificateAuthority, ClientSubject, Issued};
use common::tls::{self, ClientFiles};
use prometheus_client::registry::Registry;
use receiver::config::{
    ForwardConfig, IdentityConfig, LimitsConfig, ReceiverConfig, ServerTlsConfig,
};
use receiver::forward::Forwarder;
use receiver::{Receiver, ReceiverMetrics, WriteState};
use remote_write::{
    decode_write_request, encode_write_request, Label, Sample, TimeSeries, WriteRequest,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

pub mod agent;
pub mod browser;
pub mod pipeline;
pub mod processes;

pub use test_wait::{eventually, heavy, heavy_blocking, patient, HeavySlot, Load};

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

/// A development PKI in a tempdir (deleted on drop).
///
/// Files: `server-ca.pem` (what clients trust for the server), `client-ca.pem` (what the receiver
/// trusts for clients; initially the same CA, replace it to rotate the client CA), `server.pem`,
/// `server-key.pem` (for `localhost` and `127.0.0.1`), and whatever [`TestPki::client`] and
/// friends write. The CA stays in memory so tests can issue more certificates at any time.
#[derive(Debug)]
pub struct TestPki {
    /// The directory; relative paths in [`receiver_config`] resolve against it.
    pub dir: tempfile::TempDir,
    /// The CA that signed the server certificate and, by default, the client certificates.
    pub ca: CertificateAuthority,
    /// PEM of the CA certificate clients trust for the server.
    pub server_ca_file: PathBuf,
    /// PEM bundle the receiver verifies client certificates against.
    pub client_ca_file: PathBuf,
    /// Server certificate.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
}

impl TestPki {
    /// Generates a CA and a server certificate and writes them into a fresh tempdir.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::new("slo-gateway test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        let path = |name: &str| dir.path().join(name);
        let pki = Self {
            server_ca_file: path("server-ca.pem"),
            client_ca_file: path("client-ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server-key.pem"),
            ca,
            dir,
        };
        pki.write("server-ca.pem", &pki.ca.cert_pem());
        pki.write("client-ca.pem", &pki.ca.cert_pem());
        pki.write("server.pem", &server.cert_pem);
        pki.write("server-key.pem", &server.key_pem);
        pki
    }

    /// Writes `contents` to `name` in the PKI dir atomically (temp file + rename, as a
    /// Kubernetes secret volume swaps files) and returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// Writes `issued` as `<name>.pem` / `<name>-key.pem` and returns client files that trust
    /// `server-ca.pem` for the server.
    pub fn write_client(&self, name: &str, issued: &Issued) -> ClientFiles {
        ClientFiles {
            ca: self.server_ca_file.clone(),
            cert: self.write(&format!("{name}.pem"), &issued.cert_pem),
            key: self.write(&format!("{name}-key.pem"), &issued.key_pem),
        }
    }

    /// A Gardener-convention client certificate for `seed`, signed by this PKI's CA.
    pub fn seed_client(&self, seed: &str) -> ClientFiles {
        self.client_signed_by(
            &self.ca,
            &format!("seed-{seed}"),
            &ClientSubject::gardener_seed(seed),
        )
    }

    /// A client certificate with any `subject`, signed by this PKI's CA.
    pub fn client(&self, name: &str, subject: &ClientSubject) -> ClientFiles {
        self.client_signed_by(&self.ca, name, subject)
    }

    /// A client certificate with `subject` signed by `ca` (e.g. a foreign or a rotated CA).
    pub fn client_signed_by(
        &self,
        ca: &CertificateAuthority,
        name: &str,
        subject: &ClientSubject,
    ) -> ClientFiles {
        self.write_client(name, &ca.issue_client(subject).unwrap())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// The DER of the first certificate in a PEM file (to compare with `peer_certificates()`).
pub fn cert_der(path: &Path) -> Vec<u8> {
    tls::load_certs(path).unwrap()[0].to_vec()
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// The crate's own mTLS client config (`tls::client_config`) for `files`.
pub fn client_config(files: &ClientFiles) -> Arc<ClientConfig> {
    tls::client_config(files).unwrap()
}

/// A client config that trusts `server_ca` but presents no client certificate.
pub fn client_config_without_cert(server_ca: &Path) -> Arc<ClientConfig> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(tls::load_roots(server_ca).unwrap())
            .with_no_client_auth();
    Arc::new(config)
}

/// A reqwest client speaking mTLS with `files` (one connection pool per client).
pub fn https_client(files: &ClientFiles) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*client_config(files)).clone())
        .timeout(patient(Duration::from_secs(10)))
        .build()
        .unwrap()
}

/// Opens a TLS connection to `addr` as `127.0.0.1`. With TLS 1.3 a client whose certificate the
/// server refuses may still see `Ok` here: the refusal arrives as an alert on the first read.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(
        patient(Duration::from_secs(10)),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS connect timed out"))?
}

/// Sends one HTTP/1.1 request on `stream` (keeping the connection open) and returns the status
/// and body of the answer. `headers` are extra `(name, value)` pairs; `Host` and
/// `Content-Length` are added. Bounded by a 10 s timeout.
pub async fn raw_request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let io_error = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let exchange = async {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io_error("connection closed before the response head"));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io_error("no status line"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = buf[header_end..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io_error("connection closed inside the response body"));
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok((status, String::from_utf8_lossy(&body).to_string()))
    };
    tokio::time::timeout(patient(Duration::from_secs(10)), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))?
}

/// POSTs an RW 1.0 body with the standard headers; returns status, headers and body text.
pub async fn post_write(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client
        .post(url)
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The Remote Write 1.0 request headers, for [`raw_request`].
pub const RW1_HEADERS: [(&str, &str); 3] = [
    ("content-encoding", "snappy"),
    ("content-type", "application/x-protobuf"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

// ---------------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------------

/// A receiver config for `pki` forwarding to `forward_url`, with defaults elsewhere except
/// `reload_interval` (100 ms) and `handshake_timeout` (2 s). `listen`/`admin_listen` are not used
/// by [`start_receiver`].
pub fn receiver_config(pki: &TestPki, forward_url: &str) -> ReceiverConfig {
    ReceiverConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 1)),
        tls: ServerTlsConfig {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            client_ca_file: pki.client_ca_file.clone(),
            handshake_timeout: Duration::from_secs(2),
            reload_interval: Duration::from_millis(100),
        },
        identity: IdentityConfig::default(),
        forward: ForwardConfig {
            url: forward_url.to_string(),
            timeout: Duration::from_secs(5),
            ca_file: None,
        },
        limits: LimitsConfig::default(),
    }
}

/// A receiver serving on 127.0.0.1 (ephemeral port) in a spawned task.
#[derive(Debug)]
pub struct RunningReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The registry its metrics are in.
    pub registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Builds a [`Receiver`] from `config` (relative paths against `base_dir`), binds 127.0.0.1:0
/// and runs it until [`RunningReceiver::shutdown`] or the end of the test's runtime.
pub async fn start_receiver(config: &ReceiverConfig, base_dir: &Path) -> RunningReceiver {
    start_receiver_at(config, base_dir, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// [`start_receiver`] on `addr`: with the address of a receiver that was shut down, a restart
/// that its clients reach again without being told.
pub async fn start_receiver_at(
    config: &ReceiverConfig,
    base_dir: &Path,
    addr: SocketAddr,
) -> RunningReceiver {
    let mut registry = Registry::default();
    let receiver = Receiver::new(config, base_dir, &mut registry).unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(receiver.run(listener, async move {
        let _ = rx.await;
    }));
    RunningReceiver {
        addr,
        registry,
        shutdown: Some(tx),
        task,
    }
}

impl RunningReceiver {
    /// `https://127.0.0.1:<port>/api/v1/write`.
    pub fn write_url(&self) -> String {
        format!("https://{}/api/v1/write", self.addr)
    }

    /// The metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        registry_text(&self.registry)
    }

    /// Triggers shutdown and waits up to `within` for `run` to return. `Err` on timeout.
    pub async fn shutdown(mut self, within: Duration) -> Result<(), tokio::time::error::Elapsed> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(within, &mut self.task)
            .await
            .map(|joined| joined.unwrap())
    }
}

/// A PKI, a recording upstream answering 204, and a receiver with the default test config
/// forwarding to it: the setup most tests start from ([`ReceiverSetup`] with no changes).
pub async fn start_default() -> (TestPki, RecordingUpstream, RunningReceiver) {
    ReceiverSetup::new().start().await
}

/// A config change applied by [`ReceiverSetup`].
type ConfigEdit = Box<dyn FnOnce(&mut ReceiverConfig)>;

/// Builds a receiver test's setup: a [`TestPki`], a [`RecordingUpstream`] answering 204, and a
/// [`RunningReceiver`] with [`receiver_config`] (changed by [`ReceiverSetup::config`] and
/// [`ReceiverSetup::limits`]) forwarding to that upstream unless told otherwise.
///
/// ```ignore
/// let (pki, upstream, receiver) = ReceiverSetup::new()
///     .limits(|l| l.max_body_bytes = 1024)
///     .start()
///     .await;
/// ```
#[derive(Default)]
pub struct ReceiverSetup {
    edits: Vec<ConfigEdit>,
    forward_to_closed_port: bool,
}

impl std::fmt::Debug for ReceiverSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSetup")
            .field("edits", &self.edits.len())
            .field("forward_to_closed_port", &self.forward_to_closed_port)
            .finish()
    }
}

impl ReceiverSetup {
    /// The default test setup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the receiver config before the receiver starts.
    pub fn config(mut self, edit: impl FnOnce(&mut ReceiverConfig) + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Changes the receiver's `limits` before it starts.
    pub fn limits(self, edit: impl FnOnce(&mut LimitsConfig) + 'static) -> Self {
        self.config(|config| edit(&mut config.limits))
    }

    /// Forwards to a port nothing listens on ([`closed_port_url`]) instead of the upstream.
    pub fn forward_to_closed_port(mut self) -> Self {
        self.forward_to_closed_port = true;
        self
    }

    /// Starts the upstream and the receiver.
    pub async fn start(self) -> (TestPki, RecordingUpstream, RunningReceiver) {
        let pki = TestPki::new();
        let upstream = RecordingUpstream::start().await;
        let forward_url = if self.forward_to_closed_port {
            closed_port_url().await
        } else {
            upstream.url()
        };
        let mut config = receiver_config(&pki, &forward_url);
        for edit in self.edits {
            edit(&mut config);
        }
        let receiver = start_receiver(&config, pki.dir.path()).await;
        (pki, upstream, receiver)
    }
}

/// Builds the state of `receiver::app()` for tests that drive the HTTP mapping with `oneshot`
/// (no TLS): a [`RecordingUpstream`] answering 204 and a [`WriteState`] forwarding to it with
/// the default identity config and [`WriteSetup::limits`], its metrics in a registry of its own.
#[derive(Debug, Default)]
pub struct WriteSetup {
    limits: LimitsConfig,
}

impl WriteSetup {
    /// Default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the limits.
    pub fn limits(mut self, edit: impl FnOnce(&mut LimitsConfig)) -> Self {
        edit(&mut self.limits);
        self
    }

    /// Starts the upstream; returns it, the state and the registry of the state's metrics.
    pub async fn start(self) -> (RecordingUpstream, Arc<WriteState>, Registry) {
        let upstream = RecordingUpstream::start().await;
        let mut registry = Registry::default();
        let state = Arc::new(WriteState::new(
            self.limits,
            IdentityConfig::default(),
            Forwarder::new(&upstream.url(), Duration::from_secs(5), None).unwrap(),
            ReceiverMetrics::register(&mut registry),
        ));
        (upstream, state, registry)
    }
}

/// The metrics of `registry` in the Prometheus text format.
pub fn registry_text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

/// The value of the sample of `name` with exactly `labels` (`{a="b",c="d"}` form, or "" for
/// none) in a text exposition, if present.
pub fn metric_value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Upstream
// ---------------------------------------------------------------------------------------------

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, decoded with `remote_write::decode_write_request` (64 MiB cap), or the error.
    pub request: Result<WriteRequest, String>,
}

/// A label whose presence makes the sink refuse the whole request, as Prometheus does for one
/// bad sample: `(name, value, status, message)`.
type Poison = (String, String, StatusCode, String);

#[derive(Debug)]
struct SinkState {
    reply: Mutex<(StatusCode, String)>,
    poison: Mutex<Option<Poison>>,
    received: Mutex<Vec<Received>>,
}

/// A Remote Write sink on 127.0.0.1:0 that records every request and answers with a status that
/// tests can switch (204 by default). [`RecordingUpstream::close`] stops it so its port refuses.
#[derive(Debug)]
pub struct RecordingUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RecordingUpstream {
    /// Starts the sink.
    pub async fn start() -> Self {
        let state = Arc::new(SinkState {
            reply: Mutex::new((StatusCode::NO_CONTENT, String::new())),
            poison: Mutex::new(None),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/api/v1/write", post(sink))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            state,
            stop: Some(stop),
            task,
        }
    }

    /// `http://127.0.0.1:<port>/api/v1/write`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Answer every following request with `status` and `body`.
    pub fn reply_with(&self, status: u16, body: &str) {
        *self.state.reply.lock().unwrap() = (StatusCode::from_u16(status).unwrap(), body.into());
    }

    /// Refuse every following request that holds a series with `name="value"` with `status`
    /// and `message`, storing nothing of it (Prometheus 2.42 rolls the whole request back).
    pub fn refuse_requests_with(&self, name: &str, value: &str, status: u16, message: &str) {
        *self.state.poison.lock().unwrap() = Some((
            name.into(),
            value.into(),
            StatusCode::from_u16(status).unwrap(),
            message.into(),
        ));
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The decoded requests received so far (panics on one that did not decode).
    pub fn write_requests(&self) -> Vec<WriteRequest> {
        self.received()
            .into_iter()
            .map(|r| r.request.expect("upstream received an undecodable body"))
            .collect()
    }

    /// Stops the sink (closing idle connections) and waits until its port is closed.
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(patient(Duration::from_secs(10)), &mut self.task)
            .await
            .expect("upstream did not stop")
            .unwrap();
    }
}

async fn sink(State(state): State<Arc<SinkState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = decode_write_request(&body, 64 << 20).map_err(|e| e.to_string());
    let poisoned = state
        .poison
        .lock()
        .unwrap()
        .clone()
        .filter(|(name, value, _, _)| {
            request.as_ref().is_ok_and(|r| {
                r.timeseries.iter().any(|s| {
                    s.labels
                        .iter()
                        .any(|l| &l.name == name && &l.value == value)
                })
            })
        });
    state
        .received
        .lock()
        .unwrap()
        .push(Received { headers, request });
    if let Some((_, _, status, message)) = poisoned {
        return (status, message).into_response();
    }
    let (status, body) = state.reply.lock().unwrap().clone();
    (status, body).into_response()
}

/// An `http://` write URL on a port nothing listens on (bound, then released).
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/api/v1/write")
}

// ---------------------------------------------------------------------------------------------
// Waiting and payloads
// ---------------------------------------------------------------------------------------------

/// A free port on 127.0.0.1 (bound and released; the window for a race is tiny in tests).
pub fn free_port() -> u16 {
    twin::landscape::process::free_port().expect("binding 127.0.0.1:0")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    common::telemetry::now_unix_ms()
}

/// A series with `labels` as given (no sorting, so tests can send bad ones) and `samples`
/// samples one millisecond apart, ending now.
pub fn series(labels: &[(&str, &str)], samples: usize) -> TimeSeries {
    let now = now_ms();
    TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        samples: (0..samples)
            .map(|i| Sample {
                value: i as f64,
                timestamp: now - (samples - i) as i64,
            })
            .collect(),
        exemplars: Vec::new(),
    }
}

/// A snappy-compressed RW 1.0 body of one sample of `up` (no other labels).
pub fn up_body() -> Vec<u8> {
    write_body(vec![series(&[("__name__", "up")], 1)])
}

/// A snappy-compressed RW 1.0 body of `timeseries`.
pub fn write_body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    encode_write_request(&WriteRequest {
        timeseries,
        metadata: Vec::new(),
    })
}

/// The labels of a series as `(name, value)` pairs.
pub fn label_pairs(series: &TimeSeries) -> Vec<(String, String)> {
    series
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}
