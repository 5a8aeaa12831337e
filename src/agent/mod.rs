//! The agent (TODO: being written).
/// Runs the agent from a config file until SIGTERM.
pub async fn run_from_config(_path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("agent not implemented yet")
}
