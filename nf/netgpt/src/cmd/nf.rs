//! CLI: nf commands.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Cmd {
    #[command(hide = true, name = "placeholder-nf")]
    Placeholder,
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Placeholder => anyhow::bail!("not implemented yet"),
    }
}

/// Arguments of `netgpt bench sbi`.
#[derive(clap::Args)]
pub struct BenchSbiArgs {}

pub async fn bench_sbi(_a: BenchSbiArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
