//! `posenc serve`: the web explorer (owned by the explorer work).

/// Arguments of `posenc serve`.
#[derive(clap::Args)]
pub struct ServeArgs {}

/// Runs `posenc serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`posenc serve` is not available in this build yet")
}
