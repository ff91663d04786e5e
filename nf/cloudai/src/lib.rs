//! Cloud AI function of the NetGPT testbed: the cloud LLM served over SBI
//! (`ncloudai-gen/v1`), its second half for split inference with the edge
//! (`ncloudai-split/v1`, see [`split`]) and an OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/models`).
//!
//! Layout (as every NF): [`api`] and [`openai`] (routes + OpenAPI, thin), [`procedures`]
//! (checking and admitting requests, no HTTP), [`engine`] (the continuous-batching decode
//! loop), [`context`] (model, adapters, limits), [`types`] (SBI bodies).
//!
//! ```ignore
//! let running = netgpt_cloudai::start(NfContext::from_config(cfg, "cloudai").await?).await?;
//! ```

// ProblemDetails is the one SBI error type by convention; it is returned by value.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod context;
pub mod engine;
pub mod openai;
pub mod procedures;
pub mod split;
pub mod types;

use std::sync::Arc;

use netgpt_sbi::{NfApp, NfContext, NfError, RunningNf};
use utoipa::OpenApi;

pub use context::CloudAiContext;

/// The 3GPP-style service of the function (registered in the NRF).
pub const SERVICE: &str = "ncloudai-gen";

/// Each service's OpenAPI document, by name (what `sbi-specs/<name>.yaml` holds): the SBI
/// service and the OpenAI-compatible routes (`openai`, not registered in the NRF).
pub fn service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    vec![
        (SERVICE.to_owned(), api::NcloudaiGenApi::openapi()),
        ("openai".to_owned(), openai::OpenAiApi::openapi()),
        (
            split::SERVICE.to_owned(),
            split::NcloudaiSplitApi::openapi(),
        ),
    ]
}

/// The function's SBI application for `state`, as NF instance `name`.
pub fn app(name: &str, state: Arc<CloudAiContext>) -> NfApp {
    NfApp::new(name)
        .service(
            SERVICE,
            api::gen_router(state.clone()),
            api::NcloudaiGenApi::openapi(),
        )
        .service(
            "openai",
            openai::openai_router(state.clone()),
            openai::OpenAiApi::openapi(),
        )
        .service(
            split::SERVICE,
            split::split_router(state),
            split::NcloudaiSplitApi::openapi(),
        )
}

/// Starts the function: loads the model of `[cloudai]` (fetching the default on first use)
/// and its adapters, then serves and registers `ncloudai-gen` in the NRF.
pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
    let limits = ctx.config.cloudai.clone();
    let name = ctx.name.clone();
    let state = tokio::task::spawn_blocking(move || CloudAiContext::load(&limits, &name))
        .await
        .map_err(|e| NfError::Other(format!("cloud AI function: {e}")))?
        .map_err(|e| NfError::Other(format!("cloud AI function: {e}")))?;
    start_with_state(ctx, Arc::new(state)).await
}

/// Serves an already built state (tests load small models).
pub async fn start_with_state(
    ctx: NfContext,
    state: Arc<CloudAiContext>,
) -> Result<RunningNf, NfError> {
    netgpt_sbi::metrics::prometheus();
    let app = app(&ctx.name, state).metrics_prefix("cloudai_");
    // Only the SBI services go into the NFProfile; the OpenAI routes are for clients.
    let profile = ctx.profile(&[SERVICE, split::SERVICE]);
    let app = ctx.guard(app);
    ctx.launch_with_profile(app.build(), Some(profile)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn sbi_specs_match_the_code() {
        netgpt_sbi::openapi::assert_specs_match("netgpt-cloudai", &crate::service_docs());
    }
}
