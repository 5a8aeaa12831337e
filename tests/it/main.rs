//! The integration tests as one test binary (one link instead of one per file). Each module is
//! a former `tests/<name>.rs`; `common` is the kit they share (crate `slo-gateway-testkit`,
//! `crates/testkit`, unpublished).
//!
//! Tests that start real processes (Prometheus, Alertmanager, the `slo-gateway` binary,
//! Chromium) hold [`common::heavy`] so that they do not fight each other for the machine while
//! the light tests run beside them.
//!
//! `tests/hot_path_allocations.rs` stays a binary of its own: it installs a counting
//! `#[global_allocator]`, and the allocations of tests running beside it would count too.

use testkit as common;

mod agent_pipeline;
mod config_examples;
mod demo;
mod deploy;
mod e2e_cardinality;
mod e2e_durability;
mod e2e_pipeline;
mod e2e_receiver_hostile;
mod e2e_status_page;
mod interop;
mod landscape;
mod receiver;
mod rules;
mod shoot_rules;
