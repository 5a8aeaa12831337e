//! The receiver (TODO: being written).
/// Runs the receiver from a config file until SIGTERM.
pub async fn run_from_config(_path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("receiver not implemented yet")
}
