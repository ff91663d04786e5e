//! The cloud model at the edge, for the frameworks NetGPT is compared with: **LLM offload**
//! (the whole cloud model runs at the edge site: `POST /generate`) and **LLM splitting** (its
//! first layers run here and the hidden states travel to the cloud AI function's
//! `ncloudai-split` service, which runs the rest: `POST /split-generate`). The model is the
//! cloud AI function's (`[cloudai] model`, else the cached SmolLM2 GGUF), loaded on first use
//! so that sites that never run these frameworks do not hold it.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use netgpt_cloudai::split::{generate_split_remote, SplitError};
use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
use netgpt_models::generation::GenerationConfig;
use netgpt_models::llama_split::{EdgeHalf, HiddenWire};
use netgpt_sbi::{DiscoveryQuery, ProblemDetails};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use utoipa::ToSchema;

use crate::context::EdgeAiContext;
use crate::procedures::check_prompt;

/// Most tokens one of these requests may generate.
pub const MAX_TOKENS: usize = 512;

/// Split generations one edge function runs at once: the cloud's `ncloudai-split` holds at
/// most this many sessions by default; more wait here instead of being refused there.
pub const MAX_SPLIT_SESSIONS: usize = 16;

/// The cloud model held at the edge (loaded once, on first use).
pub struct CloudAtEdge {
    cell: OnceCell<Result<Arc<CloudLlm>, String>>,
    split_slots: tokio::sync::Semaphore,
}

impl Default for CloudAtEdge {
    fn default() -> Self {
        Self {
            cell: OnceCell::new(),
            split_slots: tokio::sync::Semaphore::new(MAX_SPLIT_SESSIONS),
        }
    }
}

impl std::fmt::Debug for CloudAtEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudAtEdge")
            .field("loaded", &self.cell.initialized())
            .finish()
    }
}

impl CloudAtEdge {
    async fn get(&self, ctx: &EdgeAiContext) -> Result<Arc<CloudLlm>, ProblemDetails> {
        let configured = ctx.config.cloudai.model.clone();
        self.cell
            .get_or_init(|| async move {
                let path = configured
                    .or_else(netgpt_models::fetch::cached_cloud_model)
                    .ok_or_else(|| {
                        "no cloud model at this edge: set [cloudai] model or run `netgpt models fetch`"
                            .to_owned()
                    })?;
                tokio::task::spawn_blocking(move || CloudLlm::from_gguf(&path).map(Arc::new))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("cloud model at the edge: {e}"))
            })
            .await
            .clone()
            .map_err(|e| ProblemDetails::new(StatusCode::SERVICE_UNAVAILABLE, "MODEL_UNAVAILABLE", e))
    }
}

/// A prompt for the cloud model run at (or split across) the edge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeGenerateRequest {
    /// The prompt (as the user typed it: these frameworks have no edge completion).
    pub prompt: String,
    /// Tokens to generate (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 512)]
    pub max_tokens: Option<usize>,
    /// Splitting only: layers run at the edge (default a quarter of the model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_layer: Option<usize>,
    /// Splitting only: hidden states as f32 (lossless) instead of f16 (half the bytes).
    #[serde(default)]
    pub lossless: bool,
}

/// What the cloud model answered, and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeGenerateResponse {
    /// The answer.
    pub text: String,
    /// `OFFLOAD` or `SPLITTING`.
    pub framework: String,
    /// Where the model (or its first part) ran.
    pub site: String,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Splitting: layers at the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_layer: Option<usize>,
    /// Bytes sent to the cloud (request bodies; 0 for offload).
    pub bytes_to_cloud: usize,
    /// Bytes received from the cloud (response bodies; 0 for offload).
    pub bytes_from_cloud: usize,
    /// Whole call, ms.
    pub total_ms: f64,
}

fn max_tokens(req: &EdgeGenerateRequest) -> Result<usize, ProblemDetails> {
    let n = req.max_tokens.unwrap_or(64);
    if n == 0 || n > MAX_TOKENS {
        return Err(ProblemDetails::invalid_param(
            "maxTokens",
            format!("must be between 1 and {MAX_TOKENS}"),
        ));
    }
    Ok(n)
}

fn prompt_ids(llm: &CloudLlm, prompt: &str) -> Result<Vec<u32>, ProblemDetails> {
    llm.prompt_ids(&[ChatMessage::new(Role::User, prompt)])
        .map_err(|e| ProblemDetails::invalid_param("prompt", e.to_string()))
}

/// LLM offload: the cloud model answers here, at the edge site.
pub async fn offload(
    ctx: &EdgeAiContext,
    req: &EdgeGenerateRequest,
) -> Result<EdgeGenerateResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    let n = max_tokens(req)?;
    if req.split_layer.is_some() {
        return Err(ProblemDetails::invalid_param(
            "splitLayer",
            "applies to split-generate only",
        ));
    }
    let start = Instant::now();
    let llm = ctx.cloud_at_edge.get(ctx).await?;
    let ids = prompt_ids(&llm, &req.prompt)?;
    let cfg = llm.with_stops(&GenerationConfig {
        max_new_tokens: n,
        ..Default::default()
    });
    let g = tokio::task::spawn_blocking(move || {
        netgpt_models::generation::generate_batch(
            &llm.model,
            &llm.tokenizer,
            &[ids],
            &cfg,
            &mut |_, _| {},
        )
    })
    .await
    .map_err(|e| ProblemDetails::internal(e.to_string()))?
    .map_err(|e| ProblemDetails::internal(e.to_string()))?
    .pop()
    .ok_or_else(|| ProblemDetails::internal("no generation"))?;
    Ok(EdgeGenerateResponse {
        completion_tokens: g.usage.completion_tokens,
        text: g.text,
        framework: "OFFLOAD".into(),
        site: ctx.site.clone(),
        split_layer: None,
        bytes_to_cloud: 0,
        bytes_from_cloud: 0,
        total_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// LLM splitting: the first `splitLayer` layers here, the rest at the cloud AI function.
pub async fn split(
    ctx: &EdgeAiContext,
    req: &EdgeGenerateRequest,
) -> Result<EdgeGenerateResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    let n = max_tokens(req)?;
    let start = Instant::now();
    let llm = ctx.cloud_at_edge.get(ctx).await?;
    let layers = llm.model.config().num_hidden_layers;
    let k = req.split_layer.unwrap_or((layers / 4).max(1));
    let wire = if req.lossless {
        HiddenWire::F32
    } else {
        HiddenWire::F16
    };
    let edge = EdgeHalf::new(Arc::new(llm.model.clone()), k)
        .map_err(|e| ProblemDetails::invalid_param("splitLayer", e.to_string()))?
        .with_wire(wire);
    let ids = prompt_ids(&llm, &req.prompt)?;
    let q = DiscoveryQuery::new("CLOUDAI", "EDGEAI").service("ncloudai-split");
    let root = ctx
        .nrf
        .api_root_of(&q, "ncloudai-split")
        .await
        .map_err(|e| {
            ProblemDetails::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_NOT_FOUND",
                format!("ncloudai-split: {e}"),
            )
        })?;
    let _slot = ctx
        .cloud_at_edge
        .split_slots
        .acquire()
        .await
        .map_err(|e| ProblemDetails::internal(e.to_string()))?;
    let out = generate_split_remote(&ctx.client, &root, &edge, &llm.tokenizer, &ids, k, n)
        .await
        .map_err(|e| match e {
            SplitError::Sbi(netgpt_sbi::ClientError::Status { problem, .. }) => problem,
            other => ProblemDetails::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_FAILURE",
                other.to_string(),
            ),
        })?;
    Ok(EdgeGenerateResponse {
        completion_tokens: out.tokens.len(),
        text: out.text,
        framework: "SPLITTING".into(),
        site: ctx.site.clone(),
        split_layer: Some(k),
        bytes_to_cloud: out.bytes_up,
        bytes_from_cloud: out.bytes_down,
        total_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}
