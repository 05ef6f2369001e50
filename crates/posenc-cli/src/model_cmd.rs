//! `posenc model ...`: the real-model runner and its diagnostics (owned by the model work).

/// Arguments of `posenc model`.
#[derive(clap::Args)]
pub struct ModelArgs {}

/// Runs `posenc model`.
pub fn run(_args: ModelArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`posenc model` is not available in this build yet")
}
