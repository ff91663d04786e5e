//! The CmP process killed in the middle of a workflow run (SIGKILL, no chance to clean up)
//! and started again on the same database: the run completes, and no step that had
//! completed before the kill is executed again. Driven through the real binary
//! (`netgpt nf run cmp`), a real NRF, and a cloud AI function of the test's own that takes
//! a while per call and records every call it gets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use netgpt_sbi::config::{NfConfig, TestbedConfig};
use netgpt_sbi::{NfApp, NfContext};
use serde_json::{json, Value};

mod support;

use support::nf_run_env;

const OAUTH_OFF: &[(&str, &str)] = &[("NETGPT__OAUTH2__ENABLED", "false")];

/// Prompts received by the test cloud AI function, in order.
type Calls = Arc<Mutex<Vec<String>>>;

async fn generate(State(calls): State<Calls>, Json(body): Json<Value>) -> Json<Value> {
    let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
    calls.lock().unwrap().push(prompt.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Json(json!({"text": format!("answer to {prompt}"), "finishReason": "stop"}))
}

const WORKFLOW: &str = r#"
name: three-steps
steps:
  - id: s1
    operation: cloud.generate
    inputs: { prompt: "step one" }
    costMs: { cpu: 1500, gpu: 1500 }
    timeoutMs: 30000
    idempotent: true
  - id: s2
    operation: cloud.generate
    inputs: { prompt: "step two", previous: $steps.s1.output.text }
    costMs: { cpu: 1500, gpu: 1500 }
    timeoutMs: 30000
    idempotent: true
  - id: s3
    operation: cloud.generate
    inputs: { prompt: "step three", previous: $steps.s2.output.text }
    costMs: { cpu: 1500, gpu: 1500 }
    timeoutMs: 30000
    idempotent: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cmp_resumes_its_run_without_repeating_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestbedConfig::load_default().unwrap();
    // The crash and resume are under test, with plain HTTP clients (OAuth2 off here and
    // in the CmP process below).
    cfg.oauth2.enabled = false;
    cfg.nf.insert(
        "cloud-test".into(),
        NfConfig {
            nf_type: "CLOUDAI".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            locality: Some("cloud".into()),
            advertise: None,
            tls_cert: None,
            tls_key: None,
            mtls: false,
        },
    );
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());

    // A real NRF, in-process.
    let nrf_ctx = NfContext::ephemeral(
        Arc::new(cfg.clone()),
        "nrf",
        netgpt_sbi::db::connect(&db("nrf.db")).await.unwrap(),
    )
    .await
    .unwrap();
    let nrf_uri = nrf_ctx.api_root.clone();
    let nrf = netgpt_nrf::start(nrf_ctx).await.unwrap();
    cfg.nrf.uri = nrf_uri.clone();

    // The slow cloud AI function, registered at `cloud`.
    let calls = Calls::default();
    let ctx = NfContext::ephemeral(
        Arc::new(cfg),
        "cloud-test",
        netgpt_sbi::db::connect(&db("cloud.db")).await.unwrap(),
    )
    .await
    .unwrap();
    let router = Router::new()
        .route("/ncloudai-gen/v1/generate", post(generate))
        .with_state(calls.clone());
    let doc = utoipa::openapi::OpenApi::new(
        utoipa::openapi::Info::new("test cloud AI function", "0.0.0"),
        utoipa::openapi::Paths::new(),
    );
    let cloud = ctx
        .launch(NfApp::new("cloud-test").service("ncloudai-gen", router, doc))
        .await
        .unwrap();

    let cmp_db = db("cmp.db");
    let (child, cmp) = nf_run_env("cmp", &cmp_db, Some(&nrf_uri), OAUTH_OFF);
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = http
        .post(format!("{cmp}/ncmp-wf/v1/workflows"))
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{cmp}/ncmp-wf/v1/workflows/three-steps/runs"))
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let run: Value = r.json().await.unwrap();
    let run_id = run["id"].as_str().unwrap().to_owned();

    // Kill the CmP while step two is in flight (step one answered, step two not yet).
    let t = Instant::now();
    while !calls.lock().unwrap().iter().any(|p| p == "step two") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "step two never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut child = child;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before_restart = calls.lock().unwrap().clone();
    assert_eq!(before_restart, ["step one", "step two"]);

    // A new CmP process on the same database resumes the run.
    let (mut child, cmp) = nf_run_env("cmp", &cmp_db, Some(&nrf_uri), OAUTH_OFF);
    let t = Instant::now();
    let record = loop {
        let v: Value = http
            .get(format!("{cmp}/ncmp-wf/v1/runs/{run_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "running" {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "run not finished: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["status"], "succeeded", "{record}");
    let calls = calls.lock().unwrap().clone();
    let count = |p: &str| calls.iter().filter(|c| *c == p).count();
    // Step one completed before the kill: never again. Step two's outcome was unknown at
    // the kill and it is idempotent: executed again. Step three once.
    assert_eq!(count("step one"), 1, "{calls:?}");
    assert_eq!(count("step two"), 2, "{calls:?}");
    assert_eq!(count("step three"), 1, "{calls:?}");
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for s in steps {
        assert_eq!(s["status"], "succeeded", "{s}");
        assert_eq!(s["node"], "cloud", "{s}");
    }
    let s1 = steps.iter().find(|s| s["stepId"] == "s1").unwrap();
    assert_eq!(s1["attempts"], 1, "{s1}");

    child.kill().unwrap();
    child.wait().unwrap();
    cloud.stop().await;
    nrf.stop().await;
}
