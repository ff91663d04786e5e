//! Edge AI function of the NetGPT testbed: one per edge site (base station), its NF locality
//! being the site it serves.
//!
//! Layout (as every NF): [`api`] (routes + OpenAPI, thin), [`procedures`] (each operation and
//! the UE chain, no HTTP), [`context`] (model, windows, caches, policy), [`types`] (SBI
//! bodies), [`store`] (user profiles in the database), [`batcher`] (dynamic batching of
//! completions). Text processing with no HTTP: [`pii`] (desensitisation), [`policy`] (data
//! policy), [`dedup`] (duplicate detection, single flight, response cache), [`directory`]
//! (place lookups the site answers itself), [`frameworks`] (the cloud model at the edge for
//! LLM offload and LLM splitting, the frameworks NetGPT is compared with).
//!
//! ```ignore
//! let running = netgpt_edgeai::start(NfContext::from_config(cfg, "edge-london").await?).await?;
//! ```

// ProblemDetails is the one SBI error type by convention; it is returned by value.
#![allow(clippy::result_large_err)]

pub mod analytics;
pub mod api;
pub mod batcher;
pub mod context;
pub mod dedup;
pub mod directory;
pub mod frameworks;
pub mod pii;
pub mod policy;
pub mod procedures;
pub mod store;
pub mod types;

use std::sync::Arc;

use netgpt_sbi::{NfApp, NfContext, NfError, RunningNf};
use utoipa::OpenApi;

pub use context::EdgeAiContext;

/// The prompt-pipeline service (registered in the NRF).
pub const SERVICE_PROMPT: &str = "nedgeai-prompt";

/// Each service's OpenAPI document, by name (what `sbi-specs/<name>.yaml` holds).
pub fn service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    vec![
        (SERVICE_PROMPT.to_owned(), api::NedgeaiPromptApi::openapi()),
        (
            analytics::SERVICE_ANALYTICS.to_owned(),
            analytics::NedgeaiAnalyticsApi::openapi(),
        ),
    ]
}

/// The function's SBI application for `state`, as NF instance `name`.
pub fn app(name: &str, state: Arc<EdgeAiContext>) -> NfApp {
    let analytics = analytics::AnalyticsState {
        name: name.to_owned(),
        site: state.site.clone(),
        analytics: state.analytics.clone(),
    };
    NfApp::new(name)
        .service(
            SERVICE_PROMPT,
            api::prompt_router(state),
            api::NedgeaiPromptApi::openapi(),
        )
        .service(
            analytics::SERVICE_ANALYTICS,
            analytics::analytics_router(analytics),
            analytics::NedgeaiAnalyticsApi::openapi(),
        )
}

/// Starts the function: loads the edge model, its adapters and the site's profile, then
/// serves and registers its services in the NRF.
pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
    let state = EdgeAiContext::load(&ctx)
        .await
        .map_err(|e| NfError::Other(e.to_string()))?;
    start_with_state(ctx, Arc::new(state)).await
}

/// Serves an already built state.
pub async fn start_with_state(
    ctx: NfContext,
    state: Arc<EdgeAiContext>,
) -> Result<RunningNf, NfError> {
    netgpt_sbi::metrics::prometheus();
    let app = app(&ctx.name, state).metrics_prefix("edgeai_");
    let names: Vec<String> = service_docs().into_iter().map(|(n, _)| n).collect();
    let services: Vec<&str> = names.iter().map(String::as_str).collect();
    let profile = ctx.profile(&services);
    let app = ctx.guard(app);
    ctx.launch_with_profile(app.build(), Some(profile)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn sbi_specs_match_the_code() {
        netgpt_sbi::openapi::assert_specs_match("netgpt-edgeai", &crate::service_docs());
    }
}
