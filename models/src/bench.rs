//! Model benchmarks: prefill and decode speed of any [`CausalLm`], batched against
//! one-by-one decoding, peak memory, and llama.cpp on the same GGUF as a baseline.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::generation::{generate_batch, BatchedLm, CausalLm, Detokenizer, GenerationConfig};
use crate::{Error, Result};

/// Prefill and decode speed of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedReport {
    /// Prompt length used for prefill.
    pub prompt_tokens: usize,
    /// Prompt tokens per second (best of the runs).
    pub prefill_tok_s: f64,
    /// Tokens decoded one at a time after the prompt.
    pub decode_tokens: usize,
    /// Decoded tokens per second (greedy, best of the runs).
    pub decode_tok_s: f64,
}

/// Batched against one-by-one generation of the same prompts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchReport {
    /// Sequences.
    pub batch: usize,
    /// Tokens generated per sequence.
    pub new_tokens: usize,
    /// Generated tokens per second, sequences one after another.
    pub sequential_tok_s: f64,
    /// Generated tokens per second, all sequences decoded together.
    pub batched_tok_s: f64,
    /// Whether both ways produced the same tokens (greedy).
    pub same_tokens: bool,
}

impl BatchReport {
    /// Throughput gain of batching.
    pub fn gain(&self) -> f64 {
        self.batched_tok_s / self.sequential_tok_s.max(1e-9)
    }
}

/// llama.cpp's figures on a GGUF, measured through the `llama-cpp-python` package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlamaCppReport {
    /// Prompt tokens per second.
    pub prefill_tok_s: f64,
    /// Decoded tokens per second.
    pub decode_tok_s: f64,
    /// Threads llama.cpp ran with.
    pub threads: usize,
}

/// Peak resident memory of this process so far (VmHWM), in bytes, on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident memory of this process (VmRSS), in bytes, on Linux.
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn argmax(logits: &candle_core::Tensor) -> Result<u32> {
    Ok(logits.argmax(0)?.to_scalar::<u32>()?)
}

/// Measures prefill of `prompt` and greedy decoding of `decode_tokens` tokens after it,
/// `runs` times (after one warm-up), keeping the best of each.
pub fn bench_causal_lm(
    model: &mut dyn CausalLm,
    prompt: &[u32],
    decode_tokens: usize,
    runs: usize,
) -> Result<SpeedReport> {
    if prompt.is_empty() || prompt.len() + decode_tokens > model.max_seq_len() {
        return Err(Error::Invalid(
            "benchmark prompt empty or too long for the model".into(),
        ));
    }
    let mut best_pp = 0f64;
    let mut best_tg = 0f64;
    for run in 0..=runs.max(1) {
        model.clear_cache();
        let t = Instant::now();
        let logits = model.forward(prompt, 0)?;
        let pp = prompt.len() as f64 / t.elapsed().as_secs_f64();
        let mut tok = argmax(&logits)?;
        let t = Instant::now();
        for i in 0..decode_tokens {
            tok = argmax(&model.forward(&[tok], prompt.len() + i)?)?;
        }
        let tg = decode_tokens as f64 / t.elapsed().as_secs_f64();
        if run > 0 {
            best_pp = best_pp.max(pp);
            best_tg = best_tg.max(tg);
        }
    }
    model.clear_cache();
    Ok(SpeedReport {
        prompt_tokens: prompt.len(),
        prefill_tok_s: best_pp,
        decode_tokens,
        decode_tok_s: best_tg,
    })
}

/// Generates `new_tokens` greedy tokens for each prompt, first one prompt at a time, then
/// all together, and compares throughput (prefill included in both).
pub fn bench_batch<M: BatchedLm>(
    model: &M,
    detok: &dyn Detokenizer,
    prompts: &[Vec<u32>],
    new_tokens: usize,
) -> Result<BatchReport> {
    let cfg = GenerationConfig {
        max_new_tokens: new_tokens,
        ..GenerationConfig::default()
    };
    let total = (prompts.len() * new_tokens) as f64;
    let t = Instant::now();
    let mut one_by_one = Vec::new();
    for p in prompts {
        let g = generate_batch(model, detok, std::slice::from_ref(p), &cfg, &mut |_, _| {})?;
        one_by_one.extend(g.into_iter().map(|g| g.tokens));
    }
    let seq_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batched = generate_batch(model, detok, prompts, &cfg, &mut |_, _| {})?;
    let bat_s = t.elapsed().as_secs_f64();
    let same = batched.iter().map(|g| &g.tokens).eq(one_by_one.iter());
    Ok(BatchReport {
        batch: prompts.len(),
        new_tokens,
        sequential_tok_s: total / seq_s,
        batched_tok_s: total / bat_s,
        same_tokens: same,
    })
}

const LLAMA_CPP_SNIPPET: &str = r#"
import json, sys, time
try:
    from llama_cpp import Llama
except Exception as e:
    print(json.dumps({"available": False, "why": str(e)})); sys.exit(0)
path, threads, n_gen, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
prompt = json.loads(sys.argv[4])
llm = Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
best_pp, best_tg = 0.0, 0.0
for run in range(runs + 1):
    llm.reset()
    t = time.perf_counter(); llm.eval(prompt); pp = len(prompt) / (time.perf_counter() - t)
    tok = int(llm.scores[llm.n_tokens - 1].argmax())
    t = time.perf_counter()
    for _ in range(n_gen):
        llm.eval([tok]); tok = int(llm.scores[llm.n_tokens - 1].argmax())
    tg = n_gen / (time.perf_counter() - t)
    if run > 0:
        best_pp, best_tg = max(best_pp, pp), max(best_tg, tg)
print(json.dumps({"available": True, "prefill_tok_s": best_pp, "decode_tok_s": best_tg}))
"#;

/// Runs llama.cpp (Python package `llama-cpp-python`) on `gguf` with the same prompt ids and
/// decode length, with the Python interpreter `python`, `runs` timed runs after a warm-up
/// (best kept, as for ours). `Ok(None)` when the package is not importable there.
pub fn bench_llama_cpp(
    python: &str,
    gguf: &Path,
    prompt: &[u32],
    decode_tokens: usize,
    threads: usize,
    runs: usize,
) -> Result<Option<LlamaCppReport>> {
    let prompt_json = serde_json::to_string(prompt).map_err(|e| Error::Invalid(e.to_string()))?;
    let out = match Command::new(python)
        .arg("-c")
        .arg(LLAMA_CPP_SNIPPET)
        .arg(gguf)
        .arg(threads.to_string())
        .arg(decode_tokens.to_string())
        .arg(prompt_json)
        .arg(runs.max(1).to_string())
        .output()
    {
        Ok(o) => o,
        Err(_) => return Ok(None),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rfind(|l| l.starts_with('{')).unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    if v["available"] != serde_json::Value::Bool(true) {
        if out.status.success() || v["available"] == serde_json::Value::Bool(false) {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Invalid(format!(
            "llama.cpp benchmark failed: {}",
            err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
        )));
    }
    Ok(Some(LlamaCppReport {
        prefill_tok_s: v["prefill_tok_s"].as_f64().unwrap_or(0.0),
        decode_tok_s: v["decode_tok_s"].as_f64().unwrap_or(0.0),
        threads,
    }))
}

/// The edge GPT-2 in `dir` (`config.json`, `model.safetensors`) on the CPU, as a [`CausalLm`].
pub fn load_edge_lm(dir: &Path) -> Result<crate::gpt2::Gpt2Lm> {
    let model = crate::gpt2::Gpt2::load(dir, &candle_core::Device::Cpu)?;
    Ok(crate::gpt2::Gpt2Lm::new(std::sync::Arc::new(model), None))
}

/// The cloud GGUF on the CPU, requantized to Q8_0 or with its own block types.
pub fn load_cloud_gguf(path: &Path, requant_q8_0: bool) -> Result<crate::llama::Llama> {
    let requant = requant_q8_0.then_some(candle_core::quantized::GgmlDType::Q8_0);
    crate::llama::Llama::from_gguf(path, &candle_core::Device::Cpu, requant)
}
