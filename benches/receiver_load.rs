//! The receiver end to end over mTLS (issue 18): the release `slo-gateway receiver` as its own
//! process, fed by this load generator over N concurrent keep-alive HTTP/1.1 mTLS connections
//! (client certificates of a few Gardener seeds), forwarding to a counting sink in this process.
//! Everything runs on this machine: the generator's CPU competes with the receiver's.
//!
//! The requests are built before the run (`support::write_request`: 2000 series × 1 sample,
//! ~7.8 labels, each carrying a spoofed `seed` label the receiver must overwrite) as Remote
//! Write 1.0 and 2.0 bodies, then replayed. The sink answers 204 and counts requests and bytes; it
//! decodes the first forwarded request of every point (every one with `--check`) and checks that
//! each series carries exactly one `seed` label naming one of the client certificates' seeds.
//!
//! Per point it reports samples/s accepted (the receiver's own
//! `slo_gateway_receiver_samples_accepted_total`, cross-checked with the sink's count and the
//! `X-Prometheus-Remote-Write-Samples-Written` answers), the CPU of the receiver and of this
//! process from `/proc/<pid>/stat`, and samples/s per receiver core.
//!
//! Run through `scripts/receiver-load.sh` (builds, holds the bench lock); by hand:
//! `cargo bench --bench receiver_load -- --bin target/release/slo-gateway --concurrency 4,8,16`,
//! `-- --help` for every option, `-- --check` for the short run that asserts every sample sent was
//! accepted and forwarded with its pinned seed label.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use slo_gateway::remote_write::headers::{self as rw, Protocol};
use slo_gateway::remote_write::v2::encode_v2_request;
use slo_gateway::remote_write::{decode_write_request, encode_write_request};
use slo_gateway::tls::ClientFiles;
use tokio::net::TcpListener;

mod support;

/// Series (= samples) per request, as the agent's default batch.
const SERIES: usize = 2000;
/// Distinct request bodies per protocol (different series), replayed in turn.
const VARIANTS: usize = 8;
/// The `seed` label the generator puts on every series: the receiver must replace it.
const SPOOFED_SEED: &str = "spoofed-seed";
/// Linux reports process CPU time in clock ticks of 1/100 s (`USER_HZ`, fixed for `/proc`).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Parser)]
#[command(about = "Receiver end to end over mTLS: load generator and counting sink")]
struct Args {
    /// The slo-gateway binary that runs the receiver.
    #[arg(
        long,
        env = "RECEIVER_LOAD_BIN",
        default_value = "target/release/slo-gateway"
    )]
    bin: PathBuf,
    /// Concurrent connections (= requests in flight) per point, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    concurrency: Vec<usize>,
    /// Remote Write protocols to send, comma-separated (v1, v2).
    #[arg(long, value_delimiter = ',', default_value = "v1,v2")]
    protocol: Vec<String>,
    /// Measured seconds per point.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds of load before each point's measurement starts.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seeds (client certificates); connections take them in turn.
    #[arg(long, default_value_t = 4)]
    seeds: usize,
    /// Worker threads of the generator's runtime (the sink runs on them too).
    #[arg(long, default_value_t = 2)]
    generator_threads: usize,
    /// Tokio worker threads of the receiver (`TOKIO_WORKER_THREADS`); default: the runtime's
    /// own choice (one per core).
    #[arg(long)]
    receiver_threads: Option<usize>,
    /// Directory for certificates, the receiver's config and log, and report.md.
    #[arg(
        long,
        env = "RECEIVER_LOAD_OUT",
        default_value = "target/receiver-load"
    )]
    out: PathBuf,
    /// Harness check: one short point per protocol; fails unless every sample sent was
    /// accepted, forwarded and pinned to its connection's seed.
    #[arg(long)]
    check: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench --bench '*'` (scripts/bench.sh) also starts this target, with criterion's
    // options: a load test of several minutes is not what that run asked for.
    if std::env::args()
        .any(|a| a.starts_with("--warm-up-time") || a.starts_with("--measurement-time"))
    {
        eprintln!(
            "receiver_load: skipped (a load test, not a criterion bench: scripts/receiver-load.sh)"
        );
        return Ok(());
    }
    let mut args = Args::parse();
    if args.check {
        args.concurrency = vec![4];
        args.duration = 3.0;
        args.warmup = 0.0;
    }
    ensure!(args.seeds > 0, "--seeds must be at least 1");
    // reqwest (plain HTTP to the admin port here) wants a process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocols = args
        .protocol
        .iter()
        .map(|p| match p.as_str() {
            "v1" => Ok(Protocol::V1),
            "v2" => Ok(Protocol::V2),
            other => bail!("unknown protocol {other:?} (v1, v2)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.generator_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(&args, &protocols))
}

async fn run(args: &Args, protocols: &[Protocol]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let out = args.out.canonicalize()?;
    let seeds: Vec<String> = (0..args.seeds).map(|i| format!("load-{i}")).collect();
    let pki = slo_gateway::certs::write_dev_pki(&out.join("certs"), &seeds)?;

    let sink = Arc::new(Sink::new(seeds.clone(), args.check));
    let sink_addr = start_sink(sink.clone()).await?;
    let listen = free_port()?;
    let admin = free_port()?;
    // The rate limit is on (every request passes through it, as in production) but far above
    // the load; max_series_per_seed stays at its default (each seed sends VARIANTS × SERIES
    // series).
    let config = format!(
        "listen: {listen}\nadmin_listen: {admin}\n\
         tls: {{cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}}\n\
         forward: {{url: 'http://{sink_addr}/api/v1/write'}}\n\
         limits: {{samples_per_second_per_seed: 100000000}}\n",
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca.display(),
    );
    let config_path = out.join("receiver.yaml");
    std::fs::write(&config_path, config)?;
    let mut receiver = ReceiverProcess::start(
        &args.bin,
        &config_path,
        &out.join("receiver.log"),
        args.receiver_threads,
    )?;
    let metrics_url = format!("http://{admin}/metrics");
    let http = reqwest::Client::new();
    let ready = wait_ready(
        &http,
        &format!("http://{admin}/readyz"),
        &mut receiver.child,
    )
    .await;
    if let Err(error) = ready {
        receiver.stop();
        return Err(error);
    }

    let clients: Vec<(String, Arc<rustls::ClientConfig>)> = pki
        .seeds
        .iter()
        .map(|(seed, cert, key)| {
            let files = ClientFiles {
                ca: pki.ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            };
            (seed.clone(), testkit::client_config(&files))
        })
        .collect();
    let now_ms = slo_gateway::telemetry::now_unix_ms();
    let requests: Vec<_> = (0..VARIANTS)
        .map(|v| support::write_request::gardener_request(SERIES, now_ms, SPOOFED_SEED, v))
        .collect();
    eprintln!(
        "receiver pid {}, sink {sink_addr}; {SERIES} series x 1 sample per request, {VARIANTS} \
         variants, RW 1.0 {} B, RW 2.0 {} B snappy",
        receiver.child.id(),
        encode_write_request(&requests[0]).len(),
        encode_v2_request(&requests[0]).len(),
    );

    let mut rows = Vec::new();
    let mut failure = None;
    'points: for &protocol in protocols {
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            requests
                .iter()
                .map(|r| {
                    Bytes::from(match protocol {
                        Protocol::V1 => encode_write_request(r),
                        Protocol::V2 => encode_v2_request(r),
                    })
                })
                .collect(),
        );
        for &concurrency in &args.concurrency {
            let point = Point {
                protocol,
                concurrency,
                warmup: Duration::from_secs_f64(args.warmup),
                duration: Duration::from_secs_f64(args.duration),
            };
            let result = run_point(
                &point,
                listen,
                &clients,
                &bodies,
                &sink,
                &http,
                &metrics_url,
                receiver.child.id(),
            )
            .await;
            match result {
                Ok(row) => {
                    eprintln!("{}", row.line());
                    let checked = if args.check {
                        row.check()
                    } else {
                        row.check_verified()
                    };
                    if let Err(error) = checked {
                        failure = Some(error);
                        break 'points;
                    }
                    rows.push(row);
                }
                Err(error) => {
                    failure = Some(error);
                    break 'points;
                }
            }
        }
    }
    receiver.stop();
    let report = report(&rows, args);
    println!("{report}");
    std::fs::write(out.join("report.md"), &report)?;
    if let Some(error) = failure {
        return Err(error.context(format!("see {}", out.join("receiver.log").display())));
    }
    if args.check {
        println!(
            "receiver-load check passed: every sample sent was accepted, forwarded and pinned"
        );
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// The receiver process
// -------------------------------------------------------------------------------------------

/// The receiver as a child process, killed when dropped.
struct ReceiverProcess {
    child: Child,
}

impl ReceiverProcess {
    fn start(
        bin: &Path,
        config: &Path,
        log: &Path,
        threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let mut command = Command::new(bin);
        command
            .args(["receiver", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(threads) = threads {
            command.env("TOKIO_WORKER_THREADS", threads.to_string());
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} (build it first)", bin.display()))?;
        Ok(Self { child })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the receiver exited ({status}) before it was ready");
        }
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "receiver not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// User plus system CPU seconds of process `pid`, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<u64>()? as f64)
    };
    // Fields 14 (utime) and 15 (stime) of proc(5); field 3 (state) is index 0 here.
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// The sum of every series of counter `name` in a text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if let Some(labels) = rest.strip_prefix('{') {
                labels.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

// -------------------------------------------------------------------------------------------
// The counting sink (the SLO Prometheus' place)
// -------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Sink {
    seeds: Vec<String>,
    /// Decode every request (check mode) rather than the first one of every point.
    verify_all: bool,
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Set to decode the next request (the first of every point).
    verify_next: AtomicBool,
    verified: Mutex<Verified>,
}

#[derive(Debug, Default, Clone)]
struct Verified {
    requests: u64,
    samples_by_seed: BTreeMap<String, u64>,
    problems: Vec<String>,
}

impl Sink {
    fn new(seeds: Vec<String>, verify_all: bool) -> Self {
        Self {
            seeds,
            verify_all,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            verify_next: AtomicBool::new(true),
            verified: Mutex::new(Verified::default()),
        }
    }

    fn verified(&self) -> Verified {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Decodes a forwarded body and checks its series' seed labels.
    fn verify(&self, body: &[u8]) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.requests += 1;
        let request = match decode_write_request(body, 64 << 20) {
            Ok(request) => request,
            Err(error) => {
                verified
                    .problems
                    .push(format!("forwarded body does not decode: {error}"));
                return;
            }
        };
        for series in &request.timeseries {
            let seeds: Vec<&str> = series
                .labels
                .iter()
                .filter(|l| l.name == "seed")
                .map(|l| l.value.as_str())
                .collect();
            match seeds.as_slice() {
                [seed] if self.seeds.iter().any(|s| s == seed) => {
                    *verified
                        .samples_by_seed
                        .entry((*seed).to_owned())
                        .or_default() += series.samples.len() as u64;
                }
                other => {
                    if verified.problems.len() < 10 {
                        verified
                            .problems
                            .push(format!("forwarded series with seed labels {other:?}"));
                    }
                }
            }
        }
    }

    async fn handle(
        &self,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<Empty<Bytes>>, hyper::Error> {
        let body = request.into_body().collect().await?.to_bytes();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if self.verify_all || self.verify_next.swap(false, Ordering::Relaxed) {
            self.verify(&body);
        }
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}

async fn start_sink(sink: Arc<Sink>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let sink = sink.clone();
                    async move { sink.handle(request).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

// -------------------------------------------------------------------------------------------
// Load
// -------------------------------------------------------------------------------------------

/// What the connections saw.
#[derive(Debug, Default)]
struct ClientCounts {
    requests_ok: AtomicU64,
    /// Samples the receiver said it wrote (`X-Prometheus-Remote-Write-Samples-Written`).
    samples_written: AtomicU64,
    /// Samples in requests answered 204, by seed.
    samples_by_seed: Mutex<BTreeMap<String, u64>>,
    other_answers: AtomicU64,
    first_problem: Mutex<Option<String>>,
}

impl ClientCounts {
    fn problem(&self, text: String) {
        self.other_answers.fetch_add(1, Ordering::Relaxed);
        self.first_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(text);
    }
}

/// One connection: sends the bodies in turn, one request in flight, until `stop`.
async fn connection(
    addr: SocketAddr,
    seed: String,
    tls: Arc<rustls::ClientConfig>,
    protocol: Protocol,
    bodies: Arc<Vec<Bytes>>,
    first: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<ClientCounts>,
) -> anyhow::Result<()> {
    let stream = testkit::tls_connect(addr, tls).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut samples = 0u64;
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let body = bodies[next % bodies.len()].clone();
        next += 1;
        let request = Request::post("/api/v1/write")
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_ENCODING, rw::CONTENT_ENCODING)
            .header(hyper::header::CONTENT_TYPE, protocol.content_type())
            .header(rw::VERSION_HEADER, protocol.version())
            .header(hyper::header::USER_AGENT, rw::USER_AGENT)
            .header(rw::SENT_AT, slo_gateway::telemetry::now_unix_ms())
            .body(Full::new(body))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let written: u64 = response
            .headers()
            .get(rw::SAMPLES_WRITTEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let text = response.into_body().collect().await?.to_bytes();
        counts.samples_written.fetch_add(written, Ordering::Relaxed);
        if status == StatusCode::NO_CONTENT {
            counts.requests_ok.fetch_add(1, Ordering::Relaxed);
            samples += SERIES as u64;
        } else {
            counts.problem(format!(
                "{seed}: {status} {}",
                String::from_utf8_lossy(&text).trim()
            ));
        }
    }
    *counts
        .samples_by_seed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(seed)
        .or_default() += samples;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Point {
    protocol: Protocol,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
}

/// Counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    accepted: f64,
    rejected: f64,
    receiver_cpu: f64,
    generator_cpu: f64,
    sink_requests: u64,
    sink_bytes: u64,
    written: u64,
}

async fn snapshot(
    http: &reqwest::Client,
    metrics_url: &str,
    receiver_pid: u32,
    sink: &Sink,
    counts: &ClientCounts,
) -> anyhow::Result<Snapshot> {
    let text = http.get(metrics_url).send().await?.text().await?;
    Ok(Snapshot {
        at: Instant::now(),
        accepted: metric_sum(&text, "slo_gateway_receiver_samples_accepted_total"),
        rejected: metric_sum(&text, "slo_gateway_receiver_samples_rejected_total"),
        receiver_cpu: cpu_seconds(&receiver_pid.to_string())?,
        generator_cpu: cpu_seconds("self")?,
        sink_requests: sink.requests.load(Ordering::Relaxed),
        sink_bytes: sink.bytes.load(Ordering::Relaxed),
        written: counts.samples_written.load(Ordering::Relaxed),
    })
}

/// One measured point.
#[derive(Debug, Clone)]
struct Row {
    point: Point,
    seconds: f64,
    /// Receiver counter: samples accepted per second.
    accepted_per_s: f64,
    /// Sink: forwarded samples per second (requests × SERIES).
    forwarded_per_s: f64,
    /// Clients: samples the receiver answered as written, per second.
    written_per_s: f64,
    receiver_cores: f64,
    generator_cores: f64,
    forwarded_mb_per_s: f64,
    rejected: f64,
    other_answers: u64,
    first_problem: Option<String>,
    // Totals over the whole point (check mode compares them).
    sent_by_seed: BTreeMap<String, u64>,
    accepted_total: f64,
    verified: Verified,
    sink_samples_total: u64,
}

impl Row {
    fn per_core(&self) -> f64 {
        self.accepted_per_s / self.receiver_cores.max(1e-9)
    }

    fn protocol(&self) -> &'static str {
        match self.point.protocol {
            Protocol::V1 => "1.0",
            Protocol::V2 => "2.0",
        }
    }

    fn line(&self) -> String {
        format!(
            "RW {} x{:>3} ({:.1} s): {:>9.0} samples/s accepted (sink {:.0}, answers {:.0}), receiver \
             {:.2} cores, generator {:.2} cores, {:.0} samples/s per receiver core, {:.1} MB/s \
             forwarded, {} rejected, {} non-204{}",
            self.protocol(),
            self.point.concurrency,
            self.seconds,
            self.accepted_per_s,
            self.forwarded_per_s,
            self.written_per_s,
            self.receiver_cores,
            self.generator_cores,
            self.per_core(),
            self.forwarded_mb_per_s,
            self.rejected,
            self.other_answers,
            self.first_problem
                .as_deref()
                .map(|p| format!(" (first: {p})"))
                .unwrap_or_default(),
        )
    }

    /// Every point: the forwarded requests the sink decoded (at least the first) decode and
    /// carry exactly one `seed` label, a certificate's seed (never the spoofed one).
    fn check_verified(&self) -> anyhow::Result<()> {
        ensure!(
            self.verified.requests > 0,
            "the sink decoded no forwarded request"
        );
        ensure!(
            self.verified.problems.is_empty(),
            "forwarded requests failed verification: {:?}",
            self.verified.problems
        );
        Ok(())
    }

    /// Check mode: every sample sent (answered 204) was accepted by the receiver, forwarded,
    /// decoded at the sink and carried its connection's seed.
    fn check(&self) -> anyhow::Result<()> {
        let sent: u64 = self.sent_by_seed.values().sum();
        ensure!(sent > 0, "nothing was sent");
        ensure!(
            self.other_answers == 0,
            "{} answers other than 204, first: {:?}",
            self.other_answers,
            self.first_problem
        );
        self.check_verified()?;
        ensure!(
            self.accepted_total == sent as f64,
            "sent {sent} samples, the receiver counted {} accepted",
            self.accepted_total
        );
        ensure!(
            self.sink_samples_total == sent,
            "sent {sent} samples, the sink received {}",
            self.sink_samples_total
        );
        ensure!(
            self.verified.samples_by_seed == self.sent_by_seed,
            "samples by seed label at the sink {:?} differ from those sent with each seed's \
             certificate {:?}",
            self.verified.samples_by_seed,
            self.sent_by_seed
        );
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_point(
    point: &Point,
    addr: SocketAddr,
    clients: &[(String, Arc<rustls::ClientConfig>)],
    bodies: &Arc<Vec<Bytes>>,
    sink: &Sink,
    http: &reqwest::Client,
    metrics_url: &str,
    receiver_pid: u32,
) -> anyhow::Result<Row> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(ClientCounts::default());
    sink.verify_next.store(true, Ordering::Relaxed);
    let verified_before = sink.verified();
    let start = snapshot(http, metrics_url, receiver_pid, sink, &counts).await?;
    let tasks: Vec<_> = (0..point.concurrency)
        .map(|i| {
            let (seed, tls) = clients[i % clients.len()].clone();
            tokio::spawn(connection(
                addr,
                seed,
                tls,
                point.protocol,
                bodies.clone(),
                i,
                stop.clone(),
                counts.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(point.warmup).await;
    let t0 = snapshot(http, metrics_url, receiver_pid, sink, &counts).await?;
    tokio::time::sleep(point.duration).await;
    let t1 = snapshot(http, metrics_url, receiver_pid, sink, &counts).await?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let end = snapshot(http, metrics_url, receiver_pid, sink, &counts).await?;
    let seconds = t1.at.duration_since(t0.at).as_secs_f64();
    let per_s = |a: f64, b: f64| (b - a) / seconds;
    let mut verified = sink.verified();
    verified.requests -= verified_before.requests;
    for (seed, samples) in &verified_before.samples_by_seed {
        if let Some(now) = verified.samples_by_seed.get_mut(seed) {
            *now -= samples;
        }
    }
    verified.samples_by_seed.retain(|_, v| *v > 0);
    verified.problems.drain(..verified_before.problems.len());
    let first_problem = counts
        .first_problem
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let sent_by_seed = counts
        .samples_by_seed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Row {
        point: *point,
        seconds,
        accepted_per_s: per_s(t0.accepted, t1.accepted),
        forwarded_per_s: per_s(t0.sink_requests as f64, t1.sink_requests as f64) * SERIES as f64,
        written_per_s: per_s(t0.written as f64, t1.written as f64),
        receiver_cores: per_s(t0.receiver_cpu, t1.receiver_cpu),
        generator_cores: per_s(t0.generator_cpu, t1.generator_cpu),
        forwarded_mb_per_s: per_s(t0.sink_bytes as f64, t1.sink_bytes as f64) / 1e6,
        rejected: end.rejected - start.rejected,
        other_answers: counts.other_answers.load(Ordering::Relaxed),
        first_problem,
        sent_by_seed,
        accepted_total: end.accepted - start.accepted,
        sink_samples_total: if sink.verify_all {
            verified.samples_by_seed.values().sum()
        } else {
            (end.sink_requests - start.sink_requests) * SERIES as u64
        },
        verified,
    })
}

fn report(rows: &[Row], args: &Args) -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = format!(
        "Receiver end to end over mTLS: {SERIES} series x 1 sample per request, {} seeds, \
         generator {} threads, receiver threads {}, {:.0} s per point after {:.0} s warm-up, \
         {} cores, load average at the end {}\n\n\
         | RW | connections | samples/s accepted | receiver CPU cores | generator CPU cores | \
         samples/s per receiver core | forwarded MB/s | non-204 |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        args.seeds,
        args.generator_threads,
        args.receiver_threads
            .map_or_else(|| "default".to_owned(), |t| t.to_string()),
        args.duration,
        args.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {} |\n",
            row.protocol(),
            row.point.concurrency,
            row.accepted_per_s,
            row.receiver_cores,
            row.generator_cores,
            row.per_core(),
            row.forwarded_mb_per_s,
            row.other_answers,
        ));
    }
    out
}
