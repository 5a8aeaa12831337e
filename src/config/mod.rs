//! Configuration files: YAML loading with errors that name file, line and column.
//!
//! Structs use `deny_unknown_fields`, so a typo is an error rather than a silently ignored key.
//! Parsing is serde (first syntax or type error, with its position); semantic checks then report
//! *every* problem, each located through [`YamlLocator`].

pub mod agent;
pub mod receiver;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::Event;

pub use agent::AgentConfig;
pub use receiver::ReceiverConfig;

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
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
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
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
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
    let locator = YamlLocator::new(text);
    Err(ConfigError::Invalid {
        file: file.to_path_buf(),
        problems: problems
            .into_iter()
            .map(|p| {
                let (line, col) = locator.locate(&p.path).unwrap_or((0, 0));
                (line, col, p)
            })
            .collect(),
    })
}

fn parse_error(file: &Path, e: &serde_yaml_ng::Error) -> ConfigError {
    ConfigError::Parse {
        file: file.to_path_buf(),
        location: e
            .location()
            .map(|l| format!("{}:{}: ", l.line(), l.column()))
            .unwrap_or_else(|| " ".into()),
        message: strip_serde_location(&e.to_string()),
    }
}

/// Problem unless `value` is positive (a zero timeout or interval would hang or panic).
pub fn check_positive(problems: &mut Vec<Problem>, key: &str, value: std::time::Duration) {
    if value.is_zero() {
        problems.push(Problem::new(key, "must be greater than 0"));
    }
}

/// serde_yaml_ng appends " at line L column C"; we print the location in front instead.
fn strip_serde_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
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

/// Maps key paths of a YAML document (`a.b[2].c`) to 1-based (line, column) of the key or item.
#[derive(Debug, Default)]
pub struct YamlLocator {
    positions: HashMap<String, (usize, usize)>,
}

impl YamlLocator {
    /// Indexes `text`; a document that does not parse yields an empty locator.
    pub fn new(text: &str) -> Self {
        let mut builder = LocatorBuilder::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error was already reported by serde; positions found so far are still useful.
        let _ = parser.load(&mut builder, false);
        Self {
            positions: builder.positions,
        }
    }

    /// Position of `path`, or of its nearest located ancestor.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path;
        loop {
            if let Some(&pos) = self.positions.get(candidate) {
                return Some(pos);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

/// Where the parser is inside a container.
#[derive(Debug)]
enum Frame {
    /// In a mapping; `key` is the pending key, or None when the next scalar is a key.
    Mapping { path: String, key: Option<String> },
    /// In a sequence; `index` of the next item.
    Sequence { path: String, index: usize },
}

#[derive(Debug, Default)]
struct LocatorBuilder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl LocatorBuilder {
    /// Path of the value starting now, advancing the parent's state.
    fn enter_value(&mut self, mark: Marker) -> Option<String> {
        let path = match self.stack.last_mut()? {
            Frame::Mapping { path, key } => {
                let key = key.take()?;
                join(path, &key)
            }
            Frame::Sequence { path, index } => {
                let p = format!("{path}[{index}]");
                *index += 1;
                self.positions
                    .insert(p.clone(), (mark.line(), mark.col() + 1));
                p
            }
        };
        Some(path)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for LocatorBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                    if key.is_none() {
                        self.positions
                            .insert(join(path, &value), (mark.line(), mark.col() + 1));
                        *key = Some(value);
                        return;
                    }
                }
                self.enter_value(mark);
            }
            Event::Alias(_) => {
                self.enter_value(mark);
            }
            Event::MappingStart(..) => {
                let path = if self.stack.is_empty() {
                    String::new()
                } else {
                    self.enter_value(mark).unwrap_or_default()
                };
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = if self.stack.is_empty() {
                    String::new()
                } else {
                    self.enter_value(mark).unwrap_or_default()
                };
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Validates `file` as an agent or a receiver config (told apart by its top-level keys) and
/// returns which it is; the error lists every problem with its location.
pub fn check_file(file: &Path) -> Result<&'static str, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let top: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| parse_error(file, &e))?;
    let has = |key: &str| top.get(key).is_some();
    if has("scrape") || has("remote_write") || has("external_labels") || has("buffer") {
        parse::<AgentConfig>(file, &text).map(|_| "agent")
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locator_finds_nested_keys_and_list_items() {
        let text = "a: 1\nscrape:\n  targets:\n    - url: x\n      match: ['b']\n    - url: y\n";
        let locator = YamlLocator::new(text);
        assert_eq!(locator.locate("a"), Some((1, 1)));
        assert_eq!(locator.locate("scrape.targets"), Some((3, 3)));
        assert_eq!(locator.locate("scrape.targets[1].url"), Some((6, 7)));
        assert_eq!(locator.locate("scrape.targets[0].match[0]"), Some((5, 15)));
        // Absent keys fall back to the nearest ancestor.
        assert_eq!(
            locator
                .locate("scrape.targets[1].timeout")
                .map(|(line, _)| line),
            Some(6)
        );
        assert_eq!(locator.locate("nope"), None);
    }
}
