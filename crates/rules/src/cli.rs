//! `slo-gateway rules`: generate (`--spec … --out DIR`), validate (`rules check --spec …`) or
//! list the catalog (`rules catalog`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::check::check_together;
use super::duration::PromDuration;
use super::load::load_file;
use super::render;
use super::spec::{LoadedSpec, SpecError};
use super::{catalog, openslo, sloth};

/// Arguments of `slo-gateway rules`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RulesArgs {
    /// `check` validates instead of generating.
    #[command(subcommand)]
    pub command: Option<RulesCommand>,
    /// Input files.
    #[command(flatten)]
    pub inputs: Inputs,
    /// Directory to write the generated files to (created if missing).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

/// Subcommands of `slo-gateway rules`.
#[derive(clap::Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate specs; print every error and warning with file, line and reason.
    Check(Inputs),
    /// Print the catalog of built-in SLIs: meaning, tier, source metrics, on or off.
    Catalog,
}

/// Spec files to read; at least one is required.
#[derive(clap::Args, Debug, Clone)]
pub struct Inputs {
    /// Our spec format (`slo-gateway/v1`), repeatable.
    #[arg(long = "spec", value_name = "FILE")]
    pub specs: Vec<PathBuf>,
    /// Sloth `prometheus/v1` spec, repeatable.
    #[arg(long = "sloth", value_name = "FILE")]
    pub sloth: Vec<PathBuf>,
    /// OpenSLO v1 `SLO` documents with `ratioMetric`, repeatable.
    #[arg(long = "openslo", value_name = "FILE")]
    pub openslo: Vec<PathBuf>,
    /// SLO period for Sloth specs (they carry none; Sloth's default is 30d).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub sloth_window: PromDuration,
}

/// Runs `slo-gateway rules` with parsed arguments.
pub fn run_cli(args: RulesArgs) -> anyhow::Result<()> {
    match args.command {
        Some(RulesCommand::Check(inputs)) => {
            let specs = load_reporting(&inputs)?;
            let slos: usize = specs.iter().map(|s| s.spec.slos.len()).sum();
            println!("ok: {slos} SLOs in {} files", specs.len());
            Ok(())
        }
        Some(RulesCommand::Catalog) => {
            print!("{}", catalog::markdown_table());
            Ok(())
        }
        None => {
            let out = args.out.context("--out DIR is required")?;
            let specs = load_reporting(&args.inputs)?;
            let files = render::render_all(&specs)?;
            write_files(&out, &files)?;
            eprintln!("wrote {} files to {}", files.len(), out.display());
            Ok(())
        }
    }
}

fn write_files(out: &Path, files: &render::Files) -> anyhow::Result<()> {
    for (name, content) in files {
        let path = out.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Loads all inputs, prints every finding to stderr, fails if any is an error.
fn load_reporting(inputs: &Inputs) -> anyhow::Result<Vec<LoadedSpec>> {
    let (specs, errors) = load(inputs);
    for s in &specs {
        for w in &s.warnings {
            eprintln!("{w}");
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() {
        anyhow::bail!("invalid specs ({} problems)", errors.len());
    }
    if specs.is_empty() {
        anyhow::bail!("no spec given: use --spec, --sloth or --openslo");
    }
    match check_together(&specs) {
        Ok(warnings) => warnings.iter().for_each(|w| eprintln!("{w}")),
        Err(e) => {
            eprintln!("{e}");
            anyhow::bail!("invalid specs");
        }
    }
    Ok(specs)
}

/// Loads every file, collecting the errors of all files rather than stopping at the first.
pub fn load(inputs: &Inputs) -> (Vec<LoadedSpec>, Vec<SpecError>) {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    let mut take = |r: Result<Vec<LoadedSpec>, SpecError>| match r {
        Ok(s) => specs.extend(s),
        Err(e) => errors.push(e),
    };
    for p in &inputs.specs {
        take(load_file(p).map(|s| vec![s]));
    }
    for p in &inputs.sloth {
        take(sloth::load_file(p, inputs.sloth_window).map(|s| vec![s]));
    }
    for p in &inputs.openslo {
        take(openslo::load_file(p));
    }
    (specs, errors)
}
