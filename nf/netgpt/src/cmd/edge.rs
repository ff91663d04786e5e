//! CLI: the edge model — data sets, training, evaluation, completion, LoRA.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use clap::{Args, Subcommand, ValueEnum};
use netgpt_models::data::{pairs, profiles};
use netgpt_models::edge::{self, EdgeModel, EdgeTrainOptions};
use netgpt_models::lora::LoraConfig;
use netgpt_models::peft;
use netgpt_models::train::TrainConfig;

/// Edge commands, flattened into the top level of `netgpt`.
#[derive(Subcommand)]
pub enum Cmd {
    /// Regenerate the data sets (location profiles, prompt-completion pairs) from a seed.
    GenData(GenDataArgs),
    /// Train the edge tokenizer and GPT-2 from scratch on the pairs; writes a model folder.
    TrainEdge(TrainEdgeArgs),
    /// Held-out loss/perplexity and site-fact rates of an edge model.
    EvalEdge(EvalEdgeArgs),
    /// Turn a concise prompt into a comprehensive one with the edge model.
    Complete(CompleteArgs),
    /// Edge completion of a concise prompt, then the cloud model answers it (streamed).
    Ask(AskArgs),
    /// LoRA fine-tuning of the edge model (e.g. on one site's pairs); saves PEFT files.
    TrainLora(TrainLoraArgs),
    /// Measure LoRA against full fine-tuning: parameters, file sizes, peak memory.
    LoraReport(LoraReportArgs),
    /// One fine-tuning run in this process, printing its figures as JSON (used by lora-report).
    #[command(hide = true)]
    FinetuneProbe(ProbeArgs),
}

/// `netgpt gen-data`
#[derive(Args)]
pub struct GenDataArgs {
    /// Output folder.
    #[arg(long, default_value = "models/data")]
    out: PathBuf,
    /// Number of pairs (train + held-out).
    #[arg(long, default_value_t = 4000)]
    n: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// `netgpt train-edge`
#[derive(Args)]
pub struct TrainEdgeArgs {
    /// Seed of tokenizer data order, initialisation and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output model folder.
    #[arg(long, default_value = "models/edge")]
    out: PathBuf,
    /// Data folder holding pairs_train.jsonl / pairs_heldout.jsonl.
    #[arg(long, default_value = "models/data")]
    data: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 800)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 128)]
    embd: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// BPE vocabulary size.
    #[arg(long, default_value_t = 2000)]
    vocab: usize,
    /// Held-out pairs to complete for the fact check after training.
    #[arg(long, default_value_t = 400)]
    eval_gen: usize,
}

/// `netgpt eval-edge`
#[derive(Args)]
pub struct EvalEdgeArgs {
    /// Model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Held-out pairs file.
    #[arg(long, default_value = "models/data/pairs_heldout.jsonl")]
    heldout: PathBuf,
    /// How many held-out pairs to complete for the fact check (all are scored for loss).
    #[arg(long, default_value_t = 400)]
    gen: usize,
    /// Evaluate with this PEFT adapter folder.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Only pairs of this site.
    #[arg(long)]
    site: Option<String>,
}

/// `netgpt complete`
#[derive(Args)]
pub struct CompleteArgs {
    /// Edge site id (edge-hangzhou, edge-london, edge-paris, edge-newyork).
    #[arg(long)]
    site: String,
    /// The concise prompt.
    prompt: String,
    /// Model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// PEFT adapter folder applied to this request.
    #[arg(long)]
    adapter: Option<PathBuf>,
}

/// `netgpt ask`
#[derive(Args)]
pub struct AskArgs {
    /// Edge site id (edge-hangzhou, edge-london, edge-paris, edge-newyork).
    #[arg(long)]
    site: String,
    /// The concise prompt.
    prompt: String,
    /// Edge model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// PEFT adapter folder for the edge completion.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Most tokens of the cloud answer.
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
}

/// `netgpt train-lora`
#[derive(Args)]
pub struct TrainLoraArgs {
    /// Base model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Output adapter folder (PEFT layout).
    #[arg(long)]
    out: PathBuf,
    /// Only train on this site's pairs.
    #[arg(long)]
    site: Option<String>,
    /// Training pairs file.
    #[arg(long, default_value = "models/data/pairs_train.jsonl")]
    data: PathBuf,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Target modules (PEFT suffix match).
    #[arg(long, value_delimiter = ',', default_value = "c_attn,c_proj")]
    targets: Vec<String>,
    /// Optimiser steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// `netgpt lora-report`
#[derive(Args)]
pub struct LoraReportArgs {
    /// Base model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Optimiser steps of each measured run.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Measure on the cloud model (SmolLM2-135M, dequantized to f32; LoRA r=8 on
    /// q_proj,v_proj) instead of the edge model.
    #[arg(long)]
    cloud: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProbeMode {
    Lora,
    Full,
    CloudLora,
    CloudFull,
}

/// Hidden `netgpt finetune-probe`.
#[derive(Args)]
pub struct ProbeArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, value_enum)]
    mode: ProbeMode,
    #[arg(long)]
    steps: usize,
    #[arg(long)]
    batch: usize,
    #[arg(long)]
    out: PathBuf,
}

/// Runs an edge command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::GenData(a) => gen_data(a),
        Cmd::TrainEdge(a) => train_edge(a),
        Cmd::EvalEdge(a) => eval_edge(a),
        Cmd::Complete(a) => complete(a),
        Cmd::Ask(a) => ask(a),
        Cmd::TrainLora(a) => train_lora(a),
        Cmd::LoraReport(a) => lora_report(a),
        Cmd::FinetuneProbe(a) => probe(a),
    }
}

fn gen_data(a: GenDataArgs) -> anyhow::Result<()> {
    let (train, held) = netgpt_models::data::write_all(&a.out, a.n, a.seed)?;
    println!(
        "wrote {}: {train} train / {held} held-out pairs (seed {})",
        a.out.display(),
        a.seed
    );
    Ok(())
}

fn read_pairs(path: &Path) -> anyhow::Result<Vec<pairs::Pair>> {
    pairs::read_jsonl(path).with_context(|| format!("{} (run `netgpt gen-data`)", path.display()))
}

fn train_edge(a: TrainEdgeArgs) -> anyhow::Result<()> {
    let profiles = profiles::builtin();
    let train = read_pairs(&a.data.join(pairs::TRAIN_FILE))?;
    let held = read_pairs(&a.data.join(pairs::HELDOUT_FILE))?;
    let opts = EdgeTrainOptions {
        seed: a.seed,
        vocab_size: a.vocab,
        n_layer: a.layers,
        n_embd: a.embd,
        n_head: a.heads,
        n_positions: 256,
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
    };
    eprintln!("training edge GPT-2 on {} pairs: {opts:?}", train.len());
    let start = Instant::now();
    let summary = edge::train_edge_to_dir(
        &train,
        &held,
        &profiles,
        &opts,
        &a.out,
        a.eval_gen,
        &mut |step, loss| {
            eprintln!(
                "step {step:>5}  loss {loss:.4}  {:.0}s",
                start.elapsed().as_secs_f64()
            );
        },
    )?;
    eprintln!(
        "saved {} after {:.0}s of training",
        a.out.display(),
        summary.train_seconds
    );
    println!("{}", serde_json::to_string_pretty(&summary.heldout)?);
    Ok(())
}

fn load_model(dir: &Path, adapter: Option<&Path>) -> anyhow::Result<EdgeModel> {
    let m = EdgeModel::load(dir, &Device::Cpu)
        .with_context(|| format!("edge model {}", dir.display()))?;
    if let Some(ad) = adapter {
        m.load_adapter("adapter", ad)
            .with_context(|| format!("adapter {}", ad.display()))?;
    }
    Ok(m)
}

fn eval_edge(a: EvalEdgeArgs) -> anyhow::Result<()> {
    let profiles = profiles::builtin();
    let mut held = read_pairs(&a.heldout)?;
    if let Some(s) = &a.site {
        held.retain(|p| &p.site == s);
    }
    let m = load_model(&a.model, a.adapter.as_deref())?;
    let r = edge::evaluate(
        &m,
        &held,
        &profiles,
        a.gen,
        a.adapter.as_ref().map(|_| "adapter"),
    )?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// A one-line error naming the known sites when `site` has no location profile.
fn check_site(site: &str) -> anyhow::Result<()> {
    let profiles = profiles::builtin();
    if !profiles.contains_key(site) {
        bail!(
            "unknown site {site} (known: {})",
            profiles::site_ids(&profiles).join(", ")
        );
    }
    Ok(())
}

fn complete(a: CompleteArgs) -> anyhow::Result<()> {
    check_site(&a.site)?;
    let m = load_model(&a.model, a.adapter.as_deref())?;
    let text = m.complete(&a.site, &a.prompt, a.adapter.as_ref().map(|_| "adapter"))?;
    println!("{text}");
    Ok(())
}

fn ask(a: AskArgs) -> anyhow::Result<()> {
    use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
    use netgpt_models::generation::GenerationConfig;
    use std::io::Write;
    check_site(&a.site)?;
    let edge_model = load_model(&a.model, a.adapter.as_deref())?;
    let t = Instant::now();
    let comprehensive =
        edge_model.complete(&a.site, &a.prompt, a.adapter.as_ref().map(|_| "adapter"))?;
    eprintln!(
        "edge ({:.0} ms): {comprehensive}",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut cloud = CloudLlm::load_default().context("cloud model (netgpt models fetch)")?;
    let cfg = GenerationConfig {
        max_new_tokens: a.max_tokens,
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let t = Instant::now();
    let g = cloud.chat(
        &[ChatMessage::new(Role::User, comprehensive)],
        &cfg,
        &mut |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        },
    )?;
    let _ = writeln!(out);
    eprintln!(
        "cloud ({:.0} ms, {} tokens)",
        t.elapsed().as_secs_f64() * 1e3,
        g.usage.completion_tokens
    );
    Ok(())
}

fn train_lora(a: TrainLoraArgs) -> anyhow::Result<()> {
    let m = load_model(&a.model, None)?;
    let mut data = read_pairs(&a.data)?;
    if let Some(s) = &a.site {
        data.retain(|p| &p.site == s);
    }
    if data.is_empty() {
        bail!("no training pairs");
    }
    let lcfg = LoraConfig {
        r: a.r,
        alpha: a.alpha,
        target_modules: a.targets.clone(),
    };
    let tcfg = TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
        warmup: (a.steps / 10).max(1),
        seed: a.seed,
        log_every: 20,
        ..Default::default()
    };
    let start = Instant::now();
    let (adapter, report) = edge::train_lora(&m, &data, lcfg, &tcfg, &mut |step, loss| {
        eprintln!(
            "step {step:>5}  loss {loss:.4}  {:.0}s",
            start.elapsed().as_secs_f64()
        );
    })?;
    peft::save_adapter(&adapter, &a.model.display().to_string(), &a.out)?;
    println!(
        "saved {}: {} trainable parameters of {} in the base, {:.0}s",
        a.out.display(),
        report.trainable_params,
        m.model()
            .tensors()
            .values()
            .map(|t| t.elem_count())
            .sum::<usize>(),
        report.seconds
    );
    Ok(())
}

/// Peak resident set size of this process (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn probe(a: ProbeArgs) -> anyhow::Result<()> {
    if matches!(a.mode, ProbeMode::CloudLora | ProbeMode::CloudFull) {
        return probe_cloud(a);
    }
    let m = load_model(&a.model, None)?;
    let data = read_pairs(Path::new("models/data/pairs_train.jsonl"))?;
    let tcfg = TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        log_every: 1,
        ..Default::default()
    };
    let rss_before = peak_rss_kib();
    let base_params: usize = m.model().tensors().values().map(|t| t.elem_count()).sum();
    let (trainable, first, last, secs, file_bytes) = match a.mode {
        ProbeMode::Lora => {
            let (ad, r) =
                edge::train_lora(&m, &data, LoraConfig::default(), &tcfg, &mut |_, _| {})?;
            peft::save_adapter(&ad, "probe", &a.out)?;
            let bytes = std::fs::metadata(a.out.join(peft::WEIGHTS_FILE))?.len();
            (
                r.trainable_params,
                r.losses.first().map(|x| x.1),
                r.losses.last().map(|x| x.1),
                r.seconds,
                bytes,
            )
        }
        ProbeMode::Full | ProbeMode::CloudLora | ProbeMode::CloudFull => {
            let base = m.model();
            let (model, vars) =
                netgpt_models::train::trainable_gpt2(base.config(), base.tensors())?;
            let ex = m.examples(&data)?;
            let fwd = |ids: &candle_core::Tensor| model.forward_train(ids, None);
            let r =
                netgpt_models::train::train(&vars, &fwd, &ex, &tcfg, &Device::Cpu, &mut |_, _| {})?;
            model.save(&a.out)?;
            let bytes = std::fs::metadata(a.out.join("model.safetensors"))?.len();
            (
                r.trainable_params,
                r.losses.first().map(|x| x.1),
                r.losses.last().map(|x| x.1),
                r.seconds,
                bytes,
            )
        }
    };
    println!(
        "{}",
        serde_json::json!({"trainable_params": trainable, "base_params": base_params, "peak_rss_kib": peak_rss_kib(),
            "rss_after_load_kib": rss_before, "seconds": secs, "loss_first": first, "loss_last": last, "checkpoint_bytes": file_bytes})
    );
    Ok(())
}

/// LoRA vs full fine-tuning of the cloud model (f32, trainable forward of `llama_lora`) on
/// the comprehensive prompts of the training pairs, 64 tokens each.
fn probe_cloud(a: ProbeArgs) -> anyhow::Result<()> {
    use netgpt_models::llama_lora::{self, LlamaLoraAdapter, TrainableLlama};
    let path = netgpt_models::fetch::ensure_cloud_model()?;
    let tok = netgpt_models::tokenizer::from_gguf_file(&path)?;
    let (cfg, w) = llama_lora::hf_weights_from_gguf(&path, &Device::Cpu)?;
    let data: Vec<netgpt_models::train::Example> =
        read_pairs(Path::new("models/data/pairs_train.jsonl"))?
            .iter()
            .take(64)
            .map(|p| {
                let mut t = netgpt_models::tokenizer::encode(&tok, &p.completion)?;
                t.truncate(64);
                Ok(netgpt_models::train::Example {
                    tokens: t,
                    prompt_len: 0,
                })
            })
            .collect::<netgpt_models::Result<_>>()?;
    let tcfg = TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: 1e-4,
        warmup: 1,
        mask_prompt: false,
        log_every: 1,
        ..Default::default()
    };
    let base_params: usize = w.values().map(|t| t.elem_count()).sum();
    let rss_before = peak_rss_kib();
    std::fs::create_dir_all(&a.out)?;
    let (r, bytes) = match a.mode {
        ProbeMode::CloudLora => {
            let m = TrainableLlama::new(&cfg, &w, &Device::Cpu)?;
            drop(w);
            let lcfg = LoraConfig {
                r: 8,
                alpha: 16.0,
                target_modules: vec!["q_proj".into(), "v_proj".into()],
            };
            let (ad, vars) = LlamaLoraAdapter::new(&cfg, lcfg, 42, &Device::Cpu)?;
            let fwd = |ids: &candle_core::Tensor| m.forward(ids, Some(&ad));
            let r = netgpt_models::train::train(
                &vars,
                &fwd,
                &data,
                &tcfg,
                &Device::Cpu,
                &mut |_, _| {},
            )?;
            ad.save("SmolLM2-135M-Instruct", &a.out)?;
            (r, std::fs::metadata(a.out.join(peft::WEIGHTS_FILE))?.len())
        }
        _ => {
            let (m, vars) = TrainableLlama::trainable(&cfg, &w, &Device::Cpu)?;
            drop(w);
            let fwd = |ids: &candle_core::Tensor| m.forward(ids, None);
            let r = netgpt_models::train::train(
                &vars,
                &fwd,
                &data,
                &tcfg,
                &Device::Cpu,
                &mut |_, _| {},
            )?;
            let ts: std::collections::HashMap<String, candle_core::Tensor> = vars
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
                .collect();
            candle_core::safetensors::save(&ts, a.out.join("model.safetensors"))?;
            (r, std::fs::metadata(a.out.join("model.safetensors"))?.len())
        }
    };
    println!(
        "{}",
        serde_json::json!({"trainable_params": r.trainable_params, "base_params": base_params, "peak_rss_kib": peak_rss_kib(),
            "rss_after_load_kib": rss_before, "seconds": r.seconds, "loss_first": r.losses.first().map(|x| x.1),
            "loss_last": r.losses.last().map(|x| x.1), "checkpoint_bytes": bytes})
    );
    Ok(())
}

fn lora_report(a: LoraReportArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("netgpt-lora-report-{}", std::process::id()));
    let mut res = Vec::new();
    let modes = if a.cloud {
        ["cloud-lora", "cloud-full"]
    } else {
        ["lora", "full"]
    };
    for mode in modes {
        let out = tmp.join(mode);
        let o = std::process::Command::new(&exe)
            .args(["finetune-probe", "--model"])
            .arg(&a.model)
            .args([
                "--mode",
                mode,
                "--steps",
                &a.steps.to_string(),
                "--batch",
                &a.batch.to_string(),
                "--out",
            ])
            .arg(&out)
            .output()?;
        if !o.status.success() {
            bail!("{mode} run failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).context("probe output")?;
        res.push(v);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let (l, f) = (&res[0], &res[1]);
    let n = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let what = if a.cloud {
        "LoRA (r=8, alpha=16, q_proj+v_proj) vs full fine-tuning of the cloud model (SmolLM2-135M, f32)".to_string()
    } else {
        format!(
            "LoRA (r=8, alpha=16, c_attn+c_proj) vs full fine-tuning of {}",
            a.model.display()
        )
    };
    println!("{what} ({} steps x {} sequences, CPU):", a.steps, a.batch);
    println!(
        "  trainable parameters   LoRA {:>10}   full {:>10}   ({:.2}% of {})",
        n(l, "trainable_params"),
        n(f, "trainable_params"),
        100.0 * n(l, "trainable_params") / n(f, "trainable_params"),
        n(l, "base_params")
    );
    println!(
        "  checkpoint file        LoRA {:>7.1} KiB  full {:>7.1} KiB  ({:.1}%)",
        n(l, "checkpoint_bytes") / 1024.0,
        n(f, "checkpoint_bytes") / 1024.0,
        100.0 * n(l, "checkpoint_bytes") / n(f, "checkpoint_bytes")
    );
    println!(
        "  peak RSS (whole proc.) LoRA {:>7.1} MiB  full {:>7.1} MiB",
        n(l, "peak_rss_kib") / 1024.0,
        n(f, "peak_rss_kib") / 1024.0
    );
    println!(
        "  RSS after model load   LoRA {:>7.1} MiB  full {:>7.1} MiB",
        n(l, "rss_after_load_kib") / 1024.0,
        n(f, "rss_after_load_kib") / 1024.0
    );
    println!(
        "  time                   LoRA {:>7.1} s    full {:>7.1} s",
        n(l, "seconds"),
        n(f, "seconds")
    );
    println!(
        "  loss first/last        LoRA {:.3}/{:.3}  full {:.3}/{:.3}",
        n(l, "loss_first"),
        n(l, "loss_last"),
        n(f, "loss_first"),
        n(f, "loss_last")
    );
    println!("{}", serde_json::json!({"lora": l, "full": f}));
    Ok(())
}
