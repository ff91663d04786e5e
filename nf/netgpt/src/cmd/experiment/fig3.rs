//! (being written)

use clap::Args;

/// Arguments (being written).
#[derive(Args)]
pub struct Fig3Args {}

/// Runs the experiment (being written).
pub async fn run(_a: Fig3Args) -> anyhow::Result<()> {
    anyhow::bail!("this experiment is being written")
}
