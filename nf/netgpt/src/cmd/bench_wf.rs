//! `netgpt bench wf`: the CmP workflow engine's own overhead per step with in-process no-op
//! steps (a chain, a wide fan-out, concurrent short chains), in memory and with durable
//! records (SQLite file; PostgreSQL with `--postgres`), against the targets (5 us per step
//! in memory, 200 us durable with group commit).

use std::time::Duration;

use netgpt_cmp::wf::bench::{bench_engine, BenchOptions};

/// Arguments of `netgpt bench wf`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchWfArgs {
    /// Steps of the chain workflow.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Parallel steps of the fan-out workflow.
    #[arg(long, default_value_t = 100)]
    pub width: usize,
    /// Runs at once in the concurrent scenario.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Steps of each chain in the concurrent scenario.
    #[arg(long, default_value_t = 10)]
    pub concurrent_steps: usize,
    /// Seconds per scenario and store (9 scenarios with --postgres, 6 without).
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Folder for the SQLite file (default: a temporary folder).
    #[arg(long)]
    pub sqlite_dir: Option<std::path::PathBuf>,
    /// Also measure on this PostgreSQL database (tables cmp_wf_*).
    #[arg(long)]
    pub postgres: Option<String>,
}

pub async fn run(a: BenchWfArgs) -> anyhow::Result<()> {
    let bad = |what: &str| anyhow::anyhow!("netgpt bench wf: {what}");
    if a.steps == 0 || a.width == 0 || a.concurrency == 0 || a.concurrent_steps == 0 {
        return Err(bad(
            "--steps, --width, --concurrency and --concurrent-steps must be > 0",
        ));
    }
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0) {
        return Err(bad("--seconds must be in (0, 600]"));
    }
    let o = BenchOptions {
        chain_steps: a.steps,
        fanout_width: a.width,
        concurrency: a.concurrency,
        concurrent_steps: a.concurrent_steps,
        scenario_time: Duration::from_secs_f64(a.seconds),
        sqlite_dir: a.sqlite_dir,
        postgres_url: a.postgres,
    };
    let report = bench_engine(&o).await?;
    print!("{report}");
    Ok(())
}
