//! Memory after a cardinality spike, measured (not asserted): the agent's hot path state at 100
//! series, then one scrape of 100,100 series, then the 100 series again (100,000 stale markers,
//! the vanished series forgotten, maps shrunk). Prints VmRSS from /proc after each step.
//!
//! Run: `cargo bench --bench agent_spike_rss`.

use std::fmt::Write as _;

use slo_gateway::agent::HotPath;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn body(prefix: &str, series: usize) -> Vec<u8> {
    let mut b = String::new();
    for i in 0..series {
        let _ = writeln!(
            b,
            "shoot:availability{{kind=\"vpn\",instance=\"\",cluster=\"shoot--p{}--{prefix}{i}\",seed=\"aws-eu1\"}} 1",
            i % 9
        );
    }
    b.into_bytes()
}

fn main() {
    let base = body("base", 100);
    let spike: Vec<u8> = [base.clone(), body("spike", 100_000)].concat();
    let mut hot = HotPath::new(&[("landscape", "live")]);
    let mut ts = 1_700_000_000_000i64;
    let mut step = |hot: &mut HotPath, body: &[u8]| {
        ts += 15_000;
        let n = hot.scrape(body, ts);
        hot.encode(4, 2000);
        n
    };
    for _ in 0..3 {
        step(&mut hot, &base);
    }
    let baseline = rss_kib();
    let sent = step(&mut hot, &spike);
    let peak = rss_kib();
    let mut markers = 0;
    for _ in 0..3 {
        markers += step(&mut hot, &base);
    }
    let after = rss_kib();
    println!(
        "agent hot path RSS: baseline {baseline} KiB (100 series); after a scrape of {sent} \
         samples {peak} KiB; after the spike vanished ({markers} samples incl. stale markers) \
         {after} KiB"
    );
}
