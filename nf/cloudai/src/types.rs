//! Bodies of the `ncloudai-gen` service (camelCase, as SBI APIs spell them).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One turn of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    #[schema(example = "user")]
    pub role: String,
    /// The turn's text.
    pub content: String,
}

/// Generation request: a prompt (or a conversation) and how to generate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateRequest {
    /// The (comprehensive) prompt, sent as the user turn. Either this or `messages`.
    #[schema(
        example = "I am at King's Cross, London. Recommend libraries open on Sunday near me."
    )]
    pub prompt: Option<String>,
    /// A whole conversation instead of `prompt`.
    pub messages: Option<Vec<Message>>,
    /// System prompt (default: the model's own).
    pub system: Option<String>,
    /// Most tokens to generate (1 to the function's limit; default 256).
    #[schema(example = 64)]
    pub max_tokens: Option<i64>,
    /// Sampling temperature, 0 (greedy, the default) to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: Option<f64>,
    /// Keep only the k most likely tokens (k >= 1).
    pub top_k: Option<i64>,
    /// Repetition penalty, 1 (none, the default) to 2.
    pub repetition_penalty: Option<f64>,
    /// Sampler seed: same seed and prompt, same text.
    pub seed: Option<u64>,
    /// Stop strings (at most 4, not included in the text).
    pub stop: Option<Vec<String>>,
    /// LoRA adapter (per location or tenant) to answer with; the base model when absent.
    #[schema(example = "edge-london")]
    pub adapter: Option<String>,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerationUsage {
    /// Tokens of the prompt after the chat template.
    pub prompt_tokens: usize,
    /// Tokens generated (a final end-of-turn token included).
    pub completion_tokens: usize,
    /// From arrival (queueing included) to the first generated token, ms.
    pub time_to_first_token_ms: f64,
    /// From arrival to the end, ms.
    pub total_ms: f64,
}

/// Generated text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    /// The answer (without stop token or stop string).
    pub text: String,
    /// `stop` (end of turn or a stop string) or `length` (max tokens or context).
    #[schema(example = "stop")]
    pub finish_reason: String,
    /// Base model.
    pub model: String,
    /// The adapter used, if any.
    pub adapter: Option<String>,
    /// Counts and timings.
    pub usage: GenerationUsage,
}

/// The model, its adapters and the serving state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// Base model id.
    pub model: String,
    /// Context length in tokens.
    pub context_length: usize,
    /// Adapters served, by name.
    pub adapters: Vec<String>,
    /// Sequences decoded together at most.
    pub max_batch: usize,
    /// Requests that may wait for a slot.
    pub max_queue: usize,
    /// Longest prompt accepted, tokens.
    pub max_prompt_tokens: usize,
    /// Most tokens one request may generate.
    pub max_new_tokens: usize,
    /// Sequences decoding now.
    pub running: usize,
    /// Requests waiting now.
    pub queued: usize,
    /// Requests that ended because their client went away, since start.
    pub cancelled: u64,
    /// Largest batch decoded so far.
    pub largest_batch: usize,
}
