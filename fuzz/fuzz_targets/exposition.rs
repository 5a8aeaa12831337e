//! Feeds arbitrary bytes through `LineSplitter` and `parse_line`: nothing may panic, and every
//! sample that parses must survive `write_sample` → `parse_line` unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slo_gateway::exposition::{parse_line, write_sample, Entry, LineError, LineSplitter, Sample};

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
});
