//! The AMF's SBI over real HTTP/2 (h2c) on an ephemeral port: ProvideLocationInfo answers
//! that validate against TS 29.518, UE contexts, and bad input answered with
//! ProblemDetails that leaves every stored thing as it was.

#[path = "amf_support.rs"]
mod amf_support;

use amf_support::*;
use reqwest::{header, StatusCode, Version};
use serde_json::{json, Value};

const UE1: &str = "imsi-001010000000001";

async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["cause"].is_string(),
        "{body}"
    );
    assert_3gpp_valid("TS29571_CommonData.yaml", "ProblemDetails", &body);
    body
}

#[tokio::test]
async fn provide_location_info_over_h2c_validates_against_ts29518() {
    let amf = start_amf_standalone().await;
    let c = netgpt_e2e::h2_client();
    let url = format!("{}/namf-loc/v1/{UE1}/provide-loc-info", amf.api_root);
    let req =
        json!({"req5gsLoc": true, "reqCurrentLoc": true, "reqRatType": true, "reqTimeZone": true});
    let resp = c.post(&url).json(&req).send().await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["currentLoc"], true);
    let nr = &body["location"]["nrLocation"];
    assert_eq!(
        nr["ncgi"],
        json!({"plmnId": {"mcc": "001", "mnc": "01"}, "nrCellId": "000001001"})
    );
    assert_eq!(
        nr["tai"],
        json!({"plmnId": {"mcc": "001", "mnc": "01"}, "tac": "000001"})
    );
    assert_eq!(nr["ageOfLocationInformation"], 0);
    assert!(nr["ueLocationTimestamp"].is_string());
    // TS 23.032 ellipsoid point with uncertainty circle: shape nibble 1, 8 octets.
    let gi = nr["geographicalInformation"].as_str().unwrap();
    assert!(gi.len() == 16 && gi.starts_with("10"), "{gi}");
    assert_eq!(body["geoInfo"]["shape"], "POINT");
    assert_eq!(body["geoInfo"]["point"]["lat"], 30.2635);
    assert_eq!(body["ratType"], "NR");
    assert_eq!(body["timezone"], "+08:00");
    assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &body);
    assert_3gpp_valid("TS29518_Namf_Location.yaml", "RequestLocInfo", &req);

    // HTTP/1.1 on the same port gives the same answer.
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let resp = h1
        .post(&url)
        .json(&json!({"req5gsLoc": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_11);
    let last: Value = resp.json().await.unwrap();
    assert_eq!(last["currentLoc"], false);
    assert_eq!(
        last["location"]["nrLocation"]["ncgi"]["nrCellId"],
        "000001001"
    );
    assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &last);
    amf.running.stop().await;
}

#[tokio::test]
async fn ue_contexts_register_read_list_move_and_deregister() {
    let amf = start_amf_standalone().await;
    let c = netgpt_e2e::h2_client();
    let root = &amf.api_root;
    let supi = "imsi-001010000000077";
    let url = format!("{root}/namf-comm/v1/ue-contexts/{supi}");
    let resp = c
        .put(&url)
        .json(&json!({"nrCellId": "000004002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()[header::LOCATION], url.as_str());
    let ue: Value = resp.json().await.unwrap();
    assert_eq!(ue["servingCell"]["site"], "edge-newyork");
    assert_eq!(ue["servingCell"]["name"], "Grand Central Terminal");
    assert_3gpp_valid(
        "TS29571_CommonData.yaml",
        "UserLocation",
        &ue["userLocation"],
    );
    let ncgi = json!({"plmnId": {"mcc": "001", "mnc": "01"}, "nrCellId": "000004001"});
    let resp = c
        .put(&url)
        .json(&json!({"supi": supi, "ncgi": ncgi}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let got: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        got["userLocation"]["nrLocation"]["ncgi"]["nrCellId"],
        "000004001"
    );
    let list: Vec<Value> = c
        .get(format!("{root}/namf-comm/v1/ue-contexts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 5);
    assert!(list.iter().any(|u| u["supi"] == supi));

    let moved: Value = c
        .post(format!("{url}/handover"))
        .json(&json!({"targetNcgi": {"plmnId": {"mcc": "001", "mnc": "01"}, "nrCellId": "000004002"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved["sourceNcgi"]["nrCellId"], "000004001");
    assert_eq!(
        moved["ueContext"]["servingCell"]["ncgi"]["nrCellId"],
        "000004002"
    );

    let cells: Vec<Value> = c
        .get(format!("{root}/namf-comm/v1/cells"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cells.len(), 8);
    for cell in &cells {
        assert_3gpp_valid("TS29571_CommonData.yaml", "Ncgi", &cell["ncgi"]);
        assert_3gpp_valid("TS29571_CommonData.yaml", "Tai", &cell["tai"]);
        assert_3gpp_valid(
            "TS29572_Nlmf_Location.yaml",
            "GeographicArea",
            &cell["geoInfo"],
        );
    }

    assert_eq!(
        c.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    problem(c.get(&url).send().await.unwrap(), StatusCode::NOT_FOUND).await;
    amf.running.stop().await;
}

#[tokio::test]
async fn bad_input_gets_problem_details_and_changes_nothing() {
    let amf = start_amf_standalone().await;
    let c = netgpt_e2e::h2_client();
    let root = amf.api_root.clone();
    let list = || async {
        let v: Value = netgpt_e2e::h2_client()
            .get(format!("{root}/namf-comm/v1/ue-contexts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    let before = list().await;
    let stored_before = amf.state.store.load_ue_contexts().await.unwrap();
    let loc = format!("{root}/namf-loc/v1/{UE1}/provide-loc-info");
    let reg = format!("{root}/namf-comm/v1/ue-contexts/{UE1}");
    let subs = format!("{root}/namf-evts/v1/subscriptions");

    // Malformed JSON.
    let p = problem(
        c.post(&loc)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{\"req5gsLoc\":")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["cause"], "INVALID_MSG_FORMAT");
    // Wrong type.
    let p = problem(
        c.post(&loc)
            .json(&json!({"req5gsLoc": "yes"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["invalidParams"][0]["param"], "req5gsLoc");
    // Wrong content type.
    problem(
        c.post(&loc)
            .header(header::CONTENT_TYPE, "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    // Unknown SUPI, malformed SUPI.
    let p = problem(
        c.post(format!(
            "{root}/namf-loc/v1/imsi-001019999999999/provide-loc-info"
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["cause"], "CONTEXT_NOT_FOUND");
    let p = problem(
        c.put(format!("{root}/namf-comm/v1/ue-contexts/imsi-12x"))
            .json(&json!({"nrCellId": "000001001"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["invalidParams"][0]["param"], "ueContextId");
    // Unknown cell, on registration and on handover.
    let p = problem(
        c.put(&reg)
            .json(&json!({"nrCellId": "00000FFFF"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["invalidParams"][0]["param"], "nrCellId");
    let p = problem(
        c.post(format!("{reg}/handover"))
            .json(&json!({"nrCellId": "00000FFFF"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["invalidParams"][0]["param"], "nrCellId");
    // Missing mandatory fields of a subscription.
    let p = problem(
        c.post(&subs)
            .json(&json!({"subscription": {"eventList": [{"type": "LOCATION_REPORT"}], "notifyCorrelationId": "x",
                "nfId": "6f1a1c2e-0000-4000-8000-000000000001", "supi": UE1}}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["cause"], "MANDATORY_IE_MISSING");
    assert_eq!(
        p["invalidParams"][0]["param"],
        "subscription.eventNotifyUri"
    );
    // A subscription to an unknown UE.
    let p = problem(
        c.post(&subs)
            .json(&json!({"subscription": {"eventList": [{"type": "LOCATION_REPORT"}], "eventNotifyUri": "http://127.0.0.1:9/n",
                "notifyCorrelationId": "x", "nfId": "6f1a1c2e-0000-4000-8000-000000000001", "supi": "imsi-001019999999999"}}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["cause"], "CONTEXT_NOT_FOUND");
    // Oversized body (2 MiB against the 1 MiB limit).
    let big = format!(
        "{{\"nrCellId\":\"000001002\",\"pad\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    problem(
        c.put(&reg)
            .header(header::CONTENT_TYPE, "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // Unknown subscription, unknown route, wrong method.
    problem(
        c.delete(format!("{subs}/no-such-id")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        c.get(format!("{root}/namf-loc/v1/nowhere"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        c.get(&loc).send().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;

    assert_eq!(list().await, before);
    assert_eq!(
        amf.state.store.load_ue_contexts().await.unwrap(),
        stored_before
    );
    assert!(amf
        .state
        .store
        .load_subscriptions()
        .await
        .unwrap()
        .is_empty());
    assert!(amf.state.subscriptions.read().await.is_empty());
    amf.running.stop().await;
}

#[tokio::test]
async fn metrics_and_openapi_are_served() {
    let amf = start_amf_standalone().await;
    let c = netgpt_e2e::h2_client();
    let root = &amf.api_root;
    c.post(format!("{root}/namf-loc/v1/{UE1}/provide-loc-info"))
        .json(&json!({"req5gsLoc": true}))
        .send()
        .await
        .unwrap();
    c.post(format!("{root}/namf-comm/v1/ue-contexts/{UE1}/handover"))
        .json(&json!({"nrCellId": "000001002"}))
        .send()
        .await
        .unwrap();
    let text = c
        .get(format!("{root}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "amf_location_requests_total",
        "amf_handovers_total",
        "amf_registered_ues",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    assert!(
        text.contains("operation=\"ProvideLocationInfo\""),
        "inbound SBI metrics name the operation"
    );
    let doc: Value = c
        .get(format!("{root}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/namf-loc/v1/{ueContextId}/provide-loc-info"]["post"].is_object());
    assert!(doc["paths"]["/namf-evts/v1/subscriptions"]["post"].is_object());
    assert!(doc["paths"]["/namf-comm/v1/cells"]["get"].is_object());
    amf.running.stop().await;
}

#[test]
fn schema_check_rejects_a_document_that_breaks_ts29518() {
    let good = json!({"location": {"nrLocation": {
        "tai": {"plmnId": {"mcc": "001", "mnc": "01"}, "tac": "000001"},
        "ncgi": {"plmnId": {"mcc": "001", "mnc": "01"}, "nrCellId": "000001001"}}}});
    if !assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &good) {
        return; // skipped, reason printed
    }
    let mut bad = good.clone();
    bad["location"]["nrLocation"]["ncgi"]["nrCellId"] = json!("not-a-cell");
    let caught = std::panic::catch_unwind(|| {
        assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &bad)
    });
    assert!(caught.is_err(), "a malformed nrCellId must fail validation");
    let mut bad = good;
    bad["location"]["nrLocation"]
        .as_object_mut()
        .unwrap()
        .remove("tai");
    let caught = std::panic::catch_unwind(|| {
        assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &bad)
    });
    assert!(
        caught.is_err(),
        "a missing mandatory tai must fail validation"
    );
}
