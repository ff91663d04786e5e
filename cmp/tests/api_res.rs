//! `ncmp-res` over real h2c: the configured inventory, node registration (persisted across
//! a restart), live load reports, links, and ProblemDetails for bad input.

mod api_support;

use std::sync::Arc;

use api_support::{invalid_params, Bed};
use netgpt_cmp::inventory::{DeviceLoadReport, Inventory, LoadReport};
use netgpt_cmp::ops::Catalog;
use netgpt_cmp::workflows::{parse_and_validate, WorkflowRegistry, WorkflowSource};
use netgpt_sbi::config::TestbedConfig;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn inventory_lists_configured_nodes_registers_nodes_and_takes_load_reports() {
    let bed = Bed::start().await;

    // The configured testbed: one node per edge site plus the cloud, edge<->cloud links.
    let (s, nodes) = bed.get("/ncmp-res/v1/nodes").await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["nodeId"].as_str().unwrap())
        .collect();
    for id in [
        "cloud",
        "edge-hangzhou",
        "edge-london",
        "edge-paris",
        "edge-newyork",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let (s, cloud) = bed.get("/ncmp-res/v1/nodes/cloud").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cloud["source"], "config");
    assert!(cloud["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["kind"] == "gpu" && d["units"] == 4));
    let (_, links) = bed.get("/ncmp-res/v1/links").await;
    assert!(links
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["a"] == "edge-hangzhou" && l["b"] == "cloud" && l["latencyMs"] == 20.0));

    // An NF registers a new node with a link to the cloud: 201 + Location, then 200.
    let reg = json!({
        "devices": [
            { "deviceId": "cpu0", "kind": "cpu", "units": 4, "memoryMb": 8192 },
            { "deviceId": "vpu0", "kind": "vpu", "units": 1, "memoryMb": 2048, "speed": 2.0 }
        ],
        "links": [ { "peer": "cloud", "bandwidthBps": 1.0e8, "latencyMs": 35.0 } ]
    });
    let (s, loc, node) = bed
        .send(Method::PUT, "/ncmp-res/v1/nodes/edge-berlin", &reg)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{node}");
    assert!(loc.unwrap().ends_with("/ncmp-res/v1/nodes/edge-berlin"));
    assert_eq!(node["source"], "registered");
    assert_eq!(node["devices"][1]["speed"], 2.0);
    let (s, _, _) = bed
        .send(Method::PUT, "/ncmp-res/v1/nodes/edge-berlin", &reg)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, links) = bed.get("/ncmp-res/v1/links").await;
    assert!(links
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["a"] == "edge-berlin" && l["b"] == "cloud" && l["source"] == "registered"));

    // Live load: recorded per device, shown on the node.
    let (s, _, node) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-berlin/load",
            &json!({ "devices": [ { "deviceId": "cpu0", "busyUnits": 3, "queueLength": 7 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{node}");
    assert_eq!(node["devices"][0]["load"]["busyUnits"], 3);
    assert_eq!(node["devices"][0]["load"]["queueLength"], 7);
    assert!(node["devices"][1].get("load").is_none());
    let (_, again) = bed.get("/ncmp-res/v1/nodes/edge-berlin").await;
    assert_eq!(again["devices"][0]["load"]["busyUnits"], 3);

    // Bad input: ProblemDetails naming the field; nothing changes.
    let (s, _, p) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-berlin/load",
            &json!({ "devices": [
                { "deviceId": "cpu0", "busyUnits": 1 },
                { "deviceId": "gpu9", "busyUnits": 1 },
                { "deviceId": "vpu0", "busyUnits": 5 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        invalid_params(&p),
        ["devices[1].deviceId", "devices[2].busyUnits"]
    );
    let (_, again) = bed.get("/ncmp-res/v1/nodes/edge-berlin").await;
    assert_eq!(again["devices"][0]["load"]["busyUnits"], 3, "unchanged");
    let (s, _, p) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-mars/load",
            &json!({ "devices": [ { "deviceId": "cpu0", "busyUnits": 1 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p["cause"], "RESOURCE_NOT_FOUND");
    let (s, _, p) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-x",
            &json!({ "devices": [
                { "deviceId": "cpu0", "kind": "cpu", "units": 0 },
                { "deviceId": "cpu0", "kind": "cpu", "units": 1, "speed": -1 } ],
                "links": [ { "peer": "edge-x", "bandwidthBps": 0, "latencyMs": 1 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        invalid_params(&p),
        [
            "devices[0].units",
            "devices[1].deviceId",
            "devices[1].speed",
            "links[0].peer",
            "links[0].bandwidthBps"
        ]
    );
    let (s, _, p) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-x",
            &json!({ "devices": [ { "deviceId": "t0", "kind": "tpu", "units": 1 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(invalid_params(&p)[0].starts_with("devices[0]"), "{p}");
    let (s, _) = bed.get("/ncmp-res/v1/nodes/edge-x").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a refused registration stores nothing"
    );
    let (s, _, _) = bed
        .send_raw(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-x",
            "text/plain",
            "x".into(),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The NF leaves: the node and its link go.
    let (s, _, _) = bed
        .send(
            Method::DELETE,
            "/ncmp-res/v1/nodes/edge-berlin",
            &json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = bed.get("/ncmp-res/v1/nodes/edge-berlin").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, links) = bed.get("/ncmp-res/v1/links").await;
    assert!(!links.to_string().contains("edge-berlin"), "{links}");
    let (s, _, p) = bed
        .send(
            Method::DELETE,
            "/ncmp-res/v1/nodes/edge-berlin",
            &json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p["cause"], "RESOURCE_NOT_FOUND");

    bed.stop().await;
}

#[tokio::test]
async fn registered_nodes_and_workflows_survive_a_restart_and_live_load_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestbedConfig::load_default().unwrap();
    let catalog = Catalog::netgpt();
    // SQLite always; PostgreSQL too where tests/run.sh provides one.
    for url in netgpt_sbi::db::test_database_urls(dir.path())
        .await
        .unwrap()
    {
        let reg = serde_json::from_value(json!({
            "devices": [ { "deviceId": "gpu0", "kind": "gpu", "units": 2, "memoryMb": 24000 } ]
        }))
        .unwrap();
        let user_wf = parse_and_validate(
            "name: netgpt\nsteps:\n  - id: n\n    operation: noop\n",
            &catalog,
        )
        .unwrap();
        {
            let db = netgpt_sbi::db::connect(&url).await.unwrap();
            let inv = Inventory::open(db.clone(), &cfg).await.unwrap();
            inv.register("edge-hangzhou", reg).await.unwrap();
            inv.report_load(
                "edge-hangzhou",
                LoadReport {
                    devices: vec![DeviceLoadReport {
                        device_id: "gpu0".into(),
                        busy_units: 2,
                        queue_length: 1,
                    }],
                },
            )
            .unwrap();
            let wfs = WorkflowRegistry::open(db.clone(), &catalog).await.unwrap();
            assert_eq!(wfs.get("netgpt").unwrap().source, WorkflowSource::Shipped);
            // A user's own "netgpt" replaces the shipped one.
            let (_, created) = wfs.register(user_wf).await.unwrap();
            assert!(!created);
            db.close().await;
        }
        let db = netgpt_sbi::db::connect(&url).await.unwrap();
        let inv = Arc::new(Inventory::open(db.clone(), &cfg).await.unwrap());
        // The registration (newer than the file) wins over the configured edge-hangzhou.
        let node = inv.node("edge-hangzhou").unwrap();
        assert_eq!(node.devices.len(), 1, "{url}");
        assert_eq!(node.devices[0].device_id, "gpu0");
        assert!(node.devices[0].load.is_none(), "live load is not persisted");
        // Configured nodes are still there.
        assert!(inv.node("cloud").is_some());
        // The user's workflow survives the restart; the shipped one does not overwrite it.
        let wfs = WorkflowRegistry::open(db.clone(), &catalog).await.unwrap();
        let wf = wfs.get("netgpt").unwrap();
        assert_eq!(wf.source, WorkflowSource::Registered, "{url}");
        assert_eq!(wf.spec.steps.len(), 1);
        assert_eq!(
            wfs.get("cloud-only").unwrap().source,
            WorkflowSource::Shipped
        );
        db.close().await;
    }
}
