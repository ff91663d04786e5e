//! Continuous batching: one decode loop on a dedicated thread owns the model; requests join
//! the running batch between steps and leave it as they finish.
//!
//! - Admission: a bounded queue in front of the batch. When it is full, [`Engine::submit`]
//!   refuses at once ([`SubmitError::Overloaded`], with a Retry-After estimate) instead of
//!   letting callers wait without bound.
//! - Each step feeds every running sequence one token (decode), plus prompt chunks of the
//!   sequences still prefilling, up to `prefill_chunk` prompt tokens per step, so a long
//!   prompt does not stall the others.
//! - Adapters: each sequence may carry its own LoRA adapter; one batch mixes them over one
//!   base model ([`netgpt_models::llama_lora::BatchLora`]).
//! - Cancellation: a request whose receiver is dropped (its client went away) leaves the
//!   batch before the next step.
//! - `max_batch = 1` is one-request-at-a-time serving, the baseline of the load benchmark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netgpt_models::generation::{FinishReason, Generation, GenerationConfig, Sequence};
use netgpt_models::llama::{KvCache, Llama};
use netgpt_models::llama_lora::{BatchLora, ServingLora};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

/// Limits of the decode loop.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together.
    pub max_batch: usize,
    /// Requests that may wait for a slot.
    pub max_queue: usize,
    /// Prompt tokens fed per step.
    pub prefill_chunk: usize,
}

/// A request for the engine.
pub struct Job {
    /// Prompt token ids (chat template applied).
    pub prompt: Vec<u32>,
    /// Sampling and stopping.
    pub cfg: GenerationConfig,
    /// Adapter name (the metrics label) and its weights; `None` for the base model.
    pub adapter: Option<(String, Arc<ServingLora>)>,
    /// When the request arrived (time to first token counts from here).
    pub arrived: Instant,
    /// Where the text pieces and the result go.
    pub events: mpsc::UnboundedSender<Event>,
}

/// What the engine tells a request.
#[derive(Debug)]
pub enum Event {
    /// A new piece of final text.
    Text(String),
    /// The generation ended; carries the whole text and usage.
    Done(Generation),
    /// The model failed on this request.
    Failed(String),
}

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full; retry after about this long.
    #[error("the cloud AI function is at capacity ({queued} requests waiting)")]
    Overloaded {
        /// Requests waiting.
        queued: usize,
        /// Estimated wait before a slot frees.
        retry_after: Duration,
    },
    /// The decode loop has stopped.
    #[error("the decode loop has stopped")]
    Stopped,
}

/// Live figures of the engine (also exported as metrics).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Requests waiting in the queue.
    pub queued: AtomicUsize,
    /// Sequences in the running batch.
    pub running: AtomicUsize,
    /// Decode steps run.
    pub steps: AtomicU64,
    /// Largest batch seen.
    pub max_batch_seen: AtomicUsize,
    /// Requests that left because their client went away.
    pub cancelled: AtomicU64,
    /// Mean request service time (admission to end), microseconds, moving average.
    pub mean_service_us: AtomicU64,
}

/// The handle to the decode loop; dropping every handle stops it after the running batch.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Job>,
    stats: Arc<EngineStats>,
    cfg: EngineConfig,
}

impl Engine {
    /// Starts the decode loop on its own thread. `nf` labels the metrics.
    pub fn start(
        model: Arc<Llama>,
        tokenizer: Arc<Tokenizer>,
        cfg: EngineConfig,
        nf: String,
    ) -> Self {
        let (tx, rx) = mpsc::channel(cfg.max_queue.max(1));
        let stats = Arc::new(EngineStats::default());
        let prefix = shared_prefix(&model, &tokenizer);
        let looper = Loop {
            model,
            tokenizer,
            cfg: cfg.clone(),
            stats: stats.clone(),
            nf,
            prefix,
        };
        std::thread::Builder::new()
            .name("cloudai-decode".into())
            .spawn(move || looper.run(rx))
            .expect("spawn the decode thread");
        Self { tx, stats, cfg }
    }

    /// Queues `job`, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let queued = self.stats.queued.load(Ordering::Relaxed);
                Err(SubmitError::Overloaded {
                    queued,
                    retry_after: self.retry_after(queued),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Waiting requests times the mean service time, spread over the batch slots.
    fn retry_after(&self, queued: usize) -> Duration {
        let mean = self
            .stats
            .mean_service_us
            .load(Ordering::Relaxed)
            .max(1_000_000);
        Duration::from_micros(mean * queued as u64 / self.cfg.max_batch as u64)
            .max(Duration::from_secs(1))
    }

    /// Live figures.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The limits it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
}

/// A sequence in the running batch.
struct Running {
    seq: Sequence<KvCache>,
    adapter: Option<(String, Arc<ServingLora>)>,
    events: mpsc::UnboundedSender<Event>,
    admitted: Instant,
    last_token: Option<Instant>,
}

struct Loop {
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    cfg: EngineConfig,
    stats: Arc<EngineStats>,
    nf: String,
    /// Tokens every chat prompt without a system message starts with (the default system
    /// turn) and their KV cache on the base model, computed once: a request that starts
    /// with them (and uses no adapter, whose q/k/v would differ) skips their prefill.
    prefix: Option<(Vec<u32>, KvCache)>,
}

impl Loop {
    fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut batch: Vec<Running> = Vec::new();
        loop {
            // Join: take waiting requests into free slots; sleep when there is nothing to do.
            while batch.len() < self.cfg.max_batch {
                let job = if batch.is_empty() {
                    match rx.blocking_recv() {
                        Some(j) => j,
                        None => return,
                    }
                } else {
                    match rx.try_recv() {
                        Ok(j) => j,
                        Err(_) => break,
                    }
                };
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                if let Some(r) = self.admit(job) {
                    batch.push(r);
                }
            }
            // Leave: requests whose client went away.
            batch.retain(|r| {
                let gone = r.events.is_closed();
                if gone {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    self.count_request(r, "cancelled");
                }
                !gone
            });
            self.publish(batch.len());
            if batch.is_empty() {
                continue;
            }
            let stepped = self.step(&mut batch);
            self.publish(batch.len());
            if let Err(e) = stepped {
                // A failed forward leaves the caches untouched; fail this batch's requests
                // rather than retry a step that may fail again.
                tracing::error!(error = %e, "cloud AI decode step failed");
                for r in batch.drain(..) {
                    self.count_request(&r, "error");
                    let _ = r.events.send(Event::Failed(e.to_string()));
                }
                self.publish(0);
            }
        }
    }

    fn admit(&self, job: Job) -> Option<Running> {
        if job.events.is_closed() {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let ctx = self.model.config().max_position_embeddings;
        let seq = match &self.prefix {
            Some((tokens, cache))
                if job.adapter.is_none()
                    && job.prompt.len() > tokens.len()
                    && job.prompt.starts_with(tokens) =>
            {
                metrics::counter!("cloudai_prefix_cache_hits_total", "nf" => self.nf.clone())
                    .increment(1);
                Sequence::with_cached_prefix(
                    job.prompt,
                    tokens.len(),
                    job.cfg,
                    cache.clone(),
                    ctx,
                    job.arrived,
                )
            }
            _ => Sequence::new(
                job.prompt,
                job.cfg,
                self.model.new_cache(),
                ctx,
                job.arrived,
            ),
        };
        match seq {
            Ok(seq) => {
                let adapter = label(&job.adapter).to_owned();
                metrics::histogram!("cloudai_queue_wait_seconds", "nf" => self.nf.clone(), "adapter" => adapter)
                    .record(job.arrived.elapsed().as_secs_f64());
                Some(Running {
                    seq,
                    adapter: job.adapter,
                    events: job.events,
                    admitted: Instant::now(),
                    last_token: None,
                })
            }
            Err(e) => {
                let _ = job.events.send(Event::Failed(e.to_string()));
                None
            }
        }
    }

    /// One forward over the batch: decode tokens plus prompt chunks within the budget.
    fn step(&self, batch: &mut Vec<Running>) -> netgpt_models::Result<()> {
        let mut budget = self.cfg.prefill_chunk;
        let mut rows: Vec<usize> = Vec::with_capacity(batch.len());
        let mut inputs: Vec<Vec<u32>> = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            if r.seq.is_prefilling() {
                if budget == 0 {
                    continue;
                }
                let chunk = r.seq.next_input(budget).to_vec();
                budget -= chunk.len().min(budget);
                inputs.push(chunk);
            } else {
                inputs.push(r.seq.next_input(1).to_vec());
            }
            rows.push(i);
        }
        let views: Vec<&[u32]> = inputs.iter().map(|v| v.as_slice()).collect();
        let started = Instant::now();
        let logits = {
            let mut refs: Vec<Option<&ServingLora>> = Vec::with_capacity(rows.len());
            let mut caches: Vec<&mut KvCache> = Vec::with_capacity(rows.len());
            let mut next = rows.iter().peekable();
            for (i, r) in batch.iter_mut().enumerate() {
                if next.peek() == Some(&&i) {
                    next.next();
                    refs.push(r.adapter.as_ref().map(|(_, a)| &**a));
                    caches.push(r.seq.cache_mut());
                }
            }
            let hook = BatchLora::new(&self.model, refs);
            let hook: Option<&dyn netgpt_models::llama::ProjHook> =
                if hook.any() { Some(&hook) } else { None };
            self.model.forward_seqs_with(&views, &mut caches, hook)?
        };
        let step_time = started.elapsed();
        let decoding = batch.iter().filter(|r| !r.seq.is_prefilling()).count();
        metrics::gauge!("cloudai_decode_tokens_per_second", "nf" => self.nf.clone())
            .set(decoding as f64 / step_time.as_secs_f64().max(1e-9));
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("cloudai_batch_size", "nf" => self.nf.clone())
            .record(rows.len() as f64);
        metrics::histogram!("cloudai_step_duration_seconds", "nf" => self.nf.clone())
            .record(step_time.as_secs_f64());

        let ctx = self.model.config().max_position_embeddings;
        let mut finished = Vec::new();
        let mut generated: HashMap<String, u64> = HashMap::new();
        for (row, &i) in rows.iter().enumerate() {
            let r = &mut batch[i];
            let was_prefilling = r.seq.is_prefilling();
            let step =
                match r
                    .seq
                    .accept(inputs[row].len(), logits.get(row)?, &*self.tokenizer, ctx)
                {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = r.events.send(Event::Failed(e.to_string()));
                        finished.push((i, None));
                        continue;
                    }
                };
            if was_prefilling && r.seq.is_prefilling() {
                continue; // mid-prompt chunk
            }
            let now = Instant::now();
            let adapter = label(&r.adapter);
            if let Some(prev) = r.last_token {
                metrics::histogram!("cloudai_time_per_output_token_seconds", "nf" => self.nf.clone(), "adapter" => adapter.to_owned())
                    .record((now - prev).as_secs_f64());
            } else {
                metrics::histogram!("cloudai_time_to_first_token_seconds", "nf" => self.nf.clone(), "adapter" => adapter.to_owned())
                    .record(r.seq.usage().time_to_first_token.as_secs_f64());
            }
            r.last_token = Some(now);
            *generated.entry(label(&r.adapter).to_owned()).or_default() += 1;
            if !step.text.is_empty() && r.events.send(Event::Text(step.text)).is_err() {
                finished.push((i, Some(FinishReason::Cancelled)));
                continue;
            }
            if let Some(f) = step.finished {
                finished.push((i, Some(f)));
            }
        }
        for (adapter, n) in generated {
            metrics::counter!("cloudai_generated_tokens_total", "nf" => self.nf.clone(), "adapter" => adapter)
                .increment(n);
        }
        // Remove from the back so the indices stay valid.
        finished.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (i, reason) in finished {
            let r = batch.swap_remove(i);
            let outcome = match reason {
                None => "error",
                Some(FinishReason::Stop) => "stop",
                Some(FinishReason::Length) => "length",
                Some(FinishReason::Cancelled) => "cancelled",
            };
            if reason == Some(FinishReason::Cancelled) {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            self.count_request(&r, outcome);
            let service = r.admitted.elapsed().as_micros() as u64;
            let old = self.stats.mean_service_us.load(Ordering::Relaxed);
            let mean = if old == 0 {
                service
            } else {
                (old * 7 + service) / 8
            };
            self.stats.mean_service_us.store(mean, Ordering::Relaxed);
            let adapter = label(&r.adapter).to_owned();
            let g = r.seq.finish();
            metrics::counter!("cloudai_prompt_tokens_total", "nf" => self.nf.clone(), "adapter" => adapter)
                .increment(g.usage.prompt_tokens as u64);
            if reason.is_some() {
                let _ = r.events.send(Event::Done(g));
            }
        }
        Ok(())
    }

    fn count_request(&self, r: &Running, outcome: &'static str) {
        metrics::counter!("cloudai_requests_total", "nf" => self.nf.clone(), "adapter" => label(&r.adapter).to_owned(), "outcome" => outcome)
            .increment(1);
    }

    fn publish(&self, running: usize) {
        self.stats.running.store(running, Ordering::Relaxed);
        self.stats
            .max_batch_seen
            .fetch_max(running, Ordering::Relaxed);
        metrics::gauge!("cloudai_running_sequences", "nf" => self.nf.clone()).set(running as f64);
        metrics::gauge!("cloudai_queue_depth", "nf" => self.nf.clone())
            .set(self.stats.queued.load(Ordering::Relaxed) as f64);
    }
}

/// The metrics label of an adapter (`base` for none).
fn label(adapter: &Option<(String, Arc<ServingLora>)>) -> &str {
    adapter.as_ref().map_or("base", |(n, _)| n.as_str())
}

/// The default system turn's tokens and their KV cache (see [`Loop::prefix`]); `None` when
/// the model cannot compute it (the engine then prefills every prompt whole).
fn shared_prefix(model: &Llama, tokenizer: &Tokenizer) -> Option<(Vec<u32>, KvCache)> {
    let text = netgpt_models::chat::render_chatml(&[], false);
    let tokens = netgpt_models::tokenizer::encode(tokenizer, &text).ok()?;
    if tokens.is_empty() {
        return None;
    }
    let mut cache = model.new_cache();
    model.forward_with_cache(&tokens, &mut cache).ok()?;
    Some((tokens, cache))
}
