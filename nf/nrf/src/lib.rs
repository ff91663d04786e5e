//! NRF: Nnrf_NFManagement and Nnrf_NFDiscovery (3GPP TS 29.510 shapes).
//!
//! Every NetGPT NF registers its NFProfile here at start, heartbeats, and finds its
//! peers through NFDiscover. Layout (as every NetGPT NF):
//!
//! - [`api`]: routes with utoipa annotations (thin);
//! - [`procedures`]: `nf_register`, `nf_update`, `nf_deregister`, `nf_profile_retrieval`,
//!   `nf_list_retrieval`, `nf_discover`, `heartbeat_expiry` — request in, result or
//!   ProblemDetails out, no HTTP;
//! - [`context`]: options, the shared state and the registration metrics;
//! - [`store`]: the profile store behind a small trait, sqlx-backed (SQLite/PostgreSQL).
//!
//! Start it like any NF ([`netgpt_sbi::nf`]): `netgpt_nrf::start(ctx).await` with an
//! [`NfContext`]; [`start_with`] takes explicit [`NrfOptions`] (tests use a short
//! expiry check interval).

// Procedures return ProblemDetails by design (the one SBI error type); it is large.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod context;
pub mod oauth;
pub mod procedures;
pub mod store;

use std::sync::Arc;

use netgpt_sbi::nf::{NfContext, NfError, RunningNf};
use netgpt_sbi::oauth::{AccessControl, TOKEN_SERVICE};
use netgpt_sbi::NfApp;
use tokio_util::sync::CancellationToken;

pub use context::{NrfContext, NrfOptions};
pub use store::{NfStore, SqlNfStore, StoreError};

/// Starts the NRF with options from the testbed configuration ([`NrfOptions::from_config`]).
pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
    let options = NrfOptions::from_config(&ctx.config);
    start_with(ctx, options).await
}

/// Starts the NRF: migrates its tables in `ctx.db`, starts the heartbeat-expiry task
/// (stopped with the NF) and serves `nnrf-nfm`, `nnrf-disc` and the access token service
/// ([`oauth`]) on `ctx.listener`; with `[oauth2] enabled` its own services require tokens.
pub async fn start_with(ctx: NfContext, options: NrfOptions) -> Result<RunningNf, NfError> {
    netgpt_sbi::metrics::prometheus();
    let store = SqlNfStore::open(ctx.db.clone())
        .await
        .map_err(|e| match e {
            StoreError::Open(db) => NfError::Db(db),
            other => NfError::Other(other.to_string()),
        })?;
    let nrf = NrfContext::new(Arc::new(store), options, ctx.api_root.clone());
    if let Err(e) = nrf.refresh_gauges().await {
        tracing::warn!("cannot read NRF registrations for metrics: {e}");
    }
    tokio::spawn(run_heartbeat_expiry(nrf.clone(), ctx.shutdown.clone()));
    let key = oauth::signing_key(&ctx.db, &ctx.config.oauth2)
        .await
        .map_err(NfError::Other)?;
    let instance_id = ctx.instance_id.to_string();
    let issuer = Arc::new(oauth::Issuer::new(
        key,
        &instance_id,
        &ctx.config.oauth2,
        nrf.clone(),
    ));
    let mut app = app(&ctx.name, nrf)
        .openapi_service(TOKEN_SERVICE, oauth::router(issuer.clone()))
        .public_service(TOKEN_SERVICE);
    if ctx.config.oauth2.enabled {
        // The NRF checks tokens for its own services with its own key.
        app = app.access_control(
            AccessControl::new(Arc::new(issuer.verifier()), "NRF", &instance_id)
                .with_token_url(netgpt_sbi::oauth::token_url(&ctx.api_root)),
        );
    }
    ctx.launch(app).await
}

/// The NRF's SBI application (both services, `/metrics`, `/openapi.json`, `/docs`).
pub fn app(nf_name: &str, nrf: NrfContext) -> NfApp {
    NfApp::new(nf_name)
        .openapi_service(api::NFM_SERVICE, api::nfm_router(nrf.clone()))
        .openapi_service(api::DISC_SERVICE, api::disc_router(nrf))
}

/// The NRF as a plain axum router over `nrf` (for embedding without [`NfContext`]).
pub fn router(nrf: NrfContext) -> axum::Router {
    app("nrf", nrf).build()
}

/// Suspends profiles whose heartbeats stopped, every `options.expiry_check_interval`,
/// until `shutdown` is cancelled.
pub async fn run_heartbeat_expiry(nrf: NrfContext, shutdown: CancellationToken) {
    let every = nrf
        .options
        .expiry_check_interval
        .max(std::time::Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = procedures::heartbeat_expiry(&nrf, context::now_ms()).await {
            tracing::warn!("heartbeat expiry check failed: {e}");
        }
    }
}
