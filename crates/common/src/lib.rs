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

/// Most series of one seed by default, on both sides: the agent's `scrape.max_series` (per
/// target) and the receiver's `limits.max_series_per_seed` (per seed and replica). One number, so
/// that by default a cardinality spike is refused whole by the agent (its old state kept, no
/// stale markers) rather than forwarded for the receiver to refuse its new series one by one for
/// up to `series_idle_timeout`.
pub const DEFAULT_MAX_SERIES_PER_SEED: usize = 100_000;
