//! Loading specs: [`parse`] (structure, first error with its line), then
//! run [`check`] on the parsed spec as a whole. The one way to a [`LoadedSpec`], for our
//! format here and for the importers ([`crate::sloth`], [`crate::openslo`]).

use std::path::Path;

use crate::check;
use crate::spec::diagnostics::{Level, Locator, SpecError};
use crate::spec::{parse, LoadedSpec, Spec};

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

/// Reads and validates one spec file.
pub fn load_file(path: &Path) -> Result<LoadedSpec, SpecError> {
    let (file, text) = parse::read(path)?;
    parse_str(&file, &text)
}

/// Parses and validates a spec given as text; `file` is used in messages.
pub fn parse_str(file: &str, text: &str) -> Result<LoadedSpec, SpecError> {
    let (locator, spec) = parse::parse(file, text)?;
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

/// [`agent_match_selectors`](crate::agent_match_selectors) for spec files (what the agent config can reference instead of a
/// hand-written list); the files are validated as `rules check` does.
pub fn agent_match_selectors_from_files(
    paths: &[std::path::PathBuf],
) -> Result<Vec<String>, SpecError> {
    let loaded = paths
        .iter()
        .map(|p| load_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    check::check_together(&loaded)?;
    let specs: Vec<Spec> = loaded.into_iter().map(|l| l.spec).collect();
    Ok(crate::render::agent::agent_match_selectors(&specs))
}
