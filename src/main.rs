//! `slo-gateway`: one binary, one subcommand per role. Parsing only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc malloc: with the background thread configured in
/// `.cargo/config.toml` it hands freed pages back to the kernel within about a second, so the
/// agent's memory returns after a cardinality spike (glibc kept about 40 MiB of a 100k-series
/// spike in its arenas; tests/e2e_cardinality.rs).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "slo-gateway", version, about, propagate_version = true)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "SLO_GATEWAY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run in a seed: scrape /federate, push remote write over mTLS.
    Agent {
        /// Agent config file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run in the runtime cluster: terminate mTLS, enforce the seed label, forward.
    Receiver {
        /// Receiver config file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a development CA, a receiver certificate and seed client certificates.
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        seeds: Vec<String>,
    },
    /// Validate agent and receiver configs and print every error with its location; given an
    /// agent and a receiver config, also warn where their limits disagree.
    CheckConfig {
        /// Config files (YAML); agent or receiver is told by their keys.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate SLO recording rules, alerts, Alertmanager routing, dashboards and the agent's
    /// match[] selectors from SLO specs (`rules check` validates them).
    Rules(slo_gateway::rules::RulesArgs),
    /// Run the whole pipeline on this machine: generated certs, simulated seeds, agents,
    /// receiver and a sink (or a real Prometheus with --forward-url).
    Demo(slo_gateway::demo::DemoArgs),
    /// Run in a seed: keep the shoot-tier PrometheusRule in every shoot control-plane namespace.
    ShootRules(slo_gateway::shootrules::ShootRulesArgs),
    /// Wait, then exit 0: a preStop hook for images without a shell (`sleep 10s`).
    Sleep {
        /// How long (`10s`, `1m`).
        #[arg(value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints a progress table; its components' info logs would drown it.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    slo_gateway::telemetry::init_logging(cli.log_json, default_level);
    slo_gateway::tls::install_default_crypto_provider();
    let result = match cli.command {
        Command::Agent { config } => slo_gateway::agent::runtime()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(slo_gateway::agent::run_from_config(
                    &config,
                    Some(slo_gateway::check_config::derive_selectors),
                ))
            }),
        Command::Receiver { config } => {
            runtime().and_then(|rt| rt.block_on(slo_gateway::receiver::run_from_config(&config)))
        }
        Command::Certs { out, seeds } => slo_gateway::certs::write_dev_pki(&out, &seeds)
            .map(|pki| {
                println!(
                    "wrote CA {}, server certificate {} and {} seed certificates",
                    pki.ca.display(),
                    pki.server_cert.display(),
                    pki.seeds.len()
                )
            })
            .map_err(Into::into),
        Command::CheckConfig { files } => slo_gateway::config::check_files(&files)
            .map(|(valid, warnings)| {
                for line in valid {
                    println!("{line}");
                }
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
            })
            .map_err(Into::into),
        Command::Rules(args) => slo_gateway::rules::run_cli(args),
        Command::Demo(args) => {
            runtime().and_then(|rt| rt.block_on(slo_gateway::demo::run(args)).map(|_| ()))
        }
        Command::ShootRules(args) => {
            runtime().and_then(|rt| rt.block_on(slo_gateway::shootrules::run(args)))
        }
        Command::Sleep { duration } => {
            std::thread::sleep(duration);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
