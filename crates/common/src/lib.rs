//! Plumbing the agent, the receiver and the shoot-rules controller share.
//!
//! # Layout
//!
//! - [`tls`]: rustls configs from PEM files, kept in a `watch` channel so certificates reload
//!   without a restart; the seed certificate convention's names.
//! - [`telemetry`]: logging, the admin endpoints (`/metrics`, `/healthz`, `/readyz`), readiness,
//!   the shutdown signal.
//! - [`http_client`]: the one Remote Write POST the agent and the receiver's forwarder make.

pub mod http_client;
pub mod telemetry;
pub mod tls;
