//! The cross-NF flow over real HTTP/2 on ephemeral ports, NRF and AMF in-process:
//! the AMF registers itself -> NFDiscover finds it -> a profile whose heartbeats stop is
//! suspended (and returns on its next heartbeat) while the heartbeating AMF stays ->
//! UE register -> ProvideLocationInfo -> a subscriber subscribes to LOCATION_REPORT ->
//! handover -> the subscriber receives the new cell -> the AMF deregisters on stop.
//!
//! OAuth2 is off here (`open_config`): these tests exercise the NF's function with plain
//! HTTP clients; `security.rs` and `edge.rs` run the NFs with OAuth2 on.

#[path = "amf_support.rs"]
mod amf_support;

use std::sync::Arc;
use std::time::Duration;

use amf_support::*;
use netgpt_nrf::NrfOptions;
use netgpt_sbi::models::nnrf::{NfProfile, NfType, SearchResult};
use netgpt_sbi::{DiscoveryQuery, NfContext, NrfClient, SbiClient};
use reqwest::{header, StatusCode, Version};
use serde_json::{json, Value};
use uuid::Uuid;

const SUPI: &str = "imsi-001010000000099";

/// NFDiscover for AMFs, straight over h2c (no cache), as a raw JSON document.
async fn discover_amfs(nrf_uri: &str) -> Value {
    let resp = netgpt_e2e::h2_client()
        .get(format!(
            "{nrf_uri}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=SMF"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn ids(result: &Value) -> Vec<String> {
    result["nfInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nfInstanceId"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls NFDiscover (bounded) until `pred` holds on the instance ids; returns them.
async fn discover_until(
    nrf_uri: &str,
    what: &str,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    for _ in 0..300 {
        let found = ids(&discover_amfs(nrf_uri).await);
        if pred(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("NFDiscover never showed: {what}");
}

#[tokio::test]
async fn register_discover_expire_locate_and_notify_handover_over_h2c() {
    let dir = tempfile::tempdir().unwrap();
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}",
        dir.path().join("testbed.db").display()
    ))
    .await
    .unwrap();

    // NRF on an ephemeral port; a quick expiry check so suspension shows within seconds.
    let nrf_ctx =
        NfContext::ephemeral(Arc::new(config("http://127.0.0.1:9", 2)), "nrf", db.clone())
            .await
            .unwrap();
    let nrf_uri = nrf_ctx.api_root.clone();
    let options = NrfOptions {
        expiry_grace: 3.0,
        expiry_check_interval: Duration::from_millis(100),
        ..NrfOptions::from_config(&config(&nrf_uri, 2))
    };
    let nrf = netgpt_nrf::start_with(nrf_ctx, options).await.unwrap();

    // The AMF registers itself at start and heartbeats every 2 s.
    let amf_ctx = NfContext::ephemeral(Arc::new(config(&nrf_uri, 2)), "amf", db.clone())
        .await
        .unwrap();
    let amf_id = amf_ctx.instance_id.to_string();
    let amf_port = amf_ctx.addr.port();
    let (amf, state) = netgpt_amf::start_with_state(amf_ctx).await.unwrap();
    assert!(amf.is_registered());

    // NFDiscover (target AMF) finds it, with its services at its port.
    let result = discover_amfs(&nrf_uri).await;
    assert_3gpp_valid("TS29510_Nnrf_NFDiscovery.yaml", "SearchResult", &result);
    let typed: SearchResult = serde_json::from_value(result.clone()).unwrap();
    let profile = typed
        .nf_instances
        .iter()
        .find(|p| p.nf_instance_id.to_string() == amf_id)
        .expect("AMF discovered");
    for service in ["namf-comm", "namf-loc", "namf-evts"] {
        let s = profile
            .service(service)
            .unwrap_or_else(|| panic!("{service} in the AMF profile"));
        assert_eq!(s.ip_end_points.as_ref().unwrap()[0].port, Some(amf_port));
    }
    // Every further call goes to the AMF the NRF returned.
    let nrf_client = NrfClient::new(SbiClient::new("flow-test"), nrf_uri.clone());
    let amf_root = nrf_client
        .api_root_of(
            &DiscoveryQuery::new("AMF", "SMF").service("namf-loc"),
            "namf-loc",
        )
        .await
        .unwrap();
    assert_eq!(amf_root, amf.api_root);

    // Heartbeat expiry: a second AMF profile that never heartbeats is suspended and no longer
    // discovered, while the heartbeating AMF stays; its next heartbeat brings it back.
    let ghost = Uuid::new_v4();
    let ghost_profile = NfProfile {
        heart_beat_timer: Some(1),
        fqdn: Some("ghost-amf.flow.test".into()),
        ..NfProfile::new(ghost, NfType::new("AMF"))
    };
    nrf_client.register(&ghost_profile).await.unwrap();
    let ghost_id = ghost.to_string();
    discover_until(&nrf_uri, "the short-lived AMF", |f| f.contains(&ghost_id)).await;
    let found = discover_until(&nrf_uri, "the short-lived AMF suspended", |f| {
        !f.contains(&ghost_id)
    })
    .await;
    assert!(
        found.contains(&amf_id),
        "the heartbeating AMF must stay discoverable"
    );
    nrf_client.heartbeat(ghost).await.unwrap();
    discover_until(
        &nrf_uri,
        "the short-lived AMF back after a heartbeat",
        |f| f.contains(&ghost_id),
    )
    .await;
    nrf_client.deregister(ghost).await.unwrap();

    // UE register.
    let c = netgpt_e2e::h2_client();
    let ue_url = format!("{amf_root}/namf-comm/v1/ue-contexts/{SUPI}");
    let resp = c
        .put(&ue_url)
        .json(&json!({"supi": SUPI, "nrCellId": "000003001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::CREATED);

    // ProvideLocationInfo.
    let loc: Value = c
        .post(format!("{amf_root}/namf-loc/v1/{SUPI}/provide-loc-info"))
        .json(&json!({"req5gsLoc": true, "reqCurrentLoc": true, "reqRatType": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_3gpp_valid("TS29518_Namf_Location.yaml", "ProvideLocInfo", &loc);
    assert_eq!(
        loc["location"]["nrLocation"]["ncgi"]["nrCellId"],
        "000003001"
    );
    assert_eq!(loc["ratType"], "NR");

    // A subscriber subscribes to this UE's location reports.
    let (notify_uri, mut inbox) = subscriber().await;
    let sub = json!({"subscription": {
        "eventList": [{"type": "LOCATION_REPORT"}],
        "eventNotifyUri": notify_uri,
        "notifyCorrelationId": "flow-1",
        "nfId": Uuid::new_v4().to_string(),
        "supi": SUPI
    }});
    assert_3gpp_valid(
        "TS29518_Namf_EventExposure.yaml",
        "AmfCreateEventSubscription",
        &sub,
    );
    let resp = c
        .post(format!("{amf_root}/namf-evts/v1/subscriptions"))
        .json(&sub)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let created: Value = resp.json().await.unwrap();
    assert_3gpp_valid(
        "TS29518_Namf_EventExposure.yaml",
        "AmfCreatedEventSubscription",
        &created,
    );
    assert!(location.ends_with(created["subscriptionId"].as_str().unwrap()));

    // Handover: the subscriber receives the new cell.
    let moved: Value = c
        .post(format!("{ue_url}/handover"))
        .json(&json!({"nrCellId": "000003002"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved["notifications"], 1);
    let n = next_notification(&mut inbox).await;
    assert_3gpp_valid(
        "TS29518_Namf_EventExposure.yaml",
        "AmfEventNotification",
        &n,
    );
    assert_eq!(n["notifyCorrelationId"], "flow-1");
    let report = &n["reportList"][0];
    assert_eq!(report["type"], "LOCATION_REPORT");
    assert_eq!(report["supi"], SUPI);
    assert_eq!(
        report["location"]["nrLocation"]["ncgi"]["nrCellId"],
        "000003002"
    );
    assert_eq!(report["location"]["nrLocation"]["tai"]["tac"], "000003");

    // Unsubscribed: the next move reaches nobody.
    assert_eq!(
        c.delete(&location).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let again: Value = c
        .post(format!("{ue_url}/handover"))
        .json(&json!({"nrCellId": "000003001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["notifications"], 0);
    assert_eq!(
        state
            .stats
            .notifications_delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Stopping the AMF deregisters it.
    amf.stop().await;
    assert!(!ids(&discover_amfs(&nrf_uri).await).contains(&amf_id));
    nrf.stop().await;
}
