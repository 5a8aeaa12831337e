//! Loading spec files: serde rejects what is structurally wrong (unknown keys, wrong types, bad
//! durations) with the line serde_yaml_ng reports, stopping at the first such error; a
//! structurally valid spec is then [checked](super::check) as a whole.

use std::path::Path;

use super::check;
use super::diagnostics::{yaml_error, Diagnostic, Level, Locator, SpecError};
use super::{Spec, SPEC_VERSION};

/// A parsed, valid spec with the warnings found and what is needed to locate findings later.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// File name as given.
    pub file: String,
    /// The spec.
    pub spec: Spec,
    /// Warnings (e.g. alerts that can never fire).
    pub warnings: Vec<Diagnostic>,
    pub(crate) locator: Locator,
}

impl LoadedSpec {
    /// Validates a spec built by an importer from `text`; findings are located by their key
    /// path in `text` (which works where the source format uses the same keys).
    pub fn from_spec(file: &str, text: &str, spec: Spec) -> Result<Self, SpecError> {
        Self::from_spec_in_document(file, text, 0, spec)
    }

    /// [`Self::from_spec`] for document `document` (0-based) of a multi-document file.
    pub fn from_spec_in_document(
        file: &str,
        text: &str,
        document: usize,
        spec: Spec,
    ) -> Result<Self, SpecError> {
        finish(Locator::new(file, text, document), spec)
    }
}

/// Deserialises YAML, turning a serde error into a located [`Diagnostic`].
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, SpecError> {
    serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))
}

/// Errors given by key path, located in document `document` of `text`.
pub(crate) fn located_errors(
    file: &str,
    text: &str,
    document: usize,
    problems: Vec<(String, String)>,
) -> SpecError {
    let locator = Locator::new(file, text, document);
    SpecError::Invalid(
        problems
            .into_iter()
            .map(|(path, msg)| locator.diag(&path, Level::Error, msg))
            .collect(),
    )
}

/// Reads and validates one spec file.
pub fn load_file(path: &Path) -> Result<LoadedSpec, SpecError> {
    let (file, text) = read(path)?;
    parse_str(&file, &text)
}

/// A file's name for messages and its text.
pub(crate) fn read(path: &Path) -> Result<(String, String), SpecError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(source) => Err(SpecError::Read { file, source }),
    }
}

/// Parses and validates a spec given as text; `file` is used in messages.
pub fn parse_str(file: &str, text: &str) -> Result<LoadedSpec, SpecError> {
    let spec: Spec = from_yaml(file, text)?;
    let locator = Locator::new(file, text, 0);
    if spec.version != SPEC_VERSION {
        let d = locator.diag(
            "version",
            Level::Error,
            format!(
                "unsupported version {:?}: expected {SPEC_VERSION:?}",
                spec.version
            ),
        );
        return Err(SpecError::Invalid(vec![d]));
    }
    finish(locator, spec)
}

fn finish(locator: Locator, spec: Spec) -> Result<LoadedSpec, SpecError> {
    let (errors, warnings): (Vec<_>, Vec<_>) = locator
        .locate_all(check::validate(&spec))
        .into_iter()
        .partition(|d| d.level == Level::Error);
    if errors.is_empty() {
        Ok(LoadedSpec {
            file: locator.file().to_owned(),
            spec,
            warnings,
            locator,
        })
    } else {
        let mut all = errors;
        all.extend(warnings);
        Err(SpecError::Invalid(all))
    }
}
