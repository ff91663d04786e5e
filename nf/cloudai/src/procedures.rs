//! The cloud AI function's procedures, shared by the SBI service and the OpenAI-compatible
//! routes: checking a request, admitting it to the engine, collecting its answer. No HTTP.

use std::time::{Duration, Instant};

use netgpt_models::chat::{render_chatml, ChatMessage, Role};
use netgpt_models::generation::{FinishReason, Generation, GenerationConfig};
use tokio::sync::mpsc;

use crate::context::CloudAiContext;
use crate::engine::{Event, Job, SubmitError};

/// Request fields that can be wrong; each route names them its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The prompt or the conversation.
    Prompt,
    /// A message role.
    Role,
    /// Tokens to generate.
    MaxTokens,
    /// Temperature.
    Temperature,
    /// Nucleus mass.
    TopP,
    /// Top-k.
    TopK,
    /// Repetition penalty.
    RepetitionPenalty,
    /// Stop strings.
    Stop,
}

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A field is out of range or missing.
    #[error("{reason}")]
    Invalid {
        /// Which.
        field: Field,
        /// Why.
        reason: String,
    },
    /// No adapter of that name.
    #[error("unknown adapter '{name}' (served: {known})")]
    UnknownAdapter {
        /// The name asked for.
        name: String,
        /// The names served, comma-separated.
        known: String,
    },
    /// The queue is full.
    #[error("{0}")]
    Overloaded(String, Duration),
    /// The model failed or the loop stopped.
    #[error("generation failed: {0}")]
    Failed(String),
}

fn invalid(field: Field, reason: impl Into<String>) -> GenError {
    GenError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Sampling parameters as a request gives them (unchecked).
#[derive(Debug, Clone, Default)]
pub struct Sampling {
    /// Tokens to generate.
    pub max_tokens: Option<i64>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus mass.
    pub top_p: Option<f64>,
    /// Top-k.
    pub top_k: Option<i64>,
    /// Repetition penalty.
    pub repetition_penalty: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
}

/// Default tokens to generate when a request does not say.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Checks `s` against the function's limits and builds the generation settings.
pub fn generation_config(ctx: &CloudAiContext, s: &Sampling) -> Result<GenerationConfig, GenError> {
    let limit = ctx.limits.max_new_tokens;
    let max = match s.max_tokens {
        None => DEFAULT_MAX_TOKENS.min(limit),
        Some(n) if n < 1 => return Err(invalid(Field::MaxTokens, "must be at least 1")),
        Some(n) if n as u64 > limit as u64 => {
            return Err(invalid(
                Field::MaxTokens,
                format!("must be at most {limit}"),
            ))
        }
        Some(n) => n as usize,
    };
    let temperature = s.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid(Field::Temperature, "must be between 0 and 2"));
    }
    if let Some(p) = s.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid(Field::TopP, "must be in (0, 1]"));
        }
    }
    if let Some(k) = s.top_k {
        if k < 1 {
            return Err(invalid(Field::TopK, "must be at least 1"));
        }
    }
    let penalty = s.repetition_penalty.unwrap_or(1.0);
    if !(1.0..=2.0).contains(&penalty) {
        return Err(invalid(Field::RepetitionPenalty, "must be between 1 and 2"));
    }
    if s.stop.len() > 4 || s.stop.iter().any(|x| x.is_empty() || x.len() > 64) {
        return Err(invalid(
            Field::Stop,
            "at most 4 stop strings of 1 to 64 bytes",
        ));
    }
    let mut cfg = GenerationConfig {
        max_new_tokens: max,
        temperature,
        top_p: s.top_p.filter(|p| *p < 1.0),
        top_k: s.top_k.map(|k| k as usize),
        repetition_penalty: penalty as f32,
        stop_sequences: s.stop.clone(),
        stop_token_ids: ctx.stop_ids.clone(),
        ..GenerationConfig::default()
    };
    if let Some(seed) = s.seed {
        cfg.seed = seed;
    }
    Ok(cfg)
}

/// Parses a role name.
pub fn role(name: &str) -> Result<Role, GenError> {
    match name {
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(invalid(
            Field::Role,
            format!("unknown role '{other}' (system, user, assistant)"),
        )),
    }
}

/// A request admitted to the engine.
pub struct Admitted {
    /// Its text pieces and result.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Prompt length after the chat template.
    pub prompt_tokens: usize,
    /// The model-call span (`generate <model>`, GenAI attributes): a child of the request's
    /// server span; [`collect`] records the output tokens and closes it.
    pub span: tracing::Span,
}

/// Checks the conversation and adapter, tokenises, and queues the request; refuses at once
/// when the queue is full.
pub fn admit(
    ctx: &CloudAiContext,
    messages: Vec<ChatMessage>,
    cfg: GenerationConfig,
    adapter: Option<&str>,
) -> Result<Admitted, GenError> {
    if messages.is_empty() || messages.iter().all(|m| m.content.trim().is_empty()) {
        return Err(invalid(Field::Prompt, "empty prompt"));
    }
    let adapter = match adapter {
        None => None,
        Some(name) => match ctx.adapters.get(name) {
            Some(a) => Some((name.to_owned(), a.clone())),
            None => {
                let known: Vec<&str> = ctx.adapters.keys().map(String::as_str).collect();
                return Err(GenError::UnknownAdapter {
                    name: name.to_owned(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        },
    };
    let text = render_chatml(&messages, true);
    // Cheap bound before tokenising: a token is at least one byte... of at most a few dozen.
    let limit = ctx.limits.max_prompt_tokens.min(ctx.context_length - 1);
    if text.len() > limit * 64 {
        return Err(invalid(
            Field::Prompt,
            format!("prompt too long (limit {limit} tokens)"),
        ));
    }
    let prompt = netgpt_models::tokenizer::encode(&ctx.tokenizer, &text)
        .map_err(|e| GenError::Failed(e.to_string()))?;
    if prompt.len() > limit {
        return Err(invalid(
            Field::Prompt,
            format!(
                "prompt of {} tokens exceeds the limit of {limit}",
                prompt.len()
            ),
        ));
    }
    let prompt_tokens = prompt.len();
    let span = tracing::info_span!(
        "gen_ai_generate",
        otel.name = %format_args!("generate {}", ctx.model_id),
        otel.status_code = tracing::field::Empty,
        "gen_ai.operation.name" = "generate",
        "gen_ai.request.model" = %ctx.model_id,
        "gen_ai.request.max_tokens" = cfg.max_new_tokens,
        "gen_ai.usage.input_tokens" = prompt_tokens,
        "gen_ai.usage.output_tokens" = tracing::field::Empty,
        "gen_ai.response.finish_reasons" = tracing::field::Empty,
        adapter = adapter.as_ref().map_or("", |(name, _)| name.as_str()),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.engine
        .submit(Job {
            prompt,
            cfg,
            adapter,
            arrived: Instant::now(),
            events: tx,
        })
        .map_err(|e| match e {
            SubmitError::Overloaded { retry_after, .. } => {
                GenError::Overloaded(e.to_string(), retry_after)
            }
            SubmitError::Stopped => GenError::Failed(e.to_string()),
        })?;
    Ok(Admitted {
        events: rx,
        prompt_tokens,
        span,
    })
}

/// Waits for the end of an admitted request (its pieces are dropped: the result has the
/// text) and records its token counts on the model-call span.
pub async fn collect(admitted: Admitted) -> Result<Generation, GenError> {
    let Admitted {
        mut events, span, ..
    } = admitted;
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Text(_) => {}
            Event::Done(g) => {
                span.record("gen_ai.usage.output_tokens", g.usage.completion_tokens);
                span.record(
                    "gen_ai.response.finish_reasons",
                    finish_reason(g.finish_reason),
                );
                return Ok(g);
            }
            Event::Failed(e) => {
                span.record("otel.status_code", "error");
                return Err(GenError::Failed(e));
            }
        }
    }
    span.record("otel.status_code", "error");
    Err(GenError::Failed("the decode loop stopped".into()))
}

/// `stop`, `length` (or `cancelled`), as both APIs name them.
pub fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}
