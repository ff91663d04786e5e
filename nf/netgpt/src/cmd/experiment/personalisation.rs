//! (being written)

use clap::Args;

/// Arguments (being written).
#[derive(Args)]
pub struct PersonalisationArgs {}

/// Runs the experiment (being written).
pub async fn run(_a: PersonalisationArgs) -> anyhow::Result<()> {
    anyhow::bail!("this experiment is being written")
}
