//! Hostile requests for the SBI extractors (`SbiJson`, `SbiQuery`, `SbiPath`) and
//! `parse_json`, driven through a small axum router with `tower::ServiceExt::oneshot`:
//! any body, content type, query string or path segment is answered 200 or a 4xx
//! `application/problem+json` ProblemDetails (never 5xx, never a plain-text rejection), and
//! a field-level error names the field.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use netgpt_sbi::extract::{is_json_content_type, parse_json, SbiJson, SbiPath, SbiQuery};
use netgpt_sbi::{ProblemDetails, PROBLEM_JSON};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde::Deserialize;
use tower::ServiceExt;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    port: u16,
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Doc {
    name: String,
    count: u32,
    #[serde(default)]
    inner: Option<Inner>,
    #[serde(default)]
    ratio: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Query {
    #[serde(rename = "target-nf-type")]
    target: String,
    limit: Option<u32>,
    flag: Option<bool>,
}

fn router() -> Router {
    Router::new()
        .route("/json", post(|SbiJson(_d): SbiJson<Doc>| async { "ok" }))
        .route(
            "/query",
            get(|SbiQuery(_q): SbiQuery<Query>| async { "ok" }),
        )
        .route(
            "/path/{id}/{n}",
            get(|SbiPath((_id, _n)): SbiPath<(String, u32)>| async { "ok" }),
        )
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Sends `req`; checks that the answer is 200 or a 4xx ProblemDetails; returns it (None: 200).
fn send(req: Request<Body>) -> Result<Option<ProblemDetails>, TestCaseError> {
    let resp = rt().block_on(router().oneshot(req)).unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = rt()
        .block_on(resp.into_body().collect())
        .unwrap()
        .to_bytes();
    if status == StatusCode::OK {
        return Ok(None);
    }
    prop_assert!(
        status.is_client_error(),
        "status {} body {:?}",
        status,
        String::from_utf8_lossy(&body)
    );
    // Routing misses (404/405) are axum's own; everything the extractors answer is a problem.
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        return Ok(None);
    }
    prop_assert_eq!(
        &ct,
        PROBLEM_JSON,
        "status {} body {:?}",
        status,
        String::from_utf8_lossy(&body)
    );
    let p: ProblemDetails = serde_json::from_slice(&body).unwrap();
    prop_assert_eq!(p.status, status.as_u16());
    prop_assert!(p.cause.is_some(), "{:?}", p);
    for ip in &p.invalid_params {
        prop_assert!(!ip.param.is_empty(), "{:?}", p);
    }
    Ok(Some(p))
}

fn json_req(ct: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/json")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap()
}

/// JSON-ish bodies: random bytes, near-valid documents, wrong types, unknown fields.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let valid = r#"{"name":"a","count":1,"inner":{"port":80,"tags":["x"]},"ratio":0.5}"#;
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,100}".prop_map(String::into_bytes),
        (any::<prop::sample::Index>())
            .prop_map(move |i| valid.as_bytes()[..i.index(valid.len())].to_vec()),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(move |(i, x)| {
            let mut b = valid.as_bytes().to_vec();
            let at = i.index(b.len());
            b[at] ^= x;
            b
        }),
        (
            prop::sample::select(vec!["name", "count", "inner", "ratio", "extra", ""]),
            prop::sample::select(vec![
                "null",
                "-1",
                "4294967296",
                "1e400",
                "\"x\"",
                "[]",
                "{}",
                "true",
                "{\"port\":70000,\"tags\":[]}",
                "{\"port\":1,\"tags\":[1]}",
                "{\"port\":1}",
                "99999999999999999999999999",
            ]),
        )
            .prop_map(|(k, v)| format!(r#"{{"name":"a","count":1,"{k}":{v}}}"#).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Any body with any content type: 200, 400, 413 or 415 as ProblemDetails.
    #[test]
    fn json_bodies(b in body(), ct in prop_oneof![
        Just("application/json".to_string()),
        Just("application/json; charset=utf-8".to_string()),
        Just("application/problem+json".to_string()),
        Just("text/plain".to_string()),
        Just("".to_string()),
        "[a-z/+;= -]{0,30}",
    ]) {
        if let Some(p) = send(json_req(&ct, b))? {
            prop_assert!(matches!(p.status, 400 | 413 | 415), "{:?}", p);
            if !is_json_content_type(&ct) {
                prop_assert_eq!(p.status, 415);
            }
            // A data error names the field it is about.
            if p.cause.as_deref() == Some("MANDATORY_IE_INCORRECT") || p.cause.as_deref() == Some("MANDATORY_IE_MISSING") {
                prop_assert!(!p.invalid_params.is_empty(), "{:?}", p);
            }
        }
    }

    /// Wrong values in known fields are named by their JSON path.
    #[test]
    fn wrong_field_values_are_named(field in prop::sample::select(vec!["count", "inner.port", "inner.tags", "ratio", "name"])) {
        let bad = match field {
            "count" => r#"{"name":"a","count":-5}"#,
            "inner.port" => r#"{"name":"a","count":1,"inner":{"port":70000,"tags":[]}}"#,
            "inner.tags" => r#"{"name":"a","count":1,"inner":{"port":1,"tags":"x"}}"#,
            "ratio" => r#"{"name":"a","count":1,"ratio":"half"}"#,
            _ => r#"{"name":7,"count":1}"#,
        };
        let p = send(json_req("application/json", bad.as_bytes().to_vec()))?.unwrap();
        prop_assert_eq!(p.status, 400);
        prop_assert!(p.invalid_params.iter().any(|ip| ip.param == field), "{} not in {:?}", field, p.invalid_params);
    }

    /// Any query string: 200 or a 400 ProblemDetails.
    #[test]
    fn query_strings(q in prop_oneof![
        "[a-z=&%0-9\\-+]{0,60}",
        "\\PC{0,40}".prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>()),
        (prop::option::of("[A-Z]{1,6}"), prop::option::of("-?[0-9]{1,12}"), prop::option::of("[a-z]{1,5}")).prop_map(|(t, l, f)| {
            let mut parts = Vec::new();
            if let Some(t) = t { parts.push(format!("target-nf-type={t}")); }
            if let Some(l) = l { parts.push(format!("limit={l}")); }
            if let Some(f) = f { parts.push(format!("flag={f}")); }
            parts.join("&")
        }),
    ]) {
        let uri = format!("/query?{q}");
        let Ok(req) = Request::get(uri.as_str()).body(Body::empty()) else {
            return Ok(()); // not a URI at all: never reaches a server
        };
        if let Some(p) = send(req)? {
            prop_assert_eq!(p.status, 400, "{:?}", p);
            prop_assert!(!p.invalid_params.is_empty(), "{:?}", p);
        }
    }

    /// Any path segments: 200, 404 or a 400 naming the parameter.
    #[test]
    fn path_segments(a in "\\PC{0,20}", n in prop_oneof!["[0-9]{1,12}".boxed(), "-?[0-9a-z.]{0,8}".boxed(), "\\PC{0,8}".boxed()]) {
        let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let uri = format!("/path/{}/{}", enc(&a), enc(&n));
        let req = Request::get(uri.as_str()).body(Body::empty()).unwrap();
        if let Some(p) = send(req)? {
            prop_assert_eq!(p.status, 400, "{:?}", p);
        }
    }

    /// `parse_json` on its own: any bytes give a value or a 400.
    #[test]
    fn parse_json_any_bytes(b in body()) {
        if let Err(p) = parse_json::<Doc>(&b) {
            prop_assert_eq!(p.status, 400);
        }
        if let Err(p) = parse_json::<serde_json::Value>(&b) {
            prop_assert_eq!(p.status, 400);
        }
    }
}

/// Deep nesting and large bodies: 400 / 413, not a crash.
#[test]
fn deep_and_large_bodies() {
    for depth in [100usize, 10_000, 1_000_000] {
        let body = format!(
            r#"{{"name":"a","count":1,"x":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let p = send(json_req("application/json", body.into_bytes()))
            .unwrap()
            .unwrap();
        assert!(matches!(p.status, 400 | 413), "{p:?}");
    }
    let big = vec![b' '; 3 << 20];
    let p = send(json_req("application/json", big)).unwrap().unwrap();
    assert!(matches!(p.status, 400 | 413), "{p:?}");
}

/// Regression (found by `json_bodies`): an unknown member with an empty name
/// (`{"name":"a","count":1,"":null}`) was reported with the invalid param `""`; it is now
/// `body`.
#[test]
fn empty_member_name_names_the_body() {
    let p = send(json_req(
        "application/json",
        br#"{"name":"a","count":1,"":null}"#.to_vec(),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(p.status, 400);
    assert_eq!(p.invalid_params[0].param, "body", "{p:?}");
}

proptest! {
    #![proptest_config(cfg(256))]

    /// The identifier checks the AMF and the config use (SUPI, time zone, NR cell id) agree
    /// with their TS 29.571 patterns on any string, multi-byte characters included.
    #[test]
    fn identifier_checks_match_their_patterns(s in prop_oneof![
        "\\PC{0,20}",
        "imsi-[0-9]{0,17}",
        "imsi-[0-9٠-٩]{3,16}",
        "[+-][0-9]{2}:[0-9]{2}",
        "[+-]\\PC{5}",
        "[0-9a-fA-FgG]{7,10}",
        "[0-9a-f]{8}\\PC",
    ]) {
        use netgpt_sbi::config::{is_imsi_supi, is_time_zone};
        use netgpt_sbi::models::common::is_nr_cell_id;
        let supi = s.strip_prefix("imsi-").is_some_and(|d| (5..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(is_imsi_supi(&s), supi, "{:?}", s);
        let b = s.as_bytes();
        let tz = b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[3] == b':'
            && b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit)
            && (b[1] - b'0') * 10 + (b[2] - b'0') <= 14
            && (b[4] - b'0') * 10 + (b[5] - b'0') < 60;
        prop_assert_eq!(is_time_zone(&s), tz, "{:?}", s);
        let cell = s.len() == 9 && s.bytes().all(|b| b.is_ascii_hexdigit());
        prop_assert_eq!(is_nr_cell_id(&s), cell, "{:?}", s);
    }

    /// NCGI / user location bodies: any JSON parses or is a 400 naming a field.
    #[test]
    fn ncgi_and_location_bodies(plmn in prop_oneof![Just(r#"{"mcc":"001","mnc":"01"}"#.to_string()), "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()), Just("null".to_string()), Just("[]".to_string())],
                                cell in prop_oneof!["[0-9a-f]{9}".prop_map(|s| format!("\"{s}\"")), Just("123".to_string()), Just("null".to_string()), "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap())]) {
        use netgpt_sbi::models::common::{Ncgi, UserLocation};
        let ncgi = format!(r#"{{"plmnId":{plmn},"nrCellId":{cell}}}"#);
        if let Err(p) = parse_json::<Ncgi>(ncgi.as_bytes()) {
            prop_assert_eq!(p.status, 400);
            prop_assert!(p.invalid_params.iter().all(|i| !i.param.is_empty()));
        }
        let loc = format!(r#"{{"nrLocation":{{"tai":{{"plmnId":{plmn},"tac":"000001"}},"ncgi":{ncgi}}}}}"#);
        if let Err(p) = parse_json::<UserLocation>(loc.as_bytes()) {
            prop_assert_eq!(p.status, 400);
            prop_assert!(p.invalid_params.iter().all(|i| !i.param.is_empty()));
        }
    }
}
