//! `slo-gateway demo` on the landscape twin: real Prometheus and Alertmanager processes shaped
//! like a Gardener landscape (see [`crate::landscape`]), with a table per shoot of SLI, budget
//! left and the alerts Alertmanager holds, refreshed every few seconds.

use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context;

use super::{sleep_until, DemoArgs};
use crate::landscape::{ShootStatus, Twin, TwinOptions};

/// How often the table is printed.
const PRINT_EVERY: Duration = Duration::from_secs(10);
/// The SLO shown in full on every line.
const HEADLINE_SLO: &str = "apiserver-availability";

/// What the twin demo saw last.
#[derive(Debug, Clone, Default)]
pub struct TwinSummary {
    /// Per shoot, the last status read.
    pub shoots: Vec<ShootStatus>,
    /// The shoot an outage was injected into, if any.
    pub outage: Option<String>,
}

/// Runs the twin until Ctrl-C or `args.duration`, injecting `args.outage` after
/// `args.outage_after`, and prints the table.
pub async fn run(args: &DemoArgs) -> anyhow::Result<TwinSummary> {
    let binary = std::env::current_exe().context("finding the slo-gateway binary")?;
    println!("slo-gateway demo: starting the landscape twin (Prometheus, Alertmanager, agent, receiver) …");
    let twin = Twin::start(TwinOptions::new(binary))
        .await
        .context("starting the landscape twin")?;
    let outage = match &args.outage {
        Some(name) => Some(twin.shoot(name)?.id.namespace()),
        None => None,
    };
    println!(
        "twin directory (configs, logs, generated rules): {}",
        twin.dir().display()
    );
    for (what, url) in twin.endpoints() {
        println!("  {what:<46} {url}");
    }
    let seeds: Vec<String> = twin
        .shoots()
        .iter()
        .map(|s| format!("{} ({})", s.id.seed, s.access.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!("seeds: {}; Ctrl-C to stop", seeds.join(", "));
    if let Some(shoot) = &outage {
        println!(
            "a full API server outage hits {shoot} in {}",
            humantime::format_duration(args.outage_after)
        );
    }

    let started = Instant::now();
    let deadline = args.duration.map(|d| Instant::now() + d);
    let outage_at = Instant::now() + args.outage_after;
    let mut outage_pending = outage.clone();
    let mut ticker = tokio::time::interval(PRINT_EVERY);
    let mut summary = TwinSummary {
        outage: outage.clone(),
        ..TwinSummary::default()
    };
    loop {
        let outage_due = async {
            match &outage_pending {
                Some(_) => tokio::time::sleep_until(outage_at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => {}
            () = outage_due => {
                if let Some(shoot) = outage_pending.take() {
                    twin.set_outage(&shoot, true)?;
                    println!("\n>>> {shoot}: kube-apiserver down (probes fail, its metrics endpoint answers 503)");
                }
                continue;
            }
            () = common::telemetry::shutdown_signal() => break,
            () = sleep_until(deadline) => break,
        }
        match twin.status().await {
            Ok(status) => {
                print_table(&status, started.elapsed());
                summary.shoots = status;
            }
            Err(error) => println!("(status not available yet: {error})"),
        }
    }
    println!(
        "stopping the twin after {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(summary)
}

fn percent(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map(|v| format!("{:.*}%", decimals, v * 100.0))
        .unwrap_or_else(|| "—".into())
}

/// One line per shoot: headline SLO's SLI and budget, the SLO with the least budget left, and
/// the alerts Alertmanager holds for the shoot or its seed.
fn print_table(status: &[ShootStatus], elapsed: Duration) {
    println!(
        "\n── +{:.0}s ── {HEADLINE_SLO}: SLI over the period, budget left · worst budget · alerts",
        elapsed.as_secs_f64()
    );
    for s in status {
        let headline = s.slos.get(HEADLINE_SLO).cloned().unwrap_or_default();
        let worst = s
            .slos
            .iter()
            .filter_map(|(name, slo)| slo.budget_left.filter(|b| b.is_finite()).map(|b| (name, b)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, b)| format!("{name} {}", percent(Some(b), 1)))
            .unwrap_or_else(|| "—".into());
        let alerts: Vec<String> = s
            .alerts
            .iter()
            .map(|a| {
                let severity = if a.label("severity").is_empty() {
                    a.label("sloth_severity")
                } else {
                    a.label("severity")
                };
                let state = if a.state == "active" {
                    String::new()
                } else {
                    format!(", {}", a.state)
                };
                format!("{} ({severity}{state})", a.label("alertname"))
            })
            .collect();
        println!(
            "{:<8} {:<10} {:<22} SLI {:>8} budget {:>7} | worst {:<32} | {}",
            s.shoot.id.seed,
            s.shoot.access.as_str(),
            s.shoot.id.namespace(),
            percent(headline.sli, 3),
            percent(headline.budget_left, 1),
            worst,
            if alerts.is_empty() {
                "no alerts".to_owned()
            } else {
                alerts.join(", ")
            }
        );
    }
}
