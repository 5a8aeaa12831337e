//! The landscape twin: a small Gardener landscape made of real Prometheus 2.42 and Alertmanager
//! 0.25 processes, configured the way Gardener configures its own, around simulated shoot
//! control planes. `slo-gateway demo` runs it; `tests/it/landscape.rs` proves the SLOs on it.
//!
//! ```text
//!  per shoot: control-plane exporter ─► prometheus-shoot (Gardener's labels and rules
//!             (in-process, one listener     + generated shoot-tier rules)
//!              per seed)                        │ /federate, Gardener's match[]
//!                                               ▼
//!  per seed:                             prometheus-aggregate (seed=<name>)
//!     reachable seed ── /federate (agent-match) ──────────────┐
//!     firewalled seed ── slo-gateway agent ─mTLS─► receiver ──┤ /api/v1/write
//!  garden exporter ─► prometheus-garden ── /federate (garden-match) ─┤
//!                                                             ▼
//!                                  SLO Prometheus (runtime-tier rules) ─► Alertmanager
//! ```
//!
//! The rules come from `slo-gateway rules` run on [`TWIN_SPEC`] (or another spec), as an
//! operator would run it. Everything listens on 127.0.0.1 on free ports, lives in a temporary
//! directory and stops when the [`Twin`] is dropped; every wait has a deadline.

pub mod configs;
pub mod control_plane;
pub mod exporter;
pub mod garden;
pub mod process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use control_plane::ShootId;
pub use process::{AlertState, AlertmanagerServer, Process, PrometheusServer};

use certs::DevPki;
use configs::Intervals;
use exporter::{SharedWorld, World};
use process::{free_port, http_client, installed, tail, wait_until};

/// The twin's SLO spec: the catalog with a 1 h period and alert windows of minutes
/// (`config/twin-slos.yaml`).
pub const TWIN_SPEC: &str = include_str!("../../../../config/twin-slos.yaml");

/// What the twin needs installed, as Debian packages name it.
pub const INSTALL_HINT: &str = "apt-get install prometheus prometheus-alertmanager";

/// Why the twin could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum LandscapeError {
    /// Prometheus or Alertmanager is not installed.
    #[error("{program} is not installed ({INSTALL_HINT})")]
    NotInstalled {
        /// The missing program.
        program: &'static str,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("starting {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// A process exited while it should have been starting.
    #[error("{name} exited during start; log:\n{log_tail}")]
    Exited {
        /// Its name.
        name: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// An HTTP request failed.
    #[error("HTTP: {0}")]
    Http(reqwest::Error),
    /// Prometheus refused a query.
    #[error("query {query}: {message}")]
    Query {
        /// The PromQL.
        query: String,
        /// Prometheus' answer.
        message: String,
    },
    /// `slo-gateway rules` failed or wrote something unusable.
    #[error("generating the twin's rules: {0}")]
    Rules(String),
    /// A config could not be rendered.
    #[error("rendering a config: {0}")]
    Config(String),
    /// The PKI could not be written.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// No firewalled seed (with an agent) by that name.
    #[error("no firewalled seed {0:?} in the twin")]
    UnknownSeed(String),
    /// No shoot by that name.
    #[error("no shoot {0:?} in the twin (use its name or shoot--<project>--<name>)")]
    UnknownShoot(String),
}

/// How the SLO Prometheus reaches a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedAccess {
    /// The SLO Prometheus federates the seed's aggregate.
    Reachable,
    /// Behind a firewall: slo-gateway agent → mTLS → receiver → SLO Prometheus.
    Firewalled,
}

impl SeedAccess {
    /// `reachable` or `firewalled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reachable => "reachable",
            Self::Firewalled => "firewalled",
        }
    }
}

/// One seed of the twin.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Seed name (the `seed` label, the agent's certificate identity).
    pub name: String,
    /// How the SLO Prometheus reaches it.
    pub access: SeedAccess,
    /// Its shoots as (project, name).
    pub shoots: Vec<(String, String)>,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct TwinOptions {
    /// The `slo-gateway` binary (runs `rules`, `agent`, `receiver`).
    pub binary: PathBuf,
    /// The SLO spec (YAML); default [`TWIN_SPEC`].
    pub spec: String,
    /// Seeds and shoots; default: `aws-eu1` reachable and `gcp-us1` firewalled, 3 shoots each.
    pub seeds: Vec<SeedOptions>,
    /// Scrape and evaluation interval of every Prometheus, and the agent's scrape interval.
    /// Default 5 s.
    pub interval: Duration,
    /// Every shoot starts a new machine (and retires its oldest) this often. Default 3 min.
    pub machine_roll_every: Duration,
    /// Every shoot finishes a reconciliation this often. Default 1 min.
    pub reconcile_every: Duration,
    /// Where the temporary directory goes; default the system's temp dir.
    pub parent_dir: Option<PathBuf>,
    /// Shoots (by name) with `purpose: testing`: Gardener deploys no shoot Prometheus for them,
    /// only the garden reports them. Default none.
    pub testing: Vec<String>,
    /// How long the start waits for every shoot's series in the SLO Prometheus. Default 120 s.
    pub ready_within: Duration,
}

impl TwinOptions {
    /// The default twin, running `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        let shoots = |project: &str, names: [&str; 3]| {
            names
                .iter()
                .map(|n| (project.to_owned(), n.to_string()))
                .collect()
        };
        Self {
            binary: binary.into(),
            spec: TWIN_SPEC.to_owned(),
            seeds: vec![
                SeedOptions {
                    name: "aws-eu1".into(),
                    access: SeedAccess::Reachable,
                    shoots: shoots("dev", ["api", "web", "batch"]),
                },
                SeedOptions {
                    name: "gcp-us1".into(),
                    access: SeedAccess::Firewalled,
                    shoots: shoots("prod", ["shop", "auth", "search"]),
                },
            ],
            interval: Duration::from_secs(5),
            machine_roll_every: Duration::from_secs(180),
            reconcile_every: Duration::from_secs(60),
            parent_dir: None,
            testing: Vec::new(),
            ready_within: Duration::from_secs(120),
        }
    }
}

/// A shoot of the running twin.
#[derive(Debug, Clone)]
pub struct TwinShoot {
    /// Seed, project, name.
    pub id: ShootId,
    /// How its seed is reached.
    pub access: SeedAccess,
    /// `purpose: testing`: no shoot Prometheus.
    pub testing: bool,
}

/// The agent of a firewalled seed.
#[derive(Debug)]
struct SeedAgent {
    seed: String,
    config: PathBuf,
    process: Option<Process>,
}

/// A running twin. Dropping it stops every process and listener and removes its directory.
#[derive(Debug)]
pub struct Twin {
    binary: PathBuf,
    shoots: Vec<TwinShoot>,
    world: SharedWorld,
    /// Generated rules (`slo-gateway rules --out`).
    pub rules_dir: PathBuf,
    shoot_prometheus: Vec<(ShootId, PrometheusServer)>,
    aggregates: Vec<(String, PrometheusServer)>,
    garden: PrometheusServer,
    slo: PrometheusServer,
    alertmanager: AlertmanagerServer,
    receiver: Process,
    receiver_admin: u16,
    agents: Vec<SeedAgent>,
    exporters: Vec<(String, SocketAddr)>,
    intervals: Intervals,
    shoot_rule_files: Vec<String>,
    receiver_config: PathBuf,
    stop: watch::Sender<bool>,
    // Last: removed after every process is gone.
    dir: tempfile::TempDir,
}

impl Drop for Twin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for agent in &mut self.agents {
            if let Some(p) = agent.process.as_mut() {
                p.kill9();
            }
        }
        self.receiver.kill9();
    }
}

/// Serves `app` on `listener` until `stop` turns true.
fn serve(listener: TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
}

async fn bind() -> Result<(TcpListener, SocketAddr), LandscapeError> {
    let io = |source| LandscapeError::Io {
        what: "binding 127.0.0.1:0".into(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    Ok((listener, addr))
}

fn write(path: &Path, contents: &str) -> Result<(), LandscapeError> {
    std::fs::write(path, contents).map_err(|source| LandscapeError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

/// The `match:` list of a generated `*-match.yaml`, or `None` when the file does not exist.
fn read_match_file(path: &Path) -> Result<Option<Vec<String>>, LandscapeError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct MatchFile {
        #[serde(rename = "match")]
        selectors: Vec<String>,
    }
    serde_yaml_ng::from_str::<MatchFile>(&text)
        .map(|m| Some(m.selectors))
        .map_err(|e| LandscapeError::Rules(format!("{}: {e}", path.display())))
}

impl Twin {
    /// Generates the rules, starts every process and listener, and returns once series of
    /// every shoot arrive in the SLO Prometheus through both paths.
    pub async fn start(options: TwinOptions) -> Result<Self, LandscapeError> {
        if !installed("prometheus") {
            return Err(LandscapeError::NotInstalled {
                program: "prometheus",
            });
        }
        if process::alertmanager_program().is_none() {
            return Err(LandscapeError::NotInstalled {
                program: "alertmanager",
            });
        }
        common::tls::install_default_crypto_provider();
        let mut builder = tempfile::Builder::new();
        builder.prefix("slo-gateway-twin-");
        let dir = match &options.parent_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(|source| LandscapeError::Io {
            what: "creating the twin's temporary directory".into(),
            source,
        })?;
        let root = dir.path().to_path_buf();
        let intervals = Intervals {
            scrape: options.interval,
        };

        // Rules, as an operator generates them.
        let rules_dir = root.join("rules");
        let spec_file = root.join("slos.yaml");
        write(&spec_file, &options.spec)?;
        generate_rules(&options.binary, &spec_file, &rules_dir)?;
        let aggregate_match = read_match_file(&rules_dir.join("agent-match.yaml"))?
            .ok_or_else(|| LandscapeError::Rules("no agent-match.yaml written".into()))?;
        let garden_match = read_match_file(&rules_dir.join("garden-match.yaml"))?
            .unwrap_or_else(|| vec![r#"{__name__=~"garden_shoot_.+"}"#.to_owned()]);
        let gardener_rules = root.join("gardener-shoot-rules.yaml");
        write(&gardener_rules, configs::GARDENER_SHOOT_RULES)?;
        let mut shoot_rule_files = vec![gardener_rules.display().to_string()];
        let shoot_tier = rules_dir.join("shoot").join("prometheus-rules.yaml");
        if shoot_tier.exists() {
            shoot_rule_files.push(shoot_tier.display().to_string());
        }

        // The simulated world and its listeners.
        let shoots: Vec<TwinShoot> = options
            .seeds
            .iter()
            .flat_map(|seed| {
                seed.shoots.iter().map(|(project, name)| TwinShoot {
                    id: ShootId {
                        seed: seed.name.clone(),
                        project: project.clone(),
                        name: name.clone(),
                    },
                    access: seed.access,
                    testing: options.testing.contains(name),
                })
            })
            .collect();
        let ids: Vec<ShootId> = shoots.iter().map(|s| s.id.clone()).collect();
        let world = SharedWorld::new(World {
            planes: ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let plane = control_plane::ControlPlane::new(
                        id.clone(),
                        i as u64 + 1,
                        options.machine_roll_every,
                    );
                    (id.namespace(), plane)
                })
                .collect(),
            garden: garden::Garden::new(&ids, options.reconcile_every),
        });
        for shoot in shoots.iter().filter(|s| s.testing) {
            world.lock().garden.set_purpose(&shoot.id, "testing");
        }
        let (stop, stopped) = watch::channel(false);
        let mut exporters = Vec::new();
        for seed in &options.seeds {
            let (listener, addr) = bind().await?;
            serve(
                listener,
                exporter::seed_app(world.clone(), &seed.name),
                stopped.clone(),
            );
            exporters.push((seed.name.clone(), addr));
        }
        let (listener, garden_exporter) = bind().await?;
        serve(
            listener,
            exporter::garden_app(world.clone()),
            stopped.clone(),
        );
        let exporter_of = |seed: &str| {
            exporters
                .iter()
                .find(|(s, _)| s == seed)
                .map(|(_, a)| *a)
                .ok_or_else(|| LandscapeError::Config(format!("no exporter for seed {seed}")))
        };

        // prometheus-shoot, one per shoot, started together.
        let mut starts = Vec::new();
        for shoot in shoots.iter().filter(|s| !s.testing) {
            let config = configs::shoot_prometheus(
                &shoot.id,
                exporter_of(&shoot.id.seed)?,
                intervals,
                &shoot_rule_files,
            )?;
            let name = format!("prometheus-shoot-{}", shoot.id.namespace());
            let root = root.clone();
            starts.push(async move { PrometheusServer::start(&name, &root, &config, &[]).await });
        }
        let started = futures_util::future::join_all(starts).await;
        let mut shoot_prometheus = Vec::new();
        for (shoot, server) in shoots.iter().filter(|s| !s.testing).zip(started) {
            shoot_prometheus.push((shoot.id.clone(), server?));
        }

        // prometheus-aggregate per seed, prometheus-garden, Alertmanager.
        let mut aggregates = Vec::new();
        for seed in &options.seeds {
            let targets: Vec<String> = shoot_prometheus
                .iter()
                .filter(|(id, _)| id.seed == seed.name)
                .map(|(_, p)| format!("127.0.0.1:{}", p.port))
                .collect();
            let config = configs::aggregate_prometheus(&seed.name, &targets, intervals)?;
            let name = format!("prometheus-aggregate-{}", seed.name);
            aggregates.push((
                seed.name.clone(),
                PrometheusServer::start(&name, &root, &config, &[]).await?,
            ));
        }
        let garden_config = configs::garden_prometheus(garden_exporter, intervals)?;
        let garden =
            PrometheusServer::start("prometheus-garden", &root, &garden_config, &[]).await?;
        let am_config = std::fs::read_to_string(rules_dir.join("alertmanager.yaml"))
            .map_err(|e| LandscapeError::Rules(format!("alertmanager.yaml: {e}")))?;
        let alertmanager = AlertmanagerServer::start("alertmanager", &root, &am_config).await?;

        // The SLO Prometheus, then the receiver that forwards into it.
        let (receiver_port, receiver_admin) = (free_port()?, free_port()?);
        let sources = configs::SloSources {
            reachable_aggregates: options
                .seeds
                .iter()
                .filter(|s| s.access == SeedAccess::Reachable)
                .filter_map(|s| {
                    aggregates
                        .iter()
                        .find(|(n, _)| n == &s.name)
                        .map(|(n, p)| (n.clone(), format!("127.0.0.1:{}", p.port)))
                })
                .collect(),
            aggregate_match: aggregate_match.clone(),
            garden: format!("127.0.0.1:{}", garden.port),
            garden_match,
            receiver_admin: format!("127.0.0.1:{receiver_admin}"),
            alertmanager: format!("127.0.0.1:{}", alertmanager.port),
            // The runtime rules are loaded once every shoot's data flows (see below).
            rule_files: Vec::new(),
        };
        let slo = PrometheusServer::start(
            "prometheus-slo",
            &root,
            &configs::slo_prometheus(&sources, intervals)?,
            &[
                "--web.enable-remote-write-receiver",
                "--web.enable-lifecycle",
                // Alerts reach Alertmanager within seconds, as the short windows need.
                "--rules.alert.resend-delay=5s",
            ],
        )
        .await?;
        let slo_with_rules = configs::SloSources {
            rule_files: vec![rules_dir
                .join("prometheus-rules.yaml")
                .display()
                .to_string()],
            ..sources
        };

        let firewalled: Vec<String> = options
            .seeds
            .iter()
            .filter(|s| s.access == SeedAccess::Firewalled)
            .map(|s| s.name.clone())
            .collect();
        let pki = certs::write_dev_pki(&root.join("certs"), &firewalled)?;
        let receiver_config = root.join("receiver.yaml");
        write(
            &receiver_config,
            &format!(
                "listen: 127.0.0.1:{receiver_port}\nadmin_listen: 127.0.0.1:{receiver_admin}\n\
                 tls: {{cert_file: '{}', key_file: '{}', client_ca_file: '{}'}}\n\
                 forward: {{url: '{}/api/v1/write'}}\n",
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca.display(),
                slo.url()
            ),
        )?;
        let receiver = spawn_component(&options.binary, &root, "receiver", &receiver_config)?;
        let mut agents = Vec::new();
        for seed in &firewalled {
            let aggregate = aggregates
                .iter()
                .find(|(n, _)| n == seed)
                .map(|(_, p)| p.url())
                .unwrap_or_default();
            let config = root.join(format!("agent-{seed}.yaml"));
            write(
                &config,
                &agent_config(
                    seed,
                    &aggregate,
                    &aggregate_match,
                    receiver_port,
                    &pki,
                    &root,
                    options.interval,
                )?,
            )?;
            let process =
                spawn_component(&options.binary, &root, &format!("agent-{seed}"), &config)?;
            agents.push(SeedAgent {
                seed: seed.clone(),
                config,
                process: Some(process),
            });
        }

        let twin = Self {
            binary: options.binary,
            shoots,
            world,
            rules_dir,
            shoot_prometheus,
            aggregates,
            garden,
            slo,
            alertmanager,
            receiver,
            receiver_admin,
            agents,
            exporters,
            intervals,
            shoot_rule_files,
            receiver_config,
            stop,
            dir,
        };
        // A landscape in steady state, as a long-running SLO Prometheus sees it: the runtime
        // rules start once every shoot's inputs arrive through both paths (earlier, shoots
        // without data yet would be filled from the garden and their events would start at
        // different times).
        let inputs = metric_names(&aggregate_match);
        twin.wait_for_every_shoot(&inputs, options.ready_within)
            .await?;
        twin.load_runtime_rules(&configs::slo_prometheus(&slo_with_rules, intervals)?)
            .await?;
        Ok(twin)
    }

    /// Writes the SLO Prometheus' config with the runtime rules and reloads it.
    async fn load_runtime_rules(&self, config: &str) -> Result<(), LandscapeError> {
        write(&self.slo.dir.join("prometheus.yml"), config)?;
        let resp = http_client()?
            .post(format!("{}/-/reload", self.slo.url()))
            .send()
            .await
            .map_err(LandscapeError::Http)?;
        if !resp.status().is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(LandscapeError::Rules(format!(
                "the SLO Prometheus refused the runtime rules: {body}"
            )));
        }
        Ok(())
    }

    /// Waits until the SLO Prometheus holds, for every shoot, each of the metrics `names`
    /// (what the runtime tier reads from the aggregates; `shoot:*` when empty) and the garden's
    /// `garden_shoot_condition` (what the shared shoot state reads).
    pub async fn wait_for_every_shoot(
        &self,
        names: &[String],
        within: Duration,
    ) -> Result<(), LandscapeError> {
        let expected: Vec<(String, bool)> = self
            .shoots
            .iter()
            .map(|s| (s.id.namespace(), s.testing))
            .collect();
        let last = std::sync::Mutex::new(Vec::<String>::new());
        let result = wait_until(
            "every shoot's inputs",
            within,
            Duration::from_secs(1),
            || async {
                let found = self
                    .slo
                    .query(r#"count by (cluster, __name__) ({__name__=~"shoot:.+"})"#)
                    .await
                    .ok()?;
                let garden = self
                    .slo
                    .query("count by (technical_id) (garden_shoot_condition)")
                    .await
                    .ok()?;
                let has = |cluster: &str, name: &str| {
                    found.iter().any(|(l, _)| {
                        l.get("cluster").is_some_and(|c| c == cluster)
                            && (name.is_empty() || l.get("__name__").is_some_and(|n| n == name))
                    })
                };
                let mut missing = Vec::new();
                for (cluster, testing) in &expected {
                    // A testing shoot has no shoot Prometheus: the garden only.
                    if !testing && names.is_empty() && !has(cluster, "") {
                        missing.push(format!("{cluster}: shoot:*"));
                    }
                    for name in names.iter().filter(|n| !testing && !has(cluster, n)) {
                        missing.push(format!("{cluster}: {name}"));
                    }
                    if !garden
                        .iter()
                        .any(|(l, _)| l.get("technical_id") == Some(cluster))
                    {
                        missing.push(format!("{cluster}: garden_shoot_condition"));
                    }
                }
                let done = missing.is_empty();
                *last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = missing;
                done.then_some(())
            },
        )
        .await;
        result.map_err(|_| LandscapeError::Timeout {
            what: format!(
                "every shoot's inputs in the SLO Prometheus; missing:\n  {}\n{}",
                last.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .join("\n  "),
                self.logs()
            ),
            after: within,
        })
    }

    /// The shoots, seed by seed.
    pub fn shoots(&self) -> &[TwinShoot] {
        &self.shoots
    }

    /// The shoot called `name` (its name or its namespace `shoot--<project>--<name>`).
    pub fn shoot(&self, name: &str) -> Result<&TwinShoot, LandscapeError> {
        self.shoots
            .iter()
            .find(|s| s.id.name == name || s.id.namespace() == name)
            .ok_or_else(|| LandscapeError::UnknownShoot(name.to_owned()))
    }

    /// The first shoot of a seed with `access`.
    pub fn first_shoot(&self, access: SeedAccess) -> Option<&TwinShoot> {
        self.shoots.iter().find(|s| s.access == access)
    }

    /// Takes a shoot's API server down (`true`: probes fail, its metrics endpoint and the
    /// shoot-side probe through it answer 503, the garden reports it unavailable) or back up.
    pub fn set_outage(&self, shoot: &str, down: bool) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        self.world
            .set_outage(&id, down)
            .then_some(())
            .ok_or_else(|| LandscapeError::UnknownShoot(shoot.to_owned()))
    }

    /// The runtime cluster's SLO Prometheus.
    pub fn slo(&self) -> &PrometheusServer {
        &self.slo
    }

    /// The Alertmanager the SLO Prometheus alerts to.
    pub fn alertmanager(&self) -> &AlertmanagerServer {
        &self.alertmanager
    }

    /// A seed's prometheus-aggregate.
    pub fn aggregate(&self, seed: &str) -> Option<&PrometheusServer> {
        self.aggregates
            .iter()
            .find(|(s, _)| s == seed)
            .map(|(_, p)| p)
    }

    /// A shoot's prometheus-shoot.
    pub fn shoot_prometheus(&self, shoot: &ShootId) -> Option<&PrometheusServer> {
        self.shoot_prometheus
            .iter()
            .find(|(id, _)| id == shoot)
            .map(|(_, p)| p)
    }

    /// The twin's directory (configs, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every URL worth opening: (what, URL).
    pub fn endpoints(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("SLO Prometheus".to_owned(), self.slo.url()),
            ("Alertmanager".to_owned(), self.alertmanager.url()),
            ("prometheus-garden".to_owned(), self.garden.url()),
        ];
        for (seed, p) in &self.aggregates {
            out.push((format!("prometheus-aggregate {seed}"), p.url()));
        }
        for (id, p) in &self.shoot_prometheus {
            out.push((format!("prometheus-shoot {}", id.namespace()), p.url()));
        }
        for (seed, addr) in &self.exporters {
            out.push((
                format!("control planes of {seed}"),
                format!("http://{addr}"),
            ));
        }
        out.push((
            "receiver metrics".to_owned(),
            format!("http://127.0.0.1:{}/metrics", self.receiver_admin),
        ));
        out
    }

    /// Stops the agent of firewalled seed `seed` (SIGTERM, as a seed outage or a rollout would).
    pub fn stop_agent(&mut self, seed: &str) -> Result<(), LandscapeError> {
        let agent = self.agent_mut(seed)?;
        if let Some(mut p) = agent.process.take() {
            p.terminate(Duration::from_secs(15));
        }
        Ok(())
    }

    /// Starts the agent of `seed` again (its queue delivers what it held).
    pub fn start_agent(&mut self, seed: &str) -> Result<(), LandscapeError> {
        self.start_agent_with_env(seed, &[])
    }

    /// Starts the agent of `seed`, unless it runs, with `env` added to its environment.
    fn start_agent_with_env(
        &mut self,
        seed: &str,
        env: &[(String, String)],
    ) -> Result<(), LandscapeError> {
        let root = self.dir.path().to_path_buf();
        let binary = self.binary.clone();
        let agent = self.agent_mut(seed)?;
        if agent.process.is_none() {
            agent.process = Some(spawn_component_env(
                &binary,
                &root,
                &format!("agent-{seed}"),
                &agent.config,
                env,
            )?);
        }
        Ok(())
    }

    fn agent_mut(&mut self, seed: &str) -> Result<&mut SeedAgent, LandscapeError> {
        self.agents
            .iter_mut()
            .find(|a| a.seed == seed)
            .ok_or_else(|| LandscapeError::UnknownSeed(seed.to_owned()))
    }

    /// Restarts the agent of `seed` with its clock `offset_secs` off the machine's (`0`: the
    /// true clock), as a seed node with a drifting clock runs it: libfaketime shifts the wall
    /// clock it stamps samples and `X-SLO-Gateway-Sent-At` with (its timers keep the true
    /// monotonic clock).
    pub fn restart_agent_with_clock_offset(
        &mut self,
        seed: &str,
        offset_secs: i64,
    ) -> Result<(), LandscapeError> {
        let env = if offset_secs == 0 {
            Vec::new()
        } else {
            let lib = faketime_library().ok_or(LandscapeError::NotInstalled {
                program: "libfaketime (apt-get install faketime)",
            })?;
            vec![
                ("LD_PRELOAD".to_owned(), lib.display().to_string()),
                ("FAKETIME".to_owned(), format!("{offset_secs:+}s")),
                ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
                ("FAKETIME_NO_CACHE".to_owned(), "1".to_owned()),
            ]
        };
        self.stop_agent(seed)?;
        self.start_agent_with_env(seed, &env)
    }

    /// Restarts the receiver (SIGTERM, then started again on the same ports).
    pub fn restart_receiver(&mut self) -> Result<(), LandscapeError> {
        self.receiver.terminate(Duration::from_secs(15));
        self.receiver = spawn_component(
            &self.binary,
            self.dir.path(),
            "receiver",
            &self.receiver_config,
        )?;
        Ok(())
    }

    /// Restarts the SLO Prometheus (SIGTERM, then started again on its port and data).
    pub async fn restart_slo(&mut self) -> Result<(), LandscapeError> {
        self.slo.process.terminate(Duration::from_secs(30));
        self.slo.restart().await
    }

    /// Stops seed `seed`'s prometheus-aggregate (SIGTERM).
    pub fn stop_aggregate(&mut self, seed: &str) -> Result<(), LandscapeError> {
        let aggregate = self
            .aggregates
            .iter_mut()
            .find(|(s, _)| s == seed)
            .ok_or_else(|| LandscapeError::UnknownSeed(seed.to_owned()))?;
        aggregate.1.process.terminate(Duration::from_secs(15));
        Ok(())
    }

    /// Starts seed `seed`'s stopped prometheus-aggregate again.
    pub async fn start_aggregate(&mut self, seed: &str) -> Result<(), LandscapeError> {
        let aggregate = self
            .aggregates
            .iter_mut()
            .find(|(s, _)| s == seed)
            .ok_or_else(|| LandscapeError::UnknownSeed(seed.to_owned()))?;
        aggregate.1.restart().await
    }

    /// Stops a shoot's prometheus-shoot (SIGTERM; gardenlet scaling it to 0).
    pub fn stop_shoot_prometheus(&mut self, shoot: &str) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        if let Some((_, p)) = self.shoot_prometheus.iter_mut().find(|(i, _)| *i == id) {
            p.process.terminate(Duration::from_secs(15));
        }
        Ok(())
    }

    /// Starts a shoot's stopped prometheus-shoot again.
    pub async fn start_shoot_prometheus(&mut self, shoot: &str) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        match self.shoot_prometheus.iter_mut().find(|(i, _)| *i == id) {
            Some((_, p)) => p.restart().await,
            None => Err(LandscapeError::UnknownShoot(shoot.to_owned())),
        }
    }

    /// Fails `shoot`'s seed-side probe alone (one probe source down), or heals it.
    pub fn set_seed_probe_down(&self, shoot: &str, down: bool) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        self.world
            .with_plane(&id, |p| p.set_seed_probe_down(down))
            .then_some(())
            .ok_or_else(|| LandscapeError::UnknownShoot(shoot.to_owned()))
    }

    /// Scales `shoot`'s API server down (`true`: probes fail, its endpoint answers 503) or up,
    /// without telling the garden: hibernation and migration, where Gardener's conditions do
    /// not report an outage.
    pub fn set_api_server_scaled_down(
        &self,
        shoot: &str,
        down: bool,
    ) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        self.world
            .with_plane(&id, |p| p.set_outage(down))
            .then_some(())
            .ok_or_else(|| LandscapeError::UnknownShoot(shoot.to_owned()))
    }

    /// Scripts what the garden exporter reports about `shoot`: its last operation (`None`: the
    /// simulated cycle), `status.isHibernated`, and its seed.
    pub fn set_garden(&self, shoot: &str, change: GardenChange) -> Result<(), LandscapeError> {
        let id = self.shoot(shoot)?.id.clone();
        let mut world = self.world.lock();
        match change {
            GardenChange::Operation(op) => world.garden.set_operation(&id, op),
            GardenChange::Hibernated(h) => world.garden.set_hibernated(&id, h),
            GardenChange::Seed(seed) => world.garden.move_to(&id, &seed),
        }
        Ok(())
    }

    /// Restores `shoot`'s control plane in seed `to` (the end of a control-plane migration):
    /// its control plane now answers on `to`'s listener, its old prometheus-shoot is gone and
    /// a new one runs in `to`, federated by `to`'s aggregate.
    pub async fn restore_control_plane(
        &mut self,
        shoot: &str,
        to: &str,
    ) -> Result<(), LandscapeError> {
        let old = self.shoot(shoot)?.clone();
        let access = self
            .shoots
            .iter()
            .find(|s| s.id.seed == to)
            .map(|s| s.access)
            .or_else(|| {
                self.agents
                    .iter()
                    .any(|a| a.seed == to)
                    .then_some(SeedAccess::Firewalled)
            })
            .unwrap_or(SeedAccess::Reachable);
        let mut id = old.id.clone();
        id.seed = to.to_owned();
        if let Some(i) = self.shoot_prometheus.iter().position(|(i, _)| *i == old.id) {
            let (_, mut p) = self.shoot_prometheus.remove(i);
            p.process.terminate(Duration::from_secs(15));
        }
        self.world.with_plane(&old.id, |p| p.move_to(to));
        let exporter = self
            .exporters
            .iter()
            .find(|(s, _)| s == to)
            .map(|(_, a)| *a)
            .ok_or_else(|| LandscapeError::UnknownSeed(to.to_owned()))?;
        let config =
            configs::shoot_prometheus(&id, exporter, self.intervals, &self.shoot_rule_files)?;
        let name = format!("prometheus-shoot-{}-{to}", id.namespace());
        let server = PrometheusServer::start(&name, self.dir.path(), &config, &[]).await?;
        self.shoot_prometheus.push((id.clone(), server));
        if let Some(s) = self.shoots.iter_mut().find(|s| s.id == old.id) {
            s.id = id;
            s.access = access;
        }
        for seed in [old.id.seed.as_str(), to] {
            self.reload_aggregate(seed)?;
        }
        Ok(())
    }

    /// Rewrites seed `seed`'s aggregate config from the shoot Prometheus servers in it and
    /// reloads it.
    fn reload_aggregate(&self, seed: &str) -> Result<(), LandscapeError> {
        let targets: Vec<String> = self
            .shoot_prometheus
            .iter()
            .filter(|(id, _)| id.seed == seed)
            .map(|(_, p)| format!("127.0.0.1:{}", p.port))
            .collect();
        let Some((_, aggregate)) = self.aggregates.iter().find(|(s, _)| s == seed) else {
            return Err(LandscapeError::UnknownSeed(seed.to_owned()));
        };
        let config = configs::aggregate_prometheus(seed, &targets, self.intervals)?;
        write(&aggregate.dir.join("prometheus.yml"), &config)?;
        aggregate.process.hangup();
        Ok(())
    }

    /// The end of the receiver's and agents' logs, for error messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- receiver log\n{}\n",
            tail(&self.receiver.log_text(), 20)
        );
        for agent in &self.agents {
            if let Some(p) = &agent.process {
                out.push_str(&format!(
                    "--- agent {} log\n{}\n",
                    agent.seed,
                    tail(&p.log_text(), 20)
                ));
            }
        }
        out
    }

    /// Per shoot: every SLO's period SLI and budget left, and the alerts Alertmanager holds
    /// for it (or for its whole seed).
    pub async fn status(&self) -> Result<Vec<ShootStatus>, LandscapeError> {
        let slis = self
            .slo
            .query(r#"{__name__=~"slo:sli_error:ratio_rate.+"}"#)
            .await?;
        let budgets = self
            .slo
            .query("slo:period_error_budget_remaining:ratio")
            .await?;
        let alerts = self.alertmanager.alerts().await?;
        let key =
            |l: &BTreeMap<String, String>, name: &str| l.get(name).cloned().unwrap_or_default();
        Ok(self
            .shoots
            .iter()
            .map(|shoot| {
                let cluster = shoot.id.namespace();
                let mut slos: BTreeMap<String, SloStatus> = BTreeMap::new();
                // The period SLI is the longest window of each SLO.
                // Series of this shoot, or of its whole seed (SLOs grouped by seed only).
                let ours = |l: &BTreeMap<String, String>| {
                    key(l, "cluster") == cluster
                        || (key(l, "cluster").is_empty() && key(l, "seed") == shoot.id.seed)
                };
                for (labels, value) in slis.iter().filter(|(l, _)| ours(l)) {
                    let window = key(labels, "sloth_window");
                    let Ok(length) = window.parse::<rules::duration::PromDuration>() else {
                        continue;
                    };
                    let length = Duration::from_secs(length.as_secs());
                    let entry = slos.entry(key(labels, "sloth_slo")).or_default();
                    if entry.period.as_ref().is_none_or(|(p, _)| *p < length) {
                        entry.period = Some((length, window));
                        entry.sli = Some(1.0 - value);
                    }
                }
                for (labels, value) in budgets.iter().filter(|(l, _)| ours(l)) {
                    slos.entry(key(labels, "sloth_slo"))
                        .or_default()
                        .budget_left = Some(*value);
                }
                let alerts = alerts
                    .iter()
                    .filter(|a| {
                        a.label("cluster") == cluster
                            || (a.label("cluster").is_empty() && a.label("seed") == shoot.id.seed)
                    })
                    .cloned()
                    .collect();
                ShootStatus {
                    shoot: shoot.clone(),
                    slos,
                    alerts,
                }
            })
            .collect())
    }
}

/// One SLO of one shoot.
#[derive(Debug, Clone, Default)]
pub struct SloStatus {
    /// Good share over the period (1 − period error ratio), if known.
    pub sli: Option<f64>,
    /// Share of the period's error budget left, if known.
    pub budget_left: Option<f64>,
    /// The period (length, as written).
    pub period: Option<(Duration, String)>,
}

/// One shoot's SLOs and alerts.
#[derive(Debug, Clone)]
pub struct ShootStatus {
    /// The shoot.
    pub shoot: TwinShoot,
    /// By SLO name.
    pub slos: BTreeMap<String, SloStatus>,
    /// Alerts Alertmanager holds for this shoot or its seed.
    pub alerts: Vec<AlertState>,
}

/// The plain metric names among `selectors` (`name` or `name{…}`; `{__name__…}` ones are
/// skipped).
fn metric_names(selectors: &[String]) -> Vec<String> {
    let mut names: Vec<String> = selectors
        .iter()
        .map(|s| s.split('{').next().unwrap_or_default().trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    names.dedup();
    names
}

/// Runs `binary rules --spec spec --out out`.
fn generate_rules(binary: &Path, spec: &Path, out: &Path) -> Result<(), LandscapeError> {
    let output = std::process::Command::new(binary)
        .arg("rules")
        .arg("--spec")
        .arg(spec)
        .arg("--out")
        .arg(out)
        .output()
        .map_err(|source| LandscapeError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(LandscapeError::Rules(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    Ok(())
}

/// A change to what the garden exporter reports about one shoot.
#[derive(Debug, Clone)]
pub enum GardenChange {
    /// The last operation (type, state: 1 succeeded, 2 processing), `None`: the simulated
    /// create/reconcile cycle.
    Operation(Option<(&'static str, f64)>),
    /// `status.isHibernated`.
    Hibernated(bool),
    /// `spec.seedName`.
    Seed(String),
}

/// libfaketime's preload library, where Debian's `faketime` package puts it (or
/// `$FAKETIME_LIB`).
fn faketime_library() -> Option<PathBuf> {
    std::env::var_os("FAKETIME_LIB")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                "/usr/lib/faketime/libfaketimeMT.so.1",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.exists())
}

fn spawn_component(
    binary: &Path,
    root: &Path,
    name: &str,
    config: &Path,
) -> Result<Process, LandscapeError> {
    spawn_component_env(binary, root, name, config, &[])
}

fn spawn_component_env(
    binary: &Path,
    root: &Path,
    name: &str,
    config: &Path,
    env: &[(String, String)],
) -> Result<Process, LandscapeError> {
    let role = if name.starts_with("agent") {
        "agent"
    } else {
        "receiver"
    };
    Process::spawn_env(
        name,
        root,
        binary,
        &[
            role.to_owned(),
            "--config".into(),
            config.display().to_string(),
        ],
        env,
    )
}

/// The agent of firewalled seed `seed`: federates its aggregate with `selectors`, pushes to the
/// receiver with the seed's certificate.
fn agent_config(
    seed: &str,
    aggregate_url: &str,
    selectors: &[String],
    receiver_port: u16,
    pki: &DevPki,
    root: &Path,
    interval: Duration,
) -> Result<String, LandscapeError> {
    let (_, cert, key) = pki
        .seeds
        .iter()
        .find(|(s, _, _)| s == seed)
        .ok_or_else(|| LandscapeError::Config(format!("no certificate for seed {seed}")))?;
    let interval = humantime::format_duration(interval).to_string();
    let admin = free_port()?;
    configs::to_yaml(&serde_json::json!({
        "listen": format!("127.0.0.1:{admin}"),
        "scrape": {
            "interval": interval,
            "timeout": interval,
            "targets": [{"url": format!("{aggregate_url}/federate"), "match": selectors}],
        },
        "remote_write": {
            "url": format!("https://127.0.0.1:{receiver_port}/api/v1/write"),
            "tls": {"ca_file": pki.ca, "cert_file": cert, "key_file": key},
            "retry": {"min_backoff": "200ms", "max_backoff": "5s"},
        },
        "buffer": {"path": root.join(format!("agent-{seed}-buffer"))},
    }))
}

/// Whether the twin can run here (Prometheus and Alertmanager installed).
pub fn available() -> bool {
    installed("prometheus") && process::alertmanager_program().is_some()
}

/// A plain HTTP client (re-exported for callers that query the twin's servers).
pub fn client() -> Result<reqwest::Client, LandscapeError> {
    http_client()
}
