//! End to end: NetGPT runs through real NFs in one process — the NRF, the AMF, edge AI
//! functions at two sites and a cloud AI function (test NFs serving the catalogue's paths,
//! registered in the NRF) — started over the CmP's `ncmp-wf` API, with every step's
//! record checked: node, device, start <= end, attempts, outcome, output size.

mod api_support;

use std::time::Duration;

use api_support::{Bed, UE_HANGZHOU, UE_LONDON};
use chrono::DateTime;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn record<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == id)
        .unwrap_or_else(|| panic!("step {id} in {run}"))
}

fn time(v: &Value) -> DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("a timestamp, got {v}"))
        .to_utc()
}

/// Every executed step ran where the plan put it, in order, with a measured output size.
fn assert_records_follow_plan(run: &Value, plan: &Value) {
    for p in plan["steps"].as_array().unwrap() {
        let id = p["stepId"].as_str().unwrap();
        let r = record(run, id);
        assert_eq!(r["node"], p["node"], "{id}: node");
        assert_eq!(r["device"], p["device"], "{id}: device");
        if r["status"] == "skipped" {
            continue;
        }
        let (start, end) = (time(&r["startedAt"]), time(&r["finishedAt"]));
        assert!(start <= end, "{id}: {start} <= {end}");
        assert!(r["attempts"].as_u64().unwrap() >= 1, "{id}");
        if r["status"] == "succeeded" {
            let size = serde_json::to_string(&r["output"]).unwrap().len() as u64;
            assert_eq!(
                r["outputBytes"].as_u64().unwrap(),
                size,
                "{id}: output size"
            );
        }
    }
}

#[tokio::test]
async fn netgpt_run_goes_through_amf_edge_and_cloud_with_every_step_recorded() {
    let bed = Bed::start().await;
    // The cloud AI function is congested for its first call: generate needs two attempts.
    *bed.cloud.knobs.fail_first.lock().unwrap() = 1;

    let prompt = "Recommend libraries, call me on 5551234";
    let (s, loc, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/runs",
            &json!({ "input": { "supi": UE_HANGZHOU, "prompt": prompt }, "wait": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    assert!(loc.unwrap().ends_with(&format!("/ncmp-wf/v1/runs/{id}")));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["workflow"], "netgpt");

    // The records follow the plan the run was started with.
    let (s, plan) = bed.get(&format!("/ncmp-wf/v1/runs/{id}/plan")).await;
    assert_eq!(s, StatusCode::OK);
    assert_records_follow_plan(&run, &plan);
    for (step, node, device) in [
        ("desensitize", "edge-hangzhou", None),
        ("dedup", "edge-hangzhou", None),
        ("complete", "edge-hangzhou", Some("vpu0")),
        ("policy", "edge-hangzhou", None),
        ("answer", "edge-hangzhou", None),
        ("generate", "cloud", Some("gpu0")),
    ] {
        let r = record(&run, step);
        assert_eq!(r["status"], "succeeded", "{step}: {r}");
        assert_eq!(r["node"], node, "{step}");
        if let Some(d) = device {
            assert_eq!(r["device"], d, "{step}");
        }
        // The instance at the planned node served it (test NFs stamp their locality).
        assert_eq!(r["output"]["servedBy"], node, "{step}");
    }
    assert_eq!(record(&run, "location")["status"], "succeeded");
    assert_eq!(
        record(&run, "generate")["attempts"],
        2,
        "one 503, one success"
    );
    for step in [
        "location",
        "desensitize",
        "dedup",
        "complete",
        "policy",
        "answer",
    ] {
        assert_eq!(record(&run, step)["attempts"], 1, "{step}");
    }

    // The UE's location from the AMF reached the edge steps.
    let cell = &record(&run, "location")["output"]["location"]["nrLocation"]["ncgi"]["nrCellId"];
    assert_eq!(cell, "000001001");
    let hz_calls = bed.edges[0].calls.lock().unwrap().clone();
    let ops: Vec<&str> = hz_calls.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(
        ops,
        ["desensitize", "dedup", "complete", "policy", "answer"]
    );
    let complete_body = &hz_calls[2].1;
    assert_eq!(
        complete_body["location"]["location"]["nrLocation"]["ncgi"]["nrCellId"],
        "000001001"
    );
    assert_eq!(complete_body["location"]["timezone"], "+08:00");
    assert!(
        bed.edges[1].calls.lock().unwrap().is_empty(),
        "london untouched"
    );
    // What reached the cloud: desensitised, completed with the location at the edge.
    let cloud_calls = bed.cloud.calls.lock().unwrap().clone();
    assert_eq!(cloud_calls.len(), 2);
    let sent = cloud_calls[1].1["prompt"].as_str().unwrap();
    assert!(
        !sent.contains("5551234") && sent.contains("#######"),
        "{sent}"
    );
    assert!(
        sent.contains("near cell 000001001") && sent.contains("UTC+08:00"),
        "{sent}"
    );
    assert_eq!(cloud_calls[1].1["maxTokens"], 64, "params reach the call");
    assert_eq!(
        run["output"]["text"],
        format!("Cloud answer to: {sent}"),
        "{}",
        run["output"]
    );
    assert_eq!(run["output"]["edgeText"], Value::Null);

    // The stored record and the listing agree; the plan's picture is served.
    let (s, again) = bed.get(&format!("/ncmp-wf/v1/runs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again, run);
    let (_, runs) = bed.get("/ncmp-wf/v1/runs?limit=10").await;
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id.as_str()));
    let (s, ct, dot) = bed
        .get_text(&format!("/ncmp-wf/v1/runs/{id}/plan.dot"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/vnd.graphviz"), "{ct}");
    assert!(dot.contains("subgraph cluster_") && dot.contains("\"complete\""));
    let (s, _, mmd) = bed
        .get_text(&format!("/ncmp-wf/v1/runs/{id}/plan.mmd"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(mmd.starts_with("flowchart LR"));
    let (s, _) = bed.get("/ncmp-wf/v1/runs/no-such-run").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A greeting is answered at edge-london: cloud.generate is skipped.
    let (s, _, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/runs",
            &json!({ "input": { "supi": UE_LONDON, "prompt": "hello edge" }, "wait": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(record(&run, "generate")["status"], "skipped");
    assert_eq!(record(&run, "answer")["output"]["servedBy"], "edge-london");
    assert_eq!(run["output"]["edgeText"], "Hello from edge-london");
    assert_eq!(
        bed.cloud.calls.lock().unwrap().len(),
        2,
        "no new cloud call"
    );
    let id2 = run["id"].as_str().unwrap();
    let (_, plan2) = bed.get(&format!("/ncmp-wf/v1/runs/{id2}/plan")).await;
    assert_records_follow_plan(&run, &plan2);

    bed.stop().await;
}

#[tokio::test]
async fn runs_start_in_the_background_and_a_4xx_from_an_nf_fails_the_step_at_once() {
    let bed = Bed::start().await;

    // Without wait: 201 at once, the record fills in.
    let (s, _, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/cloud-only/runs",
            &json!({ "input": { "prompt": "What is 5G?" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    // Up to 20 s: the machine may be busy.
    for _ in 0..800 {
        let (_, r) = bed.get(&format!("/ncmp-wf/v1/runs/{id}")).await;
        if r["status"] != "running" {
            done = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["text"], "Cloud answer to: What is 5G?");
    let gen = record(&done, "generate");
    assert_eq!(
        (gen["node"].as_str(), gen["device"].as_str()),
        (Some("cloud"), Some("gpu0"))
    );

    // The cloud AI function refuses an empty prompt (400): fatal, no retry despite limit 1.
    let (s, _, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/cloud-only/runs",
            &json!({ "input": { "prompt": "" }, "wait": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(run["status"], "failed", "{run}");
    let gen = record(&run, "generate");
    assert_eq!(gen["status"], "failed");
    assert_eq!(gen["attempts"], 1);
    assert!(gen["error"].as_str().unwrap().contains("400"), "{gen}");

    // A run input lacking a declared field is refused before anything runs.
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/cloud-only/runs",
            &json!({ "input": { "question": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["invalidParams"][0]["param"], "input");
    assert_eq!(bed.cloud.calls.lock().unwrap().len(), 2);

    bed.stop().await;
}

// Multi-threaded like the NF binary: the model's decode loop must not share the one
// thread of a current-thread runtime with the servers.
// Multi-threaded like the NF binary, so the servers keep answering while the model decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn netgpt_run_with_the_real_cloud_ai_function() {
    // The cloud model: the configured one (tests/run.sh fetches it before the tests).
    let bed = Bed::start_with(true).await;
    // The shipped workflow with a few tokens and generous time limits: a loaded test
    // machine decodes far slower than the budget of the shipped workflow assumes.
    let (_, shipped) = bed.get("/ncmp-wf/v1/workflows/netgpt").await;
    let mut spec = shipped["spec"].clone();
    spec["name"] = json!("netgpt-slow");
    spec["budgetMs"] = json!(300_000);
    let generate = spec["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["id"] == "generate")
        .unwrap();
    generate["timeoutMs"] = json!(240_000);
    generate["params"]["maxTokens"] = json!(8);
    let (s, _, _) = bed.send(Method::POST, "/ncmp-wf/v1/workflows", &spec).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, run) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt-slow/runs",
            &json!({ "input": { "supi": UE_LONDON, "prompt": "Recommend libraries" }, "wait": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap();
    let (_, plan) = bed.get(&format!("/ncmp-wf/v1/runs/{id}/plan")).await;
    assert_records_follow_plan(&run, &plan);
    for step in ["desensitize", "dedup", "complete", "policy", "answer"] {
        assert_eq!(record(&run, step)["node"], "edge-london", "{step}");
    }
    let gen = record(&run, "generate");
    assert_eq!(
        (gen["node"].as_str(), gen["status"].as_str()),
        (Some("cloud"), Some("succeeded"))
    );
    // The cloud LLM's answer to the prompt completed at the edge with the UE's cell.
    let usage = &gen["output"]["usage"];
    assert!(usage["promptTokens"].as_u64().unwrap() > 3, "{usage}");
    let completion = usage["completionTokens"].as_u64().unwrap();
    assert!(
        (1..=8).contains(&completion),
        "maxTokens reached the call: {usage}"
    );
    let text = run["output"]["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{run}");
    assert!(
        run["output"]["prompt"]
            .as_str()
            .unwrap()
            .contains("near cell 000002001"),
        "{run}"
    );
    bed.stop().await;
}
