//! A small testbed in one process for the CmP's API tests: a real NRF, a real AMF, test
//! edge AI functions (type `EDGEAI`) at two edge sites and a test cloud AI function (type
//! `CLOUDAI`) at `cloud` — real SBI servers built with [`NfApp`] and registered in the
//! NRF — and the CmP itself, all on `127.0.0.1:0` with their own SQLite files.
//!
//! The test edge and cloud functions serve the paths the operation catalogue calls
//! (`/nedgeai-prompt/v1/{desensitize,dedup,complete,policy,answer}`,
//! `/ncloudai-gen/v1/generate`), answer deterministically from their input, stamp every
//! answer with their locality (`servedBy`) and record every request they get.

#![allow(dead_code)] // each test file uses part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use netgpt_cmp::CmpContext;
use netgpt_nrf::NrfOptions;
use netgpt_sbi::config::{NfConfig, TestbedConfig};
use netgpt_sbi::nf::{NfContext, RunningNf};
use netgpt_sbi::NfApp;
use serde_json::{json, Value};

/// The UE of the default testbed served by `edge-hangzhou` (cell 000001001).
pub const UE_HANGZHOU: &str = "imsi-001010000000001";
/// The UE served by `edge-london` (cell 000002001).
pub const UE_LONDON: &str = "imsi-001010000000002";

/// Requests a test NF received: (operation path segment, body).
pub type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A test NF's behaviour knobs.
#[derive(Clone, Default)]
pub struct Knobs {
    /// Answer 503 to this many calls before answering normally.
    pub fail_first: Arc<Mutex<u32>>,
}

/// A running test NF.
pub struct TestNf {
    /// The NF.
    pub running: RunningNf,
    /// What it received.
    pub calls: Calls,
    /// Its knobs.
    pub knobs: Knobs,
}

/// The whole bed.
pub struct Bed {
    /// `http://127.0.0.1:<port>` of the CmP.
    pub cmp: String,
    /// The CmP's state.
    pub state: Arc<CmpContext>,
    /// Edge AI functions: hangzhou, london.
    pub edges: Vec<TestNf>,
    /// The cloud AI function.
    pub cloud: TestNf,
    /// An h2c client.
    pub http: reqwest::Client,
    cfg: Arc<TestbedConfig>,
    nfs: Vec<RunningNf>,
    _dir: tempfile::TempDir,
}

/// A reqwest client speaking h2c (prior knowledge), as SBI consumers do.
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        // Generous: a run answered with `wait` lasts as long as the run.
        .timeout(Duration::from_secs(300))
        .build()
        .expect("h2c client")
}

fn nf_entry(nf_type: &str, locality: &str) -> NfConfig {
    NfConfig {
        nf_type: nf_type.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        locality: Some(locality.into()),
        advertise: None,
        tls_cert: None,
        tls_key: None,
        mtls: false,
    }
}

async fn db_in(dir: &tempfile::TempDir, name: &str) -> netgpt_sbi::db::Db {
    let url = format!(
        "sqlite://{}",
        dir.path().join(format!("{name}.db")).display()
    );
    netgpt_sbi::db::connect(&url).await.expect("open database")
}

fn text_of(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The test edge AI function's answer to `op` (`desensitize`, ...).
fn edge_answer(site: &str, op: &str, body: &Value) -> Option<Value> {
    let prompt = text_of(body, "prompt");
    let served = json!(site);
    Some(match op {
        // Masks digits (phone numbers, ids): what leaves the edge carries none.
        "desensitize" => json!({
            "prompt": prompt.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect::<String>(),
            "servedBy": served,
        }),
        "dedup" => json!({ "prompt": prompt, "duplicate": false, "servedBy": served }),
        // Completes with the serving cell the AMF reported.
        "complete" => {
            let cell = body
                .pointer("/location/location/nrLocation/ncgi/nrCellId")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let tz = body
                .pointer("/location/timezone")
                .and_then(Value::as_str)
                .unwrap_or("?");
            json!({
                "prompt": format!("{prompt} (near cell {cell}, UTC{tz}, site {site})"),
                "servedBy": served,
            })
        }
        "policy" => json!({ "prompt": prompt, "allowed": true, "servedBy": served }),
        // Greetings are answered at the edge; everything else goes to the cloud.
        "answer" => {
            let local = prompt.to_ascii_lowercase().starts_with("hello");
            json!({
                "answeredAtEdge": local,
                "text": if local { Value::from(format!("Hello from {site}")) } else { Value::Null },
                "servedBy": served,
            })
        }
        _ => return None,
    })
}

#[derive(Clone)]
struct NfState {
    site: String,
    calls: Calls,
    knobs: Knobs,
}

impl NfState {
    /// Records the call; `Err(503)` while failures are still owed.
    fn record(&self, op: &str, body: &Value) -> Result<(), StatusCode> {
        self.calls
            .lock()
            .unwrap()
            .push((op.to_owned(), body.clone()));
        let mut owed = self.knobs.fail_first.lock().unwrap();
        if *owed > 0 {
            *owed -= 1;
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        Ok(())
    }
}

async fn edge_handler(
    State(st): State<NfState>,
    Path(op): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    st.record(&op, &body)?;
    edge_answer(&st.site, &op, &body)
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

async fn cloud_handler(
    State(st): State<NfState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    st.record("generate", &body).map_err(|s| {
        (
            s,
            Json(json!({ "status": s.as_u16(), "cause": "NF_CONGESTION" })),
        )
    })?;
    let prompt = text_of(&body, "prompt");
    if prompt.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({ "status": 400, "cause": "MANDATORY_IE_MISSING" })),
        ));
    }
    let words = prompt.split_whitespace().count();
    Ok(Json(json!({
        "text": format!("Cloud answer to: {prompt}"),
        "finishReason": "stop",
        "usage": { "promptTokens": words, "completionTokens": 5, "totalTokens": words + 5 },
        "servedBy": st.site,
    })))
}

fn empty_doc(title: &str) -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::new(
        utoipa::openapi::Info::new(title, "0.0.0"),
        utoipa::openapi::Paths::new(),
    )
}

async fn start_test_nf(
    cfg: Arc<TestbedConfig>,
    name: &str,
    dir: &tempfile::TempDir,
    edge: bool,
) -> TestNf {
    let ctx = NfContext::ephemeral(cfg, name, db_in(dir, name).await)
        .await
        .expect("test NF context");
    let st = NfState {
        site: ctx.nf.locality.clone().unwrap_or_default(),
        calls: Calls::default(),
        knobs: Knobs::default(),
    };
    let (calls, knobs) = (st.calls.clone(), st.knobs.clone());
    let app = if edge {
        let router = Router::new()
            .route("/nedgeai-prompt/v1/{op}", post(edge_handler))
            .with_state(st);
        NfApp::new(name).service("nedgeai-prompt", router, empty_doc("test edge AI function"))
    } else {
        let router = Router::new()
            .route("/ncloudai-gen/v1/generate", post(cloud_handler))
            .with_state(st);
        NfApp::new(name).service("ncloudai-gen", router, empty_doc("test cloud AI function"))
    };
    let running = ctx.launch(app).await.expect("launch test NF");
    assert!(running.is_registered(), "{name} registered in the NRF");
    TestNf {
        running,
        calls,
        knobs,
    }
}

impl Bed {
    /// NRF, AMF, edge AI at `edge-hangzhou` and `edge-london`, test cloud AI at `cloud`, CmP.
    pub async fn start() -> Bed {
        Self::start_with(false).await
    }

    /// [`Bed::start`], with the real cloud AI function (`netgpt-cloudai`, the configured
    /// cloud model that tests/run.sh fetches) when `real_cloud`; its `calls` stay empty.
    pub async fn start_with(real_cloud: bool) -> Bed {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = TestbedConfig::load_default().expect("default testbed");
        // The CmP's function with plain HTTP clients; tests/e2e/edge.rs and security.rs
        // run the CmP with OAuth2 on.
        cfg.oauth2.enabled = false;
        cfg.nf.insert(
            "edgeai-hangzhou".into(),
            nf_entry("EDGEAI", "edge-hangzhou"),
        );
        cfg.nf
            .insert("edgeai-london".into(), nf_entry("EDGEAI", "edge-london"));
        cfg.nf
            .insert("cloudai".into(), nf_entry("CLOUDAI", "cloud"));
        // The NRF first: everyone else registers with it.
        let nrf_ctx = NfContext::ephemeral(Arc::new(cfg.clone()), "nrf", db_in(&dir, "nrf").await)
            .await
            .expect("NRF context");
        cfg.nrf.uri = nrf_ctx.api_root.clone();
        let options = NrfOptions {
            expiry_check_interval: Duration::from_millis(200),
            validity_period: 1,
            ..NrfOptions::default()
        };
        let nrf = netgpt_nrf::start_with(nrf_ctx, options)
            .await
            .expect("start NRF");
        let cfg = Arc::new(cfg);
        let amf_ctx = NfContext::ephemeral(cfg.clone(), "amf", db_in(&dir, "amf").await)
            .await
            .expect("AMF context");
        let amf = netgpt_amf::start(amf_ctx).await.expect("start AMF");
        let edges = vec![
            start_test_nf(cfg.clone(), "edgeai-hangzhou", &dir, true).await,
            start_test_nf(cfg.clone(), "edgeai-london", &dir, true).await,
        ];
        let cloud = if real_cloud {
            let ctx = NfContext::ephemeral(cfg.clone(), "cloudai", db_in(&dir, "cloudai").await)
                .await
                .expect("cloud AI context");
            TestNf {
                running: netgpt_cloudai::start(ctx).await.expect("start cloud AI"),
                calls: Calls::default(),
                knobs: Knobs::default(),
            }
        } else {
            start_test_nf(cfg.clone(), "cloudai", &dir, false).await
        };
        let cmp_ctx = NfContext::ephemeral(cfg.clone(), "cmp", db_in(&dir, "cmp").await)
            .await
            .expect("CmP context");
        let (cmp, state) = netgpt_cmp::start_with_state(cmp_ctx)
            .await
            .expect("start CmP");
        Bed {
            cmp: cmp.api_root.clone(),
            state,
            edges,
            cloud,
            http: h2_client(),
            cfg,
            nfs: vec![cmp, amf, nrf],
            _dir: dir,
        }
    }

    /// Starts one more test edge AI function, at `site` (appended to [`Bed::edges`]).
    pub async fn start_edge(&mut self, site: &str) {
        let name = format!("edgeai-{site}");
        let mut cfg = (*self.cfg).clone();
        cfg.nf.insert(name.clone(), nf_entry("EDGEAI", site));
        let nf = start_test_nf(Arc::new(cfg), &name, &self._dir, true).await;
        self.edges.push(nf);
    }

    /// `GET {cmp}{path}` -> (status, JSON body or null).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.cmp))
            .send()
            .await
            .expect("GET");
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET {cmp}{path}` -> (status, content type, text).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.cmp))
            .send()
            .await
            .expect("GET");
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, r.text().await.unwrap_or_default())
    }

    /// `{method} {cmp}{path}` with a JSON body -> (status, Location, JSON body or null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Option<String>, Value) {
        self.send_raw(method, path, "application/json", body.to_string())
            .await
    }

    /// `{method} {cmp}{path}` with a body of `content_type`.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Option<String>, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.cmp))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            assert!(
                ct.starts_with("application/problem+json"),
                "errors are ProblemDetails, got {ct}: {body}"
            );
        }
        (status, location, body)
    }

    /// Stops every NF (CmP first, the NRF last).
    pub async fn stop(self) {
        for nf in self.edges.into_iter().chain([self.cloud]) {
            nf.running.stop().await;
        }
        for nf in self.nfs {
            nf.stop().await;
        }
    }
}

/// The `invalidParams[].param` names of a ProblemDetails body.
pub fn invalid_params(problem: &Value) -> Vec<String> {
    problem["invalidParams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["param"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
