//! Parsing spec files: serde rejects what is structurally wrong (unknown keys, wrong types, bad
//! durations) with the line serde_yaml_ng reports, stopping at the first such error. Nothing
//! here checks meaning: a parsed spec becomes a [`LoadedSpec`] only through the crate's loader,
//! which validates it after resolving it.

use std::path::Path;

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

/// A file's name for messages and its text.
pub(crate) fn read(path: &Path) -> Result<(String, String), SpecError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(source) => Err(SpecError::Read { file, source }),
    }
}

/// Parses a spec of our format given as text (`file` is used in messages): structure and
/// `version` only, with the locator for whatever is found about it later.
pub(crate) fn parse(file: &str, text: &str) -> Result<(Locator, Spec), SpecError> {
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
    Ok((locator, spec))
}
