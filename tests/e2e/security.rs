//! OAuth2 between NFs end to end (TS 29.510 / TS 33.501 client credentials), with the
//! default `[oauth2]` (on): NRF, AMF, an edge AI function, the CmP and, when the cloud
//! model is cached, the cloud AI function, in one process over h2c.
//!
//! - Every operation of every service in every NF's OpenAPI document refuses a request
//!   without a token (401, `WWW-Authenticate: Bearer`, ProblemDetails), a token for another
//!   NF type (403 `INVALID_AUDIENCE`) and a token for another service of the same NF (403
//!   `INSUFFICIENT_SCOPE`); the right token gets past the check.
//! - The NRF's token endpoint refuses what it must: a scope naming another NF type's
//!   service (free5gc's targetNfType=NRF bypass), a wrong client secret, a consumer claiming
//!   another NF type than it registered, other grant types, repeated or missing parameters,
//!   a JSON body. A token it issues for the NRF opens nothing at the AMF.
//! - The NFs registered, heartbeat and discover with tokens; the NRF keeps its signing key
//!   across a restart; no token and no client secret appears in any log line.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use netgpt_e2e::{config_with_nrf, fast_nrf_options, h2_client, start_nrf, start_nrf_on};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::oauth::{self, JwkSet};
use netgpt_sbi::{NfContext, RunningNf};
use serde_json::Value;

/// Everything logged by this test binary (all levels, all crates).
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Substrings of `text` shaped like a compact JWS (`eyJ...` header, three parts).
fn jws_like(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    for (i, _) in text.match_indices("eyJ") {
        let run: String = text[i..].chars().take_while(|c| token_char(*c)).collect();
        if run.split('.').filter(|p| !p.is_empty()).count() >= 3 {
            found.push(run);
        }
    }
    found
}

struct Testbed {
    cfg: Arc<TestbedConfig>,
    nrf: netgpt_e2e::TestNrf,
    /// NF type -> (API root, running NF)
    nfs: BTreeMap<String, (String, RunningNf)>,
    _dir: tempfile::TempDir,
}

async fn start() -> Testbed {
    start_with(|_| {}).await
}

async fn start_with(edit: impl FnOnce(&mut TestbedConfig)) -> Testbed {
    let nrf = start_nrf(fast_nrf_options()).await;
    let mut cfg = config_with_nrf(&nrf.base);
    edit(&mut cfg);
    assert!(cfg.oauth2.enabled, "OAuth2 must be on by default");
    let cloud_model = netgpt_models::fetch::cached_cloud_model();
    if let Some(m) = &cloud_model {
        cfg.cloudai.model = Some(m.clone());
        cfg.cloudai.max_new_tokens = 4;
    }
    let cfg = Arc::new(cfg);
    let dir = tempfile::tempdir().unwrap();
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("testbed.db").display()
    ))
    .await
    .unwrap();
    let ctx = |name: &'static str| {
        let (cfg, db) = (cfg.clone(), db.clone());
        async move { NfContext::ephemeral(cfg, name, db).await.unwrap() }
    };
    let mut nfs = BTreeMap::new();
    let c = ctx("amf").await;
    let root = c.api_root.clone();
    nfs.insert("AMF".into(), (root, netgpt_amf::start(c).await.unwrap()));
    let c = ctx("edge-london").await;
    let root = c.api_root.clone();
    nfs.insert(
        "EDGEAI".into(),
        (root, netgpt_edgeai::start(c).await.unwrap()),
    );
    let c = ctx("cmp").await;
    let root = c.api_root.clone();
    nfs.insert("CMP".into(), (root, netgpt_cmp::start(c).await.unwrap()));
    if cloud_model.is_some() {
        let c = ctx("cloudai").await;
        let root = c.api_root.clone();
        nfs.insert(
            "CLOUDAI".into(),
            (root, netgpt_cloudai::start(c).await.unwrap()),
        );
    } else {
        eprintln!("cloud model not cached (run `netgpt models fetch`): the cloud AI function is not checked");
    }
    Testbed {
        cfg,
        nrf,
        nfs,
        _dir: dir,
    }
}

impl Testbed {
    async fn stop(self) {
        for (_, (_, nf)) in self.nfs.into_iter().rev() {
            nf.stop().await;
        }
        self.nrf.stop().await;
    }

    async fn token(&self, target: &str, scope: &str) -> String {
        oauth::request_token(&self.cfg, "security-test", target, scope)
            .await
            .unwrap_or_else(|e| panic!("token for {target} {scope}: {e}"))
    }
}

/// `(method, concrete path, service)` of every operation in an NF's OpenAPI document.
async fn operations(root: &str) -> Vec<(String, String, String)> {
    let doc: Value = h2_client()
        .get(format!("{root}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheme = &doc["components"]["securitySchemes"]["oAuth2ClientCredentials"];
    assert!(
        scheme["flows"]["clientCredentials"]["tokenUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with("/oauth2/token")),
        "{root}: {scheme}"
    );
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/oauth2/") {
            continue; // the token service itself takes no token
        }
        let concrete: String = path
            .split('/')
            .map(|seg| match seg {
                s if s.starts_with('{') && s.to_ascii_lowercase().contains("supi") => {
                    "imsi-001010000000001".to_owned()
                }
                s if s.starts_with('{') => uuid::Uuid::new_v4().to_string(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let first = path.trim_start_matches('/').split('/').next().unwrap();
        let service = if first == "v1" { "openai" } else { first };
        for method in ["get", "put", "post", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                // The document says what the NF enforces: the scope, and 401/403.
                assert_eq!(
                    op["security"][0]["oAuth2ClientCredentials"][0], service,
                    "{method} {path}: {}",
                    op["security"]
                );
                assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
                ops.push((method.to_uppercase(), concrete.clone(), service.to_owned()));
            }
        }
    }
    ops
}

async fn call(method: &str, url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut rb = h2_client()
        .request(method.parse().unwrap(), url)
        .header("content-type", "application/json")
        .body("{}");
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == 401 || status == 403 {
        assert_eq!(ct, "application/problem+json", "{method} {url}");
    }
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_operation_of_every_nf_requires_the_right_token() {
    let logs = log_buffer();
    let tb = start().await;
    let mut checked = 0;
    let mut targets: Vec<(String, String)> = tb
        .nfs
        .iter()
        .map(|(t, (root, _))| (t.clone(), root.clone()))
        .collect();
    targets.push(("NRF".into(), tb.nrf.base.clone()));
    for (nf_type, root) in &targets {
        let ops = operations(root).await;
        assert!(!ops.is_empty(), "{nf_type}: no operations documented");
        let services: std::collections::BTreeSet<String> =
            ops.iter().map(|(_, _, s)| s.clone()).collect();
        // A token for another NF type: the AMF's own location service, or the edge's.
        let (other_type, other_scope) = if nf_type == "AMF" {
            ("EDGEAI", "nedgeai-prompt")
        } else {
            ("AMF", "namf-loc")
        };
        let foreign = tb.token(other_type, other_scope).await;
        for (method, path, service) in &ops {
            let url = format!("{root}{path}");
            // No token.
            let (s, challenge, body) = call(method, &url, None).await;
            assert_eq!(s, 401, "{nf_type} {method} {path} without a token: {body}");
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{method} {path}: WWW-Authenticate {challenge:?}"
            );
            assert_eq!(body["cause"], "MISSING_ACCESS_TOKEN");
            // A garbage token.
            let (s, _, body) = call(method, &url, Some("not.a.token")).await;
            assert_eq!(s, 401, "{method} {path} with garbage: {body}");
            assert_eq!(body["cause"], "INVALID_ACCESS_TOKEN");
            // Another NF type's token.
            let (s, _, body) = call(method, &url, Some(&foreign)).await;
            assert_eq!(
                s, 403,
                "{nf_type} {method} {path} with an {other_type} token: {body}"
            );
            assert_eq!(body["cause"], "INVALID_AUDIENCE");
            // This NF, another of its services (when it has one), or a service it lacks.
            let wrong_service = services
                .iter()
                .find(|s| *s != service)
                .cloned()
                .unwrap_or_else(|| format!("n{}-other", nf_type.to_ascii_lowercase()));
            if services.contains(&wrong_service) {
                let t = tb.token(nf_type, &wrong_service).await;
                let (s, challenge, body) = call(method, &url, Some(&t)).await;
                assert_eq!(
                    s, 403,
                    "{method} {path} with a {wrong_service} token: {body}"
                );
                assert_eq!(body["cause"], "INSUFFICIENT_SCOPE");
                assert!(challenge.unwrap().contains("insufficient_scope"));
            }
            // The right token passes the check (the dummy input may still be refused).
            let t = tb.token(nf_type, service).await;
            let (s, _, body) = call(method, &url, Some(&t)).await;
            assert!(
                s != 401 && s != 403,
                "{nf_type} {method} {path} with the right token: {s} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations checked");
    // What the NFs and this test exchanged never reached a log line.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(!text.is_empty(), "the log capture saw nothing");
    let tokens = jws_like(&text);
    assert!(tokens.is_empty(), "tokens in the logs: {:?}", &tokens[..1]);
    assert!(
        !text.contains(&tb.cfg.oauth2.client_secret),
        "the client secret was logged"
    );
    tb.stop().await;
}

async fn token_request(nrf: &str, basic: Option<(&str, &str)>, form: &str) -> (u16, Value) {
    let mut rb = h2_client()
        .post(oauth::token_url(nrf))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some((id, secret)) = basic {
        rb = rb.header("authorization", oauth::basic_auth(id, secret));
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_endpoint_refuses_bypasses_and_bad_clients() {
    let tb = start().await;
    let nrf = tb.nrf.base.clone();
    let secret = tb.cfg.oauth2.client_secret.clone();
    let me = oauth::consumer_instance_id("bypass-test").to_string();
    let good = format!(
        "grant_type=client_credentials&nfInstanceId={me}&nfType=AF&targetNfType=AMF&scope=namf-loc"
    );
    let (s, v) = token_request(&nrf, Some((&me, &secret)), &good).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "namf-loc");
    assert!(v["expires_in"].as_u64().unwrap() > 0);

    let other = oauth::consumer_instance_id("other").to_string();
    // (what, HTTP Basic credentials, form, status, OAuth2 error)
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        // free5gc's bypass: a token "for the NRF" whose scope names the AMF's service.
        (
            "targetNfType=NRF with an AMF scope",
            Some((&me, &secret)),
            format!("grant_type=client_credentials&nfInstanceId={me}&nfType=AF&targetNfType=NRF&scope=namf-loc"),
            400,
            "invalid_scope",
        ),
        (
            "scope mixing two NF types",
            Some((&me, &secret)),
            format!("grant_type=client_credentials&nfInstanceId={me}&nfType=AF&targetNfType=AMF&scope=namf-loc%20nnrf-disc"),
            400,
            "invalid_scope",
        ),
        (
            "a service no registered AMF offers",
            Some((&me, &secret)),
            format!("grant_type=client_credentials&nfInstanceId={me}&nfType=AF&targetNfType=AMF&scope=namf-nosuch"),
            400,
            "invalid_scope",
        ),
        ("wrong secret", Some((&me, "wrong-secret-0123456789")), good.clone(), 401, "invalid_client"),
        ("no client authentication", None, good.clone(), 401, "invalid_client"),
        (
            "Basic id differs from nfInstanceId",
            Some((&other, &secret)),
            good.clone(),
            401,
            "invalid_client",
        ),
        (
            "password grant",
            Some((&me, &secret)),
            good.replace("client_credentials", "password"),
            400,
            "unsupported_grant_type",
        ),
        (
            "scope given twice",
            Some((&me, &secret)),
            format!("{good}&scope=nnrf-disc"),
            400,
            "invalid_request",
        ),
        (
            "no scope",
            Some((&me, &secret)),
            format!("grant_type=client_credentials&nfInstanceId={me}&nfType=AF"),
            400,
            "invalid_request",
        ),
        (
            "nfInstanceId not a UUID",
            Some(("x", &secret)),
            good.replace(&me, "x"),
            400,
            "invalid_request",
        ),
    ];
    for (what, basic, form, status, error) in cases {
        let (s, v) = token_request(&nrf, basic, &form).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(error)),
            "{what}: {v}"
        );
    }
    // A JSON body is not a token request.
    let r = h2_client()
        .post(oauth::token_url(&nrf))
        .header("authorization", oauth::basic_auth(&me, &secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // A registered NF cannot claim another type: the AMF asking as an EDGEAI.
    let amf_id = tb.nfs["AMF"].1.instance_id.to_string();
    let (s, v) = token_request(
        &nrf,
        Some((&amf_id, &secret)),
        &format!("grant_type=client_credentials&nfInstanceId={amf_id}&nfType=EDGEAI&targetNfType=AMF&scope=namf-loc"),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );

    // A genuine token for the NRF's discovery opens nothing at the AMF, nor NFRegister.
    let disc = tb.token("NRF", "nnrf-disc").await;
    let amf_root = &tb.nfs["AMF"].0;
    for (method, path) in [
        (
            "POST",
            "/namf-loc/v1/imsi-001010000000001/provide-loc-info".to_owned(),
        ),
        ("GET", "/namf-comm/v1/ue-contexts".to_owned()),
    ] {
        let (s, _, body) = call(method, &format!("{amf_root}{path}"), Some(&disc)).await;
        assert_eq!(s, 403, "{method} {path}: {body}");
    }
    let (s, _, body) = call(
        "PUT",
        &format!("{nrf}/nnrf-nfm/v1/nf-instances/{}", uuid::Uuid::new_v4()),
        Some(&disc),
    )
    .await;
    assert_eq!(
        (s, body["cause"].as_str()),
        (403, Some("INSUFFICIENT_SCOPE"))
    );
    // The same token does what it is for.
    let r = h2_client()
        .get(format!(
            "{nrf}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF"
        ))
        .bearer_auth(&disc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let found: Value = r.json().await.unwrap();
    assert_eq!(
        found["nfInstances"][0]["nfInstanceId"].as_str(),
        Some(amf_id.as_str()),
        "the AMF registered (and heartbeats) with tokens"
    );
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nrf_keeps_its_signing_key_across_a_restart() {
    let nrf = start_nrf(fast_nrf_options()).await;
    let jwks = |base: String| async move {
        h2_client()
            .get(oauth::jwks_url(&base))
            .send()
            .await
            .unwrap()
            .json::<JwkSet>()
            .await
            .unwrap()
    };
    let before = jwks(nrf.base.clone()).await;
    assert_eq!(before.keys.len(), 1);
    assert_eq!(before.keys[0].alg, "ES256");
    let cfg = config_with_nrf(&nrf.base);
    let token = oauth::request_token(&cfg, "restart-test", "NRF", "nnrf-disc")
        .await
        .unwrap();
    let (db_url, dir) = nrf.stop().await;
    let again = start_nrf_on(&db_url, dir, fast_nrf_options()).await;
    assert_eq!(jwks(again.base.clone()).await, before);
    // A token issued before the restart is still good.
    let r = h2_client()
        .get(format!(
            "{}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF",
            again.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_ues_over_their_rate_get_429_with_retry_after() {
    // The NRF with a tiny per-consumer budget: five requests, no refill during the test.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_with_nrf("http://127.0.0.1:8000");
    cfg.limits.nf_rate_per_s = 0.001;
    cfg.limits.nf_burst = 5;
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}/nrf.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    let ctx = NfContext::ephemeral(Arc::new(cfg.clone()), "nrf", db)
        .await
        .unwrap();
    let base = ctx.api_root.clone();
    let nrf = netgpt_nrf::start_with(ctx, fast_nrf_options())
        .await
        .unwrap();
    cfg.nrf.uri = base.clone();
    let a = oauth::request_token(&cfg, "consumer-a", "NRF", "nnrf-disc")
        .await
        .unwrap();
    let b = oauth::request_token(&cfg, "consumer-b", "NRF", "nnrf-disc")
        .await
        .unwrap();
    let disc = format!("{base}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF");
    let get = |t: String| {
        let url = disc.clone();
        async move { h2_client().get(url).bearer_auth(t).send().await.unwrap() }
    };
    for i in 0..5 {
        assert_eq!(get(a.clone()).await.status().as_u16(), 200, "request {i}");
    }
    let r = get(a.clone()).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["cause"], "NF_CONGESTION_RISK");
    // Another consumer has its own budget.
    assert_eq!(get(b.clone()).await.status().as_u16(), 200);
    nrf.stop().await;

    // A UE over its prompt rate at its edge function; another UE is still served.
    let tb = start_with(|c| {
        c.limits.ue_rate_per_s = 0.001;
        c.limits.ue_burst = 3;
    })
    .await;
    let edge = tb.nfs["EDGEAI"].0.clone();
    let token = tb.token("EDGEAI", "nedgeai-prompt").await;
    let ask = |supi: &'static str| {
        let (url, token) = (
            format!("{edge}/nedgeai-prompt/v1/ue-prompts"),
            token.clone(),
        );
        async move {
            let r = h2_client()
                .post(url)
                .bearer_auth(token)
                .json(
                    &serde_json::json!({ "supi": supi, "prompt": "where is the nearest hospital" }),
                )
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (
                r.status().as_u16(),
                retry,
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    for i in 0..3 {
        let (s, _, v) = ask("imsi-001010000000002").await;
        assert_ne!(s, 429, "prompt {i}: {v}");
    }
    let (s, retry, v) = ask("imsi-001010000000002").await;
    assert_eq!((s, retry), (429, true), "{v}");
    assert_eq!(v["cause"], "NF_CONGESTION_RISK");
    let (s, _, v) = ask("imsi-001010000000001").await;
    assert_ne!(s, 429, "{v}");
    // A prompt longer than [limits] max_prompt_chars is a 400 naming it.
    let r = h2_client()
        .post(format!("{edge}/nedgeai-prompt/v1/ue-prompts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "supi": "imsi-001010000000003", "prompt": "x".repeat(tb.cfg.limits.max_prompt_chars + 1) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["invalidParams"][0]["param"], "prompt");
    tb.stop().await;
}

#[test]
fn jws_detection_finds_tokens_and_nothing_else() {
    assert_eq!(jws_like("x eyJhbGciOi.eyJzdWIi.c2ln y").len(), 1);
    assert!(jws_like("eyJ without dots, Bearer realm").is_empty());
}
