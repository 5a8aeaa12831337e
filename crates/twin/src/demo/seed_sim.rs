//! A simulated seed: a `/federate` endpoint serving Gardener-shaped series for a few shoots,
//! with values that move on every scrape.
//!
//! It serves its whole series set whatever the `match[]` selectors ask (it is a stand-in for
//! `prometheus-aggregate`, not a query engine).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use exposition::{write_sample, Label, Sample};

/// The simulated state of one seed's shoots.
#[derive(Debug)]
pub struct SeedSimulation {
    seed: String,
    shoots: Vec<String>,
    /// Per shoot: cumulative (ok, errors, terminations) request counters.
    counters: Vec<(f64, f64, f64)>,
    rng: fastrand::Rng,
}

impl SeedSimulation {
    /// A seed named `seed` with `shoots` shoots; `rng_seed` makes runs reproducible.
    pub fn new(seed: &str, shoots: usize, rng_seed: u64) -> Self {
        Self {
            seed: seed.to_string(),
            shoots: (0..shoots)
                .map(|i| format!("shoot--project{}--cluster{i}", i % 3))
                .collect(),
            counters: vec![(0.0, 0.0, 0.0); shoots],
            rng: fastrand::Rng::with_seed(rng_seed),
        }
    }

    /// Advances the simulation and renders the next `/federate` body.
    pub fn render(&mut self, now_ms: i64) -> String {
        let mut out = String::with_capacity(256 * self.shoots.len() * 8);
        out.push_str("# TYPE shoot:availability untyped\n");
        for (i, cluster) in self.shoots.iter().enumerate() {
            let (ok, errors, terminations) = &mut self.counters[i];
            *ok += 500.0 + self.rng.f64() * 100.0;
            // A rough shoot: cluster 0 has a bad minute now and then.
            let error_rate = if i == 0 && self.rng.f64() < 0.2 {
                0.05
            } else {
                0.001
            };
            *errors += (500.0 * error_rate * self.rng.f64()).round();
            *terminations += f64::from(u8::from(self.rng.f64() < 0.05));
            let (ok, errors, terminations) = (*ok, *errors, *terminations);
            let up = |rng: &mut fastrand::Rng| if rng.f64() < 0.995 { 1.0 } else { 0.0 };
            for kind in ["seed", "shoot", "vpn"] {
                let value = up(&mut self.rng);
                self.sample(
                    &mut out,
                    "shoot:availability",
                    cluster,
                    &[("kind", kind)],
                    value,
                    now_ms,
                );
            }
            let latency = self.rng.f64() * 0.02;
            self.sample(
                &mut out,
                "shoot:apiserver_latency:percentage",
                cluster,
                &[],
                latency,
                now_ms,
            );
            self.sample(
                &mut out,
                "apiserver_request_total",
                cluster,
                &[("code", "200"), ("verb", "GET")],
                ok,
                now_ms,
            );
            self.sample(
                &mut out,
                "apiserver_request_total",
                cluster,
                &[("code", "503"), ("verb", "LIST")],
                errors,
                now_ms,
            );
            self.sample(
                &mut out,
                "apiserver_request_terminations_total",
                cluster,
                &[],
                terminations,
                now_ms,
            );
        }
        out
    }

    fn sample(
        &self,
        out: &mut String,
        name: &str,
        cluster: &str,
        extra: &[(&str, &str)],
        value: f64,
        now_ms: i64,
    ) {
        let mut labels = vec![
            Label {
                name: "cluster",
                value: Cow::Borrowed(cluster),
            },
            // /federate emits empty instance labels; the agent must drop them.
            Label {
                name: "instance",
                value: Cow::Borrowed(""),
            },
            Label {
                name: "seed",
                value: Cow::Borrowed(&self.seed),
            },
        ];
        labels.extend(extra.iter().map(|(n, v)| Label {
            name: n,
            value: Cow::Borrowed(v),
        }));
        write_sample(
            out,
            &Sample {
                name,
                labels,
                value,
                timestamp_ms: Some(now_ms),
            },
        );
    }
}

/// `GET /federate` serving `simulation`.
pub fn app(simulation: Arc<Mutex<SeedSimulation>>) -> Router {
    Router::new()
        .route("/federate", get(federate))
        .with_state(simulation)
}

async fn federate(State(simulation): State<Arc<Mutex<SeedSimulation>>>) -> impl IntoResponse {
    let body = simulation
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .render(common::telemetry::now_unix_ms());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::parse_samples;

    #[test]
    fn renders_parseable_gardener_series_with_growing_counters() {
        let mut sim = SeedSimulation::new("aws-eu1", 3, 7);
        let first = sim.render(1_000);
        let second = sim.render(2_000);
        let samples: Vec<_> = parse_samples(&first).collect::<Result<_, _>>().unwrap();
        assert_eq!(samples.len(), 3 * 7);
        assert!(samples.iter().any(|s| s.name == "shoot:availability"));
        let total = |text: &str| -> f64 {
            parse_samples(text)
                .map(Result::unwrap)
                .filter(|s| s.name == "apiserver_request_total")
                .map(|s| s.value)
                .sum()
        };
        assert!(total(&second) > total(&first), "counters only grow");
    }
}
