//! Dynamic batching of edge-model completions: concurrent requests are collected for up to
//! `max_wait` (or until `max_batch` are waiting) and decoded together by
//! [`EdgeModel::complete_batch`], one batched forward per step. Requests arriving while a
//! batch decodes form the next one. With `max_batch = 1` every request is decoded alone
//! (the baseline `netgpt bench edge` compares against).

use std::sync::Arc;
use std::time::{Duration, Instant};

use netgpt_models::edge::EdgeModel;
use tokio::sync::{mpsc, oneshot};

/// One completion, as decoded.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The comprehensive prompt.
    pub text: String,
    /// How many completions were decoded in the same batch.
    pub batch_size: usize,
    /// Time spent waiting for the batch to start.
    pub queue: Duration,
    /// Time the batch took to decode.
    pub decode: Duration,
}

/// Why a completion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The input cannot be completed (empty, too long, unknown adapter).
    #[error("{0}")]
    Invalid(String),
    /// The model failed, or the batcher is gone.
    #[error("edge model: {0}")]
    Failed(String),
}

struct Job {
    site: String,
    concise: String,
    adapter: Option<String>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Completed, BatchError>>,
}

/// Handle to the batching task (cheap to clone).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
    max_batch: usize,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    /// `nf` labels its metrics.
    pub fn start(nf: &str, model: Arc<EdgeModel>, max_batch: usize, max_wait: Duration) -> Self {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(nf.to_owned(), model, rx, max_batch, max_wait));
        Self { tx, max_batch }
    }

    /// Most completions decoded together.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Completes `concise` at `site` with `adapter`, batched with concurrent calls.
    pub async fn complete(
        &self,
        site: &str,
        concise: &str,
        adapter: Option<&str>,
    ) -> Result<Completed, BatchError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            site: site.to_owned(),
            concise: concise.to_owned(),
            adapter: adapter.map(str::to_owned),
            enqueued: Instant::now(),
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| BatchError::Failed("the batcher has stopped".into()))?;
        rx.await
            .map_err(|_| BatchError::Failed("the batcher dropped the request".into()))?
    }
}

async fn run(
    nf: String,
    model: Arc<EdgeModel>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + max_wait;
        while jobs.len() < max_batch {
            // Whatever is already queued joins at once; then wait until the deadline.
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) if max_batch == 1 || max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(j)) => jobs.push(j),
                    _ => break,
                },
            }
        }
        // A client that went away does not take a slot.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let (m, nf) = (model.clone(), nf.clone());
        let done = tokio::task::spawn_blocking(move || decode(&nf, &m, jobs)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "edge completion batch panicked");
        }
    }
}

/// Decodes `jobs` (grouped by adapter: one batch per adapter) and answers each.
fn decode(nf: &str, model: &EdgeModel, jobs: Vec<Job>) {
    let mut groups: Vec<(Option<String>, Vec<Job>)> = Vec::new();
    for j in jobs {
        match groups.iter_mut().find(|(a, _)| *a == j.adapter) {
            Some((_, g)) => g.push(j),
            None => groups.push((j.adapter.clone(), vec![j])),
        }
    }
    for (adapter, group) in groups {
        let start = Instant::now();
        let items: Vec<(&str, &str)> = group
            .iter()
            .map(|j| (j.site.as_str(), j.concise.as_str()))
            .collect();
        let n = items.len();
        let result = model.complete_batch(&items, adapter.as_deref());
        let decode = start.elapsed();
        metrics::histogram!("edgeai_completion_batch_size", "nf" => nf.to_owned()).record(n as f64);
        metrics::histogram!("edgeai_completion_seconds", "nf" => nf.to_owned())
            .record(decode.as_secs_f64());
        match result {
            Ok(outs) => {
                for (j, out) in group.into_iter().zip(outs) {
                    let r = out
                        .map(|text| Completed {
                            text,
                            batch_size: n,
                            queue: start.saturating_duration_since(j.enqueued),
                            decode,
                        })
                        .map_err(|e| BatchError::Invalid(e.to_string()));
                    let _ = j.reply.send(r);
                }
            }
            Err(e) => {
                let err = match e {
                    netgpt_models::Error::Invalid(m) => BatchError::Invalid(m),
                    other => BatchError::Failed(other.to_string()),
                };
                for j in group {
                    let _ = j.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
