//! CmP controller of the NetGPT testbed (the computing plane): node and device inventory,
//! the HEFT-class scheduler ([`sched`]) and the logical AI workflow engine ([`wf`]), served
//! as the NF of type `CMP` with two SBI services:
//!
//! - `ncmp-res/v1`: nodes (edge sites, the cloud) with typed devices, links, live load;
//! - `ncmp-wf/v1`: workflow registration (YAML/JSON), dry-run plans, runs with step records.
//!
//! Layout: [`api`] (routes + OpenAPI, thin), [`context`] (state and procedures),
//! [`inventory`] (nodes/devices/links, sqlx), [`workflows`] (definitions and run plans,
//! sqlx), [`ops`] (operation catalogue), [`planner`] (workflow + inventory -> scheduler ->
//! plan and pictures), [`executor`] (a step as an SBI call to the NF the plan designates),
//! [`console`] (the testbed console web page at `/console/`).
//!
//! ```ignore
//! let running = netgpt_cmp::start(NfContext::from_config(cfg, "cmp").await?).await?;
//! ```

// ProblemDetails is the one SBI error type by convention; it is returned by value.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod console;
pub mod context;
pub mod executor;
pub mod inventory;
pub mod ops;
pub mod planner;
pub mod sched;
pub mod wf;
pub mod workflows;

use std::sync::Arc;

use netgpt_sbi::{NfApp, NfContext, NfError, RunningNf};
use utoipa::OpenApi;

pub use context::CmpContext;

/// Service names of the CmP (API roots `/<name>/v1`), in the order they are served.
pub const SERVICES: [&str; 2] = ["ncmp-res", "ncmp-wf"];

/// Each service's OpenAPI document, by service name (what `sbi-specs/<name>.yaml` holds).
pub fn service_docs() -> Vec<(String, utoipa::openapi::OpenApi)> {
    vec![
        ("ncmp-res".to_owned(), api::NcmpResApi::openapi()),
        ("ncmp-wf".to_owned(), api::NcmpWfApi::openapi()),
    ]
}

/// The CmP's SBI application for `state`, as NF instance `name`.
pub fn app(name: &str, state: Arc<CmpContext>) -> NfApp {
    NfApp::new(name)
        .service(
            "ncmp-res",
            api::res_router(state.clone()),
            api::NcmpResApi::openapi(),
        )
        .service("ncmp-wf", api::wf_router(state), api::NcmpWfApi::openapi())
}

/// Builds the CmP's state on `ctx`'s database: the inventory (stored nodes + the
/// configuration's), the workflow registry (stored + shipped), and the engine recording
/// runs in the same database and executing steps over SBI.
pub async fn context(ctx: &NfContext) -> Result<Arc<CmpContext>, NfError> {
    netgpt_sbi::metrics::prometheus();
    let fail = |what: &str, e: &dyn std::fmt::Display| NfError::Other(format!("cmp {what}: {e}"));
    let catalog = Arc::new(ops::Catalog::netgpt());
    let inventory = inventory::Inventory::open(ctx.db.clone(), &ctx.config)
        .await
        .map_err(|e| fail("inventory", &e))?;
    let workflows = workflows::WorkflowRegistry::open(ctx.db.clone(), &catalog)
        .await
        .map_err(|e| fail("workflows", &e))?;
    let store = wf::SqlStore::open(ctx.db.clone())
        .await
        .map_err(|e| fail("run store", &e))?;
    let executor = executor::SbiExecutor::new(catalog.clone(), ctx.client.clone(), ctx.nrf.clone());
    let engine = wf::Engine::new(Arc::new(store), Arc::new(executor));
    Ok(Arc::new(CmpContext {
        api_root: ctx.api_root.clone(),
        inventory: Arc::new(inventory),
        catalog,
        workflows,
        engine,
        nrf: ctx.nrf.clone(),
        client: ctx.client.clone(),
    }))
}

/// Starts the CmP: state, SBI server, NRF registration and heartbeats; then resumes the
/// runs a previous instance left unfinished.
pub async fn start(ctx: NfContext) -> Result<RunningNf, NfError> {
    start_with_state(ctx).await.map(|(running, _)| running)
}

/// [`start`], also returning the CmP's state (for tests and in-process tools).
pub async fn start_with_state(ctx: NfContext) -> Result<(RunningNf, Arc<CmpContext>), NfError> {
    let state = context(&ctx).await?;
    let app = app(&ctx.name, state.clone());
    // The console is a page for people, not an SBI service: merged beside the services,
    // outside their OpenAPI documents and the NF profile (which lists SERVICES only).
    let profile = ctx.profile(&SERVICES);
    let console = console::router(console::Console::new(state.clone(), &ctx.config));
    let router = ctx.guard(app).metrics_prefix("cmp_").build().merge(console);
    let running = ctx.launch_with_profile(router, Some(profile)).await?;
    // After launch: resumed steps call NFs, which may need this CmP registered first.
    match state.engine.resume_unfinished().await {
        Ok(ids) if !ids.is_empty() => tracing::info!(runs = ids.len(), "resumed unfinished runs"),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot resume unfinished runs: {e}"),
    }
    Ok((running, state))
}
