//! The NRF end to end, over real HTTP/2 with prior knowledge (h2c): register, replace,
//! discover, heartbeat, heartbeat expiry (SUSPENDED, not discovered), revival,
//! deregistration; every bad input answered with ProblemDetails and no stored change;
//! persistence across a restart; the SBI crate's NRF consumer against this NRF.
//! Responses are validated against the 3GPP Rel-18 schemas where ../shared/3gpp exists.
//!
//! OAuth2 is off here (`open_config`): these tests exercise the NF's function with plain
//! HTTP clients; `security.rs` and `edge.rs` run the NFs with OAuth2 on.

use std::time::Duration;

use netgpt_e2e::{
    assert_3gpp_schema, fast_nrf_options, h2_client, start_open_nrf, start_open_nrf_on,
};
use reqwest::{Client, Method, StatusCode, Version};
use serde_json::{json, Value};

const NFM: &str = "TS29510_Nnrf_NFManagement.yaml";
const DISC: &str = "TS29510_Nnrf_NFDiscovery.yaml";
const COMMON: &str = "TS29571_CommonData.yaml";

fn new_id() -> String {
    uuid_v4()
}

/// A random UUID v4 without depending on the uuid crate here.
fn uuid_v4() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn amf_profile(id: &str, heart_beat_timer: u32, locality: &str) -> Value {
    json!({
        "nfInstanceId": id,
        "nfInstanceName": "amf-e2e",
        "nfType": "AMF",
        "nfStatus": "REGISTERED",
        "heartBeatTimer": heart_beat_timer,
        "plmnList": [{"mcc": "001", "mnc": "01"}],
        "ipv4Addresses": ["127.0.0.1"],
        "locality": locality,
        "priority": 1,
        "nfServiceList": {
            "loc-1": {
                "serviceInstanceId": "loc-1",
                "serviceName": "namf-loc",
                "versions": [{"apiVersionInUri": "v1", "apiFullVersion": "1.0.0"}],
                "scheme": "http",
                "nfServiceStatus": "REGISTERED",
                "ipEndPoints": [{"ipv4Address": "127.0.0.1", "transport": "TCP", "port": 8001}]
            }
        },
        "amfInfo": {"amfSetId": "3f8", "amfRegionId": "ca", "guamiList": [
            {"plmnId": {"mcc": "001", "mnc": "01"}, "amfId": "cafe00"}]}
    })
}

fn instance_url(base: &str, id: &str) -> String {
    format!("{base}/nnrf-nfm/v1/nf-instances/{id}")
}

async fn send(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = client.request(method, url);
    if let Some((ct, bytes)) = body {
        req = req.header("content-type", ct).body(bytes);
    }
    let resp = req.send().await.expect("request sent");
    assert_eq!(
        resp.version(),
        Version::HTTP_2,
        "SBI calls must run over HTTP/2"
    );
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (status, body, headers)
}

async fn put_json(
    client: &Client,
    url: &str,
    body: &Value,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    send(
        client,
        Method::PUT,
        url,
        Some(("application/json", serde_json::to_vec(body).unwrap())),
    )
    .await
}

async fn heartbeat(client: &Client, url: &str) -> StatusCode {
    let patch = json!([{"op": "replace", "path": "/nfStatus", "value": "REGISTERED"}]);
    send(
        client,
        Method::PATCH,
        url,
        Some((
            "application/json-patch+json",
            serde_json::to_vec(&patch).unwrap(),
        )),
    )
    .await
    .0
}

async fn discover(client: &Client, base: &str, query: &str) -> Value {
    let (status, body, _) = send(
        client,
        Method::GET,
        &format!("{base}/nnrf-disc/v1/nf-instances?{query}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_3gpp_schema(DISC, "SearchResult", &body);
    assert!(
        body["nfInstances"].is_array(),
        "nfInstances must always be a list: {body}"
    );
    body
}

fn discovered_ids(result: &Value) -> Vec<String> {
    result["nfInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nfInstanceId"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a ProblemDetails answer: status, media type, `status` repeated in the body,
/// the 3GPP schema, and (when given) an `invalidParams` entry naming `param`.
fn assert_problem(
    status: StatusCode,
    body: &Value,
    headers: &reqwest::header::HeaderMap,
    want: StatusCode,
    param: Option<&str>,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert!(
        body["cause"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_3gpp_schema(COMMON, "ProblemDetails", body);
    if let Some(p) = param {
        let params: Vec<&str> = body["invalidParams"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["param"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            params.contains(&p),
            "invalidParams {params:?} should name {p}: {body}"
        );
    }
}

/// Polls the profile until its status is `status` (no timing assertion: a generous bound
/// only keeps a broken NRF from hanging the test run).
async fn wait_for_status(client: &Client, url: &str, status: &str) -> Value {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body, _) = send(client, Method::GET, url, None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        if body["nfStatus"] == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "profile never became {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn register_discover_heartbeat_expire_revive_deregister() {
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let client = h2_client();
    let id = new_id();
    let url = instance_url(&nrf.base, &id);
    let profile = amf_profile(&id, 1, "core");

    let (status, body, headers) = put_json(&client, &url, &profile).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers["location"], url.as_str());
    assert_3gpp_schema(NFM, "NFProfile", &body);
    assert_eq!(body["heartBeatTimer"], 1);
    assert_eq!(
        body["amfInfo"]["amfSetId"], "3f8",
        "unmodelled attributes are kept"
    );

    let (status, body, headers) = put_json(&client, &url, &profile).await;
    assert_eq!(status, StatusCode::OK, "re-registration replaces: {body}");
    assert!(headers.get("location").is_none());
    assert_3gpp_schema(NFM, "NFProfile", &body);

    let query = "target-nf-type=AMF&requester-nf-type=NEF&service-names=namf-loc,namf-evts";
    let found = discover(&client, &nrf.base, query).await;
    assert_eq!(discovered_ids(&found), vec![id.clone()]);
    assert!(found["validityPeriod"].as_u64().unwrap() >= 1);
    assert_eq!(
        found["nfInstances"][0]["nfServiceList"]["loc-1"]["ipEndPoints"][0]["port"],
        8001
    );

    assert_eq!(heartbeat(&client, &url).await, StatusCode::NO_CONTENT);

    // No more heartbeats: after heartBeatTimer x grace the NRF suspends it.
    let suspended = wait_for_status(&client, &url, "SUSPENDED").await;
    assert_3gpp_schema(NFM, "NFProfile", &suspended);
    let none = discover(&client, &nrf.base, query).await;
    assert_eq!(
        none["nfInstances"],
        json!([]),
        "suspended instances are not discovered"
    );

    // The next heartbeat brings it back.
    assert_eq!(heartbeat(&client, &url).await, StatusCode::NO_CONTENT);
    let (_, body, _) = send(&client, Method::GET, &url, None).await;
    assert_eq!(body["nfStatus"], "REGISTERED");
    assert_eq!(
        discovered_ids(&discover(&client, &nrf.base, query).await),
        vec![id.clone()]
    );

    let (status, _, _) = send(&client, Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, headers) = send(&client, Method::GET, &url, None).await;
    assert_problem(status, &body, &headers, StatusCode::NOT_FOUND, None);
    let (status, body, headers) = send(&client, Method::DELETE, &url, None).await;
    assert_problem(status, &body, &headers, StatusCode::NOT_FOUND, None);
    assert_eq!(
        discover(&client, &nrf.base, query).await["nfInstances"],
        json!([])
    );
    nrf.stop().await;
}

/// (what, method, URL, body with its content type, expected status, param named in invalidParams).
type BadCase<'a> = (
    &'a str,
    Method,
    String,
    Option<(&'a str, Vec<u8>)>,
    StatusCode,
    Option<&'a str>,
);

#[tokio::test]
async fn bad_input_is_answered_with_problem_details_and_changes_nothing() {
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let client = h2_client();
    let id = new_id();
    let url = instance_url(&nrf.base, &id);
    let profile = amf_profile(&id, 30, "core");
    assert_eq!(
        put_json(&client, &url, &profile).await.0,
        StatusCode::CREATED
    );
    let (_, stored, _) = send(&client, Method::GET, &url, None).await;

    let json = |v: &Value| Some(("application/json", serde_json::to_vec(v).unwrap()));
    let patch = |v: Value| {
        Some((
            "application/json-patch+json",
            serde_json::to_vec(&v).unwrap(),
        ))
    };
    let mut wrong_type = profile.clone();
    wrong_type["heartBeatTimer"] = json!("soon");
    let mut missing = profile.clone();
    missing.as_object_mut().unwrap().remove("nfType");
    let mut zero_timer = profile.clone();
    zero_timer["heartBeatTimer"] = json!(0);
    let mut no_address = profile.clone();
    no_address.as_object_mut().unwrap().remove("ipv4Addresses");
    let mut bad_plmn = profile.clone();
    bad_plmn["plmnList"][0]["mcc"] = json!("1");
    let other = new_id();
    let big = vec![b' '; 2 * 1024 * 1024];

    let cases: Vec<BadCase> = vec![
        (
            "malformed JSON",
            Method::PUT,
            url.clone(),
            Some(("application/json", b"{\"nfInstanceId\":".to_vec())),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "wrong type",
            Method::PUT,
            url.clone(),
            json(&wrong_type),
            StatusCode::BAD_REQUEST,
            Some("heartBeatTimer"),
        ),
        (
            "missing nfType",
            Method::PUT,
            url.clone(),
            json(&missing),
            StatusCode::BAD_REQUEST,
            Some("nfType"),
        ),
        (
            "heartBeatTimer 0",
            Method::PUT,
            url.clone(),
            json(&zero_timer),
            StatusCode::BAD_REQUEST,
            Some("heartBeatTimer"),
        ),
        (
            "no fqdn nor address",
            Method::PUT,
            url.clone(),
            json(&no_address),
            StatusCode::BAD_REQUEST,
            Some("fqdn"),
        ),
        (
            "bad PLMN",
            Method::PUT,
            url.clone(),
            json(&bad_plmn),
            StatusCode::BAD_REQUEST,
            Some("plmnList[0]"),
        ),
        (
            "path/body id mismatch",
            Method::PUT,
            instance_url(&nrf.base, &other),
            json(&profile),
            StatusCode::BAD_REQUEST,
            Some("nfInstanceId"),
        ),
        (
            "id not a UUID",
            Method::PUT,
            instance_url(&nrf.base, "amf-1"),
            json(&profile),
            StatusCode::BAD_REQUEST,
            Some("nfInstanceID"),
        ),
        (
            "text body",
            Method::PUT,
            url.clone(),
            Some(("text/plain", b"hello".to_vec())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            "oversize body",
            Method::PUT,
            url.clone(),
            Some(("application/json", big.clone())),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            "patch to an unknown status",
            Method::PATCH,
            url.clone(),
            patch(json!([{"op": "replace", "path": "/nfStatus", "value": "BOGUS"}])),
            StatusCode::BAD_REQUEST,
            Some("nfStatus"),
        ),
        (
            "patch removing nfType",
            Method::PATCH,
            url.clone(),
            patch(json!([{"op": "remove", "path": "/nfType"}])),
            StatusCode::BAD_REQUEST,
            Some("nfType"),
        ),
        (
            "patch changing the id",
            Method::PATCH,
            url.clone(),
            patch(json!([{"op": "replace", "path": "/nfInstanceId", "value": other}])),
            StatusCode::BAD_REQUEST,
            Some("nfInstanceId"),
        ),
        (
            "patch load 101",
            Method::PATCH,
            url.clone(),
            patch(json!([{"op": "add", "path": "/load", "value": 101}])),
            StatusCode::BAD_REQUEST,
            Some("load"),
        ),
        (
            "half-applied patch",
            Method::PATCH,
            url.clone(),
            patch(
                json!([{"op": "replace", "path": "/locality", "value": "edge-paris"}, {"op": "remove", "path": "/nope"}]),
            ),
            StatusCode::CONFLICT,
            None,
        ),
        (
            "empty patch",
            Method::PATCH,
            url.clone(),
            patch(json!([])),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "patch not an array",
            Method::PATCH,
            url.clone(),
            patch(json!({"op": "replace"})),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "patch as application/json",
            Method::PATCH,
            url.clone(),
            json(&json!([{"op": "replace", "path": "/nfStatus", "value": "REGISTERED"}])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            "oversize patch",
            Method::PATCH,
            url.clone(),
            Some(("application/json-patch+json", big)),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            "discover without target-nf-type",
            Method::GET,
            format!(
                "{}/nnrf-disc/v1/nf-instances?requester-nf-type=NEF",
                nrf.base
            ),
            None,
            StatusCode::BAD_REQUEST,
            Some("target-nf-type"),
        ),
        (
            "discover without requester-nf-type",
            Method::GET,
            format!("{}/nnrf-disc/v1/nf-instances?target-nf-type=AMF", nrf.base),
            None,
            StatusCode::BAD_REQUEST,
            Some("requester-nf-type"),
        ),
        (
            "discover limit 0",
            Method::GET,
            format!(
                "{}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=NEF&limit=0",
                nrf.base
            ),
            None,
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            "unknown route",
            Method::GET,
            format!("{}/nnrf-nfm/v1/nowhere", nrf.base),
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "wrong method",
            Method::POST,
            url.clone(),
            json(&profile),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
    ];
    for (what, method, target, body, want, param) in cases {
        let (status, answer, headers) = send(&client, method, &target, body).await;
        assert!(
            status == want,
            "{what}: expected {want}, got {status}: {answer}"
        );
        assert_problem(status, &answer, &headers, want, param);
        let (_, now, _) = send(&client, Method::GET, &url, None).await;
        assert_eq!(now, stored, "{what} changed the stored profile");
    }
    // The mismatching path id was not created either.
    let (status, _, _) = send(&client, Method::GET, &instance_url(&nrf.base, &other), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    nrf.stop().await;
}

/// On a fresh SQLite file and, when `NETGPT_TEST_POSTGRES_URL` is set, on a fresh
/// PostgreSQL database.
#[tokio::test]
async fn a_restarted_nrf_still_knows_its_profiles() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let urls = netgpt_sbi::db::test_database_urls(dir.path())
        .await
        .unwrap();
    for db_url in urls {
        let nrf = start_open_nrf_on(&db_url, dir.clone(), fast_nrf_options()).await;
        let client = h2_client();
        let id = new_id();
        let profile = amf_profile(&id, 3600, "edge-paris");
        let url = instance_url(&nrf.base, &id);
        assert_eq!(
            put_json(&client, &url, &profile).await.0,
            StatusCode::CREATED,
            "{db_url}"
        );
        let (_, before, _) = send(&client, Method::GET, &url, None).await;
        let (db_url, dir) = nrf.stop().await;

        let again = start_open_nrf_on(&db_url, dir, fast_nrf_options()).await;
        let (status, after, _) =
            send(&client, Method::GET, &instance_url(&again.base, &id), None).await;
        assert_eq!(status, StatusCode::OK, "{db_url}");
        assert_eq!(after, before, "{db_url}");
        let found = discover(
            &client,
            &again.base,
            "target-nf-type=AMF&requester-nf-type=NEF&preferred-locality=edge-paris",
        )
        .await;
        assert_eq!(discovered_ids(&found), vec![id], "{db_url}");
        again.stop().await;
    }
}

#[tokio::test]
async fn list_retrieval_links_instances_and_http1_also_works() {
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let client = h2_client();
    let (a, b) = (new_id(), new_id());
    put_json(
        &client,
        &instance_url(&nrf.base, &a),
        &amf_profile(&a, 60, "core"),
    )
    .await;
    let mut edge = amf_profile(&b, 60, "edge-paris");
    edge["nfType"] = json!("EDGEAI");
    edge.as_object_mut().unwrap().remove("amfInfo");
    let (status, body, _) = put_json(&client, &instance_url(&nrf.base, &b), &edge).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "NetGPT's own NF types register: {body}"
    );

    let (status, list, headers) = send(
        &client,
        Method::GET,
        &format!("{}/nnrf-nfm/v1/nf-instances", nrf.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/3gppHal+json");
    assert_3gpp_schema(NFM, "UriList", &list);
    assert_eq!(list["totalItemCount"], 2);
    let (_, only_edge, _) = send(
        &client,
        Method::GET,
        &format!("{}/nnrf-nfm/v1/nf-instances?nf-type=EDGEAI", nrf.base),
        None,
    )
    .await;
    assert_eq!(
        only_edge["_links"]["item"],
        json!([{"href": instance_url(&nrf.base, &b)}])
    );

    // HTTP/1.1 on the same port.
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let resp = h1
        .get(format!(
            "{}/nnrf-disc/v1/nf-instances?target-nf-type=EDGEAI&requester-nf-type=AMF",
            nrf.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_11);
    let found: Value = resp.json().await.unwrap();
    assert_eq!(discovered_ids(&found), vec![b]);
    nrf.stop().await;
}

#[tokio::test]
async fn nrf_serves_registration_metrics_and_its_openapi_document() {
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let client = h2_client();
    let id = new_id();
    let mut p = amf_profile(&id, 60, "core");
    p["nfType"] = json!("E2E_METRICS");
    p.as_object_mut().unwrap().remove("amfInfo");
    assert_eq!(
        put_json(&client, &instance_url(&nrf.base, &id), &p).await.0,
        StatusCode::CREATED
    );
    let text = client
        .get(format!("{}/metrics", nrf.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = "nrf_registered_nf_instances{nf_type=\"E2E_METRICS\",status=\"REGISTERED\"} 1";
    assert!(
        text.lines().any(|l| l == line),
        "{line} missing from:\n{text}"
    );
    assert!(
        text.contains("nrf_nf_registrations_total{nf_type=\"E2E_METRICS\",result=\"created\"} 1"),
        "{text}"
    );

    let doc: Value = client
        .get(format!("{}/openapi.json", nrf.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/nnrf-nfm/v1/nf-instances/{nfInstanceID}"]["put"]["operationId"],
        "RegisterNFInstance"
    );
    assert_eq!(
        doc["paths"]["/nnrf-disc/v1/nf-instances"]["get"]["operationId"],
        "SearchNFInstances"
    );
    nrf.stop().await;
}

#[tokio::test]
async fn the_sbi_nrf_consumer_registers_heartbeats_discovers_and_deregisters() {
    use netgpt_sbi::models::nnrf::{NfProfile, NfService, NfType};
    use netgpt_sbi::{DiscoveryQuery, NrfClient, SbiClient};

    let nrf = start_open_nrf(fast_nrf_options()).await;
    let consumer = NrfClient::new(SbiClient::new("e2e"), nrf.base.clone());
    let id = serde_json::from_value(json!(new_id())).unwrap();
    let mut p = NfProfile::new(id, NfType::new("CLOUDAI"));
    p.ipv4_addresses = Some(vec![std::net::Ipv4Addr::LOCALHOST]);
    p.heart_beat_timer = Some(5);
    let svc = NfService::http("gen-1", "ncloudai-gen", std::net::Ipv4Addr::LOCALHOST, 9100);
    p.nf_service_list = Some([("gen-1".to_owned(), svc)].into());

    let stored = consumer.register(&p).await.unwrap();
    assert_eq!(stored.heart_beat_timer, Some(5));
    consumer.heartbeat(id).await.unwrap();
    let q = DiscoveryQuery::new("CLOUDAI", "EDGEAI").service("ncloudai-gen");
    assert_eq!(
        consumer.api_root_of(&q, "ncloudai-gen").await.unwrap(),
        "http://127.0.0.1:9100"
    );
    assert_eq!(
        consumer.list_instances(Some("CLOUDAI")).await.unwrap(),
        vec![id]
    );
    consumer.deregister(id).await.unwrap();
    assert!(consumer.profile(id).await.is_err());
    assert!(consumer
        .discover_fresh(&q)
        .await
        .unwrap()
        .nf_instances
        .is_empty());
    nrf.stop().await;
}
