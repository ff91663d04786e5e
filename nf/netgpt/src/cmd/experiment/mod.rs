//! CLI: `netgpt experiment ...` — the NetGPT paper's claims reproduced on the testbed with the
//! real NFs and models: each command runs one experiment and writes a report (Markdown and
//! SVG plots) with the machine and settings it ran on.

pub mod fig1;
pub mod fig3;
pub mod harness;
pub mod link;
pub mod personalisation;
pub mod report;
pub mod svg;

use clap::Subcommand;

/// `netgpt experiment ...`
#[derive(Subcommand)]
pub enum Cmd {
    /// Experiments of the NetGPT paper on the testbed (each writes a report).
    #[command(subcommand)]
    Experiment(ExperimentCmd),
}

/// The experiments.
#[derive(Subcommand)]
pub enum ExperimentCmd {
    /// Fig. 1: storage, fine-tuning and inference memory, transmission latency per framework.
    Fig1(fig1::Fig1Args),
    /// Fig. 3: end-to-end latency and bytes per request of the four frameworks under load.
    Fig3(fig3::Fig3Args),
    /// Personalisation: the same prompt from different sites, synergy vs cloud-only.
    Personalisation(personalisation::PersonalisationArgs),
}

/// Runs an experiment command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Experiment(cmd) = cmd;
    match cmd {
        ExperimentCmd::Fig1(a) => fig1::run(a).await,
        ExperimentCmd::Fig3(a) => fig3::run(a).await,
        ExperimentCmd::Personalisation(a) => personalisation::run(a).await,
    }
}
