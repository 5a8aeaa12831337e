//! `chaos`: the chaos suite on the landscape twin (`scripts/chaos.sh` builds and runs it).
//! Prints the result table (Markdown) on stdout, progress on stderr; exits 1 when a scenario
//! failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use slo_gateway_twin::chaos::{self, ChaosOptions};

/// Scripted scenarios of a moving landscape, side by side on one twin; judges the pages.
#[derive(Debug, Parser)]
struct Args {
    /// The `slo-gateway` binary (rules, agent, receiver).
    #[arg(long)]
    binary: PathBuf,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only this scenario (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Minutes to watch after the last step.
    #[arg(long, default_value_t = 3)]
    settle_minutes: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut options = ChaosOptions::new(&args.binary);
    options.only = args.only;
    options.settle = Duration::from_secs(args.settle_minutes * 60);
    // Ctrl-C drops the run, and with it the twin: every process it started stops.
    let outcome = tokio::select! {
        outcome = chaos::run(options) => outcome?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    let table = chaos::table(&outcome.rows);
    let summary = format!(
        "twin started in {:.0} s; scenarios ran {:.1} min side by side; {}\n",
        outcome.startup.as_secs_f64(),
        outcome.ran.as_secs_f64() / 60.0,
        if outcome.passed() {
            "all passed"
        } else {
            "FAILED"
        }
    );
    print!("{table}\n{summary}");
    if let Some(path) = args.out {
        std::fs::write(&path, format!("{table}\n{summary}"))?;
    }
    if !outcome.passed() {
        std::process::exit(1);
    }
    Ok(())
}
