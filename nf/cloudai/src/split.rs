//! The `ncloudai-split` SBI service: split inference of the cloud LLM, the edge running the
//! first `k` layers and this function the rest (see [`netgpt_models::llama_split`]).
//!
//! - `POST /ncloudai-split/v1/sessions`: the edge sends the split layer and its hidden states
//!   for the prompt (`[T, hidden]`, the wire format of `llama_split`, base64); the cloud half
//!   prefills them into a new session's KV cache and samples the first token (201).
//! - `POST /ncloudai-split/v1/sessions/{sessionId}/steps`: one more position (`[1, hidden]`,
//!   the edge half's output for the last token) → the next token.
//! - `DELETE /ncloudai-split/v1/sessions/{sessionId}`: ends a session early (204).
//!
//! A session holds the cloud-side KV cache and the sampler. It ends by itself when it
//! finishes (stop token or string, `maxTokens`), and after [`SplitLimits::idle_ttl`] without
//! a request; at most [`SplitLimits::max_sessions`] live at once (503 `NF_CONGESTION`
//! beyond). The cloud half runs on the weights the continuous-batching engine decodes with
//! (read-only, shared), on tokio's blocking pool — the engine's decode thread is untouched.
//!
//! [`generate_split_remote`] is the edge side of the protocol, for the experiments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use base64::Engine as _;
use candle_core::Tensor;
use netgpt_models::generation::Sequence;
use netgpt_models::llama::KvCache;
use netgpt_models::llama_split::{decode_hidden, CloudHalf, EdgeHalf};
use netgpt_sbi::{ClientError, ProblemDetails, SbiClient, SbiJson, SbiPath};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;
use utoipa::{OpenApi, ToSchema};

use crate::context::CloudAiContext;
use crate::procedures::{self, Field, GenError, Sampling};

/// The 3GPP-style name of the service (registered in the NRF).
pub const SERVICE: &str = "ncloudai-split";

/// Starts a split session: the prompt's hidden states after the edge's layers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitSessionRequest {
    /// The split layer `k` (1 to layers - 1): the edge ran layers `0..k`, the cloud runs the
    /// rest.
    #[schema(example = 15)]
    pub split_layer: i64,
    /// Base64 of the hidden states `[T, hidden]` in the `llama_split` wire format: u32 rows,
    /// u32 cols (little-endian), then rows × cols f16 (or f32) little-endian values.
    pub hidden: String,
    /// Most tokens to generate (1 to the function's limit).
    #[schema(example = 32)]
    pub max_tokens: i64,
    /// Sampling temperature, 0 (greedy, the default) to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Stop strings (at most 4, 1 to 64 bytes); generation also stops at end of turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Seed of the sampler (same seed, same hidden states: same tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One decode step: the hidden state of the last token after the edge's layers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitStepRequest {
    /// Base64 of the hidden states `[1, hidden]` (same wire format as the session's).
    pub hidden: String,
}

/// The token the cloud half sampled.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SplitToken {
    /// The session (to address its steps).
    pub session_id: String,
    /// The token id: the edge feeds it through its layers for the next step.
    pub token: u32,
    /// Text that became final with this token (may be empty; never part of a stop string).
    pub text: String,
    /// Whether the session ended with this token (it is then gone).
    pub finished: bool,
    /// `stop` (end of turn or a stop string) or `length` (`maxTokens` or the context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Bounds on the sessions the function keeps.
#[derive(Debug, Clone)]
pub struct SplitLimits {
    /// Most sessions alive at once.
    pub max_sessions: usize,
    /// A session without a request for this long is dropped.
    pub idle_ttl: Duration,
}

impl Default for SplitLimits {
    fn default() -> Self {
        Self {
            max_sessions: 16,
            idle_ttl: Duration::from_secs(120),
        }
    }
}

/// The cloud side of one split generation.
struct Session {
    cache: KvCache,
    seq: Sequence<()>,
    cloud: CloudHalf,
}

struct Entry {
    session: Arc<Mutex<Option<Session>>>,
    last_used: Instant,
}

#[derive(Default)]
struct Store {
    sessions: HashMap<String, Entry>,
    /// Sessions being created (counted against the limit before their prefill).
    reserved: usize,
}

/// The service's state: the function's context and the live sessions.
pub struct SplitState {
    ctx: Arc<CloudAiContext>,
    limits: SplitLimits,
    store: Mutex<Store>,
}

impl SplitState {
    /// Sessions alive now.
    pub fn sessions(&self) -> usize {
        self.store.lock().expect("split store").sessions.len()
    }

    fn purge(&self, store: &mut Store) {
        let ttl = self.limits.idle_ttl;
        store.sessions.retain(|_, e| e.last_used.elapsed() <= ttl);
    }
}

type St = State<Arc<SplitState>>;

fn not_found(id: &str) -> ProblemDetails {
    ProblemDetails::not_found(
        "CONTEXT_NOT_FOUND",
        format!("no split session '{id}' (unknown, finished, ended or idle too long)"),
    )
}

/// Decodes the base64 `hidden` field into `[rows, width]` f32.
fn hidden_of(b64: &str, width: usize) -> Result<Tensor, ProblemDetails> {
    let bad = |r: String| ProblemDetails::invalid_param("hidden", r);
    if b64.is_empty() {
        return Err(bad("empty".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| bad(format!("not base64: {e}")))?;
    let t = decode_hidden(&bytes, &candle_core::Device::Cpu).map_err(|e| bad(e.to_string()))?;
    let (_, cols) = t.dims2().map_err(|e| bad(e.to_string()))?;
    if cols != width {
        return Err(bad(format!(
            "hidden states are {cols} wide, the model's are {width}"
        )));
    }
    Ok(t)
}

fn gen_problem(e: GenError) -> ProblemDetails {
    match e {
        GenError::Invalid { field, reason } => {
            let name = match field {
                Field::MaxTokens => "maxTokens",
                Field::Temperature => "temperature",
                Field::Stop => "stop",
                _ => "body",
            };
            ProblemDetails::invalid_param(name, reason)
        }
        other => ProblemDetails::from(other),
    }
}

fn model_problem(e: netgpt_models::Error) -> ProblemDetails {
    match e {
        netgpt_models::Error::Invalid(r) => ProblemDetails::invalid_param("hidden", r),
        other => ProblemDetails::internal(format!("cloud half: {other}")),
    }
}

/// Feeds `hidden` to the session and samples; the token, its text and how it ended.
fn advance(
    s: &mut Session,
    hidden: &Tensor,
    ctx: &CloudAiContext,
) -> Result<Sampled, ProblemDetails> {
    let rows = hidden.dims2().map_err(|e| model_problem(e.into()))?.0;
    let logits = s
        .cloud
        .forward(hidden, &mut s.cache)
        .map_err(model_problem)?;
    let step = s
        .seq
        .accept(rows, logits, ctx.tokenizer.as_ref(), ctx.context_length)
        .map_err(model_problem)?;
    Ok(Sampled {
        text: step.text,
        finished: step.finished.map(procedures::finish_reason),
        // The sampled token is what the sequence will feed next, unless it ended.
        token: s.seq.next_input(1).first().copied(),
    })
}

struct Sampled {
    text: String,
    finished: Option<&'static str>,
    token: Option<u32>,
}

/// Finishes the answer: the last token of an ended sequence comes from its result.
fn token_of(sampled: &Sampled, session: Option<Session>) -> u32 {
    match (sampled.token, session) {
        (Some(t), _) if sampled.finished.is_none() => t,
        (_, Some(s)) => s.seq.finish().tokens.last().copied().unwrap_or_default(),
        (t, None) => t.unwrap_or_default(),
    }
}

/// Starts a split session: the cloud half prefills the edge's hidden states for the prompt
/// and samples the first token.
#[utoipa::path(post, path = "/ncloudai-split/v1/sessions", operation_id = "CreateSplitSession",
    tag = "Split inference",
    request_body = SplitSessionRequest,
    responses(
        (status = 201, description = "Session created; the first token", body = SplitToken,
            headers(("Location" = String, description = "URI of the session"))),
        (status = 400, description = "Split layer out of range, hidden states not base64, of the wrong width or empty, invalid sampling parameter", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The model failed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "NF_CONGESTION: too many sessions; retry after the Retry-After header", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn create_session(
    State(st): St,
    SbiJson(req): SbiJson<SplitSessionRequest>,
) -> Result<Response, ProblemDetails> {
    let ctx = st.ctx.clone();
    let layers = ctx.model.config().num_hidden_layers as i64;
    if req.split_layer < 1 || req.split_layer >= layers {
        return Err(ProblemDetails::invalid_param(
            "splitLayer",
            format!(
                "must be between 1 and {} (the model has {layers} layers)",
                layers - 1
            ),
        ));
    }
    let hidden = hidden_of(&req.hidden, ctx.model.config().hidden_size)?;
    let rows = hidden.dims2().map_err(|e| model_problem(e.into()))?.0;
    let limit = ctx.limits.max_prompt_tokens.min(ctx.context_length - 1);
    if rows > limit {
        return Err(ProblemDetails::invalid_param(
            "hidden",
            format!("{rows} positions exceed the prompt limit of {limit}"),
        ));
    }
    let cfg = procedures::generation_config(
        &ctx,
        &Sampling {
            max_tokens: Some(req.max_tokens),
            temperature: req.temperature,
            seed: req.seed,
            stop: req.stop.clone().unwrap_or_default(),
            ..Sampling::default()
        },
    )
    .map_err(gen_problem)?;
    {
        let mut store = st.store.lock().expect("split store");
        st.purge(&mut store);
        if store.sessions.len() + store.reserved >= st.limits.max_sessions {
            return Err(ProblemDetails::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_CONGESTION",
                format!(
                    "{} split sessions are open (the limit)",
                    st.limits.max_sessions
                ),
            )
            .with_retry_after(1));
        }
        store.reserved += 1;
    }
    let k = req.split_layer as usize;
    let work_ctx = ctx.clone();
    let made = tokio::task::spawn_blocking(move || {
        let cloud = CloudHalf::new(work_ctx.model.clone(), k).map_err(model_problem)?;
        // The cloud never sees the prompt's tokens, only their hidden states: the sequence
        // gets placeholders that count positions (hence no repetition penalty here).
        let seq = Sequence::new(
            vec![0; rows],
            cfg,
            (),
            work_ctx.context_length,
            Instant::now(),
        )
        .map_err(model_problem)?;
        let mut s = Session {
            cache: cloud.new_cache(),
            seq,
            cloud,
        };
        let sampled = advance(&mut s, &hidden, &work_ctx)?;
        Ok::<_, ProblemDetails>((s, sampled))
    })
    .await
    .map_err(|e| ProblemDetails::internal(format!("cloud half: {e}")));
    let mut store = st.store.lock().expect("split store");
    store.reserved -= 1;
    let (session, sampled) = made??;
    let id = uuid::Uuid::new_v4().to_string();
    let token = if sampled.finished.is_some() {
        token_of(&sampled, Some(session))
    } else {
        store.sessions.insert(
            id.clone(),
            Entry {
                session: Arc::new(Mutex::new(Some(session))),
                last_used: Instant::now(),
            },
        );
        token_of(&sampled, None)
    };
    drop(store);
    let body = SplitToken {
        session_id: id.clone(),
        token,
        text: sampled.text,
        finished: sampled.finished.is_some(),
        finish_reason: sampled.finished.map(str::to_owned),
    };
    // Relative: the function does not know the name it is reached by (RFC 9110 allows it).
    let location = format!("/ncloudai-split/v1/sessions/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Feeds the hidden state of the last token and samples the next one.
#[utoipa::path(post, path = "/ncloudai-split/v1/sessions/{sessionId}/steps", operation_id = "SplitStep",
    tag = "Split inference",
    params(("sessionId" = String, Path, description = "The session")),
    request_body = SplitStepRequest,
    responses(
        (status = 200, description = "The next token", body = SplitToken),
        (status = 400, description = "Hidden states not base64, of the wrong width, or not one position", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "CONTEXT_NOT_FOUND: unknown, finished, ended or expired session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The model failed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn step(
    State(st): St,
    SbiPath(id): SbiPath<String>,
    SbiJson(req): SbiJson<SplitStepRequest>,
) -> Result<Json<SplitToken>, ProblemDetails> {
    let slot = {
        let mut store = st.store.lock().expect("split store");
        st.purge(&mut store);
        let e = store.sessions.get_mut(&id).ok_or_else(|| not_found(&id))?;
        e.last_used = Instant::now();
        e.session.clone()
    };
    let hidden = hidden_of(&req.hidden, st.ctx.model.config().hidden_size)?;
    let rows = hidden.dims2().map_err(|e| model_problem(e.into()))?.0;
    if rows != 1 {
        return Err(ProblemDetails::invalid_param(
            "hidden",
            format!("a step carries one position ([1, hidden]), not {rows}"),
        ));
    }
    let ctx = st.ctx.clone();
    let missing = id.clone();
    let (sampled, ended) = tokio::task::spawn_blocking(move || {
        let mut guard = slot.lock().expect("split session");
        let s = guard.as_mut().ok_or_else(|| not_found(&missing))?;
        let sampled = advance(s, &hidden, &ctx)?;
        let ended = if sampled.finished.is_some() {
            guard.take()
        } else {
            None
        };
        Ok::<_, ProblemDetails>((sampled, ended))
    })
    .await
    .map_err(|e| ProblemDetails::internal(format!("cloud half: {e}")))??;
    if sampled.finished.is_some() {
        st.store.lock().expect("split store").sessions.remove(&id);
    }
    let token = token_of(&sampled, ended);
    Ok(Json(SplitToken {
        session_id: id,
        token,
        text: sampled.text,
        finished: sampled.finished.is_some(),
        finish_reason: sampled.finished.map(str::to_owned),
    }))
}

/// Ends a session before it finished (its KV cache is dropped).
#[utoipa::path(delete, path = "/ncloudai-split/v1/sessions/{sessionId}", operation_id = "DeleteSplitSession",
    tag = "Split inference",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "CONTEXT_NOT_FOUND: unknown, finished, ended or expired session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(st): St,
    SbiPath(id): SbiPath<String>,
) -> Result<StatusCode, ProblemDetails> {
    let mut store = st.store.lock().expect("split store");
    st.purge(&mut store);
    match store.sessions.remove(&id) {
        Some(e) => {
            // A step in flight finds the slot empty and answers 404.
            if let Ok(mut s) = e.session.try_lock() {
                s.take();
            }
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(not_found(&id)),
    }
}

/// OpenAPI document of `ncloudai-split`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ncloudai_Split (NetGPT cloud AI function)",
        version = "1.0.0",
        description = "Split inference of the cloud LLM: the edge runs the token embedding and the first k decoder \
layers and sends the hidden states (f16 or f32, base64); the cloud runs the remaining layers and the output head in a \
session holding its half of the KV cache, and returns one token per step. Sessions are bounded in number \
(503 NF_CONGESTION) and dropped when idle (404)."
    ),
    paths(create_session, step, delete_session)
)]
pub struct NcloudaiSplitApi;

/// Routes of `ncloudai-split` with the default [`SplitLimits`].
pub fn split_router(ctx: Arc<CloudAiContext>) -> Router {
    split_router_with(ctx, SplitLimits::default())
}

/// Routes of `ncloudai-split` with the given limits.
pub fn split_router_with(ctx: Arc<CloudAiContext>, limits: SplitLimits) -> Router {
    let state = Arc::new(SplitState {
        ctx,
        limits,
        store: Mutex::new(Store::default()),
    });
    Router::new()
        .route("/ncloudai-split/v1/sessions", post(create_session))
        .route("/ncloudai-split/v1/sessions/{sessionId}/steps", post(step))
        .route(
            "/ncloudai-split/v1/sessions/{sessionId}",
            delete(delete_session),
        )
        .with_state(state)
}

/// What a split generation over the SBI cost and produced, seen from the edge.
#[derive(Debug, Clone)]
pub struct SplitOutcome {
    /// The generated text (the cloud's pieces, concatenated).
    pub text: String,
    /// Generated token ids (with a final stop token when one ended it).
    pub tokens: Vec<u32>,
    /// HTTP request body bytes sent (the JSON with the base64 hidden states).
    pub bytes_up: usize,
    /// HTTP response body bytes received.
    pub bytes_down: usize,
    /// Decode steps (requests after the session's creation).
    pub steps: usize,
    /// From the call to the first token (edge prefill + upload + cloud prefill).
    pub ttft: Duration,
    /// Whole call.
    pub total: Duration,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// Why a remote split generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The cloud AI function refused or could not be reached.
    #[error(transparent)]
    Sbi(#[from] ClientError),
    /// The edge half failed.
    #[error("edge half: {0}")]
    Model(#[from] netgpt_models::Error),
    /// The arguments do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// The cloud's answer is not a [`SplitToken`].
    #[error("cloud answer: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The edge side of split inference: runs `edge` over the prompt and each sampled token,
/// sends the hidden states to the `ncloudai-split` service at `api_root`, and collects the
/// tokens until the cloud says the session finished (at `max_tokens` at the latest).
/// `tokenizer` (the model's) checks the prompt ids before anything is sent.
pub async fn generate_split_remote(
    client: &SbiClient,
    api_root: &str,
    edge: &EdgeHalf,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    split_layer: usize,
    max_tokens: usize,
) -> Result<SplitOutcome, SplitError> {
    if split_layer != edge.split_layer() {
        return Err(SplitError::Invalid(format!(
            "the edge half ends at layer {}, not {split_layer}",
            edge.split_layer()
        )));
    }
    if prompt_ids.is_empty() || max_tokens == 0 {
        return Err(SplitError::Invalid(
            "an empty prompt or no tokens to generate".into(),
        ));
    }
    let vocab = tokenizer.get_vocab_size(true) as u32;
    if let Some(bad) = prompt_ids.iter().find(|&&t| t >= vocab) {
        return Err(SplitError::Invalid(format!(
            "token {bad} is outside the tokenizer's vocabulary of {vocab}"
        )));
    }
    let start = Instant::now();
    let root = api_root.trim_end_matches('/');
    let deadline = Duration::from_secs(120);
    let mut cache = edge.new_cache();
    let mut out = SplitOutcome {
        text: String::new(),
        tokens: Vec::new(),
        bytes_up: 0,
        bytes_down: 0,
        steps: 0,
        ttft: Duration::ZERO,
        total: Duration::ZERO,
        finish_reason: String::new(),
    };
    let mut input = prompt_ids.to_vec();
    let mut session: Option<String> = None;
    loop {
        let (hidden, back) = edge_forward(edge, input, cache).await?;
        cache = back;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&hidden);
        let (url, body) = match &session {
            None => (
                format!("{root}/ncloudai-split/v1/sessions"),
                serde_json::to_vec(&SplitSessionRequest {
                    split_layer: split_layer as i64,
                    hidden: b64,
                    max_tokens: max_tokens as i64,
                    temperature: None,
                    stop: None,
                    seed: None,
                })?,
            ),
            Some(id) => (
                format!("{root}/ncloudai-split/v1/sessions/{id}/steps"),
                serde_json::to_vec(&SplitStepRequest { hidden: b64 })?,
            ),
        };
        out.bytes_up += body.len();
        let sent = client
            .post(url)
            .service(SERVICE)
            .deadline(deadline)
            .body(body, "application/json")
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(id) = &session {
                    end_session(client, root, id).await;
                }
                return Err(e.into());
            }
        };
        out.bytes_down += resp.body.len();
        let tok: SplitToken = resp.json()?;
        if session.is_none() {
            out.ttft = start.elapsed();
            session = Some(tok.session_id.clone());
        } else {
            out.steps += 1;
        }
        out.tokens.push(tok.token);
        out.text.push_str(&tok.text);
        if tok.finished {
            out.finish_reason = tok.finish_reason.unwrap_or_default();
            break;
        }
        if out.tokens.len() >= max_tokens {
            // The cloud ends at maxTokens itself; this guards against a peer that does not.
            end_session(client, root, &tok.session_id).await;
            out.finish_reason = "length".into();
            break;
        }
        input = vec![tok.token];
    }
    out.total = start.elapsed();
    Ok(out)
}

/// Runs the edge half on the blocking pool (it is CPU-bound), handing the cache there and back.
async fn edge_forward(
    edge: &EdgeHalf,
    input: Vec<u32>,
    mut cache: KvCache,
) -> Result<(Vec<u8>, KvCache), SplitError> {
    let edge = edge.clone();
    tokio::task::spawn_blocking(move || {
        let wire = edge.forward_encoded(&input, &mut cache)?;
        Ok((wire, cache))
    })
    .await
    .map_err(|e| SplitError::Invalid(format!("edge half: {e}")))?
}

/// Best-effort DELETE of a session the edge gives up on.
async fn end_session(client: &SbiClient, root: &str, id: &str) {
    let url = format!("{root}/ncloudai-split/v1/sessions/{id}");
    if let Err(e) = client.delete(url).service(SERVICE).send().await {
        tracing::debug!("ending split session {id}: {e}");
    }
}
