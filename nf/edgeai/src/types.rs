//! Bodies of the `nedgeai-prompt` and `nedgeai-analytics` services.

use std::collections::BTreeMap;

use netgpt_sbi::models::namf::ProvideLocInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dedup::DuplicateKind;
use crate::pii::{PiiFinding, PiiKind};
use crate::policy::{PolicyDecision, RuleHit};

/// A prompt to desensitise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesensitizeRequest {
    /// The user's prompt, as typed.
    pub prompt: String,
}

/// The prompt with personal data replaced by placeholders.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesensitizeResponse {
    /// The prompt with placeholders (`[PHONE_1]`, `[PERSON_1]`, ...): what may leave the edge.
    pub prompt: String,
    /// What was found, where (byte offsets in the original) and its placeholder.
    pub findings: Vec<PiiFinding>,
    /// Findings by kind.
    pub counts: BTreeMap<PiiKind, usize>,
    /// Handle of the placeholder -> value map kept at the edge (for `restore`); absent when
    /// nothing was found. Kept for `restoreTtlS` seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
}

/// Text whose placeholders are to be restored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// Text with placeholders (e.g. the cloud's answer).
    pub text: String,
    /// The `restoreId` that `desensitize` returned.
    pub restore_id: String,
}

/// Text with the original values back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResponse {
    /// The restored text.
    pub text: String,
}

/// A prompt to check against the recent ones of this site.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DedupRequest {
    /// The (desensitised) concise prompt.
    pub prompt: String,
}

/// Whether the prompt repeats a recent one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedupResponse {
    /// The prompt to carry on with: the earlier representative for a duplicate, else the input.
    pub prompt: String,
    /// Unique, exact, normalised or near duplicate.
    pub duplicate: DuplicateKind,
    /// Similarity to the representative (1 for exact and normalised duplicates).
    pub similarity: f64,
    /// How often the representative was seen in the window, this one included.
    pub seen_count: u64,
    /// Key of the representative (hex SHA-256 of site and normalised text).
    pub key: String,
}

/// A concise prompt to complete at this site.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// The (desensitised) concise prompt.
    pub prompt: String,
    /// The UE's location as the AMF answered ProvideLocationInfo; its cell must be one of
    /// this site's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ProvideLocInfo>,
    /// The UE, to apply its profile (and, without `location`, to ask the AMF where it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supi: Option<String>,
}

/// A cell of the testbed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellRef {
    /// NR Cell Identity (9 hex digits).
    pub nr_cell_id: String,
    /// The place the cell covers.
    pub name: String,
}

/// The comprehensive prompt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteResponse {
    /// The comprehensive prompt, carrying this site's facts.
    pub prompt: String,
    /// The concise prompt it was made from.
    pub concise: String,
    /// The site (this function's locality).
    pub site: String,
    /// The UE's serving cell, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellRef>,
    /// Whether the UE's profile (preferences kept at the edge) was applied.
    pub user_profile_applied: bool,
    /// Completions decoded in the same batch.
    pub batch_size: usize,
    /// Whether this completion was shared with a concurrent identical one (single flight).
    pub coalesced: bool,
    /// Time in the edge model (queueing for the batch included), ms.
    pub completion_ms: f64,
}

/// A prompt about to leave the edge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRequest {
    /// The prompt to send upstream.
    pub prompt: String,
    /// The UE's location (AMF ProvideLocationInfo); accepted for symmetry with `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ProvideLocInfo>,
    /// Locality of the upstream function; default: the cloud AI function's, from the NRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The policy's verdict: ALLOW (a denial is a 403 ProblemDetails, cause `POLICY_DENIED`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    /// ALLOW.
    pub decision: PolicyDecision,
    /// One sentence.
    pub reason: String,
    /// Rules that matched (none when allowed).
    pub hits: Vec<RuleHit>,
    /// The prompt, unchanged: what may be sent.
    pub prompt: String,
    /// The destination checked.
    pub destination: String,
}

/// A (comprehensive) prompt the edge may answer by itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerRequest {
    /// The comprehensive prompt (the cache key).
    pub prompt: String,
    /// The concise prompt (for the place-lookup rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concise: Option<String>,
}

/// Which rule answered at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnsweredBy {
    /// The response cache (same comprehensive prompt at this site, within its TTL).
    EdgeCache,
    /// A place lookup answered from the site profile.
    EdgeDirectory,
    /// The cloud AI function.
    Cloud,
}

/// Whether the edge answered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnswerResponse {
    /// True when `text` answers the prompt and the cloud is not needed.
    pub answered_at_edge: bool,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The rule that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<AnsweredBy>,
}

/// A UE's concise prompt: the whole NetGPT chain in one call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UePromptRequest {
    /// The UE (registered in the AMF).
    pub supi: String,
    /// What the user typed.
    pub prompt: String,
    /// Tokens the cloud may generate; default `[edgeai] cloud_max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<usize>,
}

/// Times of the chain's stages, ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageTimes {
    /// AMF ProvideLocationInfo.
    pub location_ms: f64,
    /// Edge-model completion (batch queueing included).
    pub complete_ms: f64,
    /// The cloud call (0 when answered at the edge).
    pub cloud_ms: f64,
    /// Everything.
    pub total_ms: f64,
}

/// The answer to a UE's prompt, with what the edge did on the way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UePromptResponse {
    /// The answer, with the user's own values restored in place of placeholders.
    pub answer: String,
    /// Who answered.
    pub answered_by: AnsweredBy,
    /// The site whose edge function served the UE (its serving cell's site).
    pub served_by: String,
    /// The UE's serving cell.
    pub cell: CellRef,
    /// The concise prompt after desensitisation.
    pub concise_prompt: String,
    /// The comprehensive prompt the edge model wrote.
    pub comprehensive_prompt: String,
    /// Personal data found, by kind (never forwarded).
    pub pii: BTreeMap<PiiKind, usize>,
    /// Duplicate class of the prompt within the site's window.
    pub duplicate: DuplicateKind,
    /// Whether the completion or the cloud call was shared with a concurrent identical request.
    pub coalesced: bool,
    /// Whether the UE's profile was applied.
    pub user_profile_applied: bool,
    /// Stage times.
    pub timings: StageTimes,
}

/// A UE's preferences, kept at the edge (only their effect reaches the cloud, inside the
/// comprehensive prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserProfile {
    /// Preferences in a few words each ("vegetarian", "travelling with kids").
    #[serde(default)]
    pub preferences: Vec<String>,
    /// Preferred answer language (BCP 47, e.g. `en`, `fr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl UserProfile {
    /// Whether the profile changes a comprehensive prompt (it has preferences or a language).
    pub fn applies(&self) -> bool {
        !self.preferences.is_empty() || self.language.is_some()
    }
}

/// What the function serves and what it has done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeStatus {
    /// The site served.
    pub site: String,
    /// Cells of the site.
    pub cells: Vec<CellRef>,
    /// Edge model parameters.
    pub model_parameters: usize,
    /// LoRA adapters loaded; the one named after the site is used.
    pub adapters: Vec<String>,
    /// Completions decoded together at most.
    pub max_batch: usize,
    /// Dedup, cache and upstream counters.
    pub stats: crate::dedup::DedupStatsSnapshot,
    /// Entries in the answer cache.
    pub cached_answers: usize,
    /// Number of data-policy rules.
    pub policy_rules: usize,
}
