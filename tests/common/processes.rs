//! Real processes for end-to-end tests: Prometheus 2.42 (the Debian package), the `slo-gateway`
//! binary, and a small in-process metrics target for Prometheus to scrape.
//!
//! Every process is killed when its handle drops, every wait has a deadline, and everything
//! listens on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A plain HTTP client for talking to Prometheus and the components' admin ports.
pub fn http() -> reqwest::Client {
    slo_gateway::tls::install_default_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A free port on 127.0.0.1 (bound and released; the window for a race is tiny in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match super::poll_until(timeout, Duration::from_millis(200), check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `url` until it answers 2xx, or panics with `what` after `timeout`.
pub async fn wait_http_ok(what: &str, url: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        let resp = http().get(url).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
}

/// A child process killed on drop; its output goes to `<dir>/<name>.log`.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, dir: &Path, program: &str, args: &[String]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Self {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to `timeout` for exit; returns whether it exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether the Prometheus binary is installed (CI installs the Debian package).
pub fn prometheus_available() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A real Prometheus server.
#[derive(Debug)]
pub struct Prometheus {
    pub process: Process,
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) in `dir/<name>`; `remote_write_receiver` adds
    /// `--web.enable-remote-write-receiver`.
    pub async fn start(name: &str, dir: &Path, config: &str, remote_write_receiver: bool) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let mut args = vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".into(),
        ];
        if remote_write_receiver {
            args.push("--web.enable-remote-write-receiver".into());
        }
        let process = Process::spawn(name, &dir, "prometheus", &args);
        let prom = Self {
            process,
            port,
            dir,
            args,
        };
        prom.wait_ready().await;
        prom
    }

    /// Restarts a stopped Prometheus on the same port and data directory.
    pub async fn restart(&mut self) {
        self.process = Process::spawn(
            &self.process.name.clone(),
            &self.dir,
            "prometheus",
            &self.args,
        );
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let url = format!("{}/-/ready", self.url());
        let what = format!(
            "Prometheus ready at {url} (log {})",
            self.process.log.display()
        );
        wait_http_ok(&what, &url, Duration::from_secs(60)).await;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Instant query; each result as (labels, value). Query errors panic with Prometheus' message.
    pub async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let text = http()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let resp: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(resp["status"], "success", "query {promql}: {resp}");
        resp["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let value = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// A scalar-ish query: the single value, or None when the result is empty.
    pub async fn query_value(&self, promql: &str) -> Option<f64> {
        self.query(promql).await.first().map(|(_, v)| *v)
    }
}

/// The `slo-gateway` binary built for this test run.
pub fn slo_gateway_bin() -> String {
    env!("CARGO_BIN_EXE_slo-gateway").to_string()
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
pub fn dev_pki(dir: &Path, seeds: &[&str]) -> slo_gateway::certs::DevPki {
    let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    slo_gateway::certs::write_dev_pki(&dir.join("certs"), &seeds).unwrap()
}
