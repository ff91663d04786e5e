//! The shared SBI plumbing over real sockets: one test service served by `NfApp` over
//! HTTP/1.1 and h2c, its ProblemDetails answers, metrics, OpenAPI and docs pages, the
//! client's retry policy, the NF start/stop convention against a small NRF, and the
//! migrations runner on SQLite (and PostgreSQL when `NETGPT_TEST_POSTGRES_URL` is set).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Router;
use netgpt_sbi::client::{ClientConfig, ClientError, SbiClient};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::db::{self, Migration};
use netgpt_sbi::models::nnrf::{NfProfile, SearchResult};
use netgpt_sbi::nf::NfContext;
use netgpt_sbi::nrf_client::{DiscoveryQuery, NrfClient};
use netgpt_sbi::{NfApp, ProblemDetails, SbiJson, SbiPath, SbiQuery};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::{OpenApi, ToSchema};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Echo {
    name: String,
    count: u32,
}

#[derive(Debug, Deserialize)]
struct EchoQuery {
    #[allow(dead_code)]
    prefix: String,
}

/// Creates an echo resource.
#[utoipa::path(post, path = "/ntest-echo/v1/echoes/{echoId}", operation_id = "echo_create",
    params(("echoId" = u32, Path, description = "echo id")),
    request_body = Echo, responses((status = 201, body = Echo), (status = 400, body = ProblemDetails)))]
async fn echo_create(
    SbiPath(id): SbiPath<u32>,
    SbiJson(mut body): SbiJson<Echo>,
) -> (StatusCode, SbiJson<Echo>) {
    body.count += id;
    (StatusCode::CREATED, SbiJson(body))
}

/// Reads an echo resource.
#[utoipa::path(get, path = "/ntest-echo/v1/echoes/{echoId}", operation_id = "echo_read",
    params(("echoId" = u32, Path, description = "echo id")),
    responses((status = 200, body = Echo)))]
async fn echo_read(SbiPath(id): SbiPath<u32>) -> SbiJson<Echo> {
    SbiJson(Echo {
        name: "echo".into(),
        count: id,
    })
}

/// Searches (query mandatory).
#[utoipa::path(get, path = "/ntest-echo/v1/search", operation_id = "echo_search",
    params(("prefix" = String, Query, description = "prefix")), responses((status = 200, body = Echo)))]
async fn echo_search(SbiQuery(_q): SbiQuery<EchoQuery>) -> SbiJson<Echo> {
    SbiJson(Echo {
        name: "found".into(),
        count: 0,
    })
}

#[derive(OpenApi)]
#[openapi(
    paths(echo_create, echo_read, echo_search),
    components(schemas(Echo, ProblemDetails))
)]
struct EchoApi;

const BODY_LIMIT: usize = 2048;

async fn start_echo(nf: &str) -> (SocketAddr, CancellationToken) {
    let router = Router::new()
        .route(
            "/ntest-echo/v1/echoes/{echoId}",
            get(echo_read).post(echo_create),
        )
        .route("/ntest-echo/v1/search", get(echo_search));
    let app = NfApp::new(nf)
        .service("ntest-echo", router, EchoApi::openapi())
        .body_limit(BODY_LIMIT)
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(netgpt_sbi::serve(listener, app, token.clone()));
    (addr, token)
}

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

async fn problem(resp: reqwest::Response) -> (StatusCode, ProblemDetails) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let p: ProblemDetails = resp.json().await.unwrap();
    assert_eq!(p.status, status.as_u16());
    (status, p)
}

#[tokio::test]
async fn same_route_answers_over_http1_and_h2c() {
    let (addr, stop) = start_echo("echo-versions").await;
    let url = format!("http://{addr}/ntest-echo/v1/echoes/7");
    let r1 = http1().get(&url).send().await.unwrap();
    assert_eq!(r1.version(), reqwest::Version::HTTP_11);
    let r2 = h2c().get(&url).send().await.unwrap();
    assert_eq!(r2.version(), reqwest::Version::HTTP_2);
    let a: serde_json::Value = r1.json().await.unwrap();
    let b: serde_json::Value = r2.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a["count"], 7);
    stop.cancel();
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_problem_details() {
    let (addr, stop) = start_echo("echo-404").await;
    let c = h2c();
    let (s, p) = problem(
        c.get(format!("http://{addr}/ntest-echo/v1/nothing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p.cause.as_deref(), Some("RESOURCE_URI_STRUCTURE_NOT_FOUND"));
    let (s, p) = problem(
        c.delete(format!("http://{addr}/ntest-echo/v1/echoes/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(p.cause.as_deref(), Some("METHOD_NOT_ALLOWED"));
    stop.cancel();
}

#[tokio::test]
async fn bad_bodies_paths_and_queries_are_problem_details() {
    let (addr, stop) = start_echo("echo-bad").await;
    let c = h2c();
    let url = format!("http://{addr}/ntest-echo/v1/echoes/1");
    // Oversized body: 413 (declared length refused before reading).
    let big = format!(
        "{{\"name\":\"{}\",\"count\":1}}",
        "x".repeat(BODY_LIMIT * 2)
    );
    let (s, p) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(p.cause.as_deref(), Some("PAYLOAD_TOO_LARGE"));
    // Oversized streamed body without a Content-Length: 413 from the body limit.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(big))]);
    let (s, _) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Wrong content type: 415.
    let (s, _) = problem(
        c.post(&url)
            .header("content-type", "text/plain")
            .body("hi")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Malformed JSON: 400 INVALID_MSG_FORMAT.
    let (s, p) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body("{\"name\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p.cause.as_deref(), Some("INVALID_MSG_FORMAT"));
    // Wrong type: 400 naming the field.
    let (_, p) = problem(
        c.post(&url)
            .header("content-type", "application/json")
            .body(r#"{"name":"a","count":"many"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p.invalid_params[0].param, "count");
    // Bad path parameter: 400 naming it, not axum's text/plain.
    let (s, p) = problem(
        c.get(format!("http://{addr}/ntest-echo/v1/echoes/seven"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p.invalid_params[0].param, "echoId");
    // Missing mandatory query parameter: 400 naming it.
    let (s, p) = problem(
        c.get(format!("http://{addr}/ntest-echo/v1/search"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p.invalid_params[0].param, "prefix");
    // A good request still works after all that.
    let ok = c
        .post(&url)
        .json(&serde_json::json!({"name": "a", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    stop.cancel();
}

#[tokio::test]
async fn metrics_count_requests_by_service_operation_method_and_status() {
    let (addr, stop) = start_echo("echo-metrics").await;
    let c = h2c();
    c.get(format!("http://{addr}/ntest-echo/v1/echoes/3"))
        .send()
        .await
        .unwrap();
    c.delete(format!("http://{addr}/ntest-echo/v1/echoes/3"))
        .send()
        .await
        .unwrap();
    c.get(format!("http://{addr}/nowhere"))
        .send()
        .await
        .unwrap();
    // Another NF of the same process: not on this NF's /metrics.
    netgpt_sbi::metrics::record_inbound(
        "other-nf",
        "nother",
        "op",
        "GET",
        200,
        Duration::from_millis(1),
    );
    let resp = c
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let series = |needles: &[&str]| {
        text.lines().any(|l| {
            l.starts_with("sbi_inbound_requests_total{") && needles.iter().all(|n| l.contains(n))
        })
    };
    assert!(
        series(&[
            "nf=\"echo-metrics\"",
            "service=\"ntest-echo\"",
            "operation=\"echo_read\"",
            "method=\"GET\"",
            "status=\"200\""
        ]),
        "{text}"
    );
    assert!(
        series(&["nf=\"echo-metrics\"", "method=\"DELETE\"", "status=\"405\""]),
        "{text}"
    );
    assert!(
        series(&[
            "nf=\"echo-metrics\"",
            "service=\"unknown\"",
            "status=\"404\""
        ]),
        "{text}"
    );
    assert!(
        text.contains("sbi_inbound_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        !text.contains("nf=\"other-nf\""),
        "another NF's series leaked: {text}"
    );
    stop.cancel();
}

#[tokio::test]
async fn openapi_document_and_offline_docs_page_are_served() {
    let (addr, stop) = start_echo("echo-docs").await;
    let c = http1();
    let doc: serde_json::Value = c
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/ntest-echo/v1/echoes/{echoId}"]["post"]["operationId"],
        "echo_create"
    );
    assert!(doc["components"]["schemas"]["Echo"].is_object());
    let page = c.get(format!("http://{addr}/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The UI's script is embedded (no CDN).
    let js = c
        .get(format!("http://{addr}/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.bytes().await.unwrap().len() > 100_000);
    stop.cancel();
}

fn quick_client(nf: &str, deadline: Duration, retries: u32) -> SbiClient {
    SbiClient::with_config(ClientConfig {
        deadline,
        max_retries: retries,
        backoff: Duration::from_millis(40),
        ..ClientConfig::new(nf)
    })
}

#[tokio::test]
async fn client_retries_an_idempotent_call_after_a_refused_connection() {
    // A port with nobody listening yet; the server appears a little later.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let router = Router::new().route("/ntest-echo/v1/echoes/{echoId}", get(echo_read));
        let app = NfApp::new("late-nf")
            .service("ntest-echo", router, EchoApi::openapi())
            .build();
        netgpt_sbi::serve(listener, app, CancellationToken::new()).await
    });
    let client = quick_client("retry-consumer", Duration::from_secs(20), 30);
    let echo: Echo = client
        .get(format!("http://{addr}/ntest-echo/v1/echoes/5"))
        .send_json()
        .await
        .unwrap();
    assert_eq!(echo.count, 5);
    let text = netgpt_sbi::metrics::render();
    let line = |status: &str| {
        text.lines().any(|l| {
            l.starts_with("sbi_outbound_requests_total{")
                && l.contains("nf=\"retry-consumer\"")
                && l.contains("service=\"ntest-echo\"")
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(
        line("error") && line("200"),
        "refused attempts and the success are both counted:\n{text}"
    );
    late.abort();
}

#[tokio::test]
async fn client_gives_up_within_its_deadline() {
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let client = quick_client("deadline-consumer", Duration::from_millis(400), 1000);
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        client
            .get(format!("http://{addr}/ntest-echo/v1/echoes/1"))
            .send(),
    )
    .await
    .expect("the call must end by itself");
    match outcome.unwrap_err() {
        ClientError::Connect { attempts, .. } | ClientError::Timeout { attempts, .. } => {
            assert!(attempts > 1, "retried before giving up ({attempts})")
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn only_idempotent_calls_are_retried_on_unavailable_and_problems_are_typed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let router = Router::new().route(
        "/ntest-busy/v1/thing",
        get(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                ProblemDetails::new(StatusCode::SERVICE_UNAVAILABLE, "NF_CONGESTION", "busy")
            }
        })
        .post({
            let h = hits.clone();
            move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    ProblemDetails::new(StatusCode::SERVICE_UNAVAILABLE, "NF_CONGESTION", "busy")
                }
            }
        }),
    );
    let app = NfApp::new("busy-nf")
        .service("ntest-busy", router, utoipa::openapi::OpenApi::default())
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(netgpt_sbi::serve(listener, app, CancellationToken::new()));
    let client = quick_client("busy-consumer", Duration::from_secs(20), 2);
    let url = format!("http://{addr}/ntest-busy/v1/thing");
    let err = client
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(hits.swap(0, Ordering::SeqCst), 1, "POST is not retried");
    assert_eq!(
        err.problem().unwrap().cause.as_deref(),
        Some("NF_CONGESTION")
    );
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 3, "GET is tried 1 + 2 times");
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
}

/// A small NRF: just enough of Nnrf_NFManagement/NFDiscovery to observe what the
/// consumer side sends.
#[derive(Default)]
struct TinyNrf {
    profiles: Mutex<HashMap<String, NfProfile>>,
    log: Mutex<Vec<String>>,
}

async fn start_tiny_nrf() -> (String, Arc<TinyNrf>) {
    use axum::extract::Path;
    use axum::response::IntoResponse;
    let nrf = Arc::new(TinyNrf::default());
    let router = Router::new()
        .route(
            "/nnrf-nfm/v1/nf-instances/{id}",
            put(
                |State(n): State<Arc<TinyNrf>>,
                 Path(id): Path<String>,
                 SbiJson(p): SbiJson<NfProfile>| async move {
                    n.log.lock().unwrap().push(format!("PUT {id}"));
                    n.profiles.lock().unwrap().insert(id, p.clone());
                    (StatusCode::CREATED, SbiJson(p)).into_response()
                },
            )
            .patch(
                |State(n): State<Arc<TinyNrf>>, Path(id): Path<String>, body: String| async move {
                    let known = n.profiles.lock().unwrap().contains_key(&id);
                    n.log.lock().unwrap().push(format!("PATCH {id} {body}"));
                    if known {
                        StatusCode::NO_CONTENT.into_response()
                    } else {
                        ProblemDetails::not_found("RESOURCE_NOT_FOUND", "unknown").into_response()
                    }
                },
            )
            .delete(
                |State(n): State<Arc<TinyNrf>>, Path(id): Path<String>| async move {
                    n.log.lock().unwrap().push(format!("DELETE {id}"));
                    n.profiles.lock().unwrap().remove(&id);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/nnrf-disc/v1/nf-instances",
            get(
                |State(n): State<Arc<TinyNrf>>, q: axum::extract::RawQuery| async move {
                    n.log
                        .lock()
                        .unwrap()
                        .push(format!("DISCOVER {}", q.0.unwrap_or_default()));
                    let list: Vec<NfProfile> =
                        n.profiles.lock().unwrap().values().cloned().collect();
                    SbiJson(SearchResult {
                        validity_period: 3600,
                        nf_instances: list,
                        ..Default::default()
                    })
                },
            ),
        )
        .with_state(nrf.clone());
    let app = NfApp::new("tiny-nrf")
        .service("nnrf-nfm", router, utoipa::openapi::OpenApi::default())
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(netgpt_sbi::serve(listener, app, CancellationToken::new()));
    (uri, nrf)
}

#[tokio::test]
async fn nf_registers_heartbeats_reregisters_and_deregisters_on_stop() {
    let (nrf_uri, nrf) = start_tiny_nrf().await;
    let mut cfg = TestbedConfig::load_default().unwrap();
    // The tiny NRF here issues no access tokens (tests/e2e/security.rs covers OAuth2).
    cfg.oauth2.enabled = false;
    cfg.nrf.uri = nrf_uri.clone();
    cfg.nrf.heartbeat_timer = 1;
    let db = db::connect("sqlite::memory:").await.unwrap();
    let ctx = NfContext::ephemeral(Arc::new(cfg), "amf", db)
        .await
        .unwrap();
    let router = Router::new().route("/ntest-echo/v1/echoes/{echoId}", get(echo_read));
    let app = NfApp::new("amf").service("ntest-echo", router, EchoApi::openapi());
    let running = ctx.launch(app).await.unwrap();
    let id = running.instance_id.to_string();
    assert!(running.is_registered());
    let stored = nrf
        .profiles
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .expect("registered at start");
    assert_eq!(stored.nf_type.as_str(), "AMF");
    assert_eq!(
        stored.service("ntest-echo").unwrap().api_root().unwrap(),
        running.api_root
    );

    // Heartbeats arrive as JSON Patch of nfStatus.
    type LogPredicate = Box<dyn Fn(&[String]) -> bool>;
    let wait_for = |pred: LogPredicate| {
        let nrf = nrf.clone();
        async move {
            for _ in 0..200 {
                if pred(&nrf.log.lock().unwrap()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("NRF log never matched: {:?}", nrf.log.lock().unwrap());
        }
    };
    let hb = format!(
        "PATCH {id} [{{\"op\":\"replace\",\"path\":\"/nfStatus\",\"value\":\"REGISTERED\"}}]"
    );
    let hb2 = hb.clone();
    wait_for(Box::new(move |log| log.contains(&hb2))).await;

    // The NRF forgets the instance: the next heartbeat gets 404 and the NF registers again.
    nrf.profiles.lock().unwrap().clear();
    let id2 = id.clone();
    wait_for(Box::new(move |log| {
        log.iter().filter(|l| **l == format!("PUT {id2}")).count() >= 2
    }))
    .await;
    assert!(nrf.profiles.lock().unwrap().contains_key(&id));

    // Stop: deregistered, and the port no longer answers.
    let root = running.api_root.clone();
    running.stop().await;
    assert!(nrf.log.lock().unwrap().contains(&format!("DELETE {id}")));
    assert!(nrf.profiles.lock().unwrap().is_empty());
    assert!(h2c().get(format!("{root}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn discovery_is_cached_for_the_validity_period() {
    let (nrf_uri, nrf) = start_tiny_nrf().await;
    let client = NrfClient::new(SbiClient::new("disc-consumer"), nrf_uri);
    let q = DiscoveryQuery::new("AMF", "NEF")
        .service("namf-loc")
        .locality("core");
    let first = client.discover(&q).await.unwrap();
    let second = client.discover(&q).await.unwrap();
    assert_eq!(first, second);
    let discovers: Vec<String> = nrf
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("DISCOVER"))
        .cloned()
        .collect();
    assert_eq!(
        discovers.len(),
        1,
        "second answer from the cache: {discovers:?}"
    );
    let q0 = &discovers[0];
    for p in [
        "target-nf-type=AMF",
        "requester-nf-type=NEF",
        "service-names=namf-loc",
        "preferred-locality=core",
    ] {
        assert!(q0.contains(p), "{q0} lacks {p}");
    }
    // A different query is not served from the cache; invalidation forgets everything.
    client
        .discover(&DiscoveryQuery::new("SMF", "NEF"))
        .await
        .unwrap();
    client.invalidate();
    client.discover(&q).await.unwrap();
    assert_eq!(
        nrf.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("DISCOVER"))
            .count(),
        3
    );
}

const MIGRATIONS: &[Migration] = &[
    Migration::new(
        1,
        "widgets",
        "CREATE TABLE unit_widgets (id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
    ),
    Migration::new(
        2,
        "widget colour",
        "ALTER TABLE unit_widgets ADD COLUMN colour TEXT",
    ),
];

#[tokio::test]
async fn migrations_are_idempotent_and_kept_apart_per_nf_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let urls = db::test_database_urls(dir.path()).await.unwrap();
    if std::env::var(db::TEST_POSTGRES_ENV).is_ok() {
        assert!(urls.iter().any(|u| u.starts_with("postgres")), "{urls:?}");
    }
    for url in urls {
        let db = db::connect(&url).await.unwrap();
        assert_eq!(
            db.migrate("unit-a", &MIGRATIONS[..1]).await.unwrap(),
            1,
            "{url}"
        );
        assert_eq!(
            db.migrate("unit-a", MIGRATIONS).await.unwrap(),
            1,
            "only v2 is new ({url})"
        );
        assert_eq!(db.migrate("unit-a", MIGRATIONS).await.unwrap(), 0, "{url}");
        assert_eq!(db.applied_migrations("unit-a").await.unwrap(), vec![1, 2]);
        // Another NF's list is tracked separately.
        let other = [Migration::new(
            1,
            "gadgets",
            "CREATE TABLE unit_gadgets (id TEXT PRIMARY KEY)",
        )];
        assert_eq!(db.migrate("unit-b", &other).await.unwrap(), 1);
        sqlx::query("INSERT INTO unit_widgets (id, n, colour) VALUES ($1, $2, $3)")
            .bind("w1")
            .bind(42_i64)
            .bind("red")
            .execute(db.pool())
            .await
            .unwrap();
        // A failing migration applies nothing and is not recorded.
        let broken = [Migration::new(
            3,
            "broken",
            "CREATE TABLE unit_x (id TEXT); SELECT * FROM no_such_table",
        )];
        assert!(db.migrate("unit-a", &broken).await.is_err());
        assert_eq!(db.applied_migrations("unit-a").await.unwrap(), vec![1, 2]);
        let n: i64 = sqlx::Row::get(
            &sqlx::query("SELECT n FROM unit_widgets WHERE id = $1")
                .bind("w1")
                .fetch_one(db.pool())
                .await
                .unwrap(),
            0,
        );
        assert_eq!(n, 42);
        db.close().await;
        // Reopening the same database applies nothing again.
        let again = db::connect(&url).await.unwrap();
        assert_eq!(again.migrate("unit-a", MIGRATIONS).await.unwrap(), 0);
        again.close().await;
    }
}

fn tls_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn tls_client(http1_only: bool) -> reqwest::Client {
    let ca = std::fs::read(tls_dir().join("ca.crt")).unwrap();
    let b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    let b = if http1_only { b.http1_only() } else { b };
    b.build().unwrap()
}

#[tokio::test]
async fn tls_server_negotiates_h2_by_alpn_and_falls_back_to_http1() {
    let tls = netgpt_sbi::tls::TlsConfig::from_pem_files(
        &tls_dir().join("localhost.crt"),
        &tls_dir().join("localhost.key"),
    )
    .unwrap();
    let router = Router::new().route("/ntest-echo/v1/echoes/{echoId}", get(echo_read));
    let app = NfApp::new("tls-nf")
        .service("ntest-echo", router, EchoApi::openapi())
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(netgpt_sbi::tls::serve_tls(listener, app, tls, stop.clone()));
    let url = format!("https://127.0.0.1:{port}/ntest-echo/v1/echoes/4");
    let r = tls_client(false).get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert_eq!(r.json::<Echo>().await.unwrap().count, 4);
    let r = tls_client(true).get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let (s, _) = problem(
        tls_client(false)
            .get(format!("https://127.0.0.1:{port}/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Cleartext on the TLS port gets no HTTP answer.
    assert!(h2c()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err());
    stop.cancel();
    server.await.unwrap().unwrap();
    assert!(
        tls_client(false).get(&url).send().await.is_err(),
        "stopped serving"
    );
}

#[tokio::test]
async fn nf_configured_with_tls_serves_https_and_its_client_trusts_the_testbed_ca() {
    let mut cfg = TestbedConfig::load_default().unwrap();
    // Transport only: no NRF runs here to issue access tokens.
    cfg.oauth2.enabled = false;
    let amf = cfg.nf.get_mut("amf").unwrap();
    amf.tls_cert = Some(tls_dir().join("localhost.crt"));
    amf.tls_key = Some(tls_dir().join("localhost.key"));
    cfg.tls_ca = Some(tls_dir().join("ca.crt"));
    let db = db::connect("sqlite::memory:").await.unwrap();
    let ctx = NfContext::ephemeral(Arc::new(cfg), "amf", db)
        .await
        .unwrap();
    assert!(
        ctx.api_root.starts_with("https://127.0.0.1:"),
        "{}",
        ctx.api_root
    );
    let profile = ctx.profile(&["ntest-echo"]);
    assert_eq!(profile.service("ntest-echo").unwrap().scheme, "https");
    let client = ctx.client.clone();
    let router = Router::new().route("/ntest-echo/v1/echoes/{echoId}", get(echo_read));
    let app = NfApp::new("amf")
        .service("ntest-echo", router, EchoApi::openapi())
        .build();
    let running = ctx.launch_with_profile(app, None).await.unwrap();
    let resp = client
        .get(format!("{}/ntest-echo/v1/echoes/9", running.api_root))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version, reqwest::Version::HTTP_2);
    assert_eq!(resp.json::<Echo>().unwrap().count, 9);
    running.stop().await;
}

/// A token source that records the scopes it was asked for.
#[derive(Default)]
struct FixedToken {
    asked: Mutex<Vec<(String, Option<String>)>>,
}

impl netgpt_sbi::client::TokenProvider for FixedToken {
    fn access_token<'a>(
        &'a self,
        scope: netgpt_sbi::client::TokenScope<'a>,
    ) -> netgpt_sbi::client::TokenFuture<'a> {
        self.asked.lock().unwrap().push((
            scope.service.to_owned(),
            scope.target_nf_type.map(str::to_owned),
        ));
        Box::pin(async { Ok(Some("token-for-test".to_owned())) })
    }
}

#[tokio::test]
async fn token_provider_supplies_the_bearer_token_and_none_sends_no_header() {
    let router = Router::new().route(
        "/ntest-auth/v1/whoami",
        get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| "none".to_owned())
        }),
    );
    let app = NfApp::new("auth-nf")
        .service("ntest-auth", router, utoipa::openapi::OpenApi::default())
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/ntest-auth/v1/whoami",
        listener.local_addr().unwrap()
    );
    tokio::spawn(netgpt_sbi::serve(listener, app, CancellationToken::new()));

    let plain = SbiClient::new("auth-consumer");
    assert_eq!(&plain.get(&url).send().await.unwrap().body[..], b"none");
    let tokens = Arc::new(FixedToken::default());
    let authed = SbiClient::new("auth-consumer").with_token_provider(tokens.clone());
    let resp = authed.get(&url).target_nf_type("AMF").send().await.unwrap();
    assert_eq!(&resp.body[..], b"Bearer token-for-test");
    assert_eq!(
        tokens.asked.lock().unwrap().as_slice(),
        &[("ntest-auth".to_owned(), Some("AMF".to_owned()))]
    );
}

#[tokio::test]
async fn producers_are_found_through_discovery() {
    let (nrf_uri, nrf) = start_tiny_nrf().await;
    let mut amf = NfProfile::new(uuid::Uuid::new_v4(), "AMF".into());
    amf.nf_services = Some(vec![netgpt_sbi::models::nnrf::NfService::http(
        "loc-1",
        "namf-loc",
        std::net::Ipv4Addr::new(127, 0, 0, 1),
        8001,
    )]);
    nrf.profiles
        .lock()
        .unwrap()
        .insert(amf.nf_instance_id.to_string(), amf);
    let client = NrfClient::new(SbiClient::new("finder"), nrf_uri);
    let q = DiscoveryQuery::new("AMF", "NEF").service("namf-loc");
    assert_eq!(
        client.api_root_of(&q, "namf-loc").await.unwrap(),
        "http://127.0.0.1:8001"
    );
    match client.api_root_of(&q, "namf-evts").await.unwrap_err() {
        ClientError::NoProducer { target, service } => {
            assert_eq!((target.as_str(), service.as_str()), ("AMF", "namf-evts"))
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_one_database_apply_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in db::test_database_urls(dir.path()).await.unwrap() {
        // Separate pools stand for separate processes sharing the database.
        let mut runs = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            runs.push(tokio::spawn(async move {
                let db = db::connect(&url).await.unwrap();
                let n = db.migrate("unit-race", MIGRATIONS).await.unwrap();
                db.close().await;
                n
            }));
        }
        let mut applied = 0;
        for r in runs {
            applied += r.await.unwrap();
        }
        assert_eq!(
            applied,
            MIGRATIONS.len(),
            "every version applied exactly once ({url})"
        );
        let db = db::connect(&url).await.unwrap();
        assert_eq!(
            db.applied_migrations("unit-race").await.unwrap(),
            vec![1, 2]
        );
    }
}
