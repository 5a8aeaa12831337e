//! Acceptance on the landscape twin (real Prometheus 2.42 and Alertmanager processes, configured
//! like Gardener's, rules from `slo-gateway rules` on `config/twin-slos.yaml`).
//!
//! One twin serves three phases, in order, each reporting its own failures:
//! 1. every catalog SLO yields a value for every shoot (the message lists the empty pairs);
//! 2. a full API server outage in one shoot of the firewalled seed and one of the reachable
//!    seed pages for exactly those shoots, and both paths report the same SLI;
//! 3. stopping the firewalled seed's agent fires the seed-silent alert; that seed's shoot pages
//!    stop (its shoots' minutes are unknown from then on) or are inhibited by it, the reachable
//!    seed's page stays.
//!
//! Without Prometheus or Alertmanager the test fails and says what to install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slo_gateway::landscape::{AlertState, SeedAccess, Twin, TwinOptions};
use tokio::time::Instant;

use crate::common::{eventually, heavy, Load};

/// How often the phases look at the SLO Prometheus and Alertmanager.
const EVERY: Duration = Duration::from_secs(2);
/// How far the push path (agent, receiver) and the pull path (federation) may lag each other.
const MAX_PATH_LAG: Duration = Duration::from_secs(60);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The SLO names in the twin's spec.
fn catalog_slos() -> Vec<String> {
    let spec: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(slo_gateway::landscape::TWIN_SPEC).unwrap();
    spec["slos"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn is_page(a: &AlertState) -> bool {
    a.label("sloth_severity") == "page" || a.label("severity") == "page"
}

/// The seed-wide "seed silent" alert: about a seed, not about a shoot or an SLO.
fn is_seed_alert(a: &AlertState, seed: &str) -> bool {
    a.label("seed") == seed && a.label("cluster").is_empty() && a.label("sloth_slo").is_empty()
}

fn describe(alerts: &[AlertState]) -> String {
    alerts
        .iter()
        .map(|a| {
            format!(
                "  {} {} cluster={} seed={} slo={} [{}]",
                a.label("alertname"),
                a.label("severity"),
                a.label("cluster"),
                a.label("seed"),
                a.label("sloth_slo"),
                a.state
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Phase 1: a value for every (SLO, shoot).
async fn every_slo_has_a_value_for_every_shoot(twin: &Twin) -> Result<(), String> {
    let slos = catalog_slos();
    eventually("phase 1", || async {
        let found = twin
            .slo()
            .query(r#"slo:sli_error:ratio_rate5m"#)
            .await
            .map_err(|e| e.to_string())?;
        // (SLO, cluster, seed) with a finite value; SLOs grouped by seed have no cluster and
        // count for every shoot of their seed.
        let have: BTreeSet<(String, String, String)> = found
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(l, _)| {
                let get = |k: &str| l.get(k).cloned().unwrap_or_default();
                (get("sloth_slo"), get("cluster"), get("seed"))
            })
            .collect();
        let missing: Vec<String> = slos
            .iter()
            .flat_map(|slo| twin.shoots().iter().map(move |s| (slo.clone(), s)))
            .filter(|(slo, s)| {
                let (cluster, seed) = (s.id.namespace(), s.id.seed.clone());
                !have.contains(&(slo.clone(), cluster, seed.clone()))
                    && !have.contains(&(slo.clone(), String::new(), seed))
            })
            .map(|(slo, s)| format!("{slo} / {}", s.id.namespace()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "phase 1: {} (SLO, shoot) pairs have no finite slo:sli_error:ratio_rate5m:\n  {}",
                missing.len(),
                missing.join("\n  ")
            ))
        }
    })
    .within(Duration::from_secs(240))
    .every(EVERY)
    .try_wait()
    .await
}

/// Phase 2: outages page exactly the outaged shoots; both paths agree on the SLI.
async fn outages_page_only_their_shoots(twin: &Twin, outaged: &[String]) -> Result<(), String> {
    for shoot in outaged {
        twin.set_outage(shoot, true).map_err(|e| e.to_string())?;
    }
    let injected = Instant::now();
    let am = twin.alertmanager();
    let alerts = eventually("phase 2", || async {
        let alerts = am.alerts().await.map_err(|e| e.to_string())?;
        let paged: Vec<&String> = outaged
            .iter()
            .filter(|c| {
                alerts.iter().any(|a| {
                    is_page(a)
                        && a.state == "active"
                        && a.label("cluster") == c.as_str()
                        && a.label("sloth_slo") == "apiserver-availability"
                })
            })
            .collect();
        if paged.len() == outaged.len() {
            Ok(alerts)
        } else {
            Err(format!(
                "phase 2: no active apiserver-availability page for every outaged shoot {outaged:?} \
                 (paged: {paged:?}); Alertmanager holds:\n{}",
                describe(&alerts)
            ))
        }
    })
    .within(Duration::from_secs(240))
    .every(EVERY)
    .try_wait()
    .await?;
    let others: Vec<&AlertState> = alerts
        .iter()
        .filter(|a| {
            !a.label("cluster").is_empty() && !outaged.iter().any(|c| c == a.label("cluster"))
        })
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "phase 2: alerts for shoots without an outage:\n{}",
            describe(&others.into_iter().cloned().collect::<Vec<_>>())
        ));
    }
    // Both paths: the same outage gives the same SLI. Once the outage outlasted the 1m window
    // both must read fully down there (one instant). The 5m windows (part outage, part
    // healthy) rise by 1/300 per second, and the two paths reach the SLO Prometheus through
    // different hops (federation vs agent and receiver), which lag each other by up to a few
    // intervals on a loaded machine: the same SLI means one path's value at `t` matches the
    // other's at `t - lag` for some lag of at most `MAX_PATH_LAG`.
    let outage_age = injected.elapsed();
    if outage_age < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_secs(90) - outage_age).await;
    }
    let ratio_of = |window: &str| {
        format!(
            r#"slo:sli_error:ratio_rate{window}{{sloth_slo="apiserver-availability",cluster=~"{}"}}"#,
            outaged.join("|")
        )
    };
    // A few seconds back, so that both paths' samples of `at` have been ingested.
    let at = unix_now() - 5.0;
    let query_at = |window: &str, at: f64| {
        let query = ratio_of(window);
        async move {
            let values = twin
                .slo()
                .query_at(&query, at)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<BTreeMap<String, f64>, String>(
                values
                    .into_iter()
                    .map(|(l, v)| (l.get("cluster").cloned().unwrap_or_default(), v))
                    .collect(),
            )
        }
    };
    let fully_down = query_at("1m", at).await?;
    if fully_down.len() != outaged.len() || fully_down.values().any(|v| *v <= 0.98) {
        return Err(format!(
            "phase 2: the 1m error ratios of the outaged shoots (pulled vs pushed) are missing \
             or not above 0.98 after 90 s of outage: {fully_down:?}"
        ));
    }
    let now = query_at("5m", at).await?;
    let (a, b) = (&outaged[0], &outaged[1]);
    let (Some(&a_now), Some(&b_now)) = (now.get(a), now.get(b)) else {
        return Err(format!(
            "phase 2: a 5m error ratio of the outaged shoots is missing: {now:?}"
        ));
    };
    let mut best: Option<(f64, Duration)> = None;
    for lag in (0..=MAX_PATH_LAG.as_secs()).step_by(5) {
        let earlier = query_at("5m", at - lag as f64).await?;
        // Either path may be the later one.
        for (now_value, earlier_value) in [(a_now, earlier.get(b)), (b_now, earlier.get(a))] {
            if let Some(earlier_value) = earlier_value {
                let difference = (now_value - earlier_value).abs();
                if best.is_none_or(|(d, _)| difference < d) {
                    best = Some((difference, Duration::from_secs(lag)));
                }
            }
        }
    }
    match best {
        Some((difference, lag)) if difference <= 0.06 && a_now > 0.0 && b_now > 0.0 => {
            eprintln!(
                "phase 2: 1m error ratios {fully_down:?}; 5m error ratios {now:?} agree within \
                 {difference:.3} at a path lag of {lag:?}"
            );
        }
        _ => {
            return Err(format!(
                "phase 2: the 5m error ratios of the outaged shoots (pulled vs pushed) are not \
                 above 0 or differ by more than 0.06 at every path lag up to {MAX_PATH_LAG:?} \
                 (best: {best:?}): {now:?}"
            ));
        }
    }
    Ok(())
}

/// Phase 3: a silent seed pages once; its shoots' pages end (no data is unknown, not down) or
/// are inhibited.
async fn silent_seed_inhibits_its_shoot_pages(
    twin: &mut Twin,
    seed: &str,
    its_outaged: &str,
    other_outaged: &str,
) -> Result<(), String> {
    twin.stop_agent(seed).map_err(|e| e.to_string())?;
    let am = twin.alertmanager();
    eventually("phase 3", || async {
        let alerts = am.alerts().await.map_err(|e| e.to_string())?;
        let silent = alerts
            .iter()
            .any(|a| is_seed_alert(a, seed) && a.state == "active");
        let page_of = |cluster: &str| -> Vec<&AlertState> {
            alerts
                .iter()
                .filter(|a| is_page(a) && a.label("cluster") == cluster)
                .collect()
        };
        let inhibited = page_of(its_outaged)
            .iter()
            .all(|a| a.state == "suppressed" && !a.inhibited_by.is_empty());
        let other_active = page_of(other_outaged).iter().any(|a| a.state == "active");
        if silent && inhibited && other_active {
            Ok(())
        } else {
            Err(format!(
                "phase 3: expected an active seed-silent alert for {seed}, {its_outaged}'s pages \
                 gone or suppressed by it, {other_outaged}'s page still active (silent={silent}, \
                 inhibited={inhibited}, other active={other_active}); Alertmanager holds:\n{}",
                describe(&alerts)
            ))
        }
    })
    .within(Duration::from_secs(180))
    .every(EVERY)
    .try_wait()
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landscape_twin_acceptance() {
    let _heavy = heavy(Load::Processes).await;
    let started = Instant::now();
    let mut twin = Twin::start(TwinOptions::new(env!("CARGO_BIN_EXE_slo-gateway")))
        .await
        .unwrap_or_else(|e| panic!("the landscape twin did not start: {e}"));
    eprintln!(
        "twin up after {:?} in {}",
        started.elapsed(),
        twin.dir().display()
    );
    let firewalled = twin.first_shoot(SeedAccess::Firewalled).unwrap().clone();
    let reachable = twin.first_shoot(SeedAccess::Reachable).unwrap().clone();
    let outaged = [firewalled.id.namespace(), reachable.id.namespace()];

    let mut failures = Vec::new();
    let mut phase = |name: &str, result: Result<(), String>, t: Instant| {
        eprintln!(
            "{name}: {} after {:?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            t.elapsed()
        );
        if let Err(e) = result {
            failures.push(e);
        }
    };
    let t = Instant::now();
    phase(
        "phase 1",
        every_slo_has_a_value_for_every_shoot(&twin).await,
        t,
    );
    let t = Instant::now();
    phase(
        "phase 2",
        outages_page_only_their_shoots(&twin, &outaged).await,
        t,
    );
    let t = Instant::now();
    let result = silent_seed_inhibits_its_shoot_pages(
        &mut twin,
        &firewalled.id.seed,
        &outaged[0],
        &outaged[1],
    )
    .await;
    phase("phase 3", result, t);
    assert!(
        failures.is_empty(),
        "{}\n(twin logs)\n{}",
        failures.join("\n\n"),
        twin.logs()
    );
}
