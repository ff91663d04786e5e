//! Generation over any causal LM: KV cache handling is the model's, sampling and stopping are here.
//!
//! [`generate`] runs one sequence through any [`CausalLm`]; [`generate_batch`] decodes several
//! sequences together through a [`BatchedLm`] (one weight pass per step for all of them).
//! [`Sequence`] is the per-sequence half of that loop, for servers that batch continuously.
//! All stream UTF-8-safe text pieces through a callback, stop on token ids or on stop
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

/// One sequence being decoded, for callers that run their own batching loop (continuous
/// batching: sequences join and leave a running batch between steps).
///
/// The caller feeds [`Sequence::next_input`] (a chunk of the prompt, then one token at a
/// time) through a batched forward together with other sequences, and hands the logits
/// back to [`Sequence::accept`], which samples, streams text and decides when to stop.
pub struct Sequence<C> {
    cache: C,
    cfg: GenerationConfig,
    sampler: LogitsProcessor,
    stream: TextStream,
    context: Vec<u32>,
    pending: Vec<u32>,
    usage: Usage,
    start: Instant,
    finish: Option<FinishReason>,
}

/// What one [`Sequence::accept`] produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeqStep {
    /// New text that became final (may be empty).
    pub text: String,
    /// Set when the sequence ended with this step.
    pub finished: Option<FinishReason>,
}

impl<C> Sequence<C> {
    /// A sequence for `prompt` with its own sampler, timed from `start` (e.g. the request's
    /// arrival, so time to first token includes queueing). `context_len` is the model's.
    pub fn new(
        prompt: Vec<u32>,
        cfg: GenerationConfig,
        cache: C,
        context_len: usize,
        start: Instant,
    ) -> Result<Self> {
        if prompt.is_empty() || prompt.len() >= context_len {
            return Err(crate::Error::Invalid(format!(
                "prompt of {} tokens is empty or does not fit the context of {context_len}",
                prompt.len()
            )));
        }
        Ok(Self {
            cache,
            sampler: cfg.sampler(),
            usage: Usage {
                prompt_tokens: prompt.len(),
                ..Usage::default()
            },
            cfg,
            stream: TextStream::new(),
            context: prompt.clone(),
            pending: prompt,
            start,
            finish: None,
        })
    }

    /// A sequence whose `cache` already holds the first `cached` tokens of `prompt` (a
    /// shared prefix such as the system prompt, computed once): only the rest is fed.
    pub fn with_cached_prefix(
        prompt: Vec<u32>,
        cached: usize,
        cfg: GenerationConfig,
        cache: C,
        context_len: usize,
        start: Instant,
    ) -> Result<Self> {
        if cached >= prompt.len() {
            return Err(crate::Error::Invalid(format!(
                "a cached prefix of {cached} tokens leaves nothing of a {}-token prompt to feed",
                prompt.len()
            )));
        }
        let mut seq = Self::new(prompt, cfg, cache, context_len, start)?;
        seq.pending.drain(..cached);
        Ok(seq)
    }

    /// The tokens to feed next: up to `budget` of the prompt still to prefill, or the last
    /// sampled token.
    pub fn next_input(&self, budget: usize) -> &[u32] {
        &self.pending[..self.pending.len().min(budget.max(1))]
    }

    /// Whether the prompt is still being fed.
    pub fn is_prefilling(&self) -> bool {
        self.usage.completion_tokens == 0 && !self.pending.is_empty()
    }

    /// The sequence's KV cache.
    pub fn cache_mut(&mut self) -> &mut C {
        &mut self.cache
    }

    /// Counts and timings so far.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Takes the logits `[vocab]` of the last of the `fed` tokens just fed from
    /// [`Sequence::next_input`]. Mid-prompt chunks only advance; at the end of the prompt and
    /// at every decode step a token is sampled.
    pub fn accept(
        &mut self,
        fed: usize,
        logits: Tensor,
        detok: &dyn Detokenizer,
        context_len: usize,
    ) -> Result<SeqStep> {
        if self.finish.is_some() || fed == 0 || fed > self.pending.len() {
            return Err(crate::Error::Invalid(
                "accept() without a matching next_input()".into(),
            ));
        }
        self.pending.drain(..fed);
        if !self.pending.is_empty() {
            return Ok(SeqStep::default());
        }
        let tok = self
            .sampler
            .sample(&apply_penalty(logits, &self.cfg, &self.context)?)?;
        if self.usage.completion_tokens == 0 {
            self.usage.time_to_first_token = self.start.elapsed();
        }
        self.usage.completion_tokens += 1;
        self.context.push(tok);
        let mut step = SeqStep::default();
        if self.cfg.stop_token_ids.contains(&tok) {
            self.stream.tokens.push(tok);
            step.finished = Some(FinishReason::Stop);
        } else {
            step.text = self.stream.push(tok, detok, &self.cfg.stop_sequences)?;
            if self.stream.stopped {
                step.finished = Some(FinishReason::Stop);
            }
        }
        if step.finished.is_none()
            && (self.usage.completion_tokens >= self.cfg.max_new_tokens
                || self.context.len() >= context_len)
        {
            step.finished = Some(FinishReason::Length);
        }
        match step.finished {
            Some(f) => {
                step.text.push_str(&self.stream.flush());
                self.usage.total = self.start.elapsed();
                self.finish = Some(f);
            }
            None => self.pending.push(tok),
        }
        Ok(step)
    }

    /// Ends the sequence (as [`FinishReason::Cancelled`] unless it had already finished) and
    /// returns what it generated.
    pub fn finish(mut self) -> Generation {
        if self.finish.is_none() {
            self.usage.total = self.start.elapsed();
        }
        Generation {
            text: self.stream.text,
            tokens: self.stream.tokens,
            finish_reason: self.finish.unwrap_or(FinishReason::Cancelled),
            usage: self.usage,
        }
    }
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
    let start = Instant::now();
    let ctx = model.context_len();
    let mut seqs = prompts
        .iter()
        .map(|p| Sequence::new(p.clone(), cfg.clone(), model.new_cache(), ctx, start))
        .collect::<Result<Vec<_>>>()?;
    let mut active: Vec<usize> = (0..seqs.len()).collect();
    while !active.is_empty() {
        let inputs: Vec<Vec<u32>> = active
            .iter()
            .map(|&i| seqs[i].next_input(usize::MAX).to_vec())
            .collect();
        let logits = {
            let views: Vec<&[u32]> = inputs.iter().map(|v| v.as_slice()).collect();
            let mut caches: Vec<&mut M::Cache> = seqs
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| active.contains(i))
                .map(|(_, s)| s.cache_mut())
                .collect();
            model.forward_batch(&views, &mut caches)?
        };
        let mut still = Vec::with_capacity(active.len());
        for (row, &i) in active.iter().enumerate() {
            let step = seqs[i].accept(inputs[row].len(), logits.get(row)?, detok, ctx)?;
            if !step.text.is_empty() {
                on_text(i, &step.text);
            }
            if step.finished.is_none() {
                still.push(i);
            }
        }
        active = still;
    }
    Ok(seqs.into_iter().map(Sequence::finish).collect())
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
