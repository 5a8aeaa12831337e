//! The shipped configs (`config/*.yaml`) stay valid and complete, config
//! errors name file:line:col, and the CLI's basic contract (`--version`, `--help`, `certs`,
//! `check-config`) holds when run as a real process.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use slo_gateway::config::{check_file, AgentConfig, ConfigError, ReceiverConfig, YamlLocator};

/// The seed whose certificate `config/agent.yaml` names (`certs/seed-aws-eu1.pem`).
const EXAMPLE_SEED: &str = "aws-eu1";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap()
}

/// A temp dir with a dev PKI in `certs/` (what `slo-gateway certs --out certs` writes).
fn dir_with_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    slo_gateway::certs::write_dev_pki(&dir.path().join("certs"), &[EXAMPLE_SEED.to_string()])
        .unwrap();
    dir
}

/// 1-based number of the first line after line `after` (1-based, 0 = from the start) that starts
/// with `prefix`.
fn line_of(text: &str, prefix: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} after line {after}"))
}

// ---------------------------------------------------------------------------------------------
// The examples are valid, complete and commented.

#[test]
fn agent_example_is_valid_with_a_dev_pki() {
    let dir = dir_with_pki();
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, read("config/agent.yaml")).unwrap();
    assert_eq!(check_file(&file).map_err(|e| e.to_string()), Ok("agent"));
}

#[test]
fn receiver_example_is_valid_with_a_dev_pki() {
    let dir = dir_with_pki();
    let file = dir.path().join("receiver.yaml");
    std::fs::write(&file, read("config/receiver.yaml")).unwrap();
    assert_eq!(check_file(&file).map_err(|e| e.to_string()), Ok("receiver"));
}

#[test]
fn examples_follow_the_issue_contract() {
    let agent: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("config/agent.yaml")).unwrap();
    assert_eq!(agent["listen"].as_str(), Some("127.0.0.1:9464"));
    assert_eq!(agent["scrape"]["interval"].as_str(), Some("15s"));
    assert_eq!(agent["scrape"]["timeout"].as_str(), Some("10s"));
    assert_eq!(agent["scrape"]["honor_timestamps"].as_bool(), Some(false));
    let matches: Vec<&str> = agent["scrape"]["targets"][0]["match"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(matches.first(), Some(&r#"{__name__=~"shoot:.+"}"#));
    assert!(matches.contains(&"ALERTS"), "{matches:?}");
    assert_eq!(
        agent["remote_write"]["url"].as_str(),
        Some("https://127.0.0.1:8443/api/v1/write")
    );

    let receiver: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("config/receiver.yaml")).unwrap();
    assert_eq!(receiver["listen"].as_str(), Some("127.0.0.1:8443"));
    assert_eq!(receiver["admin_listen"].as_str(), Some("127.0.0.1:9465"));
    assert_eq!(receiver["identity"]["label"].as_str(), Some("seed"));
    assert_eq!(
        receiver["forward"]["url"].as_str(),
        Some("http://127.0.0.1:9090/api/v1/write")
    );
}

/// Mappings of `AgentConfig` that are structs (their keys are checked one by one).
const AGENT_SECTIONS: &[&str] = &[
    "",
    "scrape",
    "scrape.targets[0]",
    "remote_write",
    "remote_write.tls",
    "remote_write.retry",
    "buffer",
];

/// Mappings of `ReceiverConfig` that are structs.
const RECEIVER_SECTIONS: &[&str] = &["", "tls", "identity", "forward", "limits"];

/// `a.b[0].c` as `[("a", None), ("b", Some(0)), ("c", None)]`; `""` is the root.
fn path_parts(path: &str) -> Vec<(&str, Option<usize>)> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once('[') {
            Some((key, rest)) => (key, Some(rest.trim_end_matches(']').parse().unwrap())),
            None => (part, None),
        })
        .collect()
}

/// The value at `path`, if the key is present (a present `null` counts).
fn lookup<'a>(root: &'a serde_yaml_ng::Value, path: &str) -> Option<&'a serde_yaml_ng::Value> {
    let mut value = root;
    for (key, index) in path_parts(path) {
        value = value.as_mapping()?.get(key)?;
        if let Some(i) = index {
            value = value.as_sequence()?.get(i)?;
        }
    }
    Some(value)
}

fn lookup_mut<'a>(
    root: &'a mut serde_yaml_ng::Value,
    path: &str,
) -> Option<&'a mut serde_yaml_ng::Value> {
    let mut value = root;
    for (key, index) in path_parts(path) {
        value = value.as_mapping_mut()?.get_mut(key)?;
        if let Some(i) = index {
            value = value.as_sequence_mut()?.get_mut(i)?;
        }
    }
    Some(value)
}

/// The field names of the struct at `section`, as the config structs themselves declare them: an
/// unknown key makes serde list every expected field (`deny_unknown_fields`). So a field added to
/// a struct but not to the example fails the completeness test.
fn struct_fields<T: serde::de::DeserializeOwned + slo_gateway::config::Validate>(
    example: &serde_yaml_ng::Value,
    section: &str,
) -> Vec<String> {
    let mut doc = example.clone();
    lookup_mut(&mut doc, section)
        .and_then(|v| v.as_mapping_mut())
        .unwrap_or_else(|| panic!("section {section:?} is not a mapping"))
        .insert("zz_not_a_field".into(), 1.into());
    let text = serde_yaml_ng::to_string(&doc).unwrap();
    let message = match slo_gateway::config::parse::<T>(Path::new("probe.yaml"), &text) {
        Err(ConfigError::Parse { message, .. }) => message,
        Err(other) => panic!("section {section:?}: expected an unknown-field error, got {other}"),
        Ok(_) => panic!("section {section:?}: an unknown key was accepted"),
    };
    let expected = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("{message}"))
        .1;
    let fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!fields.is_empty(), "{message}");
    fields
}

/// Every field of every struct is present in the example, and every key that is not itself a
/// section has a comment on its line or on the line above.
fn assert_complete_and_commented<T: serde::de::DeserializeOwned + slo_gateway::config::Validate>(
    relative: &str,
    sections: &[&str],
) {
    let text = read(relative);
    let root: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let locator = YamlLocator::new(&text);
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    let mut uncommented = Vec::new();
    let mut checked = 0;
    for section in sections {
        for field in struct_fields::<T>(&root, section) {
            let key = if section.is_empty() {
                field
            } else {
                format!("{section}.{field}")
            };
            if lookup(&root, &key).is_none() {
                missing.push(key);
                continue;
            }
            checked += 1;
            let is_section = sections
                .iter()
                .any(|s| *s == key || s.starts_with(&format!("{key}[")));
            if is_section {
                continue;
            }
            let (line, _) = locator.locate(&key).unwrap();
            let here = lines[line - 1];
            let above = if line >= 2 { lines[line - 2] } else { "" };
            if !here.contains('#') && !above.trim_start().starts_with('#') {
                uncommented.push(key);
            }
        }
    }
    assert!(missing.is_empty(), "{relative} lacks keys {missing:?}");
    assert!(
        uncommented.is_empty(),
        "{relative}: keys without a comment {uncommented:?}"
    );
    assert!(checked >= 20, "{relative}: only {checked} keys found");
}

#[test]
fn agent_example_shows_every_key_with_a_comment() {
    assert_complete_and_commented::<AgentConfig>("config/agent.yaml", AGENT_SECTIONS);
}

#[test]
fn receiver_example_shows_every_key_with_a_comment() {
    assert_complete_and_commented::<ReceiverConfig>("config/receiver.yaml", RECEIVER_SECTIONS);
}

// ---------------------------------------------------------------------------------------------
// Broken copies fail with file:line:col.

#[test]
fn broken_agent_copies_fail_with_their_location() {
    let dir = dir_with_pki();
    let example = read("config/agent.yaml");
    let scrape_line = line_of(&example, "scrape:", 0);

    // Semantic: scrape.timeout above scrape.interval.
    let timeout_line = line_of(&example, "  timeout:", scrape_line);
    let broken: String = example
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == timeout_line {
                "  timeout: 20s".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, &broken).unwrap();
    let err = check_file(&file).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    let message = err.to_string();
    let expected = format!("agent.yaml:{timeout_line}:3: scrape.timeout: must be greater than 0 and at most scrape.interval (15s)");
    assert!(
        message.contains(&expected),
        "{message}\nexpected {expected}"
    );

    // Syntax: an unknown key (a typo) is an error too, not silently ignored.
    let mut lines: Vec<&str> = broken.lines().collect();
    lines.insert(scrape_line, "  intervall: 15s");
    let file = dir.path().join("typo.yaml");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let message = check_file(&file).unwrap_err().to_string();
    assert!(
        message.contains(&format!("typo.yaml:{}:", scrape_line + 1)),
        "{message}"
    );
    assert!(message.contains("unknown field `intervall`"), "{message}");
}

#[test]
fn broken_receiver_copy_lists_every_problem_with_its_location() {
    let dir = dir_with_pki();
    let example = read("config/receiver.yaml");
    let broken = example
        .replace(
            "admin_listen: 127.0.0.1:9465",
            "admin_listen: 127.0.0.1:8443",
        )
        .replace(
            "url: http://127.0.0.1:9090/api/v1/write",
            "url: ftp://127.0.0.1:9090/api/v1/write",
        )
        .replace(
            "client_ca_file: certs/ca.pem",
            "client_ca_file: certs/nope.pem",
        );
    let file = dir.path().join("receiver.yaml");
    std::fs::write(&file, &broken).unwrap();
    let message = check_file(&file).unwrap_err().to_string();
    for (prefix, key) in [
        ("admin_listen:", "admin_listen"),
        ("  url:", "forward.url"),
        ("  client_ca_file:", "tls.client_ca_file"),
    ] {
        let line = line_of(&broken, prefix, 0);
        assert!(
            message.contains(&format!("receiver.yaml:{line}:")) && message.contains(key),
            "{key} at line {line} missing in:\n{message}"
        );
    }
    assert_eq!(message.lines().count(), 3, "{message}");
}

#[test]
fn examples_without_certificates_name_each_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, read("config/agent.yaml")).unwrap();
    let message = check_file(&file).unwrap_err().to_string();
    for key in ["ca_file", "cert_file", "key_file"] {
        assert!(
            message.contains(&format!("remote_write.tls.{key}: file ")),
            "{message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slo-gateway"))
        .args(args)
        .env_remove("SLO_GATEWAY_LOG_JSON")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_version_prints_the_crate_version() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("slo-gateway ") && stdout.contains(env!("CARGO_PKG_VERSION")),
        "{stdout}"
    );
}

#[test]
fn cli_help_lists_the_subcommands() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for expected in ["agent", "receiver", "certs", "check-config"] {
        assert!(
            commands.contains(&expected),
            "{expected} not in {commands:?}\n{help}"
        );
    }
}

#[test]
fn cli_certs_writes_the_dev_pki() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("pki");
    let out = run(&[
        "certs",
        "--out",
        out_dir.to_str().unwrap(),
        "--seeds",
        "a,b",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in [
        "ca.pem",
        "server.pem",
        "server-key.pem",
        "seed-a.pem",
        "seed-a-key.pem",
        "seed-b.pem",
        "seed-b-key.pem",
    ] {
        let contents =
            std::fs::read_to_string(out_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(contents.starts_with("-----BEGIN "), "{name} is not PEM");
    }
    // Gardener's seed client-certificate convention.
    let pem = std::fs::read(out_dir.join("seed-b.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let subject = cert.subject();
    let cn: Vec<&str> = subject
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let org: Vec<&str> = subject
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["gardener.cloud:system:seed:b"]);
    assert_eq!(org, ["gardener.cloud:system:seeds"]);
}

#[test]
fn cli_check_config_accepts_the_examples() {
    let dir = dir_with_pki();
    for (name, kind) in [("agent.yaml", "agent"), ("receiver.yaml", "receiver")] {
        let file = dir.path().join(name);
        std::fs::write(&file, read(&format!("config/{name}"))).unwrap();
        let out = run(&["check-config", file.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("valid {kind} config")),
            "{}",
            text(&out.stdout)
        );
    }
}

/// The shipped examples agree with each other: checked together, no warning.
#[test]
fn cli_check_config_cross_checks_the_examples_without_warnings() {
    let dir = dir_with_pki();
    let mut args = vec!["check-config".to_string()];
    for name in ["agent.yaml", "receiver.yaml"] {
        let file = dir.path().join(name);
        std::fs::write(&file, read(&format!("config/{name}"))).unwrap();
        args.push(file.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("valid agent config") && stdout.contains("valid receiver config"),
        "{stdout}"
    );
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cli_check_config_prints_every_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        r#"scrape:
  interval: 15s
  timeout: 20s
  targets:
    - url: "not a url"
      match: ['{__name__=~"shoot:.+"}', 'bad-name{']
remote_write:
  url: http://127.0.0.1:8443/api/v1/write
  tls: {ca_file: ca.pem, cert_file: seed.pem, key_file: seed-key.pem}
"#,
    )
    .unwrap();
    let out = run(&["check-config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for expected in [
        "bad.yaml:3:3: scrape.timeout",
        "bad.yaml:5:7: scrape.targets[0].url",
        "bad.yaml:6:41: scrape.targets[0].match[1]",
        "bad.yaml:8:3: remote_write.url",
        "bad.yaml:9:9: remote_write.tls.ca_file",
        "bad.yaml:9:26: remote_write.tls.cert_file",
        "bad.yaml:9:47: remote_write.tls.key_file",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in:\n{stderr}"
        );
    }

    // A syntax/type error stops parsing but still carries its position.
    std::fs::write(&file, "scrape:\n  interval: soon\n").unwrap();
    let out = run(&["check-config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.yaml:2:"), "{stderr}");
}
