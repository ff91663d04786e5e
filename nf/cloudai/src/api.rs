//! The `ncloudai-gen` SBI service: routes and OpenAPI annotations; each handler calls the
//! procedures and turns the result into a response.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use netgpt_models::chat::{ChatMessage, Role};
use netgpt_sbi::{ProblemDetails, SbiJson};
use utoipa::OpenApi;

use crate::context::CloudAiContext;
use crate::procedures::{self, Field, GenError, Sampling};
use crate::types::{GenerateRequest, GenerateResponse, GenerationUsage, ModelStatus};

type Ctx = State<Arc<CloudAiContext>>;

/// The SBI name of a request field.
fn sbi_name(f: Field) -> &'static str {
    match f {
        Field::Prompt => "prompt",
        Field::Role => "messages.role",
        Field::MaxTokens => "maxTokens",
        Field::Temperature => "temperature",
        Field::TopP => "topP",
        Field::TopK => "topK",
        Field::RepetitionPenalty => "repetitionPenalty",
        Field::Stop => "stop",
    }
}

impl From<GenError> for ProblemDetails {
    fn from(e: GenError) -> Self {
        match e {
            GenError::Invalid { field, reason } => {
                ProblemDetails::invalid_param(sbi_name(field), reason)
            }
            GenError::UnknownAdapter { .. } => {
                ProblemDetails::bad_request("OPTIONAL_IE_INCORRECT", e.to_string())
                    .with_invalid_param("adapter", e.to_string())
            }
            GenError::Overloaded(msg, retry) => ProblemDetails::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "NF_CONGESTION",
                msg,
            )
            .with_retry_after(retry.as_secs().max(1)),
            GenError::Failed(msg) => ProblemDetails::internal(msg),
        }
    }
}

/// The conversation of a request: `messages`, or `system` + `prompt`.
fn conversation(req: &GenerateRequest) -> Result<Vec<ChatMessage>, GenError> {
    let bad = |reason: &str| GenError::Invalid {
        field: Field::Prompt,
        reason: reason.into(),
    };
    let mut out = Vec::new();
    if let Some(s) = &req.system {
        out.push(ChatMessage::new(Role::System, s.clone()));
    }
    match (&req.prompt, &req.messages) {
        (Some(p), None) => out.push(ChatMessage::new(Role::User, p.clone())),
        (None, Some(ms)) => {
            for m in ms {
                out.push(ChatMessage::new(
                    procedures::role(&m.role)?,
                    m.content.clone(),
                ));
            }
        }
        (Some(_), Some(_)) => return Err(bad("give either prompt or messages, not both")),
        (None, None) => return Err(bad("prompt or messages is required")),
    }
    Ok(out)
}

/// Generates an answer to a (comprehensive) prompt with the cloud LLM.
#[utoipa::path(post, path = "/ncloudai-gen/v1/generate", operation_id = "Generate",
    tag = "Generation",
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "The generated text with usage figures", body = GenerateResponse),
        (status = 400, description = "Empty or oversized prompt, unknown adapter, invalid parameter", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The model failed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "NF_CONGESTION: the queue is full; retry after the Retry-After header", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn generate(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<GenerateRequest>,
) -> Result<Json<GenerateResponse>, ProblemDetails> {
    let messages = conversation(&req)?;
    let cfg = procedures::generation_config(
        &ctx,
        &Sampling {
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            repetition_penalty: req.repetition_penalty,
            seed: req.seed,
            stop: req.stop.clone().unwrap_or_default(),
        },
    )?;
    let admitted = procedures::admit(&ctx, messages, cfg, req.adapter.as_deref())?;
    let g = procedures::collect(admitted).await?;
    Ok(Json(GenerateResponse {
        text: g.text,
        finish_reason: procedures::finish_reason(g.finish_reason).into(),
        model: ctx.model_id.clone(),
        adapter: req.adapter,
        usage: GenerationUsage {
            prompt_tokens: g.usage.prompt_tokens,
            completion_tokens: g.usage.completion_tokens,
            time_to_first_token_ms: g.usage.time_to_first_token.as_secs_f64() * 1e3,
            total_ms: g.usage.total.as_secs_f64() * 1e3,
        },
    }))
}

/// The model, its adapters, the limits and the live queue.
#[utoipa::path(get, path = "/ncloudai-gen/v1/model", operation_id = "ModelStatus",
    tag = "Generation",
    responses((status = 200, description = "Model and serving state", body = ModelStatus)))]
pub async fn model_status(State(ctx): Ctx) -> Json<ModelStatus> {
    let s = ctx.engine.stats();
    Json(ModelStatus {
        model: ctx.model_id.clone(),
        context_length: ctx.context_length,
        adapters: ctx.adapters.keys().cloned().collect(),
        max_batch: ctx.limits.max_batch,
        max_queue: ctx.limits.max_queue,
        max_prompt_tokens: ctx.limits.max_prompt_tokens,
        max_new_tokens: ctx.limits.max_new_tokens,
        running: s.running.load(Ordering::Relaxed),
        queued: s.queued.load(Ordering::Relaxed),
        cancelled: s.cancelled.load(Ordering::Relaxed),
        largest_batch: s.max_batch_seen.load(Ordering::Relaxed),
    })
}

/// OpenAPI document of `ncloudai-gen`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ncloudai_Generation (NetGPT cloud AI function)",
        version = "1.0.0",
        description = "Generation by the cloud LLM for comprehensive prompts from the edge AI functions: \
per-request sampling parameters, an optional LoRA adapter per location or tenant, usage figures. \
Requests are decoded with continuous batching behind a bounded queue (503 NF_CONGESTION with Retry-After when full)."
    ),
    paths(generate, model_status)
)]
pub struct NcloudaiGenApi;

/// Routes of `ncloudai-gen`.
pub fn gen_router(ctx: Arc<CloudAiContext>) -> Router {
    Router::new()
        .route("/ncloudai-gen/v1/generate", post(generate))
        .route("/ncloudai-gen/v1/model", get(model_status))
        .with_state(ctx)
}
