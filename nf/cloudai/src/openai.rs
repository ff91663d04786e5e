//! OpenAI-compatible routes (`/v1/chat/completions`, `/v1/models`), so existing clients and
//! SDKs work unchanged against the cloud AI function. Streaming uses server-sent events in
//! OpenAI's chunk format, ending with `data: [DONE]`. Errors use OpenAI's error body
//! (`{"error": {"message", "type", "param", "code"}}`), not ProblemDetails: clients parse that.
//!
//! `model` is the base model id or the name of a LoRA adapter (as vLLM serves adapters).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, Stream};
use netgpt_models::chat::ChatMessage;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::context::CloudAiContext;
use crate::engine::Event;
use crate::procedures::{self, Field, GenError, Sampling};

type Ctx = State<Arc<CloudAiContext>>;

/// A message's content: a string or a list of text parts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts; only `{"type": "text", "text": ...}` parts are supported.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ContentPart {
    /// `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A chat message.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OaMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// What it says.
    pub content: Content,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Streaming options.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions` body (fields not listed are accepted and ignored).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// Base model id or adapter name (see `/v1/models`).
    pub model: String,
    /// The conversation.
    pub messages: Vec<OaMessage>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<i64>,
    /// Newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    /// 0 to 2 (default 1 in OpenAI's API; here 0, greedy, when absent).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus mass.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Choices per request: only 1.
    #[serde(default)]
    pub n: Option<i64>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Sampler seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Only 0 is supported.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Only 0 is supported.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
}

/// Token counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OaUsage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

/// The assistant's message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The answer.
    pub content: String,
}

/// One choice of a completion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Choice {
    /// 0.
    pub index: usize,
    /// The answer.
    pub message: AssistantMessage,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// A (non-streamed) chat completion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix time.
    pub created: u64,
    /// The model (or adapter) that answered.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: OaUsage,
}

/// A model or adapter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelCard {
    /// Its id, for `model`.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix time of loading.
    pub created: u64,
    /// `netgpt`.
    pub owned_by: &'static str,
    /// For an adapter: its base model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The base model and each adapter.
    pub data: Vec<ModelCard>,
}

/// OpenAI's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OaErrorBody {
    /// The error.
    pub error: OaError,
}

/// An error as OpenAI reports it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OaError {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The offending parameter.
    pub param: Option<&'static str>,
    /// A code such as `model_not_found`.
    pub code: Option<&'static str>,
}

/// An error response in OpenAI's format.
struct OaFailure {
    status: StatusCode,
    body: OaError,
    retry_after: Option<u64>,
}

impl IntoResponse for OaFailure {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(OaErrorBody { error: self.body })).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

fn bad(message: impl Into<String>, param: Option<&'static str>) -> OaFailure {
    OaFailure {
        status: StatusCode::BAD_REQUEST,
        body: OaError {
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
        },
        retry_after: None,
    }
}

fn oa_name(f: Field) -> &'static str {
    match f {
        Field::Prompt => "messages",
        Field::Role => "messages.role",
        Field::MaxTokens => "max_tokens",
        Field::Temperature => "temperature",
        Field::TopP => "top_p",
        Field::TopK => "top_k",
        Field::RepetitionPenalty => "repetition_penalty",
        Field::Stop => "stop",
    }
}

impl From<GenError> for OaFailure {
    fn from(e: GenError) -> Self {
        match e {
            GenError::Invalid { field, reason } => bad(
                format!("{}: {reason}", oa_name(field)),
                Some(oa_name(field)),
            ),
            GenError::UnknownAdapter { .. } => OaFailure {
                status: StatusCode::NOT_FOUND,
                body: OaError {
                    message: e.to_string(),
                    kind: "invalid_request_error",
                    param: Some("model"),
                    code: Some("model_not_found"),
                },
                retry_after: None,
            },
            GenError::Overloaded(msg, retry) => OaFailure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: OaError {
                    message: msg,
                    kind: "server_overloaded",
                    param: None,
                    code: None,
                },
                retry_after: Some(retry.as_secs().max(1)),
            },
            GenError::Failed(msg) => OaFailure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: OaError {
                    message: msg,
                    kind: "server_error",
                    param: None,
                    code: None,
                },
                retry_after: None,
            },
        }
    }
}

/// Checks the request and admits it; the adapter named by `model`, if any.
fn admit(
    ctx: &CloudAiContext,
    req: &ChatCompletionRequest,
) -> Result<procedures::Admitted, OaFailure> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(bad("n: only 1 choice is supported", Some("n")));
    }
    for (name, v) in [
        ("presence_penalty", req.presence_penalty),
        ("frequency_penalty", req.frequency_penalty),
    ] {
        if v.is_some_and(|v| v != 0.0) {
            return Err(bad(format!("{name}: only 0 is supported"), Some(name)));
        }
    }
    let adapter = if req.model == ctx.model_id {
        None
    } else if ctx.adapters.contains_key(&req.model) {
        Some(req.model.as_str())
    } else {
        return Err(GenError::UnknownAdapter {
            name: req.model.clone(),
            known: std::iter::once(ctx.model_id.as_str())
                .chain(ctx.adapters.keys().map(String::as_str))
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    };
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let text = match &m.content {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => {
                let mut t = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(s)) => t.push_str(s),
                        _ => {
                            return Err(bad(
                                format!("messages: content part '{}' is not supported", p.kind),
                                Some("messages"),
                            ))
                        }
                    }
                }
                t
            }
        };
        messages.push(ChatMessage::new(procedures::role(&m.role)?, text));
    }
    let stop = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    let cfg = procedures::generation_config(
        ctx,
        &Sampling {
            max_tokens: req.max_completion_tokens.or(req.max_tokens),
            temperature: req.temperature,
            top_p: req.top_p,
            stop,
            seed: req.seed,
            ..Sampling::default()
        },
    )?;
    Ok(procedures::admit(ctx, messages, cfg, adapter)?)
}

/// Creates a chat completion (OpenAI-compatible), streamed with `"stream": true`.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "CreateChatCompletion",
    tag = "OpenAI-compatible",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion, or with `stream` an event stream of `chat.completion.chunk` objects ending with `data: [DONE]`",
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Invalid request", body = OaErrorBody),
        (status = 404, description = "Unknown model or adapter (code model_not_found)", body = OaErrorBody),
        (status = 413, description = "Body too large", body = OaErrorBody),
        (status = 503, description = "Overloaded; retry after the Retry-After header", body = OaErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn chat_completions(State(ctx): Ctx, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let mut f = bad(rej.body_text(), None);
            f.status = rej.status();
            return f.into_response();
        }
    };
    let req: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid JSON body: {e}"), None).into_response(),
    };
    let admitted = match admit(&ctx, &req) {
        Ok(a) => a,
        Err(f) => return f.into_response(),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if req.stream.unwrap_or(false) {
        let usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let chunks = chunk_stream(admitted, id, created, req.model.clone(), usage);
        return Sse::new(chunks)
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    match procedures::collect(admitted).await {
        Ok(g) => Json(ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model: req.model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: g.text,
                },
                finish_reason: procedures::finish_reason(g.finish_reason),
            }],
            usage: OaUsage {
                prompt_tokens: g.usage.prompt_tokens,
                completion_tokens: g.usage.completion_tokens,
                total_tokens: g.usage.prompt_tokens + g.usage.completion_tokens,
            },
        })
        .into_response(),
        Err(e) => OaFailure::from(e).into_response(),
    }
}

/// The SSE stream of one admitted request. Dropping it (the client went away) drops the
/// receiver, and the engine takes the sequence out of the batch before its next step.
fn chunk_stream(
    admitted: procedures::Admitted,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let chunk = move |delta: serde_json::Value,
                      finish: Option<&str>,
                      usage: Option<serde_json::Value>| {
        let choices = if usage.is_some() {
            serde_json::json!([])
        } else {
            serde_json::json!([{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }])
        };
        let mut v = serde_json::json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        SseEvent::default().data(v.to_string())
    };
    enum State {
        Start,
        Streaming,
        Done,
    }
    stream::unfold(
        (admitted.events, State::Start, Vec::<SseEvent>::new()),
        move |(mut rx, state, mut queued)| {
            let chunk = chunk.clone();
            async move {
                if let Some(ev) = queued.pop() {
                    return Some((Ok(ev), (rx, state, queued)));
                }
                match state {
                    State::Start => {
                        let ev = chunk(
                            serde_json::json!({"role": "assistant", "content": ""}),
                            None,
                            None,
                        );
                        Some((Ok(ev), (rx, State::Streaming, queued)))
                    }
                    State::Done => None,
                    State::Streaming => match rx.recv().await {
                        Some(Event::Text(t)) => {
                            let ev = chunk(serde_json::json!({ "content": t }), None, None);
                            Some((Ok(ev), (rx, State::Streaming, queued)))
                        }
                        Some(Event::Done(g)) => {
                            // Sent in reverse order of the pops: finish, usage, [DONE].
                            queued.push(SseEvent::default().data("[DONE]"));
                            if include_usage {
                                let u = &g.usage;
                                queued.push(chunk(
                                    serde_json::json!({}),
                                    None,
                                    Some(serde_json::json!({
                                        "prompt_tokens": u.prompt_tokens,
                                        "completion_tokens": u.completion_tokens,
                                        "total_tokens": u.prompt_tokens + u.completion_tokens,
                                    })),
                                ));
                            }
                            let ev = chunk(
                                serde_json::json!({}),
                                Some(procedures::finish_reason(g.finish_reason)),
                                None,
                            );
                            Some((Ok(ev), (rx, State::Done, queued)))
                        }
                        Some(Event::Failed(e)) => {
                            let v = serde_json::json!({ "error": {
                                "message": e, "type": "server_error", "param": null, "code": null,
                            }});
                            queued.push(SseEvent::default().data("[DONE]"));
                            let ev = SseEvent::default().data(v.to_string());
                            Some((Ok(ev), (rx, State::Done, queued)))
                        }
                        None => None,
                    },
                }
            }
        },
    )
}

/// The base model and its adapters, as OpenAI lists models.
#[utoipa::path(get, path = "/v1/models", operation_id = "ListModels", tag = "OpenAI-compatible",
    responses((status = 200, description = "The base model and each adapter", body = ModelList)))]
pub async fn list_models(State(ctx): Ctx) -> Json<ModelList> {
    let card = |id: &str, parent: Option<String>| ModelCard {
        id: id.to_owned(),
        object: "model",
        created: ctx.created,
        owned_by: "netgpt",
        parent,
    };
    let mut data = vec![card(&ctx.model_id, None)];
    data.extend(
        ctx.adapters
            .keys()
            .map(|a| card(a, Some(ctx.model_id.clone()))),
    );
    Json(ModelList {
        object: "list",
        data,
    })
}

/// OpenAPI document of the OpenAI-compatible routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenAI-compatible API (NetGPT cloud AI function)",
        version = "1.0.0",
        description = "A subset of OpenAI's Chat Completions API (non-streamed and streamed as server-sent events) \
and model list, served by the same continuous-batching engine as ncloudai-gen. `model` is the base model id or a \
LoRA adapter name. Errors use OpenAI's error body."
    ),
    paths(chat_completions, list_models)
)]
pub struct OpenAiApi;

/// Routes of the OpenAI-compatible API.
pub fn openai_router(ctx: Arc<CloudAiContext>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
        .with_state(ctx)
}
