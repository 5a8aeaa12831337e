//! slo-gateway carries SLO-relevant Prometheus series from firewalled Gardener seeds to the
//! runtime cluster's SLO Prometheus, and generates the SLO rules that consume them.
//!
//! # Layout
//!
//! Dependencies point one way, top to bottom:
//!
//! - [`exposition`]: zero-copy parser for the Prometheus text format (what `/federate` returns). No I/O.
//! - [`remote_write`]: Remote Write 1.0/2.0 protobuf types, snappy encode, capped decode, validation,
//!   the receiver's zero-copy rewrite and the 2.0 request builder. No network code.
//! - [`agent`]: runs in a seed: scrape `/federate`, filter, staleness, disk queue, sharded sender.
//! - [`receiver`]: runs in the runtime cluster: mTLS termination, identity from the client
//!   certificate, label enforcement, limits, forwarding to the SLO Prometheus.
//! - [`tls`], [`telemetry`], [`config`], [`certs`], [`http_client`], [`yaml_locator`]: shared
//!   plumbing.
//! - [`rules`]: SLO specs → recording rules, alerts, Alertmanager routing, Perses dashboards and the
//!   agent's `match[]` filter. Uses no network crates.
//! - [`landscape`]: the landscape twin: real Prometheus/Alertmanager processes configured like
//!   Gardener's around simulated shoot control planes (tests and `demo`).
//! - [`demo`]: the twin (or, without Prometheus, the pipeline in one process), for a first look.
//! - [`shootrules`]: runs in a seed: keeps the shoot-tier PrometheusRule in every shoot namespace.

pub mod agent;
pub mod certs;
pub mod config;
pub mod demo;
pub mod exposition;
pub mod http_client;
pub mod landscape;
pub mod receiver;
pub mod remote_write;
pub mod rules;
pub mod shootrules;
pub mod telemetry;
pub mod tls;
pub mod yaml_locator;
