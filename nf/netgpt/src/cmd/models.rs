//! CLI: models commands.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Cmd {
    #[command(hide = true, name = "placeholder-models")]
    Placeholder,
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Placeholder => anyhow::bail!("not implemented yet"),
    }
}

/// Arguments of `netgpt bench models`.
#[derive(clap::Args)]
pub struct BenchArgs {}

pub async fn bench(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
