//! `netgpt bench edge`: the edge AI function's dynamic batching. Closed-loop clients (each
//! sends its next completion when the previous one came back) drive the completion batcher
//! of the edge model at several concurrencies, with batching (`--max-batch`, `--max-wait-ms`)
//! and one completion at a time, measured side by side in the same run on the same prompts.
//! Every request is distinct (site x phrasing), so single flight plays no part: the gain is
//! the batch's alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use candle_core::Device;
use clap::Args;
use netgpt_edgeai::batcher::Batcher;
use netgpt_models::data::pairs;
use netgpt_models::edge::EdgeModel;

/// Arguments of `netgpt bench edge`.
#[derive(Args)]
pub struct BenchEdgeArgs {
    /// Concurrencies (clients sending at once), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    concurrency: Vec<usize>,
    /// Completions per client at each concurrency.
    #[arg(long, default_value_t = 3)]
    requests_per_client: usize,
    /// Completions decoded together by the batching function.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// How long the first completion of a batch waits for others, ms.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Edge model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
}

struct Run {
    done: usize,
    wall: Duration,
    latency: Vec<f64>,
    mean_batch: f64,
}

async fn load(
    batcher: &Batcher,
    prompts: &Arc<Vec<(String, String)>>,
    clients: usize,
    per: usize,
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (b, p) = (batcher.clone(), prompts.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for r in 0..per {
                let (site, concise) = &p[(c * per + r) % p.len()];
                let t = Instant::now();
                let done = b.complete(site, concise, None).await?;
                out.push((t.elapsed().as_secs_f64() * 1e3, done.batch_size));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut latency = Vec::new();
    let mut batch_sum = 0usize;
    for t in tasks {
        for (ms, b) in t.await?? {
            latency.push(ms);
            batch_sum += b;
        }
    }
    latency.sort_by(f64::total_cmp);
    Ok(Run {
        done: latency.len(),
        wall: start.elapsed(),
        mean_batch: batch_sum as f64 / latency.len().max(1) as f64,
        latency,
    })
}

fn p(v: &[f64], q: f64) -> f64 {
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Runs the benchmark and prints its table.
pub async fn run(a: BenchEdgeArgs) -> anyhow::Result<()> {
    let dir = netgpt_edgeai::context::resolve(&a.model);
    let model = Arc::new(
        EdgeModel::load(&dir, &Device::Cpu)
            .with_context(|| format!("edge model {}", dir.display()))?,
    );
    // Distinct prompts: the held-out pairs' concise prompts at their sites.
    let data =
        netgpt_edgeai::context::resolve(std::path::Path::new("models/data/pairs_heldout.jsonl"));
    let mut seen = std::collections::BTreeSet::new();
    let prompts: Vec<(String, String)> = pairs::read_jsonl(&data)?
        .into_iter()
        .map(|p| (p.site, p.concise))
        .filter(|k| seen.insert(k.clone()))
        .collect();
    let prompts = Arc::new(prompts);
    let batched = Batcher::start(
        "bench-edge-batched",
        model.clone(),
        a.max_batch,
        Duration::from_millis(a.max_wait_ms),
    );
    let single = Batcher::start("bench-edge-single", model, 1, Duration::ZERO);
    // Warm-up (first-touch allocations, thread pool).
    load(&single, &prompts, 1, 2).await?;
    println!(
        "edge model {} | {} distinct prompts | batching: max_batch {}, max_wait {} ms",
        dir.display(),
        prompts.len(),
        a.max_batch,
        a.max_wait_ms
    );
    println!("| clients | one at a time: compl/s | p50 ms | batched: compl/s | p50 ms | mean batch | throughput ratio |");
    println!("|---|---|---|---|---|---|---|");
    for &c in &a.concurrency {
        let s = load(&single, &prompts, c, a.requests_per_client).await?;
        let b = load(&batched, &prompts, c, a.requests_per_client).await?;
        let (sr, br) = (
            s.done as f64 / s.wall.as_secs_f64(),
            b.done as f64 / b.wall.as_secs_f64(),
        );
        println!(
            "| {c} | {sr:.1} | {:.0} | {br:.1} | {:.0} | {:.1} | {:.2}x |",
            p(&s.latency, 0.5),
            p(&b.latency, 0.5),
            b.mean_batch,
            br / sr
        );
    }
    Ok(())
}
