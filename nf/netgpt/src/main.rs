//! `netgpt`: bring the whole NetGPT testbed up, run one NF, drive UEs, run the models.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "netgpt",
    version,
    about = "NetGPT testbed: AI-native 5G network functions over 3GPP-style SBI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Testbed(cmd::testbed::Cmd),
    #[command(flatten)]
    Nf(cmd::nf::Cmd),
    #[command(flatten)]
    Ue(cmd::ue::Cmd),
    #[command(flatten)]
    Models(cmd::models::Cmd),
    #[command(flatten)]
    Edge(cmd::edge::Cmd),
    #[command(flatten)]
    Analytics(cmd::analytics::Cmd),
    #[command(flatten)]
    Experiment(cmd::experiment::Cmd),
    /// Benchmarks that print figures beside a baseline measured in the same run.
    #[command(subcommand)]
    Bench(cmd::BenchCmd),
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async move {
        match cli.command {
            Command::Testbed(c) => cmd::testbed::run(c).await,
            Command::Nf(c) => cmd::nf::run(c).await,
            Command::Ue(c) => cmd::ue::run(c).await,
            Command::Models(c) => cmd::models::run(c).await,
            Command::Edge(c) => cmd::edge::run(c).await,
            Command::Analytics(c) => cmd::analytics::run(c).await,
            Command::Experiment(c) => cmd::experiment::run(c).await,
            Command::Bench(c) => cmd::run_bench(c).await,
        }
    });
    if let Err(err) = result {
        // One line on the CLI, non-zero exit.
        eprintln!("netgpt: {err:#}");
        std::process::exit(1);
    }
}
