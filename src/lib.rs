//! slo-gateway carries SLO-relevant Prometheus series from firewalled Gardener seeds to the
//! runtime cluster's SLO Prometheus, and generates the SLO rules that consume them.
//!
//! This crate is the full `slo-gateway` CLI. Its library re-exports the workspace's crates under
//! one roof (the paths the integration tests and benchmarks use) and holds what only the full
//! CLI does: [`check_config`].
//!
//! # Layout
//!
//! The workspace is cut along what ships; dependencies point one way, top to bottom:
//!
//! - `crates/exposition` ([`exposition`]): zero-copy parser for the Prometheus text format (what
//!   `/federate` returns). No I/O.
//! - `crates/remote-write` ([`remote_write`]): Remote Write 1.0/2.0 protobuf types, snappy, capped
//!   decode, validation, the receiver's zero-copy rewrite and the 2.0 request builder. No network
//!   code.
//! - `crates/config` ([`config`]): YAML config loading with `file:line:column` errors.
//! - `crates/common` ([`tls`], [`telemetry`], [`http_client`]): plumbing the roles share.
//! - `crates/agent` ([`agent`]): runs in a seed; also builds the lean `slo-gateway-agent`
//!   binary, which links none of the crates below it here.
//! - `crates/receiver` ([`receiver`]): runs in the runtime cluster.
//! - `crates/rules` ([`rules`]): SLO specs → rules, alerts, routing, dashboards, `match[]`
//!   filter. No network crates.
//! - `crates/shoot-rules` ([`shootrules`]): runs in a seed, keeps the shoot-tier rule in every
//!   shoot namespace.
//! - `crates/certs` ([`certs`]): the development PKI of `slo-gateway certs`.
//! - `crates/twin` ([`landscape`], [`demo`]): the landscape twin and the demo; test and demo
//!   support, unpublished.
//! - `crates/testkit`: the integration tests' kit (builders for receiver, agent, federate source
//!   and sink; real processes); a dev-dependency only, unpublished.
//! - `crates/test-wait`: the one `eventually` and the heavy-test slots, a leaf on tokio alone so
//!   that the agent's own tests share it; a dev-dependency only, unpublished.

pub mod check_config;

pub use ::agent;
pub use ::certs;
pub use ::exposition;
pub use ::receiver;
pub use ::remote_write;
pub use ::rules;
pub use common::{http_client, telemetry, tls};
pub use shoot_rules as shootrules;
pub use twin::{demo, landscape};

/// Config loading, and the agent's and receiver's config types.
pub mod config {
    pub use crate::check_config::{check_file, check_files, cross_check};
    pub use ::agent::config as agent;
    pub use ::agent::config::AgentConfig;
    pub use ::receiver::config as receiver;
    pub use ::receiver::config::ReceiverConfig;
    pub use yaml_config::*;
}
