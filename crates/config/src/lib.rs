//! Configuration files: YAML loading with errors that name file, line and column.
//!
//! Structs use `deny_unknown_fields`, so a typo is an error rather than a silently ignored key.
//! Parsing is serde (first syntax or type error, with its position); semantic checks then report
//! *every* problem, each located through [`YamlLocator`].

pub mod yaml_locator;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use crate::yaml_locator::YamlLocator;

/// One semantic problem in a config, addressed by its key path (`scrape.targets[0].url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path; `[i]` for list items.
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A config that can list its own semantic problems.
pub trait Validate {
    /// Every problem found, empty when the config is usable. `base_dir` resolves relative paths.
    fn problems(&self, base_dir: &Path) -> Vec<Problem>;
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {error}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error (in the message, not the error chain, so `{:#}` names it once).
        error: std::io::Error,
    },
    /// YAML syntax or a type/unknown-key error.
    #[error("{file}:{location}{message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// `line:column: ` when known.
        location: String,
        /// The parser's message.
        message: String,
    },
    /// Semantic problems, each with its location.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// `(line, column, problem)`; line 0 when the key is absent from the file.
        problems: Vec<(usize, usize, Problem)>,
    },
}

fn render_problems(file: &Path, problems: &[(usize, usize, Problem)]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|(line, col, p)| {
            if *line == 0 {
                format!("{}: {}: {}", file.display(), p.path, p.message)
            } else {
                format!("{}:{line}:{col}: {}: {}", file.display(), p.path, p.message)
            }
        })
        .collect();
    lines.join("\n")
}

/// Reads and fully validates a YAML config file.
pub fn load<T: DeserializeOwned + Validate>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
        file: file.to_path_buf(),
        error,
    })?;
    parse(file, &text)
}

/// Parses and validates YAML `text` that came from `file` (used for messages and relative paths).
pub fn parse<T: DeserializeOwned + Validate>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let config: T = serde_yaml_ng::from_str(text).map_err(|e| parse_error(file, &e))?;
    let base_dir = file.parent().unwrap_or(Path::new("."));
    let problems = config.problems(base_dir);
    if problems.is_empty() {
        return Ok(config);
    }
    Err(ConfigError::Invalid {
        file: file.to_path_buf(),
        problems: locate_problems(text, problems),
    })
}

/// `(line, column, problem)` for each problem's key path in `text`; line 0 where the key is
/// absent from the file.
pub fn locate_problems(text: &str, problems: Vec<Problem>) -> Vec<(usize, usize, Problem)> {
    let locator = YamlLocator::new(text);
    problems
        .into_iter()
        .map(|p| {
            let (line, col) = locator.locate(&p.path).unwrap_or((0, 0));
            (line, col, p)
        })
        .collect()
}

pub fn parse_error(file: &Path, e: &serde_yaml_ng::Error) -> ConfigError {
    ConfigError::Parse {
        file: file.to_path_buf(),
        location: e
            .location()
            .map(|l| format!("{}:{}: ", l.line(), l.column()))
            .unwrap_or_else(|| " ".into()),
        message: crate::yaml_locator::serde_message(e),
    }
}

/// Problem unless `value` is positive (a zero timeout or interval would hang or panic).
pub fn check_positive(problems: &mut Vec<Problem>, key: &str, value: std::time::Duration) {
    if value.is_zero() {
        problems.push(Problem::new(key, "must be greater than 0"));
    }
}

/// Resolves a config-relative path against the config file's directory.
pub fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Problem for a file that a config names but that does not exist.
pub fn check_file_exists(problems: &mut Vec<Problem>, base_dir: &Path, key: &str, path: &Path) {
    let resolved = resolve(base_dir, path);
    if !resolved.is_file() {
        problems.push(Problem::new(
            key,
            format!("file {} does not exist", resolved.display()),
        ));
    }
}

/// Default interval for re-reading certificate files: `10s`.
pub fn default_reload_interval() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// Problems of a URL that must be `http` or `https` with a host.
pub fn check_url(problems: &mut Vec<Problem>, key: &str, url: &str, schemes: &[&str]) {
    match url.parse::<http::Uri>() {
        Ok(uri)
            if uri.scheme_str().is_some_and(|s| schemes.contains(&s)) && uri.host().is_some() => {}
        _ => problems.push(Problem::new(
            key,
            format!("{url:?} is not a valid {} URL", schemes.join(" or ")),
        )),
    }
}
