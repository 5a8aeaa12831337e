//! Incremental line splitting for bodies that arrive in chunks (HTTP streaming).

use super::scan::first_of;
use super::{LineError, ParseError, ParseErrorKind};

/// Incremental line splitting for streamed bodies: buffers a partial last line between chunks.
///
/// Lines are `\n`-terminated; one `\r` before the `\n` is removed. Complete lines inside a chunk are
/// handed out without copying; only a line that straddles a chunk boundary is copied into an internal
/// buffer, which never grows beyond `max_line_bytes + 1` bytes.
///
/// ```
/// use slo_gateway_exposition::LineSplitter;
/// let mut lines = Vec::new();
/// let mut splitter = LineSplitter::new(1024);
/// splitter.push(b"up 1\nscrape_dur", |n, line| lines.push((n, line.map(str::to_owned))));
/// splitter.push(b"ation_seconds 0.1\r\nlast 2", |n, line| lines.push((n, line.map(str::to_owned))));
/// splitter.finish(|n, line| lines.push((n, line.map(str::to_owned))));
/// assert_eq!(lines.len(), 3);
/// assert_eq!(lines[1], (2, Ok("scrape_duration_seconds 0.1".to_owned())));
/// assert_eq!(lines[2], (3, Ok("last 2".to_owned())));
/// ```
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_line_bytes: usize,
    /// Start of the current line when it began in an earlier chunk.
    buf: Vec<u8>,
    /// Number of lines completed so far; the current line is `line + 1`.
    line: usize,
    /// The current line exceeded the limit and was reported: drop bytes until its end.
    skipping: bool,
}

impl LineSplitter {
    /// Creates a splitter that rejects lines longer than `max_line_bytes` (excluding the line
    /// terminator).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            buf: Vec::new(),
            line: 0,
            skipping: false,
        }
    }

    /// Calls `on_line(line_number, line)` for each complete line in `chunk` (line without the
    /// '\n'/'\r\n').
    ///
    /// A line longer than `max_line_bytes` is reported as `Err` (`LineTooLong` with its line number)
    /// and skipped, never buffered unbounded. A line that is not UTF-8 is reported as `InvalidUtf8`.
    /// Line numbers are 1-based and count every line, including reported ones.
    pub fn push(&mut self, chunk: &[u8], mut on_line: impl FnMut(usize, Result<&str, LineError>)) {
        let mut rest = chunk;
        loop {
            let nl = first_of(rest, 0, [b'\n']);
            if nl == rest.len() {
                break;
            }
            let (part, tail) = (&rest[..nl], &rest[nl + 1..]);
            rest = tail;
            self.line += 1;
            if self.skipping {
                // Already reported when it crossed the limit.
                self.skipping = false;
                continue;
            }
            if self.buf.is_empty() {
                // Whole line inside this chunk: no copy.
                emit(self.line, self.max_line_bytes, part, &mut on_line);
            } else if self.buf.len() + part.len() > self.max_line_bytes + 1 {
                self.buf.clear();
                on_line(self.line, Err(too_long(self.line, self.max_line_bytes)));
            } else {
                self.buf.extend_from_slice(part);
                emit(self.line, self.max_line_bytes, &self.buf, &mut on_line);
                self.buf.clear();
            }
        }
        if rest.is_empty() || self.skipping {
            return;
        }
        // Partial line: keep it, unless it is already certain to exceed the limit. One extra byte
        // is allowed because it may be the '\r' of a "\r\n" split across chunks.
        if self.buf.len() + rest.len() > self.max_line_bytes + 1 {
            self.buf.clear();
            self.skipping = true;
            on_line(
                self.line + 1,
                Err(too_long(self.line + 1, self.max_line_bytes)),
            );
        } else {
            self.buf.extend_from_slice(rest);
        }
    }

    /// Flushes a final line with no trailing newline.
    ///
    /// Afterwards the splitter is reset (line numbers start at 1 again) and can be reused for the
    /// next body.
    pub fn finish(&mut self, mut on_line: impl FnMut(usize, Result<&str, LineError>)) {
        if !self.skipping && !self.buf.is_empty() {
            let n = self.line + 1;
            emit(n, self.max_line_bytes, &self.buf, &mut on_line);
        }
        self.buf.clear();
        self.line = 0;
        self.skipping = false;
    }

    /// Bytes currently buffered (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Strips one trailing `\r`, checks the length limit and UTF-8, and calls `on_line`.
fn emit(
    n: usize,
    max: usize,
    line: &[u8],
    on_line: &mut impl FnMut(usize, Result<&str, LineError>),
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        on_line(n, Err(too_long(n, max)));
        return;
    }
    match std::str::from_utf8(line) {
        Ok(s) => on_line(n, Ok(s)),
        Err(e) => {
            // Column of the first bad byte, counted in characters like all columns.
            let valid = &line[..e.valid_up_to()];
            let column = std::str::from_utf8(valid).map_or(valid.len(), |s| s.chars().count()) + 1;
            on_line(
                n,
                Err(LineError {
                    line: n,
                    error: ParseError {
                        column,
                        kind: ParseErrorKind::InvalidUtf8,
                    },
                }),
            );
        }
    }
}

fn too_long(line: usize, max: usize) -> LineError {
    LineError {
        line,
        error: ParseError {
            column: max + 1,
            kind: ParseErrorKind::LineTooLong { max },
        },
    }
}
