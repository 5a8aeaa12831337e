//! The agent (TODO: being written).

/// Durable on-disk queue of encoded batches.
pub mod queue;

/// Runs the agent from a config file until SIGTERM.
pub async fn run_from_config(_path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("agent not implemented yet")
}
