//! The edge AI function end to end, with the real edge model (`models/edge`) and the real
//! cloud model (SmolLM2-135M-Instruct, cached by `netgpt models fetch`): NRF, AMF, cloud AI
//! function and two edge sites (London and Paris) in one process over h2c.
//!
//! What the cloud AI function receives is recorded by a layer on its own router (the
//! function itself is unchanged), so the tests assert on what actually left the edge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use netgpt_e2e::{config_with_nrf, fast_nrf_options, start_nrf, TestNrf, TokenClient};
use netgpt_models::data::pairs::check_completion;
use netgpt_models::data::profiles;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::db::Db;
use netgpt_sbi::{NfContext, RunningNf};
use serde_json::{json, Value};

/// Per-request timeout of the test client: on a loaded machine the cloud model decodes
/// slowly, and the tests assert outcomes, not speed.
const TIMEOUT: Duration = Duration::from_secs(300);

const UE_LONDON: &str = "imsi-001010000000002";
const UE_PARIS: &str = "imsi-001010000000003";

/// Bodies of the `generate` requests the cloud AI function received.
type Received = Arc<Mutex<Vec<Value>>>;

struct Testbed {
    nrf: TestNrf,
    nfs: Vec<RunningNf>,
    amf: String,
    cmp: String,
    edges: std::collections::BTreeMap<String, String>,
    received: Received,
    /// Test client carrying OAuth2 tokens (the testbed runs with `[oauth2]` on).
    http: TokenClient,
    _dir: tempfile::TempDir,
}

async fn record(
    axum::extract::State(received): axum::extract::State<Received>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if parts.uri.path().ends_with("/generate") {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            received.lock().unwrap().push(v);
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn ctx(cfg: &Arc<TestbedConfig>, name: &str, db: &Db) -> NfContext {
    NfContext::ephemeral(cfg.clone(), name, db.clone())
        .await
        .unwrap()
}

/// NRF, AMF (with the default UEs), the cloud AI function and the London and Paris edge
/// functions; `None` (test skipped) when the cloud model is not cached.
async fn start(edit: impl FnOnce(&mut TestbedConfig)) -> Option<Testbed> {
    let Some(model) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("cloud model not cached (run `netgpt models fetch`): skipped");
        return None;
    };
    let nrf = start_nrf(fast_nrf_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_with_nrf(&nrf.base);
    cfg.cloudai.model = Some(model);
    cfg.cloudai.max_new_tokens = 16;
    cfg.edgeai.cloud_max_tokens = 6;
    // A hundred prompts from two UEs at once: dedup is under test here, not the per-UE
    // rate (tests/e2e/security.rs checks that).
    cfg.limits.ue_rate_per_s = 0.0;
    edit(&mut cfg);
    let http = TokenClient::new(&cfg, "edge-test-ue", TIMEOUT);
    let cfg = Arc::new(cfg);
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("testbed.db").display()
    ))
    .await
    .unwrap();
    let mut nfs = Vec::new();
    let amf_ctx = ctx(&cfg, "amf", &db).await;
    let amf = amf_ctx.api_root.clone();
    nfs.push(netgpt_amf::start(amf_ctx).await.unwrap());

    let received: Received = Arc::default();
    let cloud_ctx = ctx(&cfg, "cloudai", &db).await;
    let limits = cfg.cloudai.clone();
    let state = tokio::task::spawn_blocking(move || {
        netgpt_cloudai::CloudAiContext::load(&limits, "cloudai").unwrap()
    })
    .await
    .unwrap();
    let router = cloud_ctx
        .guard(netgpt_cloudai::app("cloudai", Arc::new(state)))
        .build()
        .layer(axum::middleware::from_fn_with_state(
            received.clone(),
            record,
        ));
    let profile = cloud_ctx.profile(&[netgpt_cloudai::SERVICE, netgpt_cloudai::split::SERVICE]);
    nfs.push(
        cloud_ctx
            .launch_with_profile(router, Some(profile))
            .await
            .unwrap(),
    );

    let mut edges = std::collections::BTreeMap::new();
    for name in ["edge-london", "edge-paris"] {
        let c = ctx(&cfg, name, &db).await;
        edges.insert(name.to_owned(), c.api_root.clone());
        nfs.push(
            netgpt_edgeai::start(c)
                .await
                .expect("start edge AI function"),
        );
    }
    let cmp_ctx = ctx(&cfg, "cmp", &db).await;
    let cmp = cmp_ctx.api_root.clone();
    nfs.push(netgpt_cmp::start(cmp_ctx).await.expect("start CmP"));
    Some(Testbed {
        nrf,
        nfs,
        amf,
        cmp,
        edges,
        received,
        http,
        _dir: dir,
    })
}

impl Testbed {
    async fn stop(self) {
        for nf in self.nfs.into_iter().rev() {
            nf.stop().await;
        }
        self.nrf.stop().await;
    }

    async fn post(&self, site: &str, op: &str, body: Value) -> (u16, Value) {
        self.post_path(site, &format!("/nedgeai-prompt/v1/{op}"), body)
            .await
    }

    async fn post_path(&self, site: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.edges[site]))
            .await
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    async fn ask(&self, site: &str, supi: &str, prompt: &str) -> Value {
        let (s, v) = self
            .post(
                site,
                "ue-prompts",
                json!({ "supi": supi, "prompt": prompt }),
            )
            .await;
        assert_eq!(s, 200, "{prompt}: {v}");
        v
    }

    async fn handover(&self, supi: &str, cell: &str) {
        let r = self
            .http
            .post(format!(
                "{}/namf-comm/v1/ue-contexts/{supi}/handover",
                self.amf
            ))
            .await
            .json(&json!({ "nrCellId": cell }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "handover: {}", r.status());
    }

    /// Registers at the CmP a copy of the shipped workflow `workflow` named `name`, with
    /// generous time limits (a loaded test machine decodes far slower than the shipped
    /// budget assumes: 300 s in all, 240 s per step), changed further by `edit`.
    async fn register_relaxed_copy(
        &self,
        workflow: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) {
        let shipped: Value = self
            .http
            .get(format!("{}/ncmp-wf/v1/workflows/{workflow}", self.cmp))
            .await
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut spec = shipped["spec"].clone();
        spec["name"] = json!(name);
        spec["budgetMs"] = json!(300_000);
        for step in spec["steps"].as_array_mut().unwrap() {
            step["timeoutMs"] = json!(240_000);
        }
        edit(&mut spec);
        let r = self
            .http
            .post(format!("{}/ncmp-wf/v1/workflows", self.cmp))
            .await
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{name}");
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    async fn status(&self, site: &str) -> Value {
        self.http
            .get(format!("{}/nedgeai-prompt/v1/status", self.edges[site]))
            .await
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn assert_site_facts(site: &str, category: &str, text: &str) {
    let c = check_completion(&profiles::builtin(), site, category, text);
    assert!(c.correct(), "{site}/{category}: {text:?} ({c:?})");
}

#[tokio::test]
async fn site_facts_follow_the_ue_through_a_handover() {
    let Some(tb) = start(|_| {}).await else {
        return;
    };
    // A UE at King's Cross asks its edge (London).
    let a = tb
        .ask("edge-london", UE_LONDON, "Recommend libraries")
        .await;
    assert_eq!(a["servedBy"], "edge-london");
    assert_eq!(a["answeredBy"], "CLOUD");
    assert_eq!(a["cell"]["nrCellId"], "000002001");
    let london = a["comprehensivePrompt"].as_str().unwrap();
    assert_site_facts("edge-london", "libraries", london);
    assert!(london.contains("King's Cross station"), "{london}");
    assert!(!a["answer"].as_str().unwrap().trim().is_empty(), "{a}");
    // The cloud received exactly that comprehensive prompt.
    let got = tb.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["prompt"], london);

    // The same prompt from a UE in Paris carries Paris's facts.
    let b = tb.ask("edge-paris", UE_PARIS, "Recommend libraries").await;
    assert_eq!(b["servedBy"], "edge-paris");
    let paris = b["comprehensivePrompt"].as_str().unwrap();
    assert_site_facts("edge-paris", "libraries", paris);
    assert_ne!(london, paris);

    // The London UE, with preferences kept at its London edge, moves to a Paris cell;
    // asking its old edge, it is served by Paris's, and its preferences moved with it.
    let r = tb
        .http
        .put(format!(
            "{}/nedgeai-prompt/v1/user-profiles/{UE_LONDON}",
            tb.edges["edge-london"]
        ))
        .await
        .json(&json!({ "preferences": ["wheelchair access"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    tb.handover(UE_LONDON, "000003002").await;
    let c = tb
        .ask("edge-london", UE_LONDON, "Recommend libraries")
        .await;
    assert_eq!(c["servedBy"], "edge-paris", "{c}");
    assert_eq!(c["userProfileApplied"], true, "{c}");
    assert!(
        c["comprehensivePrompt"]
            .as_str()
            .unwrap()
            .contains("wheelchair access"),
        "{c}"
    );
    assert_eq!(c["cell"]["nrCellId"], "000003002");
    let moved = c["comprehensivePrompt"].as_str().unwrap();
    assert_site_facts("edge-paris", "libraries", moved);
    assert!(moved.contains("Jardin du Luxembourg"), "{moved}");
    tb.stop().await;
}

#[tokio::test]
async fn personal_data_never_reaches_the_cloud() {
    let Some(tb) = start(|_| {}).await else {
        return;
    };
    let secrets = [
        "Alice Martin",
        "+44 20 7946 0958",
        "alice.martin@example.com",
        "4111 1111 1111 1111",
        "imsi-001010000000002",
    ];
    let prompt = format!(
        "My name is {}, call me on {} or write to {}. My card is {} and my SUPI {}. Recommend museums",
        secrets[0], secrets[1], secrets[2], secrets[3], secrets[4]
    );
    let a = tb.ask("edge-london", UE_LONDON, &prompt).await;
    let pii = a["pii"].as_object().unwrap();
    for kind in [
        "PERSON_NAME",
        "PHONE_NUMBER",
        "EMAIL_ADDRESS",
        "PAYMENT_CARD",
        "SUPI",
    ] {
        assert!(
            pii.get(kind).and_then(Value::as_u64).unwrap_or(0) >= 1,
            "{kind} not found: {a}"
        );
    }
    let concise = a["concisePrompt"].as_str().unwrap();
    let sent = serde_json::to_string(&tb.received()).unwrap();
    assert!(!tb.received().is_empty());
    for s in secrets {
        assert!(!concise.contains(s), "{s} left in {concise}");
        assert!(!sent.contains(s), "{s} reached the cloud: {sent}");
    }
    // Digits of the phone and card numbers, whatever their spacing, are not there either.
    for digits in ["2079460958", "4111111111111111"] {
        let squeezed: String = sent.chars().filter(|c| c.is_ascii_digit()).collect();
        assert!(!squeezed.contains(digits), "{digits} reached the cloud");
    }

    // A blocked topic is refused before anything is sent.
    let before = tb.received().len();
    let (s, p) = tb
        .post(
            "edge-london",
            "ue-prompts",
            json!({ "supi": UE_LONDON, "prompt": "write an exploit for the museum ticket site" }),
        )
        .await;
    assert_eq!(s, 403, "{p}");
    assert_eq!(p["cause"], "POLICY_DENIED");
    assert!(!p["invalidParams"].as_array().unwrap().is_empty(), "{p}");
    assert_eq!(tb.received().len(), before);
    tb.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_make_one_upstream_call_per_distinct_prompt() {
    let Some(tb) = start(|_| {}).await else {
        return;
    };
    // Five open requests (not place lookups, which the edge answers itself) at two sites:
    // ten distinct (site, prompt) pairs, each sent ten times with varied case, spacing and
    // punctuation, all at once.
    let prompts = [
        "Recommend libraries",
        "recommend museums",
        "Suggest parks for a run",
        "public transport options",
        "Tell me about the universities",
    ];
    let mut calls = Vec::new();
    for i in 0..10 {
        for p in prompts {
            for (site, ue) in [("edge-london", UE_LONDON), ("edge-paris", UE_PARIS)] {
                let text = match i % 5 {
                    0 => p.to_owned(),
                    1 => p.to_uppercase(),
                    2 => format!("  {p}!!"),
                    3 => p.to_lowercase().replace(' ', "  "),
                    _ => format!("{p}?"),
                };
                if i >= 5 && site == "edge-paris" {
                    continue; // 5 rounds x 2 sites + 5 more in London: 75 + 25 = 100 requests
                }
                calls.push((site, ue, text));
            }
        }
    }
    while calls.len() < 100 {
        calls.push((
            "edge-london",
            UE_LONDON,
            prompts[calls.len() % 5].to_owned(),
        ));
    }
    assert_eq!(calls.len(), 100);
    let tb = Arc::new(tb);
    let mut tasks = Vec::new();
    for (site, ue, text) in calls {
        let tb = tb.clone();
        tasks.push(tokio::spawn(async move { tb.ask(site, ue, &text).await }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let received = tb.received();
    let distinct: std::collections::BTreeSet<String> = received
        .iter()
        .map(|v| v["prompt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received.len(), 10, "upstream calls: {received:?}");
    assert_eq!(distinct.len(), 10);
    let mut upstream = 0;
    for site in ["edge-london", "edge-paris"] {
        let s = tb.status(site).await;
        upstream += s["stats"]["upstreamCalls"].as_u64().unwrap();
    }
    assert_eq!(upstream, 10);
    assert!(answers
        .iter()
        .any(|a| a["coalesced"] == true || a["answeredBy"] == "EDGE_CACHE"));
    // Asked again, every answer comes from the edge's cache: no new upstream call.
    let again = tb.ask("edge-paris", UE_PARIS, "recommend museums").await;
    assert_eq!(again["answeredBy"], "EDGE_CACHE");
    assert_eq!(tb.received().len(), 10);
    Arc::into_inner(tb).unwrap().stop().await;
}

#[tokio::test]
async fn operations_alone_with_profiles_batching_and_clear_errors() {
    let Some(tb) = start(|c| c.edgeai.max_wait_ms = 300).await else {
        return;
    };
    // A place lookup is answered at the edge, from the site profile.
    let a = tb
        .ask("edge-london", UE_LONDON, "Where is the nearest hospital?")
        .await;
    assert_eq!(a["answeredBy"], "EDGE_DIRECTORY", "{a}");
    assert_site_facts("edge-london", "hospitals", a["answer"].as_str().unwrap());
    assert!(tb.received().is_empty());

    // Profiles: kept at the edge, applied to completions, refused with personal data.
    let url = format!(
        "{}/nedgeai-prompt/v1/user-profiles/{UE_LONDON}",
        tb.edges["edge-london"]
    );
    let r = tb
        .http
        .put(&url)
        .await
        .json(&json!({ "preferences": ["vegetarian", "travelling with kids"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let (s, c) = tb
        .post(
            "edge-london",
            "complete",
            json!({ "prompt": "where to eat", "supi": UE_LONDON }),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["userProfileApplied"], true);
    assert!(c["prompt"].as_str().unwrap().contains("vegetarian"), "{c}");
    let r = tb
        .http
        .put(&url)
        .await
        .json(&json!({ "preferences": ["call me on +44 20 7946 0958"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let kept: Value = tb
        .http
        .get(&url)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kept["preferences"][0], "vegetarian",
        "a refused update keeps the old profile"
    );

    // Dynamic batching: concurrent completions are decoded together.
    let mut tasks = Vec::new();
    for p in [
        "Recommend libraries",
        "recommend museums",
        "find a park to run",
        "where to eat",
        "nearest hospital",
        "public transport options",
    ] {
        let base = tb.edges["edge-paris"].clone();
        let http = tb.http.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/nedgeai-prompt/v1/complete"))
                .await
                .json(&json!({ "prompt": p }))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut biggest = 0;
    for t in tasks {
        let v = t.await.unwrap();
        assert_site_facts_any("edge-paris", v["prompt"].as_str().unwrap());
        biggest = biggest.max(v["batchSize"].as_u64().unwrap());
    }
    assert!(biggest > 1, "no two completions were batched");

    // Desensitize + restore round trip.
    let (s, d) = tb
        .post(
            "edge-paris",
            "desensitize",
            json!({ "prompt": "I'm Marie Curie, mail marie@example.fr" }),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let masked = d["prompt"].as_str().unwrap();
    assert!(!masked.contains("marie@example.fr"));
    let (s, r) = tb
        .post(
            "edge-paris",
            "restore",
            json!({ "text": masked, "restoreId": d["restoreId"] }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["text"], "I'm Marie Curie, mail marie@example.fr");

    // Dedup alone.
    let (_, first) = tb
        .post(
            "edge-paris",
            "dedup",
            json!({ "prompt": "Recommend museums" }),
        )
        .await;
    let (_, second) = tb
        .post(
            "edge-paris",
            "dedup",
            json!({ "prompt": "recommend museums!" }),
        )
        .await;
    assert_eq!(second["duplicate"], "NORMALIZED", "{first} {second}");
    assert_eq!(second["prompt"], "Recommend museums");

    // Bad input: ProblemDetails naming the parameter.
    for (op, body, status, param) in [
        (
            "ue-prompts",
            json!({ "supi": "imsi-12", "prompt": "hi" }),
            400,
            Some("supi"),
        ),
        (
            "ue-prompts",
            json!({ "supi": UE_LONDON, "prompt": "  " }),
            400,
            Some("prompt"),
        ),
        (
            "ue-prompts",
            json!({ "supi": "imsi-001019999999999", "prompt": "hi" }),
            404,
            None,
        ),
        (
            "ue-prompts",
            json!({ "supi": UE_LONDON, "prompt": "hi", "maxTokens": 0 }),
            400,
            Some("maxTokens"),
        ),
        (
            "complete",
            json!({ "prompt": "x".repeat(5000) }),
            400,
            Some("prompt"),
        ),
        (
            "complete",
            json!({ "prompt": "hi", "supi": UE_PARIS }),
            400,
            Some("location"),
        ),
        (
            "restore",
            json!({ "text": "x", "restoreId": "nope" }),
            404,
            None,
        ),
        (
            "policy",
            json!({ "prompt": "hi", "destination": "" }),
            400,
            Some("destination"),
        ),
    ] {
        let (s, p) = tb.post("edge-london", op, body.clone()).await;
        assert_eq!(s, status, "{op} {body}: {p}");
        assert!(p["cause"].is_string(), "{op}: {p}");
        if let Some(param) = param {
            assert_eq!(p["invalidParams"][0]["param"], param, "{op}: {p}");
        }
    }
    let r = tb
        .http
        .post(format!(
            "{}/nedgeai-prompt/v1/complete",
            tb.edges["edge-london"]
        ))
        .await
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Analytics, NWDAF-shaped: content popularity for the next interval of the site's trace.
    let base = tb.edges["edge-london"].clone();
    let get = |q: String| {
        let base = base.clone();
        let http = tb.http.clone();
        async move {
            let r = http
                .get(format!("{base}/nedgeai-analytics/v1/analytics?{q}"))
                .await
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, a) = get("event-id=CONTENT_POPULARITY".into()).await;
    assert_eq!(s, 200, "{a}");
    let items = a["contentPopularityInfos"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{a}");
    for it in items {
        let p = it["probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(it["appears"], p > 0.5);
    }
    let (s, a5) =
        get("event-id=CONTENT_POPULARITY&event-filter=%7B%22interval%22%3A5%7D".into()).await;
    assert_eq!(s, 200, "{a5}");
    assert_eq!(a5["interval"], 5);
    for (q, param) in [
        ("event-id=UE_MOBILITY", "event-id"),
        (
            "event-id=CONTENT_POPULARITY&event-filter=nope",
            "event-filter",
        ),
        (
            "event-id=CONTENT_POPULARITY&event-filter=%7B%22interval%22%3A99999%7D",
            "event-filter",
        ),
    ] {
        let (s, p) = get(q.into()).await;
        assert_eq!(s, 400, "{q}: {p}");
        assert_eq!(p["invalidParams"][0]["param"], param, "{q}: {p}");
    }
    // Intent inference, by rules and by the fine-tuned edge model.
    let text = "I want a 10 Gbps link from Access 1 to Cloud 2 with protection";
    for method in ["RULES", "EDGE_MODEL"] {
        let (s, v) = tb
            .post_path(
                "edge-london",
                "/nedgeai-analytics/v1/intent-inference",
                json!({ "text": text, "method": method }),
            )
            .await;
        assert_eq!(s, 200, "{method}: {v}");
        assert!(
            v["keywords"].as_object().is_some_and(|k| !k.is_empty()),
            "{method}: {v}"
        );
        assert_eq!(v["intent"]["userLabel"], text, "{method}: {v}");
        assert!(v["intent"]["intentExpectations"]
            .as_array()
            .is_some_and(|e| !e.is_empty()));
    }
    let (s, v) = tb
        .post_path(
            "edge-london",
            "/nedgeai-analytics/v1/intent-inference",
            json!({ "text": " " }),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["invalidParams"][0]["param"], "text");

    // Metrics of the edge pipeline are exposed.
    let m = tb
        .http
        .get(format!("{}/metrics", tb.edges["edge-london"]))
        .await
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "edgeai_answers_total",
        "edgeai_completion_batch_size",
        "edgeai_duplicates_total",
    ] {
        assert!(m.contains(family), "{family} missing");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    tb.stop().await;
}

#[tokio::test]
async fn the_cmp_runs_the_netgpt_workflow_through_the_edge_function() {
    let Some(tb) = start(|_| {}).await else {
        return;
    };
    // The shipped workflow with few tokens.
    tb.register_relaxed_copy("netgpt", "netgpt-slow", |spec| {
        for step in spec["steps"].as_array_mut().unwrap() {
            if step["id"] == "generate" {
                step["params"]["maxTokens"] = json!(8);
            }
        }
    })
    .await;
    let client = tb.http.clone();
    let prompt = "My name is Alice Martin. Recommend libraries";
    let r = client
        .post(format!("{}/ncmp-wf/v1/workflows/netgpt-slow/runs", tb.cmp))
        .await
        .json(&json!({ "input": { "supi": UE_LONDON, "prompt": prompt }, "wait": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let step = |id: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stepId"] == id)
            .unwrap_or_else(|| panic!("{id}"))
            .clone()
    };
    for id in ["desensitize", "dedup", "complete", "policy", "answer"] {
        let s = step(id);
        assert_eq!(s["status"], "succeeded", "{id}: {s}");
        assert_eq!(s["node"], "edge-london", "{id}");
    }
    assert_eq!(step("desensitize")["output"]["counts"]["PERSON_NAME"], 1);
    let comprehensive = step("complete")["output"]["prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    // (The placeholder in front of the request can pull the small edge model to another
    // category of the site: only the site is asserted here.)
    assert_site_facts_any("edge-london", &comprehensive);
    assert!(
        comprehensive.contains("Recommend libraries"),
        "{comprehensive}"
    );
    assert!(comprehensive.contains("[PERSON_1]"), "{comprehensive}");
    assert_eq!(step("generate")["status"], "succeeded");
    assert!(
        !run["output"]["text"].as_str().unwrap_or("").is_empty(),
        "{run}"
    );
    // What the cloud got is the edge's comprehensive prompt, without the name.
    let got = tb.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["prompt"], comprehensive.as_str());
    assert!(!serde_json::to_string(&got).unwrap().contains("Alice"));
    tb.stop().await;
}

#[tokio::test]
async fn offload_and_splitting_run_as_cmp_workflows_at_the_ues_site() {
    let Some(tb) = start(|_| {}).await else {
        return;
    };
    let client = tb.http.clone();
    let prompt = "What is the capital of France?";
    let mut texts = Vec::new();
    for (workflow, framework) in [("offload", "OFFLOAD"), ("splitting", "SPLITTING")] {
        // The shipped workflow (one step) with few tokens.
        tb.register_relaxed_copy(workflow, &format!("{workflow}-test"), |spec| {
            spec["steps"][0]["params"]["maxTokens"] = json!(6);
            // Lossless hidden states, so that the split answer is the whole model's.
            if workflow == "splitting" {
                spec["steps"][0]["params"]["lossless"] = json!(true);
            }
        })
        .await;
        let before = tb.received().len();
        let run: Value = client
            .post(format!(
                "{}/ncmp-wf/v1/workflows/{workflow}-test/runs",
                tb.cmp
            ))
            .await
            .json(&json!({ "input": { "supi": UE_PARIS, "prompt": prompt }, "wait": true }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(run["status"], "succeeded", "{workflow}: {run}");
        let step = &run["steps"][0];
        assert_eq!(step["node"], "edge-paris", "{workflow}: {step}");
        let out = &step["output"];
        assert_eq!(out["framework"], framework);
        assert_eq!(out["site"], "edge-paris");
        assert!(!out["text"].as_str().unwrap().is_empty(), "{out}");
        // Neither framework calls the cloud's generate: offload sends nothing to the cloud,
        // splitting sends hidden states to its split service — far more bytes than the prompt.
        assert_eq!(tb.received().len(), before, "{workflow}");
        let sent = out["bytesToCloud"].as_u64().unwrap();
        if workflow == "offload" {
            assert_eq!(sent, 0);
        } else {
            assert!(
                sent > 100 * prompt.len() as u64,
                "{sent} bytes for a {}-byte prompt",
                prompt.len()
            );
            assert_eq!(out["splitLayer"], 7, "a quarter of SmolLM2's 30 layers");
        }
        texts.push(out["text"].as_str().unwrap().to_owned());
    }
    // Greedy, lossless: the split model answers exactly as the whole one.
    assert_eq!(texts[0], texts[1]);
    tb.stop().await;
}

fn assert_site_facts_any(site: &str, text: &str) {
    let p = profiles::builtin();
    assert!(
        p[site].all_facts().any(|f| text.contains(&f.name)),
        "{site}: {text:?}"
    );
    for (other, prof) in &p {
        if other != site {
            assert!(
                !prof.all_facts().any(|f| text.contains(&f.name)),
                "{other}'s fact in {text:?}"
            );
        }
    }
}
