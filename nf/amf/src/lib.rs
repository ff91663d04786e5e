//! Mock AMF of the NetGPT testbed (TS 29.518 shapes):
//!
//! - the gNB/cell topology of the testbed configuration (NCGI, TAI, position, place, edge site);
//! - UE contexts (Namf_Communication-style register, read, deregister, list);
//! - Namf_Location ProvideLocationInfo;
//! - Namf_EventExposure LOCATION_REPORT subscriptions with HTTP/2 callbacks on cell changes;
//! - a mobility simulator: handover of one UE, random walk of many.
//!
//! Layout (free5gc-style): [`api`] (routes + OpenAPI, thin), [`procedures`] (the 3GPP
//! operations, no HTTP), [`context`] (topology and UE state), [`store`] (persistence behind
//! a trait, sqlx), [`consumer`] (notifications to subscribers), [`mobility`] (random walk).
//!
//! Started in-process like every NF ([`netgpt_sbi::nf`]):
//!
//! ```ignore
//! let running = netgpt_amf::start(NfContext::from_config(cfg, "amf").await?).await?;
//! ```

// ProblemDetails is the one SBI error type by convention; it is returned by value.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod consumer;
pub mod context;
pub mod mobility;
pub mod procedures;
pub mod store;

use std::sync::Arc;

use netgpt_sbi::{NfApp, NfContext, NfError, RunningNf};
use utoipa::OpenApi;

pub use context::AmfContext;

/// Service names of the AMF (API roots `/<name>/v1`), in the order they are served.
pub const SERVICES: [&str; 3] = ["namf-comm", "namf-loc", "namf-evts"];

/// Each service's OpenAPI document, by service name (what `sbi-specs/<name>.yaml` holds).
pub fn service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    vec![
        ("namf-comm".to_owned(), api::NamfCommApi::openapi()),
        ("namf-loc".to_owned(), api::NamfLocApi::openapi()),
        ("namf-evts".to_owned(), api::NamfEvtsApi::openapi()),
    ]
}

/// The AMF's SBI application for `state`, as NF instance `name`.
pub fn app(name: &str, state: Arc<AmfContext>) -> NfApp {
    NfApp::new(name)
        .service(
            "namf-comm",
            api::comm_router(state.clone()),
            api::NamfCommApi::openapi(),
        )
        .service(
            "namf-loc",
            api::loc_router(state.clone()),
            api::NamfLocApi::openapi(),
        )
        .service(
            "namf-evts",
            api::evts_router(state),
            api::NamfEvtsApi::openapi(),
        )
}

/// Builds the AMF's state on `ctx`'s database (migrating it), topology and UEs from
/// `ctx.config`, notifications through `ctx.client`.
pub async fn context(ctx: &NfContext) -> Result<Arc<AmfContext>, NfError> {
    // Install the process-wide recorder before the first AMF counter is touched.
    netgpt_sbi::metrics::prometheus();
    let store = store::SqlStore::new(ctx.db.clone())
        .await
        .map_err(|e| NfError::Other(format!("amf store: {e}")))?;
    let state = AmfContext::new(
        &ctx.config,
        ctx.api_root.clone(),
        Arc::new(store),
        consumer::Notifier::new(ctx.client.clone()),
    )
    .await
    .map_err(|e| NfError::Other(format!("amf state: {e}")))?;
    Ok(Arc::new(state))
}

/// Starts the AMF: state, SBI server, NRF registration and heartbeats (the NF-start convention).
pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
    start_with_state(ctx).await.map(|(running, _)| running)
}

/// [`start`], also returning the AMF's state (for tests and in-process tools).
pub async fn start_with_state(ctx: NfContext) -> Result<(RunningNf, Arc<AmfContext>), NfError> {
    let state = context(&ctx).await?;
    // The random walk ends with the NF.
    let shutdown = ctx.shutdown.clone();
    let walk_state = state.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        mobility::stop_random_walk(&walk_state).await;
    });
    let app = app(&ctx.name, state.clone());
    let running = ctx.launch(app).await?;
    Ok((running, state))
}

#[cfg(test)]
mod tests;
