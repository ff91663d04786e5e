//! `netgpt bench sched`: the CmP scheduler's Best against plain HEFT on the random
//! DAGs of Topcuoglu et al. (2002), both run on every instance: mean SLR, speedup,
//! how often Best is shorter / equal / longer, and the time to plan 100 tasks on 8
//! devices, with the targets (HEFT plan < 0.5 ms, mean SLR of Best <= HEFT's).

use netgpt_cmp::sched::bench::{bench, BenchConfig};

/// Arguments of `netgpt bench sched`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchSchedArgs {
    /// Random instances per grid point (v x CCR x alpha x beta x devices).
    #[arg(long, default_value_t = 5)]
    pub instances: usize,
    /// Seed of the instance generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Task counts v (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "20,40,60,80,100")]
    pub sizes: Vec<usize>,
    /// Communication-to-computation ratios.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,1,5,10")]
    pub ccr: Vec<f64>,
    /// Shape parameters alpha.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2")]
    pub alpha: Vec<f64>,
    /// Heterogeneity parameters beta.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.25,0.5,0.75,1")]
    pub beta: Vec<f64>,
    /// Device (processor) counts.
    #[arg(long, value_delimiter = ',', default_value = "4,8")]
    pub devices: Vec<usize>,
    /// Plans timed per algorithm at 100 tasks x 8 devices.
    #[arg(long, default_value_t = 500)]
    pub timing_plans: usize,
}

pub async fn run(a: BenchSchedArgs) -> anyhow::Result<()> {
    let bad = |what: &str| anyhow::anyhow!("bench sched: {what}");
    if a.instances == 0 || a.timing_plans == 0 {
        return Err(bad("--instances and --timing-plans must be > 0"));
    }
    if [&a.sizes, &a.devices]
        .iter()
        .any(|v| v.is_empty() || v.contains(&0))
    {
        return Err(bad("--sizes and --devices need values > 0"));
    }
    let positive = |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x > 0.0);
    if !positive(&a.ccr) || !positive(&a.alpha) {
        return Err(bad("--ccr and --alpha need finite values > 0"));
    }
    if a.beta.is_empty() || a.beta.iter().any(|b| !(0.0..=2.0).contains(b)) {
        return Err(bad("--beta needs values in [0, 2]"));
    }
    let cfg = BenchConfig {
        instances: a.instances,
        seed: a.seed,
        sizes: a.sizes,
        ccrs: a.ccr,
        alphas: a.alpha,
        betas: a.beta,
        devices: a.devices,
        timing_plans: a.timing_plans,
    };
    // CPU-bound and single-threaded: keep it off the async workers.
    let report = tokio::task::spawn_blocking(move || bench(&cfg)).await??;
    if cfg!(debug_assertions) {
        println!(
            "note: unoptimized build; plan times are about 10x those of `cargo run --release`"
        );
    }
    print!("{report}");
    Ok(())
}
