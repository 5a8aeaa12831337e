//! `slo-gateway check-config`: validates an agent or a receiver config, every problem with its
//! `file:line:column`.
//!
//! Beyond what each role checks at startup, the full CLI derives the selectors of
//! `match_from_specs` with the rule generator, so a broken SLO spec is reported here too. Given
//! an agent and a receiver config together, it warns where their limits disagree
//! ([`cross_check`]).

use std::path::{Path, PathBuf};

use agent::config::AgentConfig;
use promql_parser::parser::{self, Expr};
use receiver::config::ReceiverConfig;
use yaml_config::{locate_problems, parse, parse_error, ConfigError, Problem};

/// The rule generator's `agent-match.yaml` selectors for `specs`, as the agent's
/// `match_from_specs` wants them.
pub fn derive_selectors(specs: &[PathBuf]) -> Result<Vec<String>, String> {
    rules::agent_match_selectors_from_files(specs)
        .map_err(|error| format!("invalid SLO spec: {error}"))
}

/// Validates `file` as an agent or a receiver config (told apart by its top-level keys) and
/// returns which it is; the error lists every problem with its location.
pub fn check_file(file: &Path) -> Result<&'static str, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
        file: file.to_path_buf(),
        error,
    })?;
    let top: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| parse_error(file, &e))?;
    let has = |key: &str| top.get(key).is_some();
    if has("scrape") || has("remote_write") || has("external_labels") || has("buffer") {
        check_agent(file, &text).map(|()| "agent")
    } else if has("tls")
        || has("forward")
        || has("admin_listen")
        || has("identity")
        || has("limits")
    {
        parse::<ReceiverConfig>(file, &text).map(|_| "receiver")
    } else {
        Err(ConfigError::Parse {
            file: file.to_path_buf(),
            location: " ".into(),
            message: "neither an agent config (top-level keys scrape, remote_write) nor a receiver config (top-level keys tls, forward)".into(),
        })
    }
}

/// Validates each of `files` as [`check_file`] does, and, given agent and receiver configs, what
/// they must agree on. Returns one line per file (`<file>: valid <kind> config`) and the
/// warnings of [`cross_check`]; the first invalid file is the error.
pub fn check_files(files: &[PathBuf]) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let mut valid = Vec::new();
    let mut agents = Vec::new();
    let mut receivers = Vec::new();
    for file in files {
        let kind = check_file(file)?;
        valid.push(format!("{}: valid {kind} config", file.display()));
        // Valid already: these parse.
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
            file: file.clone(),
            error,
        })?;
        let parse = |e: serde_yaml_ng::Error| parse_error(file, &e);
        if kind == "agent" {
            agents.push((
                file,
                serde_yaml_ng::from_str::<AgentConfig>(&text).map_err(parse)?,
            ));
        } else {
            receivers.push((
                file,
                serde_yaml_ng::from_str::<ReceiverConfig>(&text).map_err(parse)?,
            ));
        }
    }
    let mut warnings = Vec::new();
    for (agent_file, agent) in &agents {
        for (receiver_file, receiver) in &receivers {
            for warning in cross_check(agent, receiver) {
                warnings.push(format!(
                    "{} with {}: {warning}",
                    agent_file.display(),
                    receiver_file.display()
                ));
            }
        }
    }
    Ok((valid, warnings))
}

/// Where an agent config sends more than the receiver config accepts: the receiver refuses it
/// (and the agent drops what is refused), so either limit is probably meant to be raised or
/// lowered. Warnings, not errors: the receiver serves many agents.
pub fn cross_check(agent: &AgentConfig, receiver: &ReceiverConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    let limits = &receiver.limits;
    let targets = agent.scrape.targets.len().max(1);
    let agent_series = agent.scrape.max_series.saturating_mul(targets);
    if limits.max_series_per_seed > 0 && agent_series > limits.max_series_per_seed {
        warnings.push(format!(
            "scrape.max_series {} × {targets} target(s) = {agent_series} series is above the \
             receiver's limits.max_series_per_seed {}: a cardinality spike in between is \
             forwarded, and the receiver refuses its new series for up to \
             limits.series_idle_timeout ({}); lower scrape.max_series or raise the receiver's limit",
            agent.scrape.max_series,
            limits.max_series_per_seed,
            humantime::format_duration(limits.series_idle_timeout)
        ));
    }
    let backlog = agent.remote_write.max_samples_per_backlog_request;
    if backlog > limits.max_series_per_request {
        warnings.push(format!(
            "remote_write.max_samples_per_backlog_request {backlog} is above the receiver's \
             limits.max_series_per_request {}: merged backlog requests can be refused (413) and \
             are then sent again record by record",
            limits.max_series_per_request
        ));
    }
    warnings
}

/// The agent's own checks, then what only the full CLI can check: every `match[]` selector
/// parses as a PromQL vector selector (as Prometheus parses `match[]`), and every
/// `match_from_specs` spec yields selectors.
fn check_agent(file: &Path, text: &str) -> Result<(), ConfigError> {
    let mut problems = match parse::<AgentConfig>(file, text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(error) => return Err(error),
    };
    let config: AgentConfig = serde_yaml_ng::from_str(text).map_err(|e| parse_error(file, &e))?;
    let base_dir = file.parent().unwrap_or(Path::new("."));
    problems.extend(locate_problems(text, full_cli_problems(&config, base_dir)));
    problems.sort_by_key(|(line, column, _)| (*line, *column));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            problems,
        })
    }
}

fn full_cli_problems(config: &AgentConfig, base_dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, target) in config.scrape.targets.iter().enumerate() {
        for (j, selector) in target.match_selectors.iter().enumerate() {
            if let Err(message) = check_promql_selector(selector) {
                problems.push(Problem::new(
                    format!("scrape.targets[{i}].match[{j}]"),
                    message,
                ));
            }
        }
        if !target.match_from_specs.is_empty() {
            if let Err(message) = target.resolved_selectors(base_dir, Some(derive_selectors)) {
                problems.push(Problem::new(
                    format!("scrape.targets[{i}].match_from_specs"),
                    message,
                ));
            }
        }
    }
    problems
}

/// `Ok` when `selector` is what Prometheus accepts as `match[]`: a vector selector without
/// offset or `@` modifier.
fn check_promql_selector(selector: &str) -> Result<(), String> {
    match parser::parse(selector) {
        Ok(Expr::VectorSelector(vs)) if vs.offset.is_none() && vs.at.is_none() => Ok(()),
        Ok(_) => Err(format!(
            "{selector:?} is not a series selector (match[] takes `metric{{label=\"value\"}}`)"
        )),
        Err(error) => Err(format!(
            "{selector:?} is not a valid PromQL selector: {}",
            error.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use agent::config::TargetConfig;

    use super::*;

    /// By default the agent refuses a spike before the receiver would: the two limits agree.
    #[test]
    fn default_limits_of_agent_and_receiver_agree() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "ca.pem",
            "seed.pem",
            "seed-key.pem",
            "server.pem",
            "server-key.pem",
        ] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let agent_file = dir.path().join("agent.yaml");
        let agent = "scrape:\n  targets: [{url: 'http://127.0.0.1:9090/federate', match: [ALERTS]}]\nremote_write:\n  url: https://127.0.0.1:8443/api/v1/write\n  tls: {ca_file: ca.pem, cert_file: seed.pem, key_file: seed-key.pem}\n";
        std::fs::write(&agent_file, agent).unwrap();
        let receiver_file = dir.path().join("receiver.yaml");
        let receiver = "tls: {cert_file: server.pem, key_file: server-key.pem, client_ca_file: ca.pem}\nforward: {url: 'http://127.0.0.1:9090/api/v1/write'}\n";
        std::fs::write(&receiver_file, receiver).unwrap();
        let files = [agent_file.clone(), receiver_file.clone()];
        let (valid, warnings) = check_files(&files).unwrap();
        assert_eq!(valid.len(), 2);
        assert_eq!(warnings, Vec::<String>::new());
        let a: AgentConfig = serde_yaml_ng::from_str(agent).unwrap();
        let r: ReceiverConfig = serde_yaml_ng::from_str(receiver).unwrap();
        assert_eq!(a.scrape.max_series, r.limits.max_series_per_seed);

        // The old agent default against the receiver's: a spike would reach the receiver.
        std::fs::write(
            &agent_file,
            agent.replace("scrape:\n", "scrape:\n  max_series: 500000\n"),
        )
        .unwrap();
        let (_, warnings) = check_files(&files).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(
                "500000 series is above the receiver's limits.max_series_per_seed 100000"
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn selectors_promtool_refuses_are_refused() {
        for bad in [
            "up{job=}",
            "{__name__=~\"(\"}",
            "rate(up[5m])",
            "up offset 5m",
            "up{",
            "{}",
        ] {
            assert!(check_promql_selector(bad).is_err(), "{bad} accepted");
        }
        for good in [
            "ALERTS",
            "shoot:availability",
            "{__name__=~\"shoot:(.+):(.+)\"}",
            "up{job=\"prometheus-aggregate\",seed!=\"\"}",
        ] {
            assert_eq!(check_promql_selector(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn check_file_locates_a_bad_selector() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "seed.pem", "seed-key.pem"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let file = dir.path().join("agent.yaml");
        std::fs::write(
            &file,
            "scrape:\n  targets:\n    - url: http://127.0.0.1:9090/federate\n      match:\n        - ALERTS\n        - up{job=}\nremote_write:\n  url: https://127.0.0.1:8443/api/v1/write\n  tls: {ca_file: ca.pem, cert_file: seed.pem, key_file: seed-key.pem}\n",
        )
        .unwrap();
        let error = check_file(&file).unwrap_err().to_string();
        assert!(
            error.contains("agent.yaml:6:11: scrape.targets[0].match[1]"),
            "{error}"
        );
        assert!(error.contains("not a valid PromQL selector"), "{error}");
    }

    #[test]
    fn match_from_specs_adds_the_selectors_rules_derives() {
        let dir = tempfile::tempdir().unwrap();
        let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slos.yaml");
        std::fs::copy(&spec, dir.path().join("slos.yaml")).unwrap();
        let target = TargetConfig {
            url: "http://127.0.0.1:9090/federate".into(),
            match_selectors: vec!["ALERTS".into()],
            match_from_specs: vec!["slos.yaml".into()],
        };
        let selectors = target
            .resolved_selectors(dir.path(), Some(derive_selectors))
            .unwrap();
        let loaded = rules::load::load_file(&spec).unwrap();
        let mut expected = vec!["ALERTS".to_string()];
        expected.extend(rules::agent_match_selectors(&[loaded.spec]));
        assert_eq!(selectors, expected);
        assert!(
            selectors.iter().any(|s| s.contains("shoot:availability")),
            "{selectors:?}"
        );

        std::fs::write(
            dir.path().join("bad.yaml"),
            "version: slo-gateway/v1\nservice: s\nslos: []\nbogus: 1\n",
        )
        .unwrap();
        let bad = TargetConfig {
            match_from_specs: vec!["bad.yaml".into()],
            ..target
        };
        let error = bad
            .resolved_selectors(dir.path(), Some(derive_selectors))
            .unwrap_err()
            .to_string();
        assert!(error.contains("bad.yaml"), "{error}");
    }
}
