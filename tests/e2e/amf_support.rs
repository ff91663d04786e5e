//! Support shared by the AMF end-to-end tests (`amf_api.rs`, `flow.rs`), included with
//! `#[path]`: starting the AMF in-process on an ephemeral port, a notification
//! subscriber, and a boolean wrapper over the 3GPP schema validation of `common.rs`
//! (skipped, with the reason printed, when `../shared/3gpp/` is absent).

#![allow(dead_code)]

use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use netgpt_amf::AmfContext;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::models::namf::AmfEventNotification;
use netgpt_sbi::{NfContext, RunningNf};
use serde_json::Value;
use tokio::sync::mpsc;

/// Validates `instance` against `components/schemas/<schema>` of the 3GPP file `file`
/// (e.g. `TS29518_Namf_Location.yaml`, `ProvideLocInfo`) with the shared validator of
/// `common.rs`. Returns `false` (after printing why) when the 3GPP folder is absent;
/// panics listing the violations when invalid.
#[track_caller]
pub fn assert_3gpp_valid(file: &str, schema: &str, instance: &Value) -> bool {
    match netgpt_e2e::validate_3gpp(file, schema, instance) {
        Ok(checked) => checked,
        Err(e) => panic!("{file}#/components/schemas/{schema} rejects {instance:#}:\n{e}"),
    }
}

/// The default testbed with `nrf.uri` and `nrf.heartbeat_timer` replaced.
pub fn config(nrf_uri: &str, heartbeat_timer: u32) -> TestbedConfig {
    let mut cfg = netgpt_e2e::open_config(nrf_uri);
    cfg.nrf.heartbeat_timer = heartbeat_timer;
    cfg
}

/// A started AMF, its state, and the folder of its SQLite database.
pub struct TestAmf {
    pub running: RunningNf,
    pub state: Arc<AmfContext>,
    pub api_root: String,
    pub _dir: tempfile::TempDir,
}

/// Starts the AMF alone (no NRF registration) on 127.0.0.1:0 with a fresh SQLite file.
pub async fn start_amf_standalone() -> TestAmf {
    let dir = tempfile::tempdir().unwrap();
    let db = netgpt_sbi::db::connect(&format!("sqlite://{}", dir.path().join("amf.db").display()))
        .await
        .unwrap();
    let ctx = NfContext::ephemeral(Arc::new(config("http://127.0.0.1:9", 10)), "amf", db)
        .await
        .unwrap();
    let state = netgpt_amf::context(&ctx).await.unwrap();
    let app = netgpt_amf::app(&ctx.name, state.clone()).build();
    let running = ctx.launch_with_profile(app, None).await.unwrap();
    let api_root = running.api_root.clone();
    TestAmf {
        running,
        state,
        api_root,
        _dir: dir,
    }
}

/// An h2c subscriber on 127.0.0.1:0: returns its notification URI and the notifications it got.
pub async fn subscriber() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/amf-events",
        post(move |Json(n): Json<Value>| {
            let tx = tx.clone();
            async move {
                // The body must be an AmfEventNotification.
                let _typed: AmfEventNotification =
                    serde_json::from_value(n.clone()).expect("AmfEventNotification");
                let _ = tx.send(n);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/amf-events"), rx)
}

/// Waits (bounded, so a lost notification fails instead of hanging) for the next notification.
pub async fn next_notification(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a notification within 30 s")
        .expect("subscriber alive")
}
