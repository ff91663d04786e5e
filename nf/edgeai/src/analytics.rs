//! `nedgeai-analytics`: the edge's analytics, NetGPT's "by-products" of the edge LLM, behind
//! an NWDAF-shaped API (TS 29.520 Nnwdaf_AnalyticsInfo: `GET /analytics?event-id=...` with an
//! optional JSON `event-filter`, answering `AnalyticsData`, 204 when there is nothing to
//! report).
//!
//! - `event-id=CONTENT_POPULARITY` (a NetGPT extension value of `EventId`): which of the
//!   site's most viewed items will be viewed in a 6-hour interval, forecast by the edge GPT-2
//!   fine-tuned for it (`models/analytics/popularity`) from the site's viewing trace
//!   (`[edgeai] viewing_trace`, a CSV in the Netflix audience-behaviour layout; else a trace
//!   generated for the site, seeded by its id).
//! - `POST /intent-inference`: a network intent in natural language -> configuration keywords
//!   and a TS 28.312 intent, by the edge GPT-2 fine-tuned for it
//!   (`models/analytics/intent`) or by the rule-based baseline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_core::Device;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use netgpt_models::analytics::intent::{self, IntentModel};
use netgpt_models::analytics::popularity::{self, PopularityPredictor};
use netgpt_models::analytics::trace::{self, TraceConfig, ViewEvent};
use netgpt_sbi::{ProblemDetails, SbiJson, SbiQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The analytics service (registered in the NRF).
pub const SERVICE_ANALYTICS: &str = "nedgeai-analytics";
/// The event id of content popularity.
pub const CONTENT_POPULARITY: &str = "CONTENT_POPULARITY";

/// What the analytics service holds: the two fine-tuned models (each may be missing: its
/// requests then answer 503 with the reason) and the site's viewing trace.
pub struct Analytics {
    popularity: Result<PopularityPredictor, String>,
    intent: Result<IntentModel, String>,
    trace: Vec<ViewEvent>,
    trace_source: String,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("trace_source", &self.trace_source)
            .finish_non_exhaustive()
    }
}

/// A seed from a site id (stable across runs and builds).
fn site_seed(site: &str) -> u64 {
    site.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl Analytics {
    /// Loads the models under `models_dir` (`<repo>/models`) and the site's trace: the CSV
    /// `viewing_trace`, else a generated one. A trace that cannot be read is an error; a
    /// missing model only disables its service.
    pub fn load(
        models_dir: &Path,
        viewing_trace: Option<&Path>,
        site: &str,
    ) -> Result<Self, String> {
        let (trace, trace_source) = match viewing_trace {
            Some(p) => (
                trace::read_csv(p).map_err(|e| format!("key 'edgeai.viewing_trace': {e}"))?,
                p.display().to_string(),
            ),
            None => {
                let cfg = TraceConfig {
                    seed: site_seed(site),
                    ..TraceConfig::default()
                };
                let t = trace::generate(&cfg).map_err(|e| e.to_string())?;
                (t, format!("generated for {site} (seed {})", cfg.seed))
            }
        };
        let popularity = PopularityPredictor::load(models_dir, &Device::Cpu)
            .map_err(|e| format!("popularity model under {}: {e}", models_dir.display()));
        let intent = IntentModel::load(models_dir, &Device::Cpu)
            .map_err(|e| format!("intent model under {}: {e}", models_dir.display()));
        for e in [popularity.as_ref().err(), intent.as_ref().err()]
            .into_iter()
            .flatten()
        {
            tracing::warn!(error = %e, "edge analytics model not loaded");
        }
        Ok(Self {
            popularity,
            intent,
            trace,
            trace_source,
        })
    }
}

/// State of the analytics routes.
#[derive(Debug, Clone)]
pub struct AnalyticsState {
    /// NF instance name (the `nf` label of its metrics).
    pub name: String,
    /// The site.
    pub site: String,
    /// Models and trace.
    pub analytics: Arc<Analytics>,
}

/// Query of `GET /analytics` (TS 29.520 names).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The analytics asked for: `CONTENT_POPULARITY`.
    #[serde(rename = "event-id")]
    #[param(rename = "event-id")]
    pub event_id: Option<String>,
    /// JSON `{"interval": n}`: the 6-hour interval (from the trace's first) to forecast;
    /// default: the one after the trace.
    #[serde(rename = "event-filter")]
    #[param(rename = "event-filter")]
    pub event_filter: Option<String>,
    /// Reporting requirements (accepted, not used).
    #[serde(rename = "ana-req")]
    #[param(rename = "ana-req")]
    pub ana_req: Option<String>,
    /// Supported features (accepted, not used).
    #[serde(rename = "supported-features")]
    #[param(rename = "supported-features")]
    pub supported_features: Option<String>,
}

/// One item's forecast (NetGPT extension of `AnalyticsData`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentPopularityInfo {
    /// Item id.
    pub movie_id: String,
    /// Title.
    pub title: String,
    /// Probability that the item is viewed in the interval.
    pub probability: f64,
    /// Whether it is forecast to be viewed (probability > 0.5).
    pub appears: bool,
}

/// TS 29.520 `AnalyticsData` with the NetGPT content-popularity extension.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsData {
    /// Start of the interval the analytics are for.
    pub start: DateTime<Utc>,
    /// End of that interval (validity of the analytics).
    pub expiry: DateTime<Utc>,
    /// When the analytics were generated.
    pub time_stamp_gen: DateTime<Utc>,
    /// The interval's index from the trace's first 6-hour interval.
    pub interval: usize,
    /// The site.
    pub site: String,
    /// Where the viewing trace comes from.
    pub trace_source: String,
    /// Forecast per item (the site's most viewed).
    pub content_popularity_infos: Vec<ContentPopularityInfo>,
}

/// How an intent is inferred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntentMethod {
    /// The edge GPT-2 fine-tuned on intent -> keyword pairs (held-out micro-F1 0.61: it
    /// beats the rules on rate and protection, not yet on copying endpoint names; see
    /// `models/analytics/intent/README.md`).
    #[default]
    EdgeModel,
    /// The rule-based baseline (held-out micro-F1 0.93).
    Rules,
}

/// A network intent in natural language.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentRequest {
    /// E.g. "I want a 10 Gbps link from Access 1 to Cloud 2 with protection".
    pub text: String,
    /// Edge model (default) or rules.
    #[serde(default)]
    pub method: IntentMethod,
}

/// The inferred configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentResponse {
    /// Configuration keywords (rate, src, dst, protection, latency, slice, reliability...).
    pub keywords: BTreeMap<String, String>,
    /// The same as a TS 28.312 intent (expectations with targets and contexts).
    #[schema(value_type = Object)]
    pub intent: serde_json::Value,
    /// The edge model's raw output (absent for rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The method used.
    pub method: IntentMethod,
}

fn unavailable(reason: &str) -> ProblemDetails {
    ProblemDetails::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ANALYTICS_UNAVAILABLE",
        reason.to_owned(),
    )
}

fn count(nf: &str, service: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("edgeai_analytics_requests_total", "nf" => nf.to_owned(), "service" => service, "outcome" => outcome).increment(1);
}

/// Reads analytics (TS 29.520 GetNWDAFAnalytics shape): content popularity for an interval.
#[utoipa::path(get, path = "/nedgeai-analytics/v1/analytics", operation_id = "GetNWDAFAnalytics",
    tag = "NWDAF Analytics (Document)", params(AnalyticsQuery),
    responses(
        (status = 200, description = "The analytics", body = AnalyticsData),
        (status = 204, description = "No data for that interval (none of the items has a history yet)"),
        (status = 400, description = "Missing or unsupported event-id, bad event-filter", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "The popularity model is not loaded", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn get_analytics(
    State(st): State<AnalyticsState>,
    SbiQuery(q): SbiQuery<AnalyticsQuery>,
) -> Result<Response, ProblemDetails> {
    let r = popularity_analytics(&st, &q).await;
    count(&st.name, "popularity", r.is_ok());
    r
}

async fn popularity_analytics(
    st: &AnalyticsState,
    q: &AnalyticsQuery,
) -> Result<Response, ProblemDetails> {
    let event = q
        .event_id
        .as_deref()
        .ok_or_else(|| ProblemDetails::missing_param("event-id"))?;
    if event != CONTENT_POPULARITY {
        return Err(ProblemDetails::invalid_param(
            "event-id",
            format!("'{event}' is not offered here; this function offers {CONTENT_POPULARITY}"),
        ));
    }
    let a = st.analytics.clone();
    let total = popularity::intervals(&a.trace);
    let interval = match &q.event_filter {
        None => total,
        Some(f) => {
            let v: serde_json::Value = serde_json::from_str(f).map_err(|e| {
                ProblemDetails::invalid_param("event-filter", format!("not JSON: {e}"))
            })?;
            let n = v.get("interval").and_then(|i| i.as_u64()).ok_or_else(|| {
                ProblemDetails::invalid_param(
                    "event-filter",
                    "expects {\"interval\": <non-negative integer>}",
                )
            })?;
            if n as usize > total {
                return Err(ProblemDetails::invalid_param(
                    "event-filter",
                    format!("interval {n} is beyond the next one ({total}) of the trace"),
                ));
            }
            n as usize
        }
    };
    if a.popularity.is_err() {
        return Err(unavailable(
            a.popularity
                .as_ref()
                .err()
                .map(String::as_str)
                .unwrap_or_default(),
        ));
    }
    let a2 = a.clone();
    let forecast = tokio::task::spawn_blocking(move || {
        a2.popularity
            .as_ref()
            .expect("checked")
            .forecast(&a2.trace, interval)
    })
    .await
    .map_err(|e| ProblemDetails::internal(e.to_string()))?;
    let items = match forecast {
        Ok(items) => items,
        Err(netgpt_models::Error::Invalid(_)) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => return Err(ProblemDetails::internal(e.to_string())),
    };
    let origin = a
        .trace
        .iter()
        .map(|e| e.datetime)
        .min()
        .unwrap_or_else(Utc::now);
    let start = popularity::interval_floor(origin) + ChronoDuration::hours(6 * interval as i64);
    Ok(Json(AnalyticsData {
        start,
        expiry: start + ChronoDuration::hours(6),
        time_stamp_gen: Utc::now(),
        interval,
        site: st.site.clone(),
        trace_source: a.trace_source.clone(),
        content_popularity_infos: items
            .into_iter()
            .map(|f| ContentPopularityInfo {
                movie_id: f.movie_id,
                title: f.title,
                probability: f.probability,
                appears: f.appears,
            })
            .collect(),
    })
    .into_response())
}

/// Infers configuration keywords and a TS 28.312 intent from a natural-language network intent.
#[utoipa::path(post, path = "/nedgeai-analytics/v1/intent-inference", operation_id = "IntentInference",
    tag = "Intent inference", request_body = IntentRequest,
    responses(
        (status = 200, description = "Keywords and the TS 28.312 intent", body = IntentResponse),
        (status = 400, description = "Empty or oversized text", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "The intent model is not loaded", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn intent_inference(
    State(st): State<AnalyticsState>,
    SbiJson(req): SbiJson<IntentRequest>,
) -> Result<Json<IntentResponse>, ProblemDetails> {
    let r = infer(&st, req).await;
    count(&st.name, "intent", r.is_ok());
    r.map(Json)
}

async fn infer(st: &AnalyticsState, req: IntentRequest) -> Result<IntentResponse, ProblemDetails> {
    crate::procedures::check_prompt("text", &req.text)?;
    let to_value = |i: &intent::Intent| {
        serde_json::to_value(i).map_err(|e| ProblemDetails::internal(e.to_string()))
    };
    match req.method {
        IntentMethod::Rules => {
            let keywords = intent::rule_based(&req.text);
            let mut it = intent::to_intent(&keywords);
            it.user_label = req.text.clone();
            Ok(IntentResponse {
                intent: to_value(&it)?,
                keywords,
                raw: None,
                method: req.method,
            })
        }
        IntentMethod::EdgeModel => {
            let a = st.analytics.clone();
            if let Err(e) = &a.intent {
                return Err(unavailable(e));
            }
            let text = req.text.clone();
            let out = tokio::task::spawn_blocking(move || {
                a.intent.as_ref().expect("checked").infer(&text)
            })
            .await
            .map_err(|e| ProblemDetails::internal(e.to_string()))?
            .map_err(|e| match e {
                netgpt_models::Error::Invalid(m) => ProblemDetails::invalid_param("text", m),
                other => ProblemDetails::internal(other.to_string()),
            })?;
            Ok(IntentResponse {
                intent: to_value(&out.intent)?,
                keywords: out.keywords,
                raw: Some(out.raw),
                method: req.method,
            })
        }
    }
}

/// OpenAPI document of `nedgeai-analytics`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nedgeai_Analytics (NetGPT edge AI function)",
        version = "1.0.0",
        description = "Edge analytics by the edge LLM, NWDAF-shaped (TS 29.520 Nnwdaf_AnalyticsInfo): content \
popularity forecasts per 6-hour interval, and network intent inference to configuration keywords and a \
TS 28.312 intent."
    ),
    paths(get_analytics, intent_inference)
)]
pub struct NedgeaiAnalyticsApi;

/// Routes of `nedgeai-analytics`.
pub fn analytics_router(st: AnalyticsState) -> Router {
    Router::new()
        .route("/nedgeai-analytics/v1/analytics", get(get_analytics))
        .route(
            "/nedgeai-analytics/v1/intent-inference",
            post(intent_inference),
        )
        .with_state(st)
}
