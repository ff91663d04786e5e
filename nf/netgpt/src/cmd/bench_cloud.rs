//! `netgpt bench cloud`: load on the cloud AI function at several concurrencies, with
//! continuous batching against one-request-at-a-time serving measured in the same run.
//!
//! Two cloud AI functions run in-process on the same model file (and an NRF they register
//! with): one with the configured `max_batch`, one with `max_batch = 1`. Closed-loop clients
//! (each sends its next request when the previous answer ended) stream chat completions over
//! HTTP/2 from the OpenAI-compatible route; time to first token is taken at the first content
//! chunk, on the client. Both functions get the same prompts in the same order, and greedy
//! decoding gives the same answers in both modes, so the work is identical.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::{NfContext, RunningNf};

/// Arguments of `netgpt bench cloud`.
#[derive(Args)]
pub struct BenchCloudArgs {
    /// Concurrencies (clients sending at once), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Requests per client at each concurrency (at least 2 per client is sensible).
    #[arg(long, default_value_t = 2)]
    requests_per_client: usize,
    /// Tokens each request asks for.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Sequences per batch of the continuous-batching function.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Skip the one-at-a-time baseline (faster; no ratio).
    #[arg(long)]
    no_baseline: bool,
    /// GGUF file of the cloud model (default: the cached SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
}

/// What one load run measured.
struct LoadResult {
    requests: usize,
    tokens: usize,
    wall: Duration,
    latency: Vec<Duration>,
    ttft: Vec<Duration>,
    errors: usize,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn tps(&self) -> f64 {
        self.tokens as f64 / self.wall.as_secs_f64()
    }
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// Questions of the kind a comprehensive prompt carries; each client walks the list from
/// its own offset so concurrent requests differ.
const PROMPTS: &[&str] = &[
    "I am near King's Cross in London. Recommend a library open on Sunday.",
    "What is a good vegetarian dish to try in Hangzhou?",
    "Suggest a quiet place to read near the Latin Quarter in Paris.",
    "How do I get from Midtown Manhattan to Central Park on foot?",
    "Name three museums worth visiting in London.",
    "What should I pack for a rainy weekend in Paris?",
    "Give me a short history of West Lake in Hangzhou.",
    "Recommend a bookshop near Times Square.",
    "What is the best time of day to visit the Louvre?",
    "Explain what 5G network slicing is in two sentences.",
    "Suggest a family-friendly activity in New York in winter.",
    "How do I say thank you in Mandarin?",
];

async fn start_cloud(
    config: &TestbedConfig,
    name: &str,
    max_batch: usize,
) -> anyhow::Result<(RunningNf, String)> {
    let mut cfg = config.clone();
    cfg.cloudai.max_batch = max_batch;
    cfg.cloudai.max_queue = 1024;
    // One NF on its own, without an NRF to issue tokens: the bench measures the engine.
    cfg.oauth2.enabled = false;
    cfg.limits.nf_rate_per_s = 0.0;
    let nf = cfg
        .nf
        .get("cloudai")
        .context("no [nf.cloudai] in the config")?
        .clone();
    cfg.nf.insert(name.to_owned(), nf);
    let db = netgpt_sbi::db::connect("sqlite::memory:").await?;
    let ctx = NfContext::ephemeral(Arc::new(cfg), name, db).await?;
    let base = ctx.api_root.clone();
    let running = netgpt_cloudai::start(ctx).await?;
    Ok((running, base))
}

/// `concurrency` closed-loop clients, `per_client` requests each.
async fn load(
    base: &str,
    concurrency: usize,
    per_client: usize,
    max_tokens: usize,
) -> anyhow::Result<LoadResult> {
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(600))
        .build()?;
    let url = format!("{base}/v1/chat/completions");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..per_client {
                let prompt = PROMPTS[(c * 7 + i) % PROMPTS.len()];
                let body = serde_json::json!({
                    "model": "SmolLM2-135M-Instruct", "max_tokens": max_tokens, "stream": true,
                    "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": prompt}],
                });
                let t0 = Instant::now();
                out.push(one_request(&http, &url, &body, t0).await);
            }
            out
        }));
    }
    let mut r = LoadResult {
        requests: 0,
        tokens: 0,
        wall: Duration::ZERO,
        latency: Vec::new(),
        ttft: Vec::new(),
        errors: 0,
    };
    for t in tasks {
        for res in t.await? {
            match res {
                Ok((ttft, total, tokens)) => {
                    r.requests += 1;
                    r.tokens += tokens;
                    r.ttft.push(ttft);
                    r.latency.push(total);
                }
                Err(_) => r.errors += 1,
            }
        }
    }
    r.wall = start.elapsed();
    Ok(r)
}

/// One streamed request: (time to first token, total, completion tokens).
async fn one_request(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    t0: Instant,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut resp = http.post(url).json(body).send().await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut ttft = None;
    let mut tokens = 0;
    let mut buf = String::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let event: String = buf.drain(..i + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data)?;
            if ttft.is_none()
                && v["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            {
                ttft = Some(t0.elapsed());
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = n as usize;
            }
        }
    }
    let total = t0.elapsed();
    Ok((ttft.unwrap_or(total), total, tokens))
}

/// Runs the benchmark and prints its table.
pub async fn run(a: BenchCloudArgs) -> anyhow::Result<()> {
    let mut config = TestbedConfig::load_default()?;
    let model = match a.model.clone() {
        Some(m) => m,
        None => tokio::task::spawn_blocking(netgpt_models::fetch::ensure_cloud_model).await??,
    };
    config.cloudai.model = Some(model.clone());
    config.cloudai.max_new_tokens = config.cloudai.max_new_tokens.max(a.max_tokens);
    // An NRF for the functions to register with, like in the testbed.
    let nrf_db = netgpt_sbi::db::connect("sqlite::memory:").await?;
    let nrf_ctx = NfContext::ephemeral(Arc::new(config.clone()), "nrf", nrf_db).await?;
    config.nrf.uri = nrf_ctx.api_root.clone();
    let nrf = netgpt_nrf::start(nrf_ctx).await?;

    let (batched, batched_base) = start_cloud(&config, "cloudai", a.max_batch).await?;
    let baseline = if a.no_baseline {
        None
    } else {
        Some(start_cloud(&config, "cloudai-baseline", 1).await?)
    };
    println!(
        "netgpt bench cloud: {} ({} CPU threads), {} tokens per request, {} requests per client, streamed over HTTP/2",
        model.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        a.max_tokens,
        a.requests_per_client
    );
    // Warm-up: page the weights in and start the pools.
    load(&batched_base, 1, 1, 8).await?;
    if let Some((_, b)) = &baseline {
        load(b, 1, 1, 8).await?;
    }
    println!(
        "{:<26} {:>4} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "serving", "c", "req/s", "tok/s", "p50 ms", "p99 ms", "ttft p50", "ttft p99", "errors"
    );
    let row = |name: &str, c: usize, r: &LoadResult| {
        println!(
            "{name:<26} {c:>4} {:>7.2} {:>8.1} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>6}",
            r.rps(),
            r.tps(),
            pct(&r.latency, 0.5),
            pct(&r.latency, 0.99),
            pct(&r.ttft, 0.5),
            pct(&r.ttft, 0.99),
            r.errors
        );
    };
    let mut at_32 = None;
    for &c in &a.concurrency {
        let b = load(&batched_base, c, a.requests_per_client, a.max_tokens).await?;
        row(&format!("continuous (max_batch {})", a.max_batch), c, &b);
        if let Some((_, base)) = &baseline {
            let o = load(base, c, a.requests_per_client, a.max_tokens).await?;
            row("one at a time", c, &o);
            let ratio = b.rps() / o.rps();
            println!(
                "{:<26} {c:>4} x{ratio:.2} requests/s, x{:.2} tokens/s",
                "  ratio",
                b.tps() / o.tps()
            );
            if c == 32 {
                at_32 = Some(ratio);
            }
        }
    }
    if let Some(r) = at_32 {
        println!(
            "target: continuous batching >= 4x one-at-a-time at concurrency 32: x{r:.2} ({})",
            if r >= 4.0 { "met" } else { "not met" }
        );
    }
    batched.stop().await;
    if let Some((b, _)) = baseline {
        b.stop().await;
    }
    nrf.stop().await;
    Ok(())
}
