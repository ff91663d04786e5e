//! `ncmp-wf` over real h2c: the shipped workflows, registration from YAML and JSON with
//! validation errors naming step and field, and dry-run plans (placement on the nodes
//! where the NFs are, the UE's serving site from the AMF, live load, DOT/Mermaid).

mod api_support;

use api_support::{invalid_params, Bed, UE_HANGZHOU, UE_LONDON};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const GOOD_YAML: &str = r#"
name: two-step
description: desensitize at the edge, then generate in the cloud
budgetMs: 5000
inputs: [prompt]
steps:
  - id: clean
    operation: edge.desensitize
    inputs: { prompt: $input.prompt }
    costMs: { cpu: 3 }
  - id: gen
    operation: cloud.generate
    inputs: { prompt: $steps.clean.output.prompt }
    params: { maxTokens: 16 }
    costMs: { gpu: 100, cpu: 900 }
"#;

/// Three mistakes at once: an unknown operation, a reference to a missing step, and a
/// cycle between two steps.
const BAD_YAML: &str = r#"
name: broken
steps:
  - id: a
    operation: edge.desensitize
    inputs: { prompt: $steps.b.output.prompt }
  - id: b
    operation: edge.teleport
    inputs: { prompt: $steps.a.output.prompt }
  - id: c
    operation: cloud.generate
    inputs: { prompt: $steps.nowhere.output.text }
"#;

#[tokio::test]
async fn workflows_register_from_yaml_and_json_and_bad_ones_name_step_and_field() {
    let bed = Bed::start().await;

    // Shipped at start.
    let (s, list) = bed.get("/ncmp-wf/v1/workflows").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cloud-only", "netgpt", "offload", "splitting"]);
    let (_, netgpt) = bed.get("/ncmp-wf/v1/workflows/netgpt").await;
    assert_eq!(netgpt["source"], "shipped");
    let ops: Vec<&str> = netgpt["spec"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "amf.location",
            "edge.desensitize",
            "edge.dedup",
            "edge.complete",
            "edge.policy",
            "edge.answer",
            "cloud.generate"
        ]
    );

    // YAML: 201 + Location, then 200 on replacement.
    let (s, loc, doc) = bed
        .send_raw(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            "application/yaml",
            GOOD_YAML.into(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert!(loc.unwrap().ends_with("/ncmp-wf/v1/workflows/two-step"));
    assert_eq!(doc["source"], "registered");
    assert_eq!(doc["spec"]["steps"][1]["params"]["maxTokens"], 16);
    // The same workflow as JSON replaces it.
    let (s, _, _) = bed
        .send(Method::POST, "/ncmp-wf/v1/workflows", &doc["spec"])
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, got) = bed.get("/ncmp-wf/v1/workflows/two-step").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["spec"], doc["spec"]);

    // Every problem named, by step and field.
    let (s, _, p) = bed
        .send_raw(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            "application/yaml",
            BAD_YAML.into(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    let params = invalid_params(&p);
    for want in [
        "steps[1].operation",
        "steps[2].inputs.prompt",
        "steps[0]", // the cycle a -> b -> a
    ] {
        assert!(params.iter().any(|x| x == want), "{want} in {params:?}");
    }
    let reasons = p["invalidParams"].to_string();
    assert!(
        reasons.contains("edge.teleport") && reasons.contains("nowhere"),
        "{reasons}"
    );
    assert!(reasons.contains("step 'b'"), "{reasons}");
    let (s, _) = bed.get("/ncmp-wf/v1/workflows/broken").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing stored");

    // A misspelt field, a missing required input, a bad condition, a bad name.
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            &json!({ "name": "x", "steps": [ { "id": "a", "operation": "noop", "timeout": 5 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(invalid_params(&p)[0].starts_with("steps[0]"), "{p}");
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            &json!({ "name": "x", "steps": [
                { "id": "gen", "operation": "cloud.generate" },
                { "id": "loc", "operation": "amf.location", "inputs": { "supi": "$input.supi" },
                  "when": "$steps.gen.output.text ==" } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        invalid_params(&p),
        ["steps[0].inputs.prompt", "steps[1].when"]
    );
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            &json!({ "name": "a/b", "steps": [ { "id": "n", "operation": "noop" } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_params(&p), ["name"]);
    let (s, _, _) = bed
        .send_raw(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            "text/plain",
            GOOD_YAML.into(),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _, p) = bed
        .send_raw(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            "application/yaml",
            "name: [unclosed".into(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");

    // The catalogue is served.
    let (_, ops) = bed.get("/ncmp-wf/v1/operations").await;
    let gen = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "cloud.generate")
        .unwrap();
    assert_eq!(gen["nfType"], "CLOUDAI");
    assert_eq!(gen["path"], "/ncloudai-gen/v1/generate");

    bed.stop().await;
}

fn step<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == id)
        .unwrap_or_else(|| panic!("step {id} in {plan}"))
}

/// Checks the plan's times against the DAG: every step starts after its predecessors
/// finish, and the predicted latency is the last finish.
fn assert_consistent(plan: &Value, chain: &[&str]) {
    let mut last = 0.0f64;
    for s in plan["steps"].as_array().unwrap() {
        let (a, b) = (
            s["startMs"].as_f64().unwrap(),
            s["finishMs"].as_f64().unwrap(),
        );
        assert!(0.0 <= a && a <= b, "{s}");
        last = last.max(b);
    }
    for w in chain.windows(2) {
        let before = step(plan, w[0])["finishMs"].as_f64().unwrap();
        let after = step(plan, w[1])["startMs"].as_f64().unwrap();
        assert!(before <= after + 1e-9, "{} before {}: {plan}", w[0], w[1]);
    }
    let predicted = plan["predictedLatencyMs"].as_f64().unwrap();
    assert!((predicted - last).abs() < 1e-6, "{predicted} vs {last}");
}

#[tokio::test]
async fn plans_place_edge_steps_at_the_ues_site_and_generation_in_the_cloud() {
    let mut bed = Bed::start().await;
    let edge_steps = ["desensitize", "dedup", "complete", "policy", "answer"];

    // The AMF says UE 1 is served by edge-hangzhou.
    let (s, _, plan) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "supi": UE_HANGZHOU, "prompt": "Recommend libraries" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    assert_eq!(plan["site"], "edge-hangzhou");
    for id in edge_steps {
        assert_eq!(step(&plan, id)["node"], "edge-hangzhou", "{id}");
    }
    // The LLM completion is cheaper on the VPU (40 ms) than on the CPU (120 ms).
    assert_eq!(step(&plan, "complete")["device"], "vpu0");
    assert_eq!(step(&plan, "generate")["node"], "cloud");
    assert_eq!(step(&plan, "generate")["device"], "gpu0");
    assert_eq!(
        step(&plan, "generate")["when"],
        "$steps.answer.output.answeredAtEdge != true"
    );
    assert_consistent(
        &plan,
        &[
            "desensitize",
            "dedup",
            "complete",
            "policy",
            "answer",
            "generate",
        ],
    );
    // The cloud step waits at least the edge->cloud link latency (20 ms) after policy.
    let gap = step(&plan, "generate")["startMs"].as_f64().unwrap()
        - step(&plan, "policy")["finishMs"].as_f64().unwrap();
    assert!(gap >= 20.0 - 1e-6, "transfer over the 20 ms link: {gap}");
    assert_eq!(plan["withinBudget"], true);
    let dot = plan["dot"].as_str().unwrap();
    assert!(dot.starts_with("digraph \"netgpt\""), "{dot}");
    assert!(dot.contains("label=\"edge-hangzhou\"") && dot.contains("label=\"cloud\""));
    assert!(
        dot.contains("\"policy\" -> \"generate\" [style=dashed]"),
        "{dot}"
    );
    assert!(dot.contains("\"dedup\" -> \"complete\";"), "{dot}");
    let mermaid = plan["mermaid"].as_str().unwrap();
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("subgraph") && mermaid.contains("[\"cloud\"]"));
    assert!(mermaid.contains("-.->"), "{mermaid}");

    // `site` pins the edge steps without asking the AMF; HEFT on request.
    let (s, _, plan) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "site": "edge-london", "supi": UE_HANGZHOU, "prompt": "x" },
                     "algorithm": "heft" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    for id in edge_steps {
        assert_eq!(step(&plan, id)["node"], "edge-london", "{id}");
    }
    assert!(plan["algorithm"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("heft"));

    // A full VPU (live load) sends the completion to the CPU.
    let (s, _, _) = bed
        .send(
            Method::PUT,
            "/ncmp-res/v1/nodes/edge-london/load",
            &json!({ "devices": [ { "deviceId": "vpu0", "busyUnits": 2, "queueLength": 4 } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, loaded) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "supi": UE_LONDON, "prompt": "x" } }),
        )
        .await;
    assert_eq!(loaded["site"], "edge-london");
    assert_eq!(step(&loaded, "complete")["device"], "cpu0", "{loaded}");
    assert_consistent(&loaded, &["dedup", "complete", "policy"]);

    // No edge AI function at edge-paris: no feasible placement.
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "site": "edge-paris", "supi": UE_HANGZHOU, "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["cause"], "NO_FEASIBLE_PLACEMENT");
    assert_eq!(invalid_params(&p), ["steps.desensitize"]);
    let why = p["invalidParams"][0]["reason"].as_str().unwrap();
    assert!(
        why.contains("'edge-paris' has no EDGEAI instance") && why.contains("edge-hangzhou"),
        "{why}"
    );
    // An edge AI function starts at edge-paris: the next plan uses it at once.
    bed.start_edge("edge-paris").await;
    let (s, _, plan) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "site": "edge-paris", "supi": UE_HANGZHOU, "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    assert_eq!(step(&plan, "complete")["node"], "edge-paris");
    // Unknown UE, unknown site, unknown workflow, bad body.
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "supi": "imsi-001019999999999", "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_params(&p), ["input.supi"]);
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "input": { "site": "edge-mars", "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_params(&p), ["input.site"]);
    let (s, _, _) = bed
        .send(Method::POST, "/ncmp-wf/v1/workflows/nope/plan", &json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, p) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/netgpt/plan",
            &json!({ "algorithm": "random" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_params(&p), ["algorithm"]);

    // A budget the prediction cannot meet: the plan is still shown, with the verdict.
    let (s, _, _) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows",
            &json!({ "name": "tight", "budgetMs": 100, "steps": [
                { "id": "gen", "operation": "cloud.generate",
                  "inputs": { "prompt": "$input.prompt" }, "costMs": { "gpu": 400 } } ] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, plan) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/tight/plan",
            &json!({ "input": { "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    assert_eq!(plan["withinBudget"], false);
    assert_eq!(plan["budgetMs"], 100);
    assert!(plan["predictedLatencyMs"].as_f64().unwrap() >= 400.0);

    // The cloud-only alternative: one step, in the cloud.
    let (s, _, plan) = bed
        .send(
            Method::POST,
            "/ncmp-wf/v1/workflows/cloud-only/plan",
            &json!({ "input": { "prompt": "x" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(step(&plan, "generate")["node"], "cloud");
    assert!((plan["predictedLatencyMs"].as_f64().unwrap() - 400.0).abs() < 1e-6);

    bed.stop().await;
}
