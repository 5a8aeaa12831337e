//! Inputs shared by the benches.
#![allow(dead_code)]

use std::borrow::Cow;

pub mod write_request;

use slo_gateway::exposition::{write_sample, Label, Sample};

pub const SERIES: usize = 10_000;
pub const FAMILIES: [(&str, &[&str]); 5] = [
    ("shoot:availability", &["kind"]),
    ("shoot:apiserver_latency:percentage", &[]),
    ("apiserver_request_total", &["code", "verb", "resource"]),
    ("probe_success", &["job"]),
    ("garden_shoot_condition", &["condition", "operation"]),
];
pub const ESCAPED: &str = "weird \"quoted\"\\path";

/// Same body as `benches/exposition.rs`: TYPE lines, recording-rule names with colons, 5–8
/// labels including `instance=""`, scrape timestamps, some escapes and NaN.
pub fn federate_body() -> String {
    let per_family = SERIES / FAMILIES.len();
    let mut out = String::new();
    for (f, (name, extra)) in FAMILIES.iter().enumerate() {
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(" untyped\n");
        for i in 0..per_family {
            let cluster = format!("shoot--project-{}--cluster-{}", i % 97, i);
            let extra_values: Vec<String> = extra
                .iter()
                .enumerate()
                .map(|(k, _)| match (f, k) {
                    (2, 2) if i % 50 == 0 => ESCAPED.to_owned(),
                    _ => format!("v{}", (i + k) % 7),
                })
                .collect();
            let mut labels = vec![
                Label {
                    name: "cluster",
                    value: Cow::Borrowed(cluster.as_str()),
                },
                Label {
                    name: "instance",
                    value: Cow::Borrowed(""),
                },
                Label {
                    name: "job",
                    value: Cow::Borrowed("shoot-prometheus"),
                },
                Label {
                    name: "project",
                    value: Cow::Borrowed("project"),
                },
                Label {
                    name: "seed",
                    value: Cow::Borrowed("aws-eu1"),
                },
            ];
            labels.extend(
                extra
                    .iter()
                    .zip(&extra_values)
                    .filter(|(n, _)| **n != "job")
                    .map(|(n, v)| Label {
                        name: n,
                        value: Cow::Borrowed(v.as_str()),
                    }),
            );
            let value = match f {
                0 | 3 => (i % 2) as f64,
                1 if i % 100 == 0 => f64::NAN,
                1 => (i as f64) / 1234.5,
                _ => (i * 7919) as f64,
            };
            write_sample(
                &mut out,
                &Sample {
                    name,
                    labels,
                    value,
                    timestamp_ms: Some(1_700_000_000_000 + i as i64),
                },
            );
        }
    }
    out
}
