//! Generation over any causal LM: KV cache handling is the model's, sampling and stopping are here.
//!
//! [`generate`] runs one sequence through any [`CausalLm`]; [`generate_batch`] decodes several
//! sequences together through a [`BatchedLm`] (one weight pass per step for all of them).
//! Both stream UTF-8-safe text pieces through a callback, stop on token ids or on stop
//! strings (never emitting any part of a stop string), and report [`Usage`].

use std::time::{Duration, Instant};

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::Result;

/// A decoder-only language model with its own KV cache.
///
/// Implemented by the GPT-2 edge model and the LLaMA cloud model.
pub trait CausalLm {
    /// Feeds `tokens` at positions `pos..pos + tokens.len()` (appending to the KV cache)
    /// and returns the logits of the last position, shape `[vocab]`, f32.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> crate::Result<Tensor>;
    /// Drops the KV cache so the next call starts a new sequence at position 0.
    fn clear_cache(&mut self);
    /// Longest context the model supports.
    fn max_seq_len(&self) -> usize;
}

/// A model that can advance several sequences, each with its own cache, in one call.
pub trait BatchedLm {
    /// Per-sequence state (the KV cache).
    type Cache;
    /// A fresh cache for a new sequence.
    fn new_cache(&self) -> Self::Cache;
    /// Appends `seqs[i]` to `caches[i]` and returns each sequence's last logits `[n, vocab]`.
    fn forward_batch(&self, seqs: &[&[u32]], caches: &mut [&mut Self::Cache]) -> Result<Tensor>;
    /// Longest context the model supports.
    fn context_len(&self) -> usize;
}

impl BatchedLm for crate::llama::Llama {
    type Cache = crate::llama::KvCache;
    fn new_cache(&self) -> Self::Cache {
        crate::llama::Llama::new_cache(self)
    }
    fn forward_batch(&self, seqs: &[&[u32]], caches: &mut [&mut Self::Cache]) -> Result<Tensor> {
        self.forward_seqs(seqs, caches)
    }
    fn context_len(&self) -> usize {
        self.config().max_position_embeddings
    }
}

/// Turns token ids back into text; implemented for `tokenizers::Tokenizer`.
pub trait Detokenizer {
    /// Decodes `ids` (special tokens kept as text).
    fn detokenize(&self, ids: &[u32]) -> Result<String>;
}

impl Detokenizer for tokenizers::Tokenizer {
    fn detokenize(&self, ids: &[u32]) -> Result<String> {
        crate::tokenizer::decode(self, ids)
    }
}

/// How to pick and when to stop.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Sampling temperature; `<= 0` means greedy (argmax).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `p`.
    pub top_p: Option<f64>,
    /// Repetition penalty (1.0 = none), applied over the last `repeat_last_n` tokens.
    pub repetition_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: usize,
    /// Seed of the sampler: same seed, same prompt, same output.
    pub seed: u64,
    /// Stop when the text contains one of these (the stop string is not returned).
    pub stop_sequences: Vec<String>,
    /// Stop when one of these tokens is produced (e.g. `<|im_end|>`, EOS); not returned.
    pub stop_token_ids: Vec<u32>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 299_792_458,
            stop_sequences: Vec::new(),
            stop_token_ids: Vec::new(),
        }
    }
}

impl GenerationConfig {
    fn sampler(&self) -> LogitsProcessor {
        let t = self.temperature;
        let sampling = if t <= 0.0 {
            Sampling::ArgMax
        } else {
            match (self.top_k, self.top_p) {
                (None, None) => Sampling::All { temperature: t },
                (Some(k), None) => Sampling::TopK { k, temperature: t },
                (None, Some(p)) => Sampling::TopP { p, temperature: t },
                (Some(k), Some(p)) => Sampling::TopKThenTopP {
                    k,
                    p,
                    temperature: t,
                },
            }
        };
        LogitsProcessor::from_sampling(self.seed, sampling)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token or stop sequence was reached.
    Stop,
    /// `max_new_tokens` or the context length was reached.
    Length,
    /// The consumer stopped reading (see [`generate_until`]).
    Cancelled,
}

/// Token counts and timings of one generation.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (including a final stop token, which is not in the text).
    pub completion_tokens: usize,
    /// From the call to the first generated token (prefill + first sample).
    pub time_to_first_token: Duration,
    /// Whole call.
    pub total: Duration,
}

impl Usage {
    /// Prompt tokens per second of prefill (approximated by time to first token).
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.time_to_first_token.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second after the first one.
    pub fn decode_tokens_per_s(&self) -> f64 {
        let t = (self.total - self.time_to_first_token).as_secs_f64();
        self.completion_tokens.saturating_sub(1) as f64 / t.max(1e-9)
    }
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated text, without stop token or stop sequence.
    pub text: String,
    /// Generated token ids (including a final stop token if one ended the generation).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Counts and timings.
    pub usage: Usage,
}

/// Incremental detokenisation with stop strings: emits only text that is valid UTF-8 and
/// cannot be the start of a stop sequence.
struct TextStream {
    tokens: Vec<u32>,
    emitted: usize,
    text: String,
    stopped: bool,
}

impl TextStream {
    fn new() -> Self {
        Self {
            tokens: Vec::new(),
            emitted: 0,
            text: String::new(),
            stopped: false,
        }
    }

    /// Adds a token; returns the new piece of text that is safe to show.
    fn push(&mut self, tok: u32, de: &dyn Detokenizer, stops: &[String]) -> Result<String> {
        self.tokens.push(tok);
        let full = de.detokenize(&self.tokens)?;
        // A trailing replacement char means a multi-byte character is still incomplete.
        if full.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        self.text = full;
        let search_from = floor_char(&self.text, self.emitted.saturating_sub(max_len(stops)));
        if let Some(at) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                self.text[search_from..]
                    .find(s.as_str())
                    .map(|i| i + search_from)
            })
            .min()
        {
            self.text.truncate(at);
            self.stopped = true;
            return Ok(self.take(at));
        }
        let hold = stops
            .iter()
            .map(|s| partial_suffix(&self.text, s))
            .max()
            .unwrap_or(0);
        let safe = floor_char(&self.text, self.text.len() - hold);
        Ok(self.take(safe))
    }

    fn take(&mut self, upto: usize) -> String {
        if upto <= self.emitted {
            return String::new();
        }
        let piece = self.text[self.emitted..upto].to_string();
        self.emitted = upto;
        piece
    }

    /// Whatever is still held back, at the end of generation.
    fn flush(&mut self) -> String {
        let end = self.text.len();
        self.take(end)
    }
}

fn max_len(stops: &[String]) -> usize {
    stops.iter().map(|s| s.len()).max().unwrap_or(0)
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Length of the longest proper prefix of `stop` that `text` ends with.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

fn apply_penalty(logits: Tensor, cfg: &GenerationConfig, context: &[u32]) -> Result<Tensor> {
    if cfg.repetition_penalty == 1.0 || context.is_empty() {
        return Ok(logits);
    }
    let start = context.len().saturating_sub(cfg.repeat_last_n);
    Ok(candle_transformers::utils::apply_repeat_penalty(
        &logits,
        cfg.repetition_penalty,
        &context[start..],
    )?)
}

/// Generates a continuation of `prompt` (token ids, non-empty) with `model`, calling
/// `on_text` with each new piece of text as it becomes final. The model's cache is reset.
pub fn generate(
    model: &mut dyn CausalLm,
    detok: &dyn Detokenizer,
    prompt: &[u32],
    cfg: &GenerationConfig,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    generate_until(model, detok, prompt, cfg, &mut |piece| {
        on_text(piece);
        true
    })
}

/// [`generate`] whose consumer can stop it: when `on_text` returns `false` (a client went
/// away), decoding stops before the next token with [`FinishReason::Cancelled`].
pub fn generate_until(
    model: &mut dyn CausalLm,
    detok: &dyn Detokenizer,
    prompt: &[u32],
    cfg: &GenerationConfig,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(crate::Error::Invalid("empty prompt".into()));
    }
    if prompt.len() >= model.max_seq_len() {
        return Err(crate::Error::Invalid(format!(
            "prompt of {} tokens does not fit the context of {}",
            prompt.len(),
            model.max_seq_len()
        )));
    }
    let start = Instant::now();
    model.clear_cache();
    let mut sampler = cfg.sampler();
    let mut stream = TextStream::new();
    let mut context = prompt.to_vec();
    let mut usage = Usage {
        prompt_tokens: prompt.len(),
        ..Usage::default()
    };
    let mut logits = model.forward(prompt, 0)?;
    let mut finish = FinishReason::Length;
    while usage.completion_tokens < cfg.max_new_tokens && context.len() < model.max_seq_len() {
        let tok = sampler.sample(&apply_penalty(logits, cfg, &context)?)?;
        if usage.completion_tokens == 0 {
            usage.time_to_first_token = start.elapsed();
        }
        usage.completion_tokens += 1;
        context.push(tok);
        if cfg.stop_token_ids.contains(&tok) {
            stream.tokens.push(tok);
            finish = FinishReason::Stop;
            break;
        }
        let piece = stream.push(tok, detok, &cfg.stop_sequences)?;
        if !piece.is_empty() && !on_text(&piece) {
            finish = FinishReason::Cancelled;
            break;
        }
        if stream.stopped {
            finish = FinishReason::Stop;
            break;
        }
        if usage.completion_tokens >= cfg.max_new_tokens {
            break;
        }
        logits = model.forward(&[tok], context.len() - 1)?;
    }
    let rest = stream.flush();
    if !rest.is_empty() && finish != FinishReason::Cancelled {
        on_text(&rest);
    }
    usage.total = start.elapsed();
    Ok(Generation {
        text: stream.text,
        tokens: stream.tokens,
        finish_reason: finish,
        usage,
    })
}

/// Generates continuations of several prompts together: one batched prefill, then one
/// batched forward per step over the sequences still running. Each sequence has its own
/// sampler seeded with `cfg.seed`, so the output of sequence `i` is what [`generate`] gives
/// for `prompts[i]` alone (up to float rounding). `on_text(i, piece)` streams sequence `i`.
pub fn generate_batch<M: BatchedLm>(
    model: &M,
    detok: &dyn Detokenizer,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(p) = prompts
        .iter()
        .find(|p| p.is_empty() || p.len() >= model.context_len())
    {
        return Err(crate::Error::Invalid(format!(
            "prompt of {} tokens is empty or does not fit the context of {}",
            p.len(),
            model.context_len()
        )));
    }
    let start = Instant::now();
    let n = prompts.len();
    let mut caches: Vec<M::Cache> = (0..n).map(|_| model.new_cache()).collect();
    let mut samplers: Vec<LogitsProcessor> = (0..n).map(|_| cfg.sampler()).collect();
    let mut streams: Vec<TextStream> = (0..n).map(|_| TextStream::new()).collect();
    let mut contexts: Vec<Vec<u32>> = prompts.to_vec();
    let mut usages: Vec<Usage> = prompts
        .iter()
        .map(|p| Usage {
            prompt_tokens: p.len(),
            ..Usage::default()
        })
        .collect();
    let mut finish = vec![FinishReason::Length; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut pending: Vec<Vec<u32>> = prompts.to_vec();

    while !active.is_empty() {
        let seqs: Vec<&[u32]> = active.iter().map(|&i| pending[i].as_slice()).collect();
        let logits = {
            let mut refs: Vec<&mut M::Cache> = Vec::with_capacity(active.len());
            // Borrow the active caches mutably, in order, without overlapping borrows.
            let mut rest: &mut [M::Cache] = &mut caches;
            let mut base = 0;
            for &i in &active {
                let (_, tail) = rest.split_at_mut(i - base);
                let (one, tail) = tail.split_at_mut(1);
                refs.push(&mut one[0]);
                rest = tail;
                base = i + 1;
            }
            model.forward_batch(&seqs, &mut refs)?
        };
        let mut still = Vec::with_capacity(active.len());
        for (row, &i) in active.iter().enumerate() {
            let l = apply_penalty(logits.get(row)?, cfg, &contexts[i])?;
            let tok = samplers[i].sample(&l)?;
            let u = &mut usages[i];
            if u.completion_tokens == 0 {
                u.time_to_first_token = start.elapsed();
            }
            u.completion_tokens += 1;
            contexts[i].push(tok);
            let mut done = false;
            if cfg.stop_token_ids.contains(&tok) {
                streams[i].tokens.push(tok);
                finish[i] = FinishReason::Stop;
                done = true;
            } else {
                let piece = streams[i].push(tok, detok, &cfg.stop_sequences)?;
                if !piece.is_empty() {
                    on_text(i, &piece);
                }
                if streams[i].stopped {
                    finish[i] = FinishReason::Stop;
                    done = true;
                }
            }
            if u.completion_tokens >= cfg.max_new_tokens || contexts[i].len() >= model.context_len()
            {
                done = true;
            }
            if done {
                let rest = streams[i].flush();
                if !rest.is_empty() {
                    on_text(i, &rest);
                }
                usages[i].total = start.elapsed();
            } else {
                pending[i] = vec![tok];
                still.push(i);
            }
        }
        active = still;
    }
    Ok(streams
        .into_iter()
        .zip(usages)
        .zip(finish)
        .map(|((s, usage), finish_reason)| Generation {
            text: s.text,
            tokens: s.tokens,
            finish_reason,
            usage,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chars;
    impl Detokenizer for Chars {
        fn detokenize(&self, ids: &[u32]) -> Result<String> {
            Ok(ids
                .iter()
                .map(|&i| char::from_u32(i).unwrap_or('?'))
                .collect())
        }
    }

    #[test]
    fn stream_holds_back_partial_stop_and_cuts_at_it() {
        let mut s = TextStream::new();
        let stops = vec!["END".to_string()];
        let mut out = String::new();
        for c in "abcENxEN".chars() {
            out += &s.push(c as u32, &Chars, &stops).unwrap();
        }
        // "EN" could still become "END": held back.
        assert_eq!(out, "abcENx");
        out += &s.push('D' as u32, &Chars, &stops).unwrap();
        assert!(s.stopped);
        assert_eq!(out, "abcENx");
        assert_eq!(s.text, "abcENx");
    }
}
