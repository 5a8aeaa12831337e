//! Feeds arbitrary bytes through `LineSplitter` and `parse_line`: nothing may panic, and every
//! sample that parses must survive `write_sample` → `parse_line` unchanged. A UTF-8 body must also
//! give the same samples and errors (line numbers and columns) through the chunked splitter as
//! through `parse_samples` on the whole text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use exposition::{
    parse_line, parse_samples, write_sample, Entry, LineError, LineSplitter, Sample,
};

fn assert_same(a: &Sample<'_>, b: &Sample<'_>) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.timestamp_ms, b.timestamp_ms);
    if a.value.is_nan() {
        assert!(b.value.is_nan());
    } else {
        assert_eq!(a.value.to_bits(), b.value.to_bits());
    }
}

fn check_line(n: usize, line: Result<&str, LineError>) {
    let line = match line {
        Ok(line) => line,
        Err(e) => {
            assert_eq!(e.line, n);
            return;
        }
    };
    if let Ok(Entry::Sample(sample)) = parse_line(line) {
        let mut text = String::new();
        write_sample(&mut text, &sample);
        match parse_line(&text) {
            Ok(Entry::Sample(again)) => assert_same(&sample, &again),
            other => panic!("{line:?} was written as {text:?}, which parsed as {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size so that lines straddle chunk boundaries in varied ways.
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut splitter = LineSplitter::new(256);
    for part in body.chunks(chunk) {
        splitter.push(part, check_line);
    }
    splitter.finish(check_line);

    // Differential: streamed (no line limit in reach) versus whole-text parsing.
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let mut streamed = Vec::new();
    let mut collect = |n: usize, line: Result<&str, LineError>| {
        let line = line.expect("a UTF-8 body under the line limit splits without error");
        match parse_line(line) {
            Ok(Entry::Sample(s)) => streamed.push(Ok(key(&s))),
            Ok(_) => {}
            Err(error) => streamed.push(Err(LineError { line: n, error })),
        }
    };
    let mut splitter = LineSplitter::new(1 << 20);
    for part in body.chunks(chunk) {
        splitter.push(part, &mut collect);
    }
    splitter.finish(&mut collect);
    let whole: Vec<_> = parse_samples(text).map(|r| r.map(|s| key(&s))).collect();
    assert_eq!(streamed, whole);
});

/// An owned, comparable form of a sample: NaN compares equal to NaN, other values by bits.
type Key = (String, Vec<(String, String)>, Option<u64>, Option<i64>);

fn key(s: &Sample<'_>) -> Key {
    (
        s.name.to_owned(),
        s.labels
            .iter()
            .map(|l| (l.name.to_owned(), l.value.clone().into_owned()))
            .collect(),
        (!s.value.is_nan()).then(|| s.value.to_bits()),
        s.timestamp_ms,
    )
}
