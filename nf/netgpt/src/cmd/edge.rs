//! CLI: edge commands.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Cmd {
    #[command(hide = true, name = "placeholder-edge")]
    Placeholder,
}

pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Placeholder => anyhow::bail!("not implemented yet"),
    }
}
