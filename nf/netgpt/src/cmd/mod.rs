//! One module per area of the CLI; each exposes a `Cmd` subcommand enum and `run`.

pub mod analytics;
pub mod bench_cloud;
pub mod bench_edge;
pub mod bench_load;
pub mod bench_sbi;
pub mod bench_sched;
pub mod bench_wf;
pub mod edge;
pub mod experiment;
pub mod models;
pub mod nf;
pub mod testbed;
pub mod ue;

use clap::Subcommand;

/// `netgpt bench ...`
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Cloud AI function under load (concurrency 1, 8, 32): continuous batching vs one at a time.
    Cloud(bench_cloud::BenchCloudArgs),
    /// Edge AI function's completions (concurrency 1..16): dynamic batching vs one at a time.
    Edge(bench_edge::BenchEdgeArgs),
    /// SBI round trips on loopback against a bare hyper h2c echo server.
    Sbi(bench_sbi::BenchSbiArgs),
    /// The testbed under sustained load (OAuth2 and limits on): SBI hot paths, UE prompts, overload shedding.
    Load(bench_load::BenchLoadArgs),
    /// Prefill/decode tokens/s and peak memory of the edge and cloud models.
    Models(models::BenchArgs),
    /// CmP scheduler: Best vs plain HEFT on random DAGs (SLR, speedup, plan time).
    Sched(bench_sched::BenchSchedArgs),
    /// CmP workflow engine: overhead per no-op step (chain, fan-out, concurrent), memory vs durable.
    Wf(bench_wf::BenchWfArgs),
}

pub async fn run_bench(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Cloud(a) => bench_cloud::run(a).await,
        BenchCmd::Edge(a) => bench_edge::run(a).await,
        BenchCmd::Sbi(a) => bench_sbi::run(a).await,
        BenchCmd::Load(a) => bench_load::run(a).await,
        BenchCmd::Models(a) => models::bench(a).await,
        BenchCmd::Sched(a) => bench_sched::run(a).await,
        BenchCmd::Wf(a) => bench_wf::run(a).await,
    }
}
