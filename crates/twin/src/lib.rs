//! Test and demo support, not product: nothing here ships in the seed agent.
//!
//! # Layout
//!
//! - [`landscape`]: the landscape twin, real Prometheus and Alertmanager processes configured like
//!   a Gardener landscape around simulated shoot control planes (tests and `demo`).
//! - [`demo`]: the twin (or, without Prometheus, the pipeline in one process), for a first look.
//! - [`chaos`]: the chaos suite, scripted scenarios of a moving landscape on one twin
//!   (`scripts/chaos.sh`, binary `chaos`).

pub mod chaos;
pub mod demo;
pub mod landscape;
