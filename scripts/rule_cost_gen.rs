//! Writes OpenMetrics for `scripts/rule-cost.sh`: what an SLO Prometheus holds after running the
//! generated rules of one SLO (apiserver-availability, `sloth_id` given) for `days` days over
//! `shoots` shoots. Per shoot, `slo:sli_events:bad|total` every `step` seconds, their 5-minute
//! and hourly rollups (exact sums of those events, aligned to 5 m / 1 h); one file per aligned
//! block range of `block` seconds, so each `promtool tsdb create-blocks-from openmetrics` call
//! reads its file once. Also writes `inputs.prom`, one
//! scrape of the live inputs (`shoot:slo_apiserver_availability:bad|total` as
//! prometheus-aggregate federates them, `garden_shoot_*` as prometheus-garden does).
//!
//! Usage: rule_cost_gen OUT_DIR SHOOTS DAYS END_UNIX_SECONDS STEP_SECONDS BLOCK_SECONDS [PART]
//! With PART only that block range's file is written (exit code 3 past the last one), so a
//! caller can backfill part by part without holding the whole history on disk.
//! Deterministic: same arguments, same bytes. Standard library only (`rustc -O`).
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};

const ID: &str = r#"owner="gardener-sre",sloth_id="gardener-shoots-apiserver-availability",sloth_service="gardener-shoots",sloth_slo="apiserver-availability""#;

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// 1 when shoot `s` is down at step `k`: outages of 5–30 steps start with probability 1/20000
/// per step (about 0.09 % of the time).
fn down(s: u64, k: u64) -> u64 {
    for back in 0..30u64 {
        if back > k {
            break;
        }
        let h = hash(s.wrapping_mul(1_000_003) ^ (k - back + 1).wrapping_mul(0x9e37_79b9));
        if h % 20_000 == 0 && back < 5 + (h >> 20) % 26 {
            return 1;
        }
    }
    0
}

fn labels(s: u64) -> String {
    format!(
        r#"cluster="shoot--p{}--s{s}",seed="seed-{}""#,
        s % 500,
        s / 100
    )
}

fn main() -> std::io::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (out, shoots, days, end, step, block) = (
        &a[1],
        a[2].parse::<u64>().unwrap(),
        a[3].parse::<u64>().unwrap(),
        a[4].parse::<u64>().unwrap(),
        a[5].parse::<u64>().unwrap(),
        a[6].parse::<u64>().unwrap(),
    );
    // Rollups at multiples of 5 m and 1 h (their groups' phase), events every `step`.
    let only: Option<u64> = a.get(7).map(|p| p.parse().unwrap());
    let start = end - days * 86400;
    let k0 = start / step;
    // Inputs: one scrape.
    if only.unwrap_or(0) == 0 {
        let mut w = BufWriter::new(File::create(format!("{out}/inputs.prom"))?);
        for s in 0..shoots {
            let (p, n) = (format!("p{}", s % 500), format!("s{s}"));
            let seed = format!("seed-{}", s / 100);
            let c = format!(r#"cluster="shoot--{p}--{n}",project="{p}",shoot="{n}",seed="{seed}""#);
            writeln!(w, "shoot:slo_apiserver_availability:bad{{{c}}} 0")?;
            writeln!(w, "shoot:slo_apiserver_availability:total{{{c}}} 1")?;
            let g = format!(r#"name="{n}",project="{p}",seed="{seed}""#);
            writeln!(w, "garden_shoot_info{{{g},purpose=\"production\"}} 0")?;
            writeln!(
                w,
                "garden_shoot_condition{{{g},condition=\"APIServerAvailable\",purpose=\"production\",operation=\"Reconcile\"}} 1"
            )?;
            writeln!(w, "garden_shoot_hibernated{{{g}}} 0")?;
            writeln!(
                w,
                "garden_shoot_operation_states{{{g},operation=\"Reconcile\"}} 1"
            )?;
        }
        w.flush()?;
    }
    // History, one file per aligned block range.
    let mut part = 0;
    let mut t0 = start / block * block;
    while t0 < end {
        if only.is_some_and(|p| p != part) {
            part += 1;
            t0 += block;
            continue;
        }
        let (lo, hi) = (t0.max(start), (t0 + block).min(end));
        let mut w =
            BufWriter::with_capacity(1 << 22, File::create(format!("{out}/part-{part:03}.om"))?);
        let mut line = String::with_capacity(256);
        for metric in ["bad", "total"] {
            for (name, every) in [
                ("slo:sli_events", step),
                ("slo:sli_events_5m", 300),
                ("slo:sli_events_1h", 3600),
            ] {
                writeln!(w, "# TYPE {name}:{metric} gauge")?;
                for s in 0..shoots {
                    let l = labels(s);
                    let mut t = lo.div_ceil(every) * every;
                    while t < hi {
                        // Events in (t − every, t]: steps k with k·step in that range.
                        // (only events that exist: none before `start`)
                        let (ka, kb) =
                            (((t - every) / step + 1).max(start.div_ceil(step)), t / step);
                        let v: u64 = if ka > kb {
                            0
                        } else if metric == "total" {
                            kb + 1 - ka
                        } else {
                            (ka..=kb).map(|k| down(s, k - k0)).sum()
                        };
                        line.clear();
                        let _ = writeln!(line, "{name}:{metric}{{{l},{ID}}} {v} {t}");
                        w.write_all(line.as_bytes())?;
                        t += every;
                    }
                }
            }
        }
        writeln!(w, "# EOF")?;
        w.flush()?;
        part += 1;
        t0 += block;
    }
    if only.is_some_and(|p| p >= part) {
        std::process::exit(3);
    }
    Ok(())
}
