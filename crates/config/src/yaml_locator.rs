//! Where a key path (`a.b[2].c`) sits in a YAML text, for error messages.
//!
//! Shared by [`crate::config`] (agent/receiver configs) and [`crate::rules`] (SLO specs): both
//! parse with serde first and then report semantic problems by key path, located here.

use std::collections::HashMap;

use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::Event;

/// Maps key paths of a YAML document (`a.b[2].c`) to 1-based (line, column) of the key or item.
#[derive(Debug, Clone, Default)]
pub struct YamlLocator {
    positions: HashMap<String, (usize, usize)>,
}

impl YamlLocator {
    /// Indexes the first document of `text`; a document that does not parse yields the
    /// positions found before the syntax error (serde reports the error itself).
    pub fn new(text: &str) -> Self {
        Self::for_document(text, 0)
    }

    /// Indexes document `index` (0-based) of a multi-document `text` (`---`-separated).
    pub fn for_document(text: &str, index: usize) -> Self {
        let mut builder = LocatorBuilder {
            wanted: index,
            ..LocatorBuilder::default()
        };
        let mut parser = Parser::new_from_str(text);
        // A syntax error was already reported by serde; positions found so far are still useful.
        let _ = parser.load(&mut builder, true);
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

    /// Line of `path` (or its nearest located ancestor), 1 when nothing is located.
    pub fn line(&self, path: &str) -> usize {
        self.locate(path).map_or(1, |(line, _)| line)
    }
}

/// serde_yaml_ng's message without its trailing " at line L column C" (callers print the
/// position in front).
pub fn serde_message(e: &serde_yaml_ng::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
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
    /// The document to index.
    wanted: usize,
    /// Documents started so far.
    documents: usize,
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl LocatorBuilder {
    fn recording(&self) -> bool {
        self.documents == self.wanted + 1
    }

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
        if event == Event::DocumentStart {
            self.documents += 1;
            self.stack.clear();
            return;
        }
        if !self.recording() {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_list_items() {
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

    #[test]
    fn block_scalars_and_spec_paths() {
        let text = "version: v\nslos:\n- name: a\n  sli:\n    events:\n      error_query: |\n        x: y\n      total_query: z\n- name: b\n  objective: 3\n";
        let l = YamlLocator::new(text);
        assert_eq!(l.line("slos[0].name"), 3);
        assert_eq!(l.line("slos[0].sli.events.error_query"), 6);
        assert_eq!(l.line("slos[0].sli.events.total_query"), 8);
        assert_eq!(l.line("slos[1].objective"), 10);
        assert_eq!(l.line("slos[1].sli.catalog"), 9);
        assert_eq!(l.line("nowhere"), 1);
    }

    #[test]
    fn indexes_the_chosen_document() {
        let text = "kind: A\nspec:\n  x: 1\n---\nkind: B\nspec:\n  y: 2\n";
        assert_eq!(YamlLocator::new(text).line("spec.x"), 3);
        let second = YamlLocator::for_document(text, 1);
        assert_eq!(second.line("spec.y"), 7);
        assert_eq!(second.line("spec.x"), 6, "falls back to spec of document 2");
    }
}
