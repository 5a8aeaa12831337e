//! TODO

/// Durable on-disk queue of encoded batches.
pub mod queue;
