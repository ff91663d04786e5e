//! The cloud AI function's state: the engine, the tokenizer, the adapters and the limits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use netgpt_models::chat::CloudLlm;
use netgpt_models::llama::Llama;
use netgpt_models::llama_lora::{LlamaLoraAdapter, ServingLora};
use netgpt_sbi::config::CloudAiConfig;
use tokenizers::Tokenizer;

use crate::engine::{Engine, EngineConfig};

/// Everything a request needs.
pub struct CloudAiContext {
    /// The continuous-batching decode loop.
    pub engine: Engine,
    /// The weights the engine decodes with, shared read-only (split inference runs its
    /// cloud half on them without a second load).
    pub model: Arc<Llama>,
    /// Base model id (`SmolLM2-135M-Instruct`).
    pub model_id: String,
    /// Context length of the model.
    pub context_length: usize,
    /// The model's tokenizer.
    pub tokenizer: Arc<Tokenizer>,
    /// End-of-turn and end-of-text ids.
    pub stop_ids: Vec<u32>,
    /// Adapters by name.
    pub adapters: BTreeMap<String, Arc<ServingLora>>,
    /// Limits from `[cloudai]`.
    pub limits: CloudAiConfig,
    /// Unix time the model was loaded (`created` of `/v1/models`).
    pub created: u64,
}

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The model file.
    #[error("cloud model: {0}")]
    Model(netgpt_models::Error),
    /// An adapter folder.
    #[error("adapter '{name}' ({path}): {error}")]
    Adapter {
        /// Its name.
        name: String,
        /// Its folder.
        path: String,
        /// What went wrong.
        error: netgpt_models::Error,
    },
}

impl CloudAiContext {
    /// Loads the model of `limits.model` (default: the cached SmolLM2-135M-Instruct, fetched
    /// on first use) and the adapters, and starts the decode loop. `nf` labels the metrics.
    pub fn load(limits: &CloudAiConfig, nf: &str) -> Result<Self, LoadError> {
        let path = match &limits.model {
            Some(p) => p.clone(),
            None => netgpt_models::fetch::ensure_cloud_model().map_err(LoadError::Model)?,
        };
        let llm = CloudLlm::from_gguf(&path).map_err(LoadError::Model)?;
        let model_id = model_id(&path);
        Self::new(llm, model_id, limits, nf)
    }

    /// Serves an already loaded model (tests load small ones).
    pub fn new(
        llm: CloudLlm,
        model_id: String,
        limits: &CloudAiConfig,
        nf: &str,
    ) -> Result<Self, LoadError> {
        let mut adapters = BTreeMap::new();
        for (name, dir) in &limits.adapters {
            let err = |error| LoadError::Adapter {
                name: name.clone(),
                path: dir.display().to_string(),
                error,
            };
            let a = LlamaLoraAdapter::load(dir, llm.model.device()).map_err(err)?;
            let served = ServingLora::new(&a, &llm.model).map_err(err)?;
            adapters.insert(name.clone(), Arc::new(served));
        }
        let context_length = llm.model.config().max_position_embeddings;
        let tokenizer = Arc::new(llm.tokenizer);
        let model = Arc::new(llm.model);
        let engine = Engine::start(
            model.clone(),
            tokenizer.clone(),
            EngineConfig {
                max_batch: limits.max_batch,
                max_queue: limits.max_queue,
                prefill_chunk: limits.prefill_chunk,
            },
            nf.to_owned(),
        );
        Ok(Self {
            engine,
            model,
            model_id,
            context_length,
            tokenizer,
            stop_ids: llm.stop_ids,
            adapters,
            limits: limits.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }
}

/// `SmolLM2-135M-Instruct` from `.../SmolLM2-135M-Instruct.Q4_1.gguf`.
fn model_id(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    match stem.rsplit_once('.') {
        Some((name, quant)) if quant.starts_with('Q') || quant.starts_with('F') => name.into(),
        _ => stem,
    }
}
