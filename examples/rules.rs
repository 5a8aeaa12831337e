//! `slo-gateway rules` until the lead wires it into the binary:
//! `cargo run --example rules -- --spec config/slos.yaml --out DIR` or `… -- check --spec F`.

use std::process::ExitCode;

use clap::Parser;

/// Generate or check SLO rules.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: slo_gateway::rules::RulesArgs,
}

fn main() -> ExitCode {
    match slo_gateway::rules::run_cli(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
