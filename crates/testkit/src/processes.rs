//! Real processes for end-to-end tests: Prometheus 2.42 (the Debian package), the `slo-gateway`
//! binary, and a small in-process metrics target for Prometheus to scrape.
//!
//! The process plumbing ([`Process`], [`Prometheus`]) is the library's
//! (`twin::landscape::process`, shared with the landscape twin); this file adds the
//! test-only conveniences. Every process is killed when its handle drops, every wait has a
//! deadline, and everything listens on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use twin::landscape::process::{Process, PrometheusServer as Prometheus};

/// A plain HTTP client for talking to Prometheus and the components' admin ports.
pub fn http() -> reqwest::Client {
    twin::landscape::process::http_client().unwrap()
}

/// Polls `url` until it answers 2xx, or panics with `what` after `timeout`.
pub async fn wait_http_ok(what: &str, url: &str, timeout: Duration) {
    crate::eventually(what, || async {
        let resp = http().get(url).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .within(timeout)
    .every(Duration::from_millis(200))
    .await;
}

/// Whether the Prometheus binary is installed (CI installs the Debian package).
pub fn prometheus_available() -> bool {
    twin::landscape::process::installed("prometheus")
}

/// The `slo-gateway` binary built for this test run: cargo builds a package's binaries before
/// its integration tests and puts them one directory above the test executables
/// (`target/<profile>/deps/it-…` → `target/<profile>/slo-gateway`). The kit is a library, so
/// `env!("CARGO_BIN_EXE_slo-gateway")` is not set for it; `SLO_GATEWAY_BIN` overrides.
pub fn slo_gateway_bin() -> String {
    if let Ok(path) = std::env::var("SLO_GATEWAY_BIN") {
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let bin = profile_dir.join(format!("slo-gateway{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with cargo (it builds the binary first) or set SLO_GATEWAY_BIN",
        bin.display()
    );
    bin.display().to_string()
}

/// Text-format metrics served over plain HTTP from inside the test, for Prometheus to scrape.
#[derive(Debug, Clone)]
pub struct MetricsTarget {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
}

impl MetricsTarget {
    pub async fn start(initial: &str) -> Self {
        let body = Arc::new(Mutex::new(initial.to_string()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = body.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move { shared.lock().unwrap().clone() }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, body }
    }

    pub fn set(&self, text: &str) {
        *self.body.lock().unwrap() = text.to_string();
    }
}

/// Writes a dev PKI for `seeds` into `dir/certs`.
pub fn dev_pki(dir: &Path, seeds: &[&str]) -> certs::DevPki {
    let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    certs::write_dev_pki(&dir.join("certs"), &seeds).unwrap()
}

/// A memory figure of `pid` from `/proc/<pid>/status`, bytes: `VmRSS` (now) or `VmHWM` (peak).
pub fn proc_memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}
