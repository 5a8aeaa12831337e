//! The chaos suite: scripted scenarios of a moving landscape on one landscape twin, run side by
//! side (each owns its shoots or seeds; the two that restart shared components, the receiver
//! and the SLO Prometheus, run first, before any other fault), while a monitor records every
//! page Alertmanager holds. The verdict per scenario: no page it does not expect (a false
//! page), every expected page within its deadline (5 minutes from the start of a real outage),
//! at most one page per seed outage. `scripts/chaos.sh` runs it; docs/chaos.md has a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::landscape::process::alerts_at;
use crate::landscape::{
    AlertState, GardenChange, LandscapeError, SeedAccess, SeedOptions, Twin, TwinOptions,
};

/// The suite's SLO spec (`config/chaos-slos.yaml`).
pub const CHAOS_SPEC: &str = include_str!("../../../config/chaos-slos.yaml");

/// The project of every shoot of the suite.
const PROJECT: &str = "chaos";
/// How often the monitor reads Alertmanager.
const POLL: Duration = Duration::from_secs(5);
/// A real API server outage must page within this.
pub const OUTAGE_DEADLINE: Duration = Duration::from_secs(300);
/// A seed outage pages once its seed alert's threshold (5m) has passed: within this.
pub const SEED_DEADLINE: Duration = Duration::from_secs(420);

const fn min(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn min_s(m: u64, s: u64) -> Duration {
    Duration::from_secs(m * 60 + s)
}

/// One thing done to the landscape.
#[derive(Debug, Clone)]
pub enum Action {
    /// Restart the receiver.
    RestartReceiver,
    /// Restart the SLO Prometheus.
    RestartSlo,
    /// Stop a firewalled seed's agent.
    StopAgent(&'static str),
    /// Start it again.
    StartAgent(&'static str),
    /// Restart a seed's agent with its clock this many seconds off (0: true clock).
    SkewAgent(&'static str, i64),
    /// Stop a seed's prometheus-aggregate.
    StopAggregate(&'static str),
    /// Start it again.
    StartAggregate(&'static str),
    /// Stop a shoot's prometheus-shoot.
    StopShootPrometheus(&'static str),
    /// Start it again.
    StartShootPrometheus(&'static str),
    /// A real API server outage (probes fail, the garden's conditions turn False), or its end.
    Outage(&'static str, bool),
    /// The API server scaled down by plan (the garden is not told), or up.
    ScaleDown(&'static str, bool),
    /// The seed-side probe alone fails, or heals.
    SeedProbeDown(&'static str, bool),
    /// The garden reports something new about a shoot.
    Garden(&'static str, GardenChange),
    /// The control plane comes up in another seed (end of a migration).
    Restore(&'static str, &'static str),
}

/// An action at an offset from the suite's start.
#[derive(Debug, Clone)]
pub struct Step {
    /// When, after the twin is up.
    pub at: Duration,
    /// What.
    pub action: Action,
}

fn at(at: Duration, action: Action) -> Step {
    Step { at, action }
}

/// One scenario and what it must (and may) page.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name.
    pub name: &'static str,
    /// What happens, for the table.
    pub what: &'static str,
    /// `reachable`, `firewalled`, `both`, …
    pub seed_kind: &'static str,
    /// Shoots (names) whose pages are this scenario's.
    pub shoots: Vec<&'static str>,
    /// Seeds whose seed-wide pages (no `cluster`) are this scenario's.
    pub seeds: Vec<&'static str>,
    /// The script.
    pub steps: Vec<Step>,
    /// Pages (SLO name, or alert name for seed alerts) that must arrive within `deadline` of
    /// `fault_at`.
    pub required: Vec<&'static str>,
    /// Further pages that are true but not required (Gardener's shoot availability follows a
    /// real outage too).
    pub allowed: Vec<&'static str>,
    /// When the paging fault starts.
    pub fault_at: Duration,
    /// How long the required pages may take.
    pub deadline: Duration,
    /// A seed outage: one page at most.
    pub seed_outage: bool,
}

impl Scenario {
    fn quiet(
        name: &'static str,
        what: &'static str,
        seed_kind: &'static str,
        shoots: Vec<&'static str>,
        seeds: Vec<&'static str>,
        steps: Vec<Step>,
    ) -> Self {
        Self {
            name,
            what,
            seed_kind,
            shoots,
            seeds,
            steps,
            required: Vec::new(),
            allowed: Vec::new(),
            fault_at: Duration::ZERO,
            deadline: Duration::ZERO,
            seed_outage: false,
        }
    }
}

/// The landscape of the suite: which seed hosts which shoot.
pub fn seeds() -> Vec<SeedOptions> {
    let seed = |name: &str, access, shoots: &[&str]| SeedOptions {
        name: name.to_owned(),
        access,
        shoots: shoots
            .iter()
            .map(|s| (PROJECT.to_owned(), (*s).to_owned()))
            .collect(),
    };
    vec![
        seed(
            "aws-main",
            SeedAccess::Reachable,
            &[
                "calm-r",
                "outage-r",
                "probe",
                "restart",
                "hibernate",
                "migrate",
                "testing",
                "testing-down",
            ],
        ),
        seed("aws-agg3", SeedAccess::Reachable, &["agg3"]),
        seed("aws-agg20", SeedAccess::Reachable, &["agg20"]),
        seed("gcp-main", SeedAccess::Firewalled, &["calm-f", "outage-f"]),
        seed("gcp-stop", SeedAccess::Firewalled, &["stopped"]),
        seed("gcp-skew", SeedAccess::Firewalled, &["skewed"]),
    ]
}

/// Shoots with `purpose: testing` (no shoot Prometheus).
pub const TESTING: [&str; 2] = ["testing", "testing-down"];

/// Every scenario of the suite.
pub fn scenarios() -> Vec<Scenario> {
    use Action::*;
    let processing = |op| GardenChange::Operation(Some((op, 2.0)));
    let succeeded = |op| GardenChange::Operation(Some((op, 1.0)));
    let outage = |name, what, kind, shoot, from: Duration, to: Duration| Scenario {
        required: vec!["apiserver-availability"],
        allowed: vec!["shoot-availability"],
        fault_at: from,
        deadline: OUTAGE_DEADLINE,
        ..Scenario::quiet(
            name,
            what,
            kind,
            vec![shoot],
            vec![],
            vec![at(from, Outage(shoot, true)), at(to, Outage(shoot, false))],
        )
    };
    vec![
        Scenario::quiet(
            "receiver-restart",
            "the receiver restarts (every firewalled seed's pushes fail meanwhile)",
            "firewalled",
            vec!["calm-f"],
            vec!["gcp-main"],
            vec![at(min(1), RestartReceiver)],
        ),
        Scenario::quiet(
            "slo-prometheus-restart",
            "the SLO Prometheus restarts (no evaluations meanwhile)",
            "both",
            vec!["calm-r"],
            vec!["aws-main"],
            vec![at(min_s(2, 30), RestartSlo)],
        ),
        Scenario::quiet(
            "hibernation",
            "scheduled hibernation in gardenlet's order: Reconcile processing, shoot Prometheus \
             to 0, API server to 0, isHibernated 10 min later; wake-up 3 min after",
            "reachable",
            vec!["hibernate"],
            vec![],
            vec![
                at(min(4), Garden("hibernate", processing("Reconcile"))),
                at(min(4), StopShootPrometheus("hibernate")),
                at(min(5), ScaleDown("hibernate", true)),
                at(min(14), Garden("hibernate", GardenChange::Hibernated(true))),
                at(min(14), Garden("hibernate", succeeded("Reconcile"))),
                at(min(17), Garden("hibernate", processing("Reconcile"))),
                at(min(17), StartShootPrometheus("hibernate")),
                at(min(18), ScaleDown("hibernate", false)),
                at(
                    min(19),
                    Garden("hibernate", GardenChange::Hibernated(false)),
                ),
                at(min(19), Garden("hibernate", succeeded("Reconcile"))),
            ],
        ),
        Scenario::quiet(
            "testing-shoot",
            "purpose: testing, no shoot Prometheus, healthy",
            "reachable",
            vec!["testing"],
            vec![],
            Vec::new(),
        ),
        outage(
            "testing-shoot-outage",
            "purpose: testing, API server down 8 min (Gardener's condition False)",
            "reachable",
            "testing-down",
            min(9),
            min(17),
        ),
        Scenario::quiet(
            "shoot-prometheus-restart",
            "the shoot Prometheus is down for 2 min, API server healthy",
            "reachable",
            vec!["restart"],
            vec![],
            vec![
                at(min(6), StopShootPrometheus("restart")),
                at(min(8), StartShootPrometheus("restart")),
            ],
        ),
        Scenario::quiet(
            "aggregate-down-3m",
            "prometheus-aggregate unreachable for 3 min",
            "reachable",
            vec!["agg3"],
            vec!["aws-agg3"],
            vec![
                at(min(4), StopAggregate("aws-agg3")),
                at(min(7), StartAggregate("aws-agg3")),
            ],
        ),
        Scenario {
            required: vec!["SLOGatewaySeedUnreachable"],
            fault_at: min(4),
            deadline: SEED_DEADLINE,
            seed_outage: true,
            ..Scenario::quiet(
                "aggregate-down-20m",
                "prometheus-aggregate unreachable for 20 min",
                "reachable",
                vec!["agg20"],
                vec!["aws-agg20"],
                vec![
                    at(min(4), StopAggregate("aws-agg20")),
                    at(min(24), StartAggregate("aws-agg20")),
                ],
            )
        },
        Scenario {
            required: vec!["SLOGatewaySeedSilent"],
            fault_at: min(4),
            deadline: SEED_DEADLINE,
            seed_outage: true,
            ..Scenario::quiet(
                "agent-stopped",
                "the seed's agent is stopped for 10 min",
                "firewalled",
                vec!["stopped"],
                vec!["gcp-stop"],
                vec![
                    at(min(4), StopAgent("gcp-stop")),
                    at(min(14), StartAgent("gcp-stop")),
                ],
            )
        },
        Scenario::quiet(
            "clock-skew",
            "the agent's clock 20 min ahead for 7 min, true for 2, 20 min behind for 7",
            "firewalled",
            vec!["skewed"],
            vec!["gcp-skew"],
            vec![
                at(min(4), SkewAgent("gcp-skew", 1200)),
                at(min(11), SkewAgent("gcp-skew", 0)),
                at(min(13), SkewAgent("gcp-skew", -1200)),
                at(min(20), SkewAgent("gcp-skew", 0)),
            ],
        ),
        Scenario::quiet(
            "migration",
            "control-plane migration aws-main → gcp-main: Migrate 2 min (API server down), \
             Restore 2 min in the new seed",
            "reachable → firewalled",
            vec!["migrate"],
            vec![],
            vec![
                at(
                    min(6),
                    Garden("migrate", GardenChange::Seed("gcp-main".into())),
                ),
                at(min(6), Garden("migrate", processing("Migrate"))),
                at(min(6), StopShootPrometheus("migrate")),
                at(min(6), ScaleDown("migrate", true)),
                at(min(8), Garden("migrate", processing("Restore"))),
                at(min(8), Restore("migrate", "gcp-main")),
                at(min(9), ScaleDown("migrate", false)),
                at(min(10), Garden("migrate", succeeded("Restore"))),
                at(min(11), Garden("migrate", succeeded("Reconcile"))),
            ],
        ),
        Scenario::quiet(
            "probe-source-down",
            "the seed-side probe fails for 10 min, the shoot-side one answers",
            "reachable",
            vec!["probe"],
            vec![],
            vec![
                at(min(6), SeedProbeDown("probe", true)),
                at(min(16), SeedProbeDown("probe", false)),
            ],
        ),
        outage(
            "outage-reachable",
            "real API server outage, 8 min",
            "reachable",
            "outage-r",
            min(8),
            min(16),
        ),
        outage(
            "outage-firewalled",
            "real API server outage, 8 min",
            "firewalled",
            "outage-f",
            min(8),
            min(16),
        ),
    ]
}

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `slo-gateway` binary.
    pub binary: PathBuf,
    /// Scrape and evaluation interval of the twin. Default 10 s (the spec's runtime interval).
    pub interval: Duration,
    /// How long to watch after the last step. Default 3 min.
    pub settle: Duration,
    /// Run only the scenarios with these names (all when empty).
    pub only: Vec<String>,
}

impl ChaosOptions {
    /// The defaults for `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            interval: Duration::from_secs(10),
            settle: min(3),
            only: Vec::new(),
        }
    }
}

/// One page (or ticket) as the monitor saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// SLO name, or the alert name of SLO-less alerts.
    pub id: String,
    /// `cluster` (empty for seed-wide alerts).
    pub cluster: String,
    /// `seed`.
    pub seed: String,
    /// First seen active (notified), from the suite's start.
    pub active_at: Option<Duration>,
    /// First seen suppressed (inhibited), from the suite's start.
    pub suppressed_at: Option<Duration>,
    /// `page` or `ticket`.
    pub severity: String,
}

/// One row of the result.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// Pages seen active.
    pub pages: Vec<Seen>,
    /// Tickets seen active (not judged).
    pub tickets: Vec<Seen>,
    /// Pages held but suppressed by a seed alert.
    pub suppressed: Vec<Seen>,
    /// Time from the fault to the first required page.
    pub time_to_page: Option<Duration>,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}

fn mmss(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

fn alert_id(a: &AlertState) -> String {
    match a.label("sloth_slo") {
        "" => a.label("alertname").to_owned(),
        slo => slo.to_owned(),
    }
}

fn severity(a: &AlertState) -> &str {
    match a.label("sloth_severity") {
        "" => a.label("severity"),
        s => s,
    }
}

/// Records every page and ticket Alertmanager holds, with when it was first seen.
#[derive(Debug, Default)]
pub struct Monitor {
    /// By (severity, id, cluster, seed): an SLO's page and ticket are two alerts.
    seen: BTreeMap<(String, String, String, String), Seen>,
}

impl Monitor {
    /// Takes one reading of Alertmanager at `elapsed`; returns what it saw for the first time.
    pub fn observe(&mut self, alerts: &[AlertState], elapsed: Duration) -> Vec<String> {
        let mut news = Vec::new();
        for a in alerts {
            let sev = severity(a);
            if sev != "page" && sev != "ticket" {
                continue;
            }
            let key = (
                sev.to_owned(),
                alert_id(a),
                a.label("cluster").to_owned(),
                a.label("seed").to_owned(),
            );
            let entry = self.seen.entry(key.clone()).or_insert_with(|| Seen {
                id: key.1.clone(),
                cluster: key.2.clone(),
                seed: key.3.clone(),
                active_at: None,
                suppressed_at: None,
                severity: sev.to_owned(),
            });
            let slot = match a.state.as_str() {
                "active" => &mut entry.active_at,
                "suppressed" => &mut entry.suppressed_at,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(elapsed);
                news.push(format!(
                    "{sev} {} {} cluster={} seed={}",
                    a.state, key.1, key.2, key.3
                ));
            }
        }
        news
    }

    /// The verdict per scenario, plus a row for pages no scenario owns.
    pub fn verdict(&self, scenarios: &[Scenario]) -> Vec<Row> {
        let owner = |s: &Seen| -> Option<usize> {
            scenarios.iter().position(|sc| {
                if s.cluster.is_empty() {
                    sc.seeds.contains(&s.seed.as_str())
                } else {
                    sc.shoots
                        .iter()
                        .any(|n| s.cluster == format!("shoot--{PROJECT}--{n}"))
                }
            })
        };
        let mut rows: Vec<Row> = scenarios
            .iter()
            .map(|sc| Row {
                scenario: sc.clone(),
                pages: Vec::new(),
                tickets: Vec::new(),
                suppressed: Vec::new(),
                time_to_page: None,
                failures: Vec::new(),
            })
            .collect();
        let mut orphans = Row {
            scenario: Scenario::quiet(
                "(no scenario)",
                "pages of shoots and seeds no scenario owns",
                "all",
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            pages: Vec::new(),
            tickets: Vec::new(),
            suppressed: Vec::new(),
            time_to_page: None,
            failures: Vec::new(),
        };
        for s in self.seen.values() {
            let row = match owner(s) {
                Some(i) => &mut rows[i],
                None => &mut orphans,
            };
            match (s.severity.as_str(), s.active_at) {
                ("page", Some(_)) => row.pages.push(s.clone()),
                ("page", None) => row.suppressed.push(s.clone()),
                (_, Some(_)) => row.tickets.push(s.clone()),
                _ => {}
            }
        }
        rows.push(orphans);
        for row in &mut rows {
            let sc = &row.scenario;
            for p in &row.pages {
                if !sc.required.contains(&p.id.as_str()) && !sc.allowed.contains(&p.id.as_str()) {
                    row.failures.push(format!(
                        "false page {} ({}) at +{}",
                        p.id,
                        where_(p),
                        mmss(p.active_at.unwrap_or_default())
                    ));
                }
            }
            for required in &sc.required {
                let first = row
                    .pages
                    .iter()
                    .filter(|p| p.id == *required)
                    .filter_map(|p| p.active_at)
                    .filter(|t| *t >= sc.fault_at)
                    .min();
                match first {
                    Some(t) => {
                        let took = t - sc.fault_at;
                        row.time_to_page = Some(row.time_to_page.map_or(took, |d| d.max(took)));
                        if took > sc.deadline {
                            row.failures.push(format!(
                                "{required} paged after {}, more than {}",
                                mmss(took),
                                mmss(sc.deadline)
                            ));
                        }
                    }
                    None => row.failures.push(format!("{required} never paged")),
                }
            }
            if sc.seed_outage && row.pages.len() > 1 {
                row.failures
                    .push(format!("{} pages for one seed outage", row.pages.len()));
            }
        }
        rows
    }
}

fn where_(s: &Seen) -> String {
    if s.cluster.is_empty() {
        format!("seed {}", s.seed)
    } else {
        s.cluster.trim_start_matches("shoot--").to_owned()
    }
}

fn names(seen: &[Seen]) -> String {
    if seen.is_empty() {
        return "none".to_owned();
    }
    seen.iter()
        .map(|s| {
            format!(
                "{} ({}, +{})",
                s.id,
                where_(s),
                mmss(s.active_at.or(s.suppressed_at).unwrap_or_default())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | seeds | what happens | pages expected | pages seen in Alertmanager | \
         time to page | suppressed by a seed alert | tickets | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let sc = &row.scenario;
        let expected = if sc.required.is_empty() {
            "none".to_owned()
        } else {
            let mut e = sc.required.join(", ");
            if !sc.allowed.is_empty() {
                e.push_str(&format!(" (may: {})", sc.allowed.join(", ")));
            }
            e
        };
        let verdict = if row.failures.is_empty() {
            "ok".to_owned()
        } else {
            format!("**FAIL**: {}", row.failures.join("; "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            sc.name,
            sc.seed_kind,
            sc.what,
            expected,
            names(&row.pages),
            row.time_to_page.map(mmss).unwrap_or_else(|| "—".to_owned()),
            names(&row.suppressed),
            names(&row.tickets),
            verdict
        );
    }
    out
}

/// Runs `action` on the twin.
async fn apply(twin: &mut Twin, action: &Action) -> Result<(), LandscapeError> {
    match action {
        Action::RestartReceiver => twin.restart_receiver(),
        Action::RestartSlo => twin.restart_slo().await,
        Action::StopAgent(seed) => twin.stop_agent(seed),
        Action::StartAgent(seed) => twin.start_agent(seed),
        Action::SkewAgent(seed, secs) => twin.restart_agent_with_clock_offset(seed, *secs),
        Action::StopAggregate(seed) => twin.stop_aggregate(seed),
        Action::StartAggregate(seed) => twin.start_aggregate(seed).await,
        Action::StopShootPrometheus(shoot) => twin.stop_shoot_prometheus(shoot),
        Action::StartShootPrometheus(shoot) => twin.start_shoot_prometheus(shoot).await,
        Action::Outage(shoot, down) => twin.set_outage(shoot, *down),
        Action::ScaleDown(shoot, down) => twin.set_api_server_scaled_down(shoot, *down),
        Action::SeedProbeDown(shoot, down) => twin.set_seed_probe_down(shoot, *down),
        Action::Garden(shoot, change) => twin.set_garden(shoot, change.clone()),
        Action::Restore(shoot, to) => twin.restore_control_plane(shoot, to).await,
    }
}

/// The suite's result.
#[derive(Debug)]
pub struct Outcome {
    /// One row per scenario, then the unowned pages.
    pub rows: Vec<Row>,
    /// How long the twin took to start.
    pub startup: Duration,
    /// How long the scenarios ran.
    pub ran: Duration,
}

impl Outcome {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.failures.is_empty())
    }
}

/// Starts the twin, runs the scenarios side by side, watches Alertmanager and judges.
/// Progress goes to stderr.
pub async fn run(options: ChaosOptions) -> anyhow::Result<Outcome> {
    let all = scenarios();
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| options.only.is_empty() || options.only.iter().any(|o| o == s.name))
        .collect();
    let started = Instant::now();
    let mut twin_options = TwinOptions::new(&options.binary);
    twin_options.spec = CHAOS_SPEC.to_owned();
    twin_options.seeds = seeds();
    twin_options.interval = options.interval;
    twin_options.testing = TESTING.iter().map(|s| (*s).to_owned()).collect();
    twin_options.ready_within = Duration::from_secs(300);
    let mut twin = Twin::start(twin_options).await?;
    let startup = started.elapsed();
    eprintln!(
        "chaos: twin up after {} in {}",
        mmss(startup),
        twin.dir().display()
    );
    let mut steps: Vec<(Duration, &'static str, Action)> = chosen
        .iter()
        .flat_map(|s| s.steps.iter().map(|st| (st.at, s.name, st.action.clone())))
        .collect();
    steps.sort_by_key(|(t, _, _)| *t);
    let end = steps.last().map(|(t, _, _)| *t).unwrap_or_default() + options.settle;
    let am = twin.alertmanager().url();
    let t0 = Instant::now();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let monitor = tokio::spawn(async move {
        let mut monitor = Monitor::default();
        loop {
            match alerts_at(&am).await {
                Ok(alerts) => {
                    for news in monitor.observe(&alerts, t0.elapsed()) {
                        eprintln!("[+{}] {news}", mmss(t0.elapsed()));
                    }
                }
                Err(e) => eprintln!("[+{}] Alertmanager: {e}", mmss(t0.elapsed())),
            }
            if *rx.borrow() {
                return monitor;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = rx.changed() => {}
            }
        }
    });
    let mut errors = Vec::new();
    for (offset, scenario, action) in &steps {
        tokio::time::sleep_until(t0 + *offset).await;
        eprintln!("[+{}] {scenario}: {action:?}", mmss(t0.elapsed()));
        if let Err(e) = apply(&mut twin, action).await {
            eprintln!(
                "[+{}] {scenario}: {action:?} failed: {e}",
                mmss(t0.elapsed())
            );
            errors.push(format!("{scenario}: {action:?}: {e}"));
        }
    }
    tokio::time::sleep_until(t0 + end).await;
    let _ = tx.send(true);
    let monitor = monitor.await?;
    let mut rows = monitor.verdict(&chosen);
    for e in errors {
        let name = e.split(':').next().unwrap_or_default().to_owned();
        if let Some(row) = rows.iter_mut().find(|r| r.scenario.name == name) {
            row.failures.push(format!("step failed: {e}"));
        }
    }
    Ok(Outcome {
        rows,
        startup,
        ran: t0.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], state: &str) -> AlertState {
        AlertState {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            state: state.to_owned(),
            inhibited_by: Vec::new(),
        }
    }

    #[test]
    fn every_scenario_owns_what_it_touches_and_nothing_is_owned_twice() {
        let all = scenarios();
        let shoots: Vec<String> = seeds()
            .iter()
            .flat_map(|s| s.shoots.iter().map(|(_, n)| n.clone()))
            .collect();
        let mut owned = Vec::new();
        for sc in &all {
            for s in &sc.shoots {
                assert!(
                    shoots.iter().any(|n| n == s),
                    "{} owns unknown {s}",
                    sc.name
                );
                assert!(!owned.contains(s), "{s} owned twice");
                owned.push(s);
            }
        }
        let mut seeds_owned = Vec::new();
        for sc in &all {
            for s in &sc.seeds {
                assert!(!seeds_owned.contains(s), "{s} owned twice");
                seeds_owned.push(s);
            }
        }
        assert!(CHAOS_SPEC.contains("min_outage: 3m"));
    }

    #[test]
    fn verdict_flags_false_late_missing_and_repeated_pages() {
        let all = scenarios();
        let mut m = Monitor::default();
        let page = |slo: &str, shoot: &str, seed: &str| {
            alert(
                &[
                    ("sloth_slo", slo),
                    ("sloth_severity", "page"),
                    ("cluster", shoot),
                    ("seed", seed),
                ],
                "active",
            )
        };
        // A false page on the restarting shoot Prometheus' shoot.
        m.observe(
            &[page(
                "apiserver-availability",
                "shoot--chaos--restart",
                "aws-main",
            )],
            min(7),
        );
        // The reachable outage: its ticket first, its page 3 min after it began; the firewalled
        // one too late.
        let ticket = alert(
            &[
                ("sloth_slo", "apiserver-availability"),
                ("sloth_severity", "ticket"),
                ("cluster", "shoot--chaos--outage-r"),
                ("seed", "aws-main"),
            ],
            "active",
        );
        m.observe(std::slice::from_ref(&ticket), min_s(8, 30));
        m.observe(
            &[page(
                "apiserver-availability",
                "shoot--chaos--outage-r",
                "aws-main",
            )],
            min(11),
        );
        m.observe(
            &[page(
                "apiserver-availability",
                "shoot--chaos--outage-f",
                "gcp-main",
            )],
            min(14),
        );
        // The stopped agent: the seed page and a shoot page.
        m.observe(
            &[
                alert(
                    &[
                        ("alertname", "SLOGatewaySeedSilent"),
                        ("severity", "page"),
                        ("seed", "gcp-stop"),
                    ],
                    "active",
                ),
                page(
                    "apiserver-availability",
                    "shoot--chaos--stopped",
                    "gcp-stop",
                ),
            ],
            min(9),
        );
        let rows = m.verdict(&all);
        let row = |n: &str| rows.iter().find(|r| r.scenario.name == n).unwrap();
        assert!(row("shoot-prometheus-restart").failures[0].contains("false page"));
        assert!(row("outage-reachable").failures.is_empty());
        assert_eq!(row("outage-reachable").time_to_page, Some(min(3)));
        assert!(row("outage-firewalled").failures[0].contains("more than"));
        let stopped = &row("agent-stopped").failures;
        assert!(stopped
            .iter()
            .any(|f| f.contains("2 pages for one seed outage")));
        assert!(row("aggregate-down-20m").failures[0].contains("never paged"));
        assert!(row("hibernation").failures.is_empty());
        let text = table(&rows);
        assert!(text.contains("| outage-reachable | reachable |"), "{text}");
    }
}
