//! Child processes for the twin and the tests: a [`Process`] killed on drop, real
//! [`PrometheusServer`]s and an [`AlertmanagerServer`] on 127.0.0.1, and bounded waiting.
//!
//! Every wait has a deadline; every port is chosen free on 127.0.0.1 (bound, then released: a
//! server that loses the race exits and is started again on another port).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::LandscapeError;

/// How often a start is retried when the chosen port was taken meanwhile.
const START_ATTEMPTS: usize = 3;
/// How long a Prometheus or Alertmanager may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> Result<u16, LandscapeError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| LandscapeError::Io {
            what: "choosing a free port on 127.0.0.1".into(),
            source,
        })
}

/// A plain HTTP client for Prometheus, Alertmanager and the components' admin ports.
pub fn http_client() -> Result<reqwest::Client, LandscapeError> {
    common::tls::install_default_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(LandscapeError::Http)
}

/// Calls `check` every `every` until it returns `Some`, or fails with [`LandscapeError::Timeout`]
/// naming `what` once `within` has passed.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, LandscapeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(LandscapeError::Timeout {
                what: what.to_owned(),
                after: within,
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether `program --version` runs (the Debian packages `prometheus` and
/// `prometheus-alertmanager` install `prometheus` and `alertmanager`).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Alertmanager binary: `alertmanager` upstream, `prometheus-alertmanager` in Debian.
pub fn alertmanager_program() -> Option<&'static str> {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|p| installed(p))
}

/// The last `lines` lines of `text`, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process, killed (SIGKILL) when dropped; stdout and stderr go to `<dir>/<name>.log`.
#[derive(Debug)]
pub struct Process {
    /// Name used for the log file and in messages.
    pub name: String,
    /// The log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `program args…` with its output appended to `<dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        dir: &Path,
        program: &Path,
        args: &[String],
    ) -> Result<Self, LandscapeError> {
        Self::spawn_env(name, dir, program, args, &[])
    }

    /// [`Self::spawn`] with extra environment variables.
    pub fn spawn_env(
        name: &str,
        dir: &Path,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Self, LandscapeError> {
        let log = dir.join(format!("{name}.log"));
        let io = |what: String| move |source| LandscapeError::Io { what, source };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .map_err(|source| LandscapeError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            log,
            child: Some(child),
        })
    }

    /// The process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit (SIGKILL after); returns whether it
    /// exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        send_signal(&child, "TERM");
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

    /// SIGHUP (Prometheus reloads its config).
    pub fn hangup(&self) {
        if let Some(child) = &self.child {
            send_signal(child, "HUP");
        }
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `GET url` answers 2xx; fails early when `process` exits.
async fn wait_http_ready(process: &mut Process, url: &str) -> Result<(), LandscapeError> {
    let client = http_client()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(resp) = client.get(url).send().await {
            if resp.status().is_success() {
                return Ok(());
            }
        }
        if !process.is_running() {
            return Err(LandscapeError::Exited {
                name: process.name.clone(),
                log_tail: tail(&process.log_text(), 20),
            });
        }
        if Instant::now() >= deadline {
            return Err(LandscapeError::Timeout {
                what: format!(
                    "{} ready at {url} (log {})",
                    process.name,
                    process.log.display()
                ),
                after: READY_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a server on a free port with `args(port)`, retrying on another port when it exits
/// before it is ready (the port was taken between choosing and binding).
async fn start_on_free_port(
    name: &str,
    dir: &Path,
    program: &str,
    ready_path: &str,
    args: impl Fn(u16) -> Vec<String>,
) -> Result<(Process, u16, Vec<String>), LandscapeError> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let argv = args(port);
        let mut process = Process::spawn(name, dir, Path::new(program), &argv)?;
        match wait_http_ready(
            &mut process,
            &format!("http://127.0.0.1:{port}{ready_path}"),
        )
        .await
        {
            Ok(()) => return Ok((process, port, argv)),
            Err(e @ LandscapeError::Exited { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| LandscapeError::Timeout {
        what: format!("{name} to start"),
        after: READY_TIMEOUT,
    }))
}

/// Sends `request` and parses the answer as JSON.
async fn get_json(request: reqwest::RequestBuilder) -> Result<serde_json::Value, LandscapeError> {
    let text = request
        .send()
        .await
        .map_err(LandscapeError::Http)?
        .text()
        .await
        .map_err(LandscapeError::Http)?;
    serde_json::from_str(&text).map_err(|e| LandscapeError::Query {
        query: "(answer)".into(),
        message: format!("not JSON ({e}): {}", tail(&text, 5)),
    })
}

/// One result of an instant query: labels and value.
pub type QueryResult = (BTreeMap<String, String>, f64);

/// A real Prometheus server (the Debian package's `prometheus`).
#[derive(Debug)]
pub struct PrometheusServer {
    /// The process.
    pub process: Process,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Its directory (`prometheus.yml`, `data/`, the log).
    pub dir: PathBuf,
    args: Vec<String>,
}

impl PrometheusServer {
    /// Starts Prometheus named `name` in `<parent>/<name>` with `config` (YAML) and the extra
    /// command-line flags `flags` (e.g. `--web.enable-remote-write-receiver`), and waits until it
    /// is ready.
    pub async fn start(
        name: &str,
        parent: &Path,
        config: &str,
        flags: &[&str],
    ) -> Result<Self, LandscapeError> {
        let dir = parent.join(name);
        let io = |what: String| move |source| LandscapeError::Io { what, source };
        std::fs::create_dir_all(dir.join("data"))
            .map_err(io(format!("creating {}", dir.display())))?;
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config)
            .map_err(io(format!("writing {}", config_file.display())))?;
        let (process, port, args) =
            start_on_free_port(name, &dir, "prometheus", "/-/ready", |port| {
                let mut args = vec![
                    format!("--config.file={}", config_file.display()),
                    format!("--storage.tsdb.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--log.level=warn".into(),
                ];
                args.extend(flags.iter().map(|f| f.to_string()));
                args
            })
            .await?;
        Ok(Self {
            process,
            port,
            dir,
            args,
        })
    }

    /// Starts a stopped Prometheus again on the same port and data directory.
    pub async fn restart(&mut self) -> Result<(), LandscapeError> {
        self.process = Process::spawn(
            &self.process.name.clone(),
            &self.dir,
            Path::new("prometheus"),
            &self.args,
        )?;
        let ready = format!("{}/-/ready", self.url());
        wait_http_ready(&mut self.process, &ready).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query now. A Prometheus error (bad PromQL) is [`LandscapeError::Query`].
    pub async fn query(&self, promql: &str) -> Result<Vec<QueryResult>, LandscapeError> {
        self.query_with(promql, &[]).await
    }

    /// An instant query at `at` (Unix seconds), e.g. to compare two series at shifted instants.
    pub async fn query_at(
        &self,
        promql: &str,
        at: f64,
    ) -> Result<Vec<QueryResult>, LandscapeError> {
        self.query_with(promql, &[("time", format!("{at:.3}"))])
            .await
    }

    async fn query_with(
        &self,
        promql: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<QueryResult>, LandscapeError> {
        let resp = get_json(
            http_client()?
                .get(format!("{}/api/v1/query", self.url()))
                .query(&[("query", promql)])
                .query(params),
        )
        .await?;
        if resp["status"] != "success" {
            return Err(LandscapeError::Query {
                query: promql.to_owned(),
                message: resp.to_string(),
            });
        }
        let results = resp["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(results
            .iter()
            .filter_map(|r| {
                let labels = r["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = r["value"][1].as_str()?.parse::<f64>().ok()?;
                Some((labels, value))
            })
            .collect())
    }

    /// The value of the first result, or `None` when the result is empty.
    pub async fn query_value(&self, promql: &str) -> Result<Option<f64>, LandscapeError> {
        Ok(self.query(promql).await?.first().map(|(_, v)| *v))
    }
}

/// A real Alertmanager (the Debian package's `prometheus-alertmanager`), clustering off.
#[derive(Debug)]
pub struct AlertmanagerServer {
    /// The process.
    pub process: Process,
    /// Port on 127.0.0.1.
    pub port: u16,
}

/// One alert as Alertmanager's `GET /api/v2/alerts` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
    /// Fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

impl AlertState {
    /// The value of label `name`, or "".
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

impl AlertmanagerServer {
    /// Starts Alertmanager in `<parent>/<name>` with `config` (YAML) and waits until it is ready.
    pub async fn start(name: &str, parent: &Path, config: &str) -> Result<Self, LandscapeError> {
        let dir = parent.join(name);
        let io = |what: String| move |source| LandscapeError::Io { what, source };
        std::fs::create_dir_all(dir.join("data"))
            .map_err(io(format!("creating {}", dir.display())))?;
        let config_file = dir.join("alertmanager.yml");
        std::fs::write(&config_file, config)
            .map_err(io(format!("writing {}", config_file.display())))?;
        let program = alertmanager_program().ok_or(LandscapeError::NotInstalled {
            program: "alertmanager",
        })?;
        let (process, port, _) = start_on_free_port(name, &dir, program, "/-/ready", |port| {
            vec![
                format!("--config.file={}", config_file.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // No gossip: it would bind 0.0.0.0:9094, shared with everyone else.
                "--cluster.listen-address=".into(),
                "--log.level=warn".into(),
            ]
        })
        .await?;
        Ok(Self { process, port })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every alert Alertmanager holds (active, suppressed and unprocessed).
    pub async fn alerts(&self) -> Result<Vec<AlertState>, LandscapeError> {
        alerts_at(&self.url()).await
    }
}

/// Every alert the Alertmanager at `url` holds (active, suppressed and unprocessed).
pub async fn alerts_at(url: &str) -> Result<Vec<AlertState>, LandscapeError> {
    let resp = get_json(http_client()?.get(format!("{url}/api/v2/alerts"))).await?;
    let alerts = resp.as_array().cloned().unwrap_or_default();
    Ok(alerts
        .iter()
        .map(|a| AlertState {
            labels: a["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            state: a["status"]["state"].as_str().unwrap_or_default().to_owned(),
            inhibited_by: a["status"]["inhibitedBy"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// Sends `signal` (`TERM`, `HUP`) to `child` with kill(1): the crate forbids `unsafe`, and the
/// standard library only sends SIGKILL.
fn send_signal(child: &std::process::Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
}
