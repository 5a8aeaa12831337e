//! `slo-gateway-agent`: the seed agent alone. It links no rule generator, certificate
//! generation, landscape twin or demo, so the binary every seed runs stays small; the full
//! `slo-gateway` CLI has the same `agent` command plus `match_from_specs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc with the background thread configured in `.cargo/config.toml`: freed pages go back to
/// the kernel within about a second, so memory returns after a cardinality spike.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "slo-gateway-agent", version, about, propagate_version = true)]
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
    /// Validate agent configs and print every error with its location (receiver configs and
    /// the agent/receiver cross-check: the full `slo-gateway check-config`).
    CheckConfig {
        /// Agent config files (YAML), each checked.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::telemetry::init_logging(cli.log_json, "info");
    common::tls::install_default_crypto_provider();
    let result = match cli.command {
        Command::Agent { config } => slo_gateway_agent::runtime()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(slo_gateway_agent::run_from_config(&config, None))),
        Command::CheckConfig { files } => {
            // Every file is checked, so one run names every broken one.
            let mut failed = 0;
            for file in &files {
                match yaml_config::load::<slo_gateway_agent::config::AgentConfig>(file) {
                    Ok(_) => println!("{}: valid agent config", file.display()),
                    Err(error) => {
                        eprintln!("error: {error:#}");
                        failed += 1;
                    }
                }
            }
            if failed == 0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{failed} of {} config(s) invalid (receiver configs and the agent/receiver \
                     cross-check: `slo-gateway check-config`)",
                    files.len()
                ))
            }
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
