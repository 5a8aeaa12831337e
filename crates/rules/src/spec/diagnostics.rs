//! Findings in spec files: what is wrong, how bad, and where (file and line, located by key
//! path through the shared [`YamlLocator`]).

use std::fmt;
use std::sync::Arc;

use yaml_config::yaml_locator::YamlLocator;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The spec is unusable.
    Error,
    /// The spec works but probably not as intended.
    Warning,
}

/// A finding in a spec file, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Error or warning.
    pub level: Level,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)
    }
}

/// Why specs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// File name as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more errors in the specs (warnings are included for context).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A semantic finding by key path, before it is located.
pub type Finding = (String, Level, String);

/// Locates findings of one file (one YAML document of it).
#[derive(Debug, Clone)]
pub struct Locator {
    file: String,
    positions: Arc<YamlLocator>,
}

impl Locator {
    /// Indexes document `document` of `text`, read from `file`.
    pub fn new(file: &str, text: &str, document: usize) -> Self {
        Self {
            file: file.to_owned(),
            positions: Arc::new(YamlLocator::for_document(text, document)),
        }
    }

    /// The file name.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// A diagnostic at `path` (or its nearest ancestor), the path leading the message.
    pub fn diag(&self, path: &str, level: Level, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.positions.line(path),
            level,
            message: format!("{path}: {}", message.into()),
        }
    }

    /// Every finding located.
    pub fn locate_all(&self, findings: Vec<Finding>) -> Vec<Diagnostic> {
        findings
            .into_iter()
            .map(|(path, level, msg)| self.diag(&path, level, msg))
            .collect()
    }
}

/// A serde_yaml_ng error as a located [`SpecError`] (serde stops at the first such error).
pub fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> SpecError {
    SpecError::Invalid(vec![Diagnostic {
        file: file.to_owned(),
        line: e.location().map_or(1, |l| l.line()),
        level: Level::Error,
        message: yaml_config::yaml_locator::serde_message(e),
    }])
}
