//! CLI: `netgpt analytics report` — the edge analytics' accuracy and F1 tables, with their
//! baselines, measured now on the committed models and held-out splits:
//! content popularity (edge GPT-2 fine-tuned vs LSTM, GRU, majority, previous interval) and
//! intent inference (edge GPT-2 fine-tuned vs the rule-based baseline).
//!
//! The models are reproduced from their seeds by
//! `cargo run --release -p netgpt-models --example popularity` and `... --example intent`
//! (see `models/analytics/*/README.md`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use netgpt_models::analytics::{intent, popularity};

/// `netgpt analytics ...`
#[derive(Subcommand)]
pub enum Cmd {
    /// Edge analytics: print the accuracy/F1 tables of popularity prediction and intent inference.
    #[command(subcommand)]
    Analytics(AnalyticsCmd),
}

/// `netgpt analytics` subcommands.
#[derive(Subcommand)]
pub enum AnalyticsCmd {
    /// Evaluate the committed analytics models on their held-out splits, with the baselines.
    Report(ReportArgs),
}

/// Which tables.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Which {
    /// Both.
    All,
    /// Content popularity prediction.
    Popularity,
    /// Intent inference.
    Intent,
}

/// `netgpt analytics report`
#[derive(Args)]
pub struct ReportArgs {
    /// Repository root (holding `models/`).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Which tables to print.
    #[arg(long, value_enum, default_value_t = Which::All)]
    only: Which,
    /// Print JSON instead of Markdown tables.
    #[arg(long)]
    json: bool,
}

/// Runs an analytics command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Analytics(AnalyticsCmd::Report(a)) = cmd;
    let root = if a.root.join("models").exists() {
        a.root.clone()
    } else {
        // Run from elsewhere in the tree (e.g. a crate folder under `cargo run`).
        netgpt_edgeai::context::resolve(std::path::Path::new("models"))
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or(a.root.clone())
    };
    let mut json = serde_json::Map::new();
    if a.only != Which::Intent {
        let r = tokio::task::spawn_blocking({
            let root = root.clone();
            move || popularity::evaluate_shipped(&root)
        })
        .await?
        .context("popularity report")?;
        if a.json {
            json.insert("popularity".into(), serde_json::to_value(&r)?);
        } else {
            println!("## Content popularity prediction\n\n{}", r.to_markdown());
        }
    }
    if a.only != Which::Popularity {
        let r = tokio::task::spawn_blocking({
            let root = root.clone();
            move || intent::evaluate_shipped(&root)
        })
        .await?
        .context("intent report")?;
        if a.json {
            json.insert("intent".into(), serde_json::to_value(&r)?);
        } else {
            println!("## Intent inference\n\n{}", r.to_markdown());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(())
}
