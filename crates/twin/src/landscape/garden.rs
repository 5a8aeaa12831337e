//! The garden as gardener-metrics-exporter shows it to `prometheus-garden`: per shoot
//! `garden_shoot_condition` (−1 unknown, 0 false, 1 true, 2 progressing), `garden_shoot_info`,
//! `garden_shoot_hibernated`, `garden_shoot_operation_states` (1 succeeded, 2 processing, …,
//! per operation type; a shoot's `Create` is processing until it finishes), with the exporter's
//! label names (`name`, `project`,
//! `technical_id` = `shoot--<project>--<name>`, `seed`, …; source:
//! gardener/gardener-metrics-exporter `pkg/metrics/metrics.go`).
//!
//! Plus `garden_shoot_operation_duration_minutes` (labels `name`, `project`, `seed`, `operation`),
//! which GEP-0041 asks for and Gardener does not have yet: every shoot finishes its `Create`
//! shortly after the twin starts and a `Reconcile` every reconcile period.

use std::time::Duration;

use tokio::time::Instant;

use super::control_plane::{le_value, sample, ShootId, MINUTE_BUCKETS};

/// Conditions a shoot reports; the first four are GEP-0041's shoot-availability inputs.
pub const CONDITIONS: [&str; 5] = [
    "APIServerAvailable",
    "ControlPlaneHealthy",
    "EveryNodeReady",
    "SystemComponentsHealthy",
    "ObservabilityComponentsHealthy",
];
/// When, after the twin started, every shoot's creation is reported finished.
const CREATE_FINISHES_AFTER: Duration = Duration::from_secs(15);
/// How long (minutes) the simulated creations and reconciliations took.
const CREATE_MINUTES: f64 = 12.0;
const RECONCILE_MINUTES: f64 = 4.0;

/// Operation-duration histogram of one shoot and operation.
#[derive(Debug, Clone, Default)]
struct Operations {
    buckets: [f64; MINUTE_BUCKETS.len()],
    count: f64,
    sum: f64,
}

impl Operations {
    fn observe(&mut self, minutes: f64) {
        for (i, le) in MINUTE_BUCKETS.iter().enumerate() {
            if minutes <= *le {
                self.buckets[i] += 1.0;
            }
        }
        self.count += 1.0;
        self.sum += minutes;
    }
}

/// One shoot as the garden sees it.
#[derive(Debug)]
struct GardenShoot {
    id: ShootId,
    api_server_down: bool,
    /// `purpose` label of its conditions (`testing`: no shoot Prometheus).
    purpose: &'static str,
    /// `status.isHibernated` (`garden_shoot_hibernated`).
    hibernated: bool,
    /// A scripted last operation (type, state: 1 succeeded, 2 processing), replacing the
    /// simulated create/reconcile cycle while set.
    operation: Option<(&'static str, f64)>,
    created: bool,
    create: Operations,
    reconcile: Operations,
    next_reconcile: Instant,
}

/// The garden exporter's state.
#[derive(Debug)]
pub struct Garden {
    started: Instant,
    reconcile_every: Duration,
    shoots: Vec<GardenShoot>,
}

impl Garden {
    /// A garden with `shoots`, each reconciling every `reconcile_every`.
    pub fn new(shoots: &[ShootId], reconcile_every: Duration) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            reconcile_every,
            shoots: shoots
                .iter()
                .enumerate()
                .map(|(i, id)| GardenShoot {
                    id: id.clone(),
                    api_server_down: false,
                    purpose: "evaluation",
                    hibernated: false,
                    operation: None,
                    created: false,
                    create: Operations::default(),
                    reconcile: Operations::default(),
                    // Spread the shoots over the period.
                    next_reconcile: now
                        + CREATE_FINISHES_AFTER
                        + reconcile_every.mul_f64(i as f64 / shoots.len().max(1) as f64),
                })
                .collect(),
        }
    }

    /// Reflects an API server outage in the shoot's conditions (the care controller's view).
    pub fn set_api_server_down(&mut self, shoot: &ShootId, down: bool) {
        if let Some(s) = self.find(shoot) {
            s.api_server_down = down;
        }
    }

    /// The shoot with `shoot`'s namespace (its seed may have changed by a migration).
    fn find(&mut self, shoot: &ShootId) -> Option<&mut GardenShoot> {
        let namespace = shoot.namespace();
        self.shoots
            .iter_mut()
            .find(|s| s.id.namespace() == namespace)
    }

    /// Sets the shoot's `purpose` (`testing`: Gardener deploys no shoot Prometheus).
    pub fn set_purpose(&mut self, shoot: &ShootId, purpose: &'static str) {
        if let Some(s) = self.find(shoot) {
            s.purpose = purpose;
        }
    }

    /// Sets `status.isHibernated` (`garden_shoot_hibernated`, `garden_shoot_info{is_hibernated}`).
    pub fn set_hibernated(&mut self, shoot: &ShootId, hibernated: bool) {
        if let Some(s) = self.find(shoot) {
            s.hibernated = hibernated;
        }
    }

    /// Scripts the shoot's last operation (`Reconcile`, `Migrate`, `Restore`, …; state 1
    /// succeeded, 2 processing), or hands it back to the simulated cycle (`None`).
    pub fn set_operation(&mut self, shoot: &ShootId, operation: Option<(&'static str, f64)>) {
        if let Some(s) = self.find(shoot) {
            s.operation = operation;
        }
    }

    /// Names `seed` as the shoot's seed (`spec.seedName`; a migration changes it first).
    pub fn move_to(&mut self, shoot: &ShootId, seed: &str) {
        if let Some(s) = self.find(shoot) {
            s.id.seed = seed.to_owned();
        }
    }

    fn step(&mut self, now: Instant) {
        let created = now >= self.started + CREATE_FINISHES_AFTER;
        for s in &mut self.shoots {
            if created && !s.created {
                s.created = true;
                s.create.observe(CREATE_MINUTES);
            }
            // A shoot whose API server is down does not finish reconciling.
            if now >= s.next_reconcile && !s.api_server_down {
                s.next_reconcile = now + self.reconcile_every;
                s.reconcile.observe(RECONCILE_MINUTES);
            }
        }
    }

    /// `/metrics` of the garden exporter.
    pub fn metrics(&mut self) -> String {
        self.step(Instant::now());
        let mut out = String::from("# TYPE garden_shoot_condition gauge\n");
        for s in &self.shoots {
            let operation = match s.operation {
                Some((operation, _)) => operation,
                None if s.reconcile.count > 0.0 => "Reconcile",
                None => "Create",
            };
            for condition in CONDITIONS {
                let value = match (s.api_server_down, condition) {
                    (false, _) | (true, "ObservabilityComponentsHealthy") => 1.0,
                    (true, "APIServerAvailable" | "ControlPlaneHealthy") => 0.0,
                    (true, _) => -1.0,
                };
                let mut labels = shoot_labels(&s.id);
                labels.extend([
                    ("condition", condition.to_owned()),
                    ("operation", operation.to_owned()),
                    ("purpose", s.purpose.to_owned()),
                    ("is_seed", "false".to_owned()),
                    ("iaas", "local".to_owned()),
                    ("seed", s.id.seed.clone()),
                    ("has_user_errors", "false".to_owned()),
                ]);
                sample(&mut out, "garden_shoot_condition", &labels, value);
            }
        }
        out.push_str("# TYPE garden_shoot_info gauge\n");
        for s in &self.shoots {
            let mut labels = shoot_labels(&s.id);
            labels.extend([
                ("iaas", "local".to_owned()),
                ("version", "1.31.1".to_owned()),
                ("region", "local".to_owned()),
                ("seed", s.id.seed.clone()),
                ("is_seed", "false".to_owned()),
                ("is_workerless", "false".to_owned()),
                ("is_hibernated", s.hibernated.to_string()),
            ]);
            sample(&mut out, "garden_shoot_info", &labels, 1.0);
        }
        out.push_str("# TYPE garden_shoot_hibernated gauge\n");
        for s in &self.shoots {
            sample(
                &mut out,
                "garden_shoot_hibernated",
                &shoot_labels(&s.id),
                if s.hibernated { 1.0 } else { 0.0 },
            );
        }
        // As the exporter does: every operation type per shoot, the last one's state (1
        // succeeded, 2 processing, …), 0 for the others.
        out.push_str("# TYPE garden_shoot_operation_states gauge\n");
        for s in &self.shoots {
            let (last, state) = match (s.operation, s.created, s.reconcile.count > 0.0) {
                (Some(scripted), _, _) => scripted,
                (None, false, _) => ("Create", 2.0),
                (None, true, false) => ("Create", 1.0),
                (None, true, true) if s.api_server_down => ("Reconcile", 2.0),
                (None, true, true) => ("Reconcile", 1.0),
            };
            for operation in ["Create", "Reconcile", "Delete", "Migrate", "Restore"] {
                let labels = [
                    ("name", s.id.name.clone()),
                    ("project", s.id.project.clone()),
                    ("operation", operation.to_owned()),
                ];
                let value = if operation == last { state } else { 0.0 };
                sample(&mut out, "garden_shoot_operation_states", &labels, value);
            }
        }
        out.push_str("# TYPE garden_shoot_operation_duration_minutes histogram\n");
        for s in &self.shoots {
            for (operation, ops) in [("Create", &s.create), ("Reconcile", &s.reconcile)] {
                let base = [
                    ("name", s.id.name.clone()),
                    ("operation", operation.to_owned()),
                    ("project", s.id.project.clone()),
                    ("seed", s.id.seed.clone()),
                ];
                let name = "garden_shoot_operation_duration_minutes";
                for (le, count) in MINUTE_BUCKETS.iter().zip(ops.buckets) {
                    let mut labels = base.to_vec();
                    labels.push(("le", le_value(*le)));
                    sample(&mut out, &format!("{name}_bucket"), &labels, count);
                }
                let mut labels = base.to_vec();
                labels.push(("le", "+Inf".to_owned()));
                sample(&mut out, &format!("{name}_bucket"), &labels, ops.count);
                sample(&mut out, &format!("{name}_sum"), &base, ops.sum);
                sample(&mut out, &format!("{name}_count"), &base, ops.count);
            }
        }
        out
    }
}

/// `name`, `project`, `technical_id`, `uid` of a shoot.
fn shoot_labels(id: &ShootId) -> Vec<(&'static str, String)> {
    vec![
        ("name", id.name.clone()),
        ("project", id.project.clone()),
        ("technical_id", id.namespace()),
        ("uid", uid(id)),
    ]
}

/// A stable fake UID.
fn uid(id: &ShootId) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.namespace().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_the_api_server_and_operations_are_observed() {
        let id = ShootId {
            seed: "aws-eu1".into(),
            project: "dev".into(),
            name: "web".into(),
        };
        let mut garden = Garden::new(std::slice::from_ref(&id), Duration::from_secs(60));
        let text = garden.metrics();
        assert!(text.contains(
            "garden_shoot_condition{name=\"web\",project=\"dev\",technical_id=\"shoot--dev--web\""
        ));
        assert!(text.contains("condition=\"APIServerAvailable\",operation=\"Create\""));
        garden.set_api_server_down(&id, true);
        let text = garden.metrics();
        let down = text
            .lines()
            .find(|l| l.contains("condition=\"APIServerAvailable\""))
            .unwrap();
        assert!(down.ends_with(" 0"), "{down}");
        let creating =
            "garden_shoot_operation_states{name=\"web\",project=\"dev\",operation=\"Create\"}";
        assert!(text.contains(&format!("{creating} 2\n")), "{text}");
        garden.started -= CREATE_FINISHES_AFTER;
        let text = garden.metrics();
        assert!(text.contains(&format!("{creating} 1\n")), "{text}");
        assert!(text.contains("garden_shoot_operation_duration_minutes_bucket{name=\"web\",operation=\"Create\",project=\"dev\",seed=\"aws-eu1\",le=\"15.0\"} 1\n"), "{text}");
    }

    #[test]
    fn scripted_life_cycle_replaces_the_simulated_one() {
        let id = ShootId {
            seed: "aws-eu1".into(),
            project: "dev".into(),
            name: "web".into(),
        };
        let mut garden = Garden::new(std::slice::from_ref(&id), Duration::from_secs(60));
        garden.set_purpose(&id, "testing");
        garden.set_hibernated(&id, true);
        garden.set_operation(&id, Some(("Migrate", 2.0)));
        garden.move_to(&id, "gcp-us1");
        let text = garden.metrics();
        assert!(
            text.contains("garden_shoot_hibernated{name=\"web\",project=\"dev\",technical_id=\"shoot--dev--web\""),
            "{text}"
        );
        let hibernated = text
            .lines()
            .find(|l| l.starts_with("garden_shoot_hibernated{"))
            .unwrap();
        assert!(hibernated.ends_with(" 1"), "{hibernated}");
        assert!(text.contains("is_hibernated=\"true\""), "{text}");
        let migrating =
            "garden_shoot_operation_states{name=\"web\",project=\"dev\",operation=\"Migrate\"} 2\n";
        assert!(text.contains(migrating), "{text}");
        let condition = text
            .lines()
            .find(|l| l.contains("condition=\"APIServerAvailable\""))
            .unwrap();
        for label in [
            "operation=\"Migrate\"",
            "purpose=\"testing\"",
            "seed=\"gcp-us1\"",
        ] {
            assert!(condition.contains(label), "{label} in {condition}");
        }
        // A migrated shoot is still found by its namespace.
        garden.set_api_server_down(&id, true);
        assert!(garden.metrics().contains("condition=\"APIServerAvailable\",operation=\"Migrate\",purpose=\"testing\",is_seed=\"false\",iaas=\"local\",seed=\"gcp-us1\",has_user_errors=\"false\"} 0\n"));
    }
}
