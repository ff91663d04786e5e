//! The `nedgeai-prompt` SBI service — routes and OpenAPI annotations only; every handler
//! calls one procedure and turns its result into a response.
//!
//! Each operation of the NetGPT edge pipeline is usable alone and as a workflow step of the
//! CmP (`edge.desensitize`, `edge.dedup`, `edge.complete`, `edge.policy`, `edge.answer`);
//! `ue-prompts` runs the whole chain for one UE's prompt.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use netgpt_sbi::{ProblemDetails, SbiJson, SbiPath};
use utoipa::OpenApi;

use crate::context::EdgeAiContext;
use crate::frameworks::{self, EdgeGenerateRequest, EdgeGenerateResponse};
use crate::procedures;
use crate::types::*;

type Ctx = State<Arc<EdgeAiContext>>;

const BAD: &str = "Empty or oversized prompt, invalid parameter";

/// Finds personal data in a prompt and replaces it with placeholders; the values stay here.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/desensitize", operation_id = "Desensitize",
    tag = "Prompt pipeline", request_body = DesensitizeRequest,
    responses(
        (status = 200, description = "The prompt with placeholders, and what was found by kind", body = DesensitizeResponse),
        (status = 400, description = BAD, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn desensitize(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<DesensitizeRequest>,
) -> Result<Json<DesensitizeResponse>, ProblemDetails> {
    procedures::desensitize(&ctx, &req).map(Json)
}

/// Puts the user's values back in place of the placeholders of a desensitised prompt.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/restore", operation_id = "Restore",
    tag = "Prompt pipeline", request_body = RestoreRequest,
    responses(
        (status = 200, description = "The restored text", body = RestoreResponse),
        (status = 404, description = "Unknown or expired restoreId", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON or an invalid field", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn restore(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<RestoreRequest>,
) -> Result<Json<RestoreResponse>, ProblemDetails> {
    procedures::restore(&ctx, &req).map(Json)
}

/// Classifies a prompt against the site's recent ones (exact, normalised, near duplicate).
#[utoipa::path(post, path = "/nedgeai-prompt/v1/dedup", operation_id = "Dedup",
    tag = "Prompt pipeline", request_body = DedupRequest,
    responses(
        (status = 200, description = "Duplicate class and the representative prompt", body = DedupResponse),
        (status = 400, description = BAD, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn dedup(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<DedupRequest>,
) -> Result<Json<DedupResponse>, ProblemDetails> {
    procedures::dedup(&ctx, &req).map(Json)
}

/// The edge model turns a concise prompt into a comprehensive one carrying this site's facts
/// (the UE's cell from `location` or from the AMF, and the user's profile).
#[utoipa::path(post, path = "/nedgeai-prompt/v1/complete", operation_id = "Complete",
    tag = "Prompt pipeline", request_body = CompleteRequest,
    responses(
        (status = 200, description = "The comprehensive prompt", body = CompleteResponse),
        (status = 400, description = "Bad prompt or SUPI, or a location outside this site", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "The UE is not registered in the AMF", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn complete(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<CompleteRequest>,
) -> Result<Json<CompleteResponse>, ProblemDetails> {
    procedures::complete(&ctx, &req).await.map(Json)
}

/// Checks a prompt against the data policy before it leaves the edge.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/policy", operation_id = "PolicyCheck",
    tag = "Prompt pipeline", request_body = PolicyRequest,
    responses(
        (status = 200, description = "ALLOW: the prompt may be sent", body = PolicyResponse),
        (status = 400, description = BAD, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "POLICY_DENIED: the reason, and each matching rule in invalidParams", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn policy(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<PolicyRequest>,
) -> Result<Json<PolicyResponse>, ProblemDetails> {
    procedures::policy_op(&ctx, &req).await.map(Json)
}

/// Answers at the edge when a rule allows it (cache hit, place lookup); else says so.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/answer", operation_id = "AnswerAtEdge",
    tag = "Prompt pipeline", request_body = AnswerRequest,
    responses(
        (status = 200, description = "The edge's answer, or answeredAtEdge = false", body = AnswerResponse),
        (status = 400, description = BAD, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn answer(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<AnswerRequest>,
) -> Result<Json<AnswerResponse>, ProblemDetails> {
    procedures::answer(&ctx, &req).map(Json)
}

/// A UE's concise prompt through the whole NetGPT chain: location, desensitisation, dedup,
/// completion, policy, the edge's or the cloud's answer. A UE served by another site is
/// handed to that site's edge function.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/ue-prompts", operation_id = "UePrompt",
    tag = "UE entry point", request_body = UePromptRequest,
    responses(
        (status = 200, description = "The answer and what the edge did", body = UePromptResponse),
        (status = 400, description = "Bad SUPI, prompt or maxTokens", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "POLICY_DENIED", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "The UE is not registered in the AMF", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "A peer failed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "The cloud AI function is congested or absent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn ue_prompt(
    State(ctx): Ctx,
    headers: HeaderMap,
    SbiJson(req): SbiJson<UePromptRequest>,
) -> Result<Json<UePromptResponse>, ProblemDetails> {
    let forwarded = headers.contains_key(procedures::FORWARDED_HEADER);
    procedures::ue_prompt(&ctx, &req, forwarded).await.map(Json)
}

/// LLM offload: the cloud model itself answers at this edge site (loaded on first use).
#[utoipa::path(post, path = "/nedgeai-prompt/v1/generate", operation_id = "OffloadGenerate",
    tag = "Frameworks compared with NetGPT", request_body = EdgeGenerateRequest,
    responses(
        (status = 200, description = "The answer, generated at the edge", body = EdgeGenerateResponse),
        (status = 400, description = "Bad prompt or maxTokens", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "No cloud model at this edge", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn offload_generate(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<EdgeGenerateRequest>,
) -> Result<Json<EdgeGenerateResponse>, ProblemDetails> {
    frameworks::offload(&ctx, &req).await.map(Json)
}

/// LLM splitting: the cloud model's first layers run here, the hidden states go to the cloud
/// AI function (`ncloudai-split`), which runs the rest, token by token.
#[utoipa::path(post, path = "/nedgeai-prompt/v1/split-generate", operation_id = "SplitGenerate",
    tag = "Frameworks compared with NetGPT", request_body = EdgeGenerateRequest,
    responses(
        (status = 200, description = "The answer, with the bytes that crossed to the cloud", body = EdgeGenerateResponse),
        (status = 400, description = "Bad prompt, maxTokens or splitLayer", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "No cloud model at this edge, or no split service in the cloud", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn split_generate(
    State(ctx): Ctx,
    SbiJson(req): SbiJson<EdgeGenerateRequest>,
) -> Result<Json<EdgeGenerateResponse>, ProblemDetails> {
    frameworks::split(&ctx, &req).await.map(Json)
}

/// Stores a UE's profile (preferences kept at the edge).
#[utoipa::path(put, path = "/nedgeai-prompt/v1/user-profiles/{supi}", operation_id = "UserProfilePut",
    tag = "User profiles",
    params(("supi" = String, Path, description = "SUPI, imsi-<5..15 digits>", pattern = "^imsi-[0-9]{5,15}$", example = "imsi-001010000000002")),
    request_body = UserProfile,
    responses(
        (status = 201, description = "Created", body = UserProfile),
        (status = 200, description = "Replaced", body = UserProfile),
        (status = 400, description = "Bad SUPI or profile (personal data in a preference)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn put_profile(
    State(ctx): Ctx,
    SbiPath(supi): SbiPath<String>,
    SbiJson(p): SbiJson<UserProfile>,
) -> Result<Response, ProblemDetails> {
    let created = procedures::put_profile(&ctx, &supi, &p).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(p)).into_response())
}

/// Reads a UE's profile.
#[utoipa::path(get, path = "/nedgeai-prompt/v1/user-profiles/{supi}", operation_id = "UserProfileGet",
    tag = "User profiles",
    params(("supi" = String, Path, description = "SUPI", pattern = "^imsi-[0-9]{5,15}$")),
    responses(
        (status = 200, description = "The profile", body = UserProfile),
        (status = 400, description = "Malformed SUPI", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No profile", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn get_profile(
    State(ctx): Ctx,
    SbiPath(supi): SbiPath<String>,
) -> Result<Json<UserProfile>, ProblemDetails> {
    procedures::get_profile(&ctx, &supi).await.map(Json)
}

/// Deletes a UE's profile.
#[utoipa::path(delete, path = "/nedgeai-prompt/v1/user-profiles/{supi}", operation_id = "UserProfileDelete",
    tag = "User profiles",
    params(("supi" = String, Path, description = "SUPI", pattern = "^imsi-[0-9]{5,15}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed SUPI", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No profile", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn delete_profile(
    State(ctx): Ctx,
    SbiPath(supi): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    procedures::delete_profile(&ctx, &supi)
        .await
        .map(|_| StatusCode::NO_CONTENT)
}

/// The site, model, batching and the dedup/cache/upstream counters.
#[utoipa::path(get, path = "/nedgeai-prompt/v1/status", operation_id = "EdgeStatus",
    tag = "Status",
    responses((status = 200, description = "Status", body = EdgeStatus)))]
pub async fn status(State(ctx): Ctx) -> Json<EdgeStatus> {
    Json(procedures::status(&ctx))
}

/// OpenAPI document of `nedgeai-prompt`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nedgeai_Prompt (NetGPT edge AI function)",
        version = "1.0.0",
        description = "The NetGPT edge pipeline of one edge site: desensitisation, dedup, prompt completion by \
the edge LLM with the UE's location and the site's facts, data policy, answers at the edge, and a UE entry \
point running the whole chain."
    ),
    paths(
        desensitize,
        restore,
        dedup,
        complete,
        policy,
        answer,
        ue_prompt,
        offload_generate,
        split_generate,
        put_profile,
        get_profile,
        delete_profile,
        status
    )
)]
pub struct NedgeaiPromptApi;

/// Routes of `nedgeai-prompt`.
pub fn prompt_router(ctx: Arc<EdgeAiContext>) -> Router {
    Router::new()
        .route("/nedgeai-prompt/v1/desensitize", post(desensitize))
        .route("/nedgeai-prompt/v1/restore", post(restore))
        .route("/nedgeai-prompt/v1/dedup", post(dedup))
        .route("/nedgeai-prompt/v1/complete", post(complete))
        .route("/nedgeai-prompt/v1/policy", post(policy))
        .route("/nedgeai-prompt/v1/answer", post(answer))
        .route("/nedgeai-prompt/v1/ue-prompts", post(ue_prompt))
        .route("/nedgeai-prompt/v1/generate", post(offload_generate))
        .route("/nedgeai-prompt/v1/split-generate", post(split_generate))
        .route(
            "/nedgeai-prompt/v1/user-profiles/{supi}",
            put(put_profile).get(get_profile).delete(delete_profile),
        )
        .route("/nedgeai-prompt/v1/status", get(status))
        .with_state(ctx)
}
