//! One simulated shoot control plane as Gardener's shoot Prometheus sees it: what the
//! kube-apiserver, the two blackbox probes (seed side and shoot side), the VPN tunnel probe,
//! machine-controller-manager and kube-state-metrics expose, with Gardener's metric and label
//! shapes (sources: kubernetes `apiserver_request_*`, gardener/machine-controller-manager
//! `pkg/util/provider/metrics`, Gardener's blackbox scrape configs).
//!
//! Counters advance with the wall clock (about [`REQUESTS_PER_SECOND`] requests per second),
//! histograms use Prometheus 3's normalised `le` values (`"1.0"`, `"+Inf"`), and an outage can
//! be switched on: the kube-apiserver's own endpoint and everything scraped through it (the
//! shoot-side probe) then fail, and the seed-side and VPN probes report `probe_success 0`.
//!
//! `mcm_machine_creation_duration_minutes` does not exist in machine-controller-manager yet;
//! GEP-0041 asks for it, and the twin serves it so the SLO that needs it can be tried.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use exposition::{write_sample, Label, Sample};

/// Mean kube-apiserver requests per second of a simulated shoot.
pub const REQUESTS_PER_SECOND: f64 = 25.0;
/// kube-apiserver's request-duration buckets (seconds), as Kubernetes 1.28+ defines them.
const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Buckets (minutes) of the machine-creation histogram GEP-0041 asks for.
pub const MINUTE_BUCKETS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0];
/// Share of healthy requests answered 5xx, terminated, or slower than 1 s: small enough that
/// no SLO of the twin's spec burns budget on a healthy shoot. Spread evenly (each kind once
/// in 20,000 requests, about every 13 minutes, kinds staggered), not rolled: a random bad
/// request in a shoot's first seconds is a large share of its few requests and pages the
/// twin's minute-long windows.
const HEALTHY_BAD_SHARE: f64 = 0.000_05;
/// The most simulated time one scrape may advance (a paused twin does not burst).
const MAX_STEP: Duration = Duration::from_secs(60);
/// How long a new machine stays `Pending` before it runs.
const MACHINE_PENDING: Duration = Duration::from_secs(20);
/// Machines per shoot in steady state.
const MACHINES: usize = 3;

/// Identity of a shoot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShootId {
    /// Seed hosting its control plane.
    pub seed: String,
    /// Gardener project.
    pub project: String,
    /// Shoot name.
    pub name: String,
}

impl ShootId {
    /// The control-plane namespace, `shoot--<project>--<name>`: Gardener's `cluster` label and
    /// the garden exporter's `technical_id`.
    pub fn namespace(&self) -> String {
        format!("shoot--{}--{}", self.project, self.name)
    }
}

/// One kind of request: verb, resource, scope, share of the traffic.
struct RequestClass {
    verb: &'static str,
    resource: &'static str,
    scope: &'static str,
    share: f64,
    /// Success code.
    code: &'static str,
    /// Long-running (WATCH): durations are the watch length, not latency.
    long_running: bool,
}

const CLASSES: [RequestClass; 8] = [
    class("GET", "pods", "resource", 0.25, "200", false),
    class("LIST", "pods", "namespace", 0.12, "200", false),
    class("WATCH", "pods", "namespace", 0.05, "200", true),
    class("PUT", "leases", "resource", 0.25, "200", false),
    class("PATCH", "nodes", "resource", 0.10, "200", false),
    class("POST", "events", "resource", 0.13, "201", false),
    class("DELETE", "pods", "resource", 0.05, "200", false),
    class("LIST", "nodes", "cluster", 0.05, "200", false),
];

const fn class(
    verb: &'static str,
    resource: &'static str,
    scope: &'static str,
    share: f64,
    code: &'static str,
    long_running: bool,
) -> RequestClass {
    RequestClass {
        verb,
        resource,
        scope,
        share,
        code,
        long_running,
    }
}

/// Per request class: counts per code, terminations, and the duration histogram.
#[derive(Debug, Clone, Default)]
struct ClassCounters {
    ok: f64,
    server_errors: f64,
    client_errors: f64,
    terminations: f64,
    /// Cumulative bucket counts, one per [`DURATION_BUCKETS`] entry.
    buckets: [f64; DURATION_BUCKETS.len()],
    count: f64,
    sum: f64,
}

/// A machine of the shoot's worker pool.
#[derive(Debug, Clone)]
struct Machine {
    name: String,
    node: String,
    /// Unix seconds the machine object was created.
    created_unix: f64,
    /// When it turns `Running` (None: running since before the twin started).
    running_at: Option<Instant>,
}

/// The simulated control plane of one shoot.
#[derive(Debug)]
pub struct ControlPlane {
    id: ShootId,
    outage: bool,
    /// The seed-side probe fails on its own (one probe source down).
    seed_probe_down: bool,
    rng: fastrand::Rng,
    last_step: Option<Instant>,
    /// Requests not yet attributed (fractions carry over between steps).
    pending_requests: f64,
    /// Accumulated [`HEALTHY_BAD_SHARE`] per kind of bad request (5xx, termination, slow):
    /// one is due when it reaches 1.
    bad_due: [f64; 3],
    classes: Vec<ClassCounters>,
    machines: Vec<Machine>,
    machines_created: u64,
    /// Cumulative counts per [`MINUTE_BUCKETS`] entry, plus count and sum.
    creation_buckets: [f64; MINUTE_BUCKETS.len()],
    creation_count: f64,
    creation_sum: f64,
    /// When the next machine roll (one new machine, the oldest one leaves) starts.
    next_roll: Instant,
    roll_every: Duration,
}

/// Unix seconds now.
fn now_unix() -> f64 {
    common::telemetry::now_unix_ms() as f64 / 1000.0
}

impl ControlPlane {
    /// A healthy control plane with [`MACHINES`] machines running for two days, one more being
    /// created right now, and a machine roll every `roll_every`.
    pub fn new(id: ShootId, rng_seed: u64, roll_every: Duration) -> Self {
        let now = Instant::now();
        let mut plane = Self {
            rng: fastrand::Rng::with_seed(rng_seed),
            outage: false,
            seed_probe_down: false,
            last_step: None,
            pending_requests: 0.0,
            // Staggered so that no two kinds fall on one request.
            bad_due: [0.0, -1.0 / 3.0, -2.0 / 3.0],
            classes: vec![ClassCounters::default(); CLASSES.len()],
            machines: Vec::new(),
            machines_created: 0,
            creation_buckets: [0.0; MINUTE_BUCKETS.len()],
            creation_count: 0.0,
            creation_sum: 0.0,
            next_roll: now + roll_every,
            roll_every,
            id,
        };
        let two_days_ago = now_unix() - 2.0 * 86_400.0;
        for _ in 0..MACHINES - 1 {
            plane.add_machine(two_days_ago, None);
        }
        plane.add_machine(now_unix(), Some(now + MACHINE_PENDING));
        plane
    }

    /// Who this is.
    pub fn id(&self) -> &ShootId {
        &self.id
    }

    /// Whether the kube-apiserver is down.
    pub fn outage(&self) -> bool {
        self.outage
    }

    /// Takes the kube-apiserver down (`true`) or brings it back.
    pub fn set_outage(&mut self, down: bool) {
        self.step(Instant::now());
        self.outage = down;
    }

    /// Fails the seed-side probe alone (`true`: a broken blackbox exporter or route in the
    /// seed) while the API server and the shoot-side probe stay healthy, or heals it.
    pub fn set_seed_probe_down(&mut self, down: bool) {
        self.seed_probe_down = down;
    }

    /// Moves the control plane to seed `seed` (control-plane migration).
    pub fn move_to(&mut self, seed: &str) {
        self.id.seed = seed.to_owned();
    }

    fn add_machine(&mut self, created_unix: f64, running_at: Option<Instant>) {
        self.machines_created += 1;
        let n = self.machines_created;
        let base = format!("{}-worker-z1", self.id.namespace());
        self.machines.push(Machine {
            name: format!("{base}-{n:05x}"),
            node: format!("{}-node-{n:05x}", self.id.name),
            created_unix,
            running_at,
        });
    }

    /// Advances traffic and machines to `now`.
    fn step(&mut self, now: Instant) {
        let elapsed = self
            .last_step
            .map(|last| now.saturating_duration_since(last).min(MAX_STEP))
            .unwrap_or_default();
        self.last_step = Some(now);
        if !self.outage {
            self.pending_requests +=
                elapsed.as_secs_f64() * REQUESTS_PER_SECOND * (0.8 + 0.4 * self.rng.f64());
            while self.pending_requests >= 1.0 {
                self.pending_requests -= 1.0;
                self.one_request();
            }
        }
        // Machines that finished creating: observe their creation time.
        for i in 0..self.machines.len() {
            if let Some(at) = self.machines[i].running_at {
                if at <= now {
                    self.machines[i].running_at = None;
                    let minutes = (now_unix() - self.machines[i].created_unix) / 60.0;
                    self.observe_creation(minutes.max(0.0));
                }
            }
        }
        if now >= self.next_roll {
            self.next_roll = now + self.roll_every;
            self.add_machine(now_unix(), Some(now + MACHINE_PENDING));
            if self.machines.len() > MACHINES {
                self.machines.remove(0);
            }
        }
    }

    fn observe_creation(&mut self, minutes: f64) {
        for (i, le) in MINUTE_BUCKETS.iter().enumerate() {
            if minutes <= *le {
                self.creation_buckets[i] += 1.0;
            }
        }
        self.creation_count += 1.0;
        self.creation_sum += minutes;
    }

    fn one_request(&mut self) {
        let mut pick = self.rng.f64();
        let index = CLASSES
            .iter()
            .position(|c| {
                pick -= c.share;
                pick < 0.0
            })
            .unwrap_or(0);
        let class = &CLASSES[index];
        let [server_error, termination, slow] = self.bad_kinds_due(class.long_running);
        let roll = self.rng.f64();
        let counters = &mut self.classes[index];
        if server_error {
            counters.server_errors += 1.0;
        } else if termination {
            counters.terminations += 1.0;
            counters.server_errors += 1.0;
        } else if roll < 0.01 {
            counters.client_errors += 1.0;
        } else {
            counters.ok += 1.0;
        }
        let seconds = if class.long_running {
            30.0 + 30.0 * self.rng.f64()
        } else {
            let r = self.rng.f64();
            if slow {
                1.0 + 2.0 * self.rng.f64()
            } else if r < 0.8 {
                0.025 * self.rng.f64()
            } else if r < 0.97 {
                0.025 + 0.075 * self.rng.f64()
            } else {
                0.1 + 0.8 * self.rng.f64()
            }
        };
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                counters.buckets[i] += 1.0;
            }
        }
        counters.count += 1.0;
        counters.sum += seconds;
    }

    /// Which kinds of healthy bad request (5xx, termination, slow) this request is, each due
    /// once per `1 / HEALTHY_BAD_SHARE` requests; long-running requests are never slow.
    fn bad_kinds_due(&mut self, long_running: bool) -> [bool; 3] {
        let mut due = [false; 3];
        for (kind, credit) in self.bad_due.iter_mut().enumerate() {
            if kind == 2 && long_running {
                continue;
            }
            *credit += HEALTHY_BAD_SHARE;
            if *credit >= 1.0 {
                *credit -= 1.0;
                due[kind] = true;
            }
        }
        due
    }

    /// `/metrics` of the kube-apiserver, or `None` while it is down.
    pub fn kube_apiserver_metrics(&mut self) -> Option<String> {
        self.step(Instant::now());
        if self.outage {
            return None;
        }
        let mut out = String::new();
        out.push_str("# TYPE apiserver_request_total counter\n");
        for (class, c) in CLASSES.iter().zip(&self.classes) {
            for (code, value) in [
                (class.code, c.ok),
                ("404", c.client_errors),
                ("500", c.server_errors),
            ] {
                // Kubernetes creates a label set on its first request.
                if value > 0.0 || code == class.code {
                    sample(
                        &mut out,
                        "apiserver_request_total",
                        &request_labels(class, Some(code)),
                        value,
                    );
                }
            }
        }
        out.push_str("# TYPE apiserver_request_terminations_total counter\n");
        for (class, c) in CLASSES.iter().zip(&self.classes) {
            if c.terminations > 0.0 {
                sample(
                    &mut out,
                    "apiserver_request_terminations_total",
                    &request_labels(class, Some("504")),
                    c.terminations,
                );
            }
        }
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for (class, c) in CLASSES.iter().zip(&self.classes) {
            let labels = request_labels(class, None);
            let mut bucket_labels = labels.clone();
            bucket_labels.push(("le", String::new()));
            let last = bucket_labels.len() - 1;
            for (le, count) in DURATION_BUCKETS.iter().zip(c.buckets) {
                bucket_labels[last].1 = le_value(*le);
                sample(
                    &mut out,
                    "apiserver_request_duration_seconds_bucket",
                    &bucket_labels,
                    count,
                );
            }
            bucket_labels[last].1 = "+Inf".into();
            sample(
                &mut out,
                "apiserver_request_duration_seconds_bucket",
                &bucket_labels,
                c.count,
            );
            sample(
                &mut out,
                "apiserver_request_duration_seconds_sum",
                &labels,
                c.sum,
            );
            sample(
                &mut out,
                "apiserver_request_duration_seconds_count",
                &labels,
                c.count,
            );
        }
        Some(out)
    }

    /// The blackbox probe of the API server's external endpoint from the seed
    /// (`job="blackbox-apiserver"`): always answers, `probe_success` 0 while the API server is down.
    pub fn seed_probe(&mut self) -> String {
        self.step(Instant::now());
        probe_body(!self.outage && !self.seed_probe_down)
    }

    /// The in-cluster probe (`job="blackbox-exporter-k8s-service-check"`), scraped through the
    /// API server's service proxy: `None` (the scrape fails) while the API server is down.
    pub fn shoot_probe(&mut self) -> Option<String> {
        self.step(Instant::now());
        (!self.outage).then(|| probe_body(true))
    }

    /// The VPN tunnel probe (`job="tunnel-probe-apiserver-proxy"`).
    pub fn vpn_probe(&mut self) -> String {
        self.step(Instant::now());
        probe_body(!self.outage)
    }

    /// `/metrics` of machine-controller-manager: phases (Running 1, Pending 0), info with
    /// `node_name`, and the creation-duration histogram.
    pub fn mcm_metrics(&mut self) -> String {
        let now = Instant::now();
        self.step(now);
        let namespace = self.id.namespace();
        let mut out = String::new();
        out.push_str("# TYPE mcm_machine_current_status_phase gauge\n");
        for m in &self.machines {
            let phase = if m.running_at.is_some() { 0.0 } else { 1.0 };
            sample(
                &mut out,
                "mcm_machine_current_status_phase",
                &[("name", m.name.clone()), ("namespace", namespace.clone())],
                phase,
            );
        }
        out.push_str("# TYPE mcm_machine_info gauge\n");
        for m in &self.machines {
            let node = if m.running_at.is_some() {
                String::new()
            } else {
                m.node.clone()
            };
            sample(
                &mut out,
                "mcm_machine_info",
                &[
                    ("name", m.name.clone()),
                    ("namespace", namespace.clone()),
                    ("createdAt", format!("{}", m.created_unix as i64)),
                    ("spec_provider_id", format!("twin:///{}", m.name)),
                    ("spec_class_api_group", "machine.sapcloud.io".into()),
                    ("spec_class_kind", "MachineClass".into()),
                    ("spec_class_name", format!("{namespace}-worker-z1")),
                    ("node_name", node),
                ],
                1.0,
            );
        }
        out.push_str("# TYPE mcm_machine_creation_duration_minutes histogram\n");
        let ns = [("namespace", namespace.clone())];
        for (le, count) in MINUTE_BUCKETS.iter().zip(self.creation_buckets) {
            let labels = [("namespace", namespace.clone()), ("le", le_value(*le))];
            sample(
                &mut out,
                "mcm_machine_creation_duration_minutes_bucket",
                &labels,
                count,
            );
        }
        let inf = [("namespace", namespace.clone()), ("le", "+Inf".to_owned())];
        sample(
            &mut out,
            "mcm_machine_creation_duration_minutes_bucket",
            &inf,
            self.creation_count,
        );
        sample(
            &mut out,
            "mcm_machine_creation_duration_minutes_sum",
            &ns,
            self.creation_sum,
        );
        sample(
            &mut out,
            "mcm_machine_creation_duration_minutes_count",
            &ns,
            self.creation_count,
        );
        out
    }

    /// `/metrics` of the shoot's kube-state-metrics: `kube_node_created` per node that exists.
    pub fn kube_state_metrics(&mut self) -> String {
        self.step(Instant::now());
        let mut out = String::from("# TYPE kube_node_created gauge\n");
        for m in self.machines.iter().filter(|m| m.running_at.is_none()) {
            // The node registers a little after its machine was created.
            let created = (m.created_unix + 60.0).min(now_unix()).floor();
            sample(
                &mut out,
                "kube_node_created",
                &[("node", m.node.clone())],
                created,
            );
        }
        out
    }
}

/// Labels of kube-apiserver request metrics.
fn request_labels(class: &RequestClass, code: Option<&str>) -> Vec<(&'static str, String)> {
    let mut labels = vec![];
    if let Some(code) = code {
        labels.push(("code", code.to_owned()));
    }
    labels.extend([
        ("component", "apiserver".to_owned()),
        ("group", String::new()),
        ("resource", class.resource.to_owned()),
        ("scope", class.scope.to_owned()),
        ("verb", class.verb.to_owned()),
        ("version", "v1".to_owned()),
    ]);
    labels
}

/// A blackbox exporter `/probe` answer.
fn probe_body(success: bool) -> String {
    let mut out = String::new();
    let none: &[(&str, String)] = &[];
    let ok = if success { 1.0 } else { 0.0 };
    sample(&mut out, "probe_success", none, ok);
    sample(
        &mut out,
        "probe_duration_seconds",
        none,
        if success { 0.012 } else { 10.0 },
    );
    sample(
        &mut out,
        "probe_http_status_code",
        none,
        if success { 200.0 } else { 0.0 },
    );
    out
}

/// A bucket bound as Prometheus 3 normalises it: `1.0`, `0.025`, `60.0`.
pub fn le_value(le: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{le:?}");
    s
}

/// Writes one sample without timestamp; empty label values are left out, as exporters do.
pub fn sample<N: AsRef<str>>(out: &mut String, name: &str, labels: &[(N, String)], value: f64) {
    let labels = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| Label {
            name: n.as_ref(),
            value: Cow::Borrowed(v.as_str()),
        })
        .collect();
    write_sample(
        out,
        &Sample {
            name,
            labels,
            value,
            timestamp_ms: None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::parse_samples;

    fn shoot() -> ControlPlane {
        let id = ShootId {
            seed: "aws-eu1".into(),
            project: "dev".into(),
            name: "web".into(),
        };
        ControlPlane::new(id, 1, Duration::from_secs(3600))
    }

    fn value(text: &str, name: &str, label: (&str, &str)) -> f64 {
        parse_samples(text)
            .map(Result::unwrap)
            .filter(|s| s.name == name)
            .filter(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == label.0 && l.value == label.1)
            })
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn le_values_are_normalised_like_prometheus_3() {
        assert_eq!(le_value(1.0), "1.0");
        assert_eq!(le_value(0.025), "0.025");
        assert_eq!(le_value(60.0), "60.0");
    }

    #[test]
    fn counters_grow_with_time_and_buckets_are_cumulative() {
        let mut plane = shoot();
        plane.kube_apiserver_metrics().unwrap();
        plane.last_step = Some(Instant::now() - Duration::from_secs(10));
        let text = plane.kube_apiserver_metrics().unwrap();
        let total: f64 = value(&text, "apiserver_request_total", ("component", "apiserver"));
        assert!(total > 100.0, "about 250 requests in 10 s, got {total}");
        let fast = value(
            &text,
            "apiserver_request_duration_seconds_bucket",
            ("le", "1.0"),
        );
        let all = value(
            &text,
            "apiserver_request_duration_seconds_bucket",
            ("le", "+Inf"),
        );
        let count = value(
            &text,
            "apiserver_request_duration_seconds_count",
            ("component", "apiserver"),
        );
        assert!(
            fast <= all && all == count && count == total,
            "{fast} {all} {count} {total}"
        );
        assert!(!text.contains("le=\"1\""), "Prometheus 3 style only");
    }

    #[test]
    fn healthy_bad_requests_are_spread_evenly_not_rolled() {
        let mut plane = shoot();
        let bad = |plane: &ControlPlane| -> (f64, f64, f64) {
            CLASSES
                .iter()
                .zip(&plane.classes)
                .fold((0.0, 0.0, 0.0), |(e, t, slow), (class, c)| {
                    let slow_here = if class.long_running {
                        0.0
                    } else {
                        c.count - c.buckets[8]
                    };
                    (e + c.server_errors, t + c.terminations, slow + slow_here)
                })
        };
        let spacing = (1.0 / HEALTHY_BAD_SHARE) as usize;
        for _ in 0..spacing - 100 {
            plane.one_request();
        }
        // A shoot's first minutes hold no bad request at all: one would be a large share.
        assert_eq!(bad(&plane), (0.0, 0.0, 0.0));
        for _ in 0..2 * spacing + 200 {
            plane.one_request();
        }
        let (errors, terminations, slow) = bad(&plane);
        // 5xx due at 1, 2 and 3 spacings, terminations (also 5xx) at 1⅓ and 2⅓, slow at 1⅔
        // and 2⅔ of the requests that are not long-running.
        assert_eq!((errors, terminations), (5.0, 2.0));
        assert!((1.0..=2.0).contains(&slow), "slow requests: {slow}");
    }

    #[test]
    fn an_outage_fails_the_apiserver_and_the_shoot_probe_and_zeroes_the_seed_probe() {
        let mut plane = shoot();
        assert!(plane.shoot_probe().is_some());
        assert!(plane.seed_probe().contains("probe_success 1\n"));
        plane.set_outage(true);
        assert!(plane.kube_apiserver_metrics().is_none());
        assert!(plane.shoot_probe().is_none());
        assert!(plane.seed_probe().contains("probe_success 0\n"));
        plane.set_outage(false);
        assert!(plane.seed_probe().contains("probe_success 1\n"));
    }

    #[test]
    fn a_pending_machine_runs_later_and_is_observed_in_the_creation_histogram() {
        let mut plane = shoot();
        let text = plane.mcm_metrics();
        let phases: Vec<f64> = parse_samples(&text)
            .map(Result::unwrap)
            .filter(|s| s.name == "mcm_machine_current_status_phase")
            .map(|s| s.value)
            .collect();
        assert_eq!(phases, vec![1.0, 1.0, 0.0]);
        assert_eq!(
            plane
                .kube_state_metrics()
                .matches("kube_node_created{")
                .count(),
            2
        );
        plane.machines[2].running_at = Some(Instant::now());
        let text = plane.mcm_metrics();
        assert!(
            text.contains(
                "mcm_machine_creation_duration_minutes_count{namespace=\"shoot--dev--web\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"1.0\"} 1\n"), "{text}");
        assert_eq!(
            plane
                .kube_state_metrics()
                .matches("kube_node_created{")
                .count(),
            3
        );
    }
}
