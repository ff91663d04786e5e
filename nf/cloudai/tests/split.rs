//! `ncloudai-split` through a running cloud AI function (in process, h2c): split generation
//! driven by the edge side gives the text of `ncloudai-gen` greedy generation, the bytes on
//! the wire are what the format says, bad input is refused naming the parameter, and
//! sessions are bounded and expire. Skipped when the cloud model is not cached.

use std::sync::Arc;
use std::time::Duration;

use netgpt_cloudai::split::{
    generate_split_remote, split_router_with, NcloudaiSplitApi, SplitLimits, SplitSessionRequest,
    SplitStepRequest, SERVICE,
};
use netgpt_cloudai::CloudAiContext;
use netgpt_models::chat::{render_chatml, ChatMessage, Role};
use netgpt_models::llama_split::{encode_hidden, EdgeHalf, HiddenWire};
use netgpt_sbi::config::CloudAiConfig;
use netgpt_sbi::{NfApp, SbiClient};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

const MAX_TOKENS: usize = 6;

/// Serves `router` on an ephemeral port; returns its api root.
async fn serve(router: axum::Router, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let stop = stop.clone();
    tokio::spawn(async move { netgpt_sbi::serve(listener, router, stop).await });
    root
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Status and JSON body of a raw h2c call (errors included, to read ProblemDetails).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn param(v: &Value) -> &str {
    v["invalidParams"][0]["param"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_generation_over_sbi_matches_cloud_generation() {
    let Some(model) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("SKIPPED: cloud model not cached (run `netgpt models fetch`)");
        return;
    };
    let limits = CloudAiConfig {
        model: Some(model),
        ..CloudAiConfig::default()
    };
    let state = Arc::new(
        tokio::task::spawn_blocking(move || CloudAiContext::load(&limits, "cloudai").unwrap())
            .await
            .unwrap(),
    );
    let stop = CancellationToken::new();
    let root = serve(netgpt_cloudai::app("cloudai", state.clone()).build(), &stop).await;
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let client = SbiClient::new("edge-test");
    let cfg = state.model.config().clone();
    let (layers, d) = (cfg.num_hidden_layers, cfg.hidden_size);

    // The reference: greedy generation by the continuous-batching engine.
    let question = "What is the capital of France?";
    let (status, reference) = call(
        &http,
        reqwest::Method::POST,
        &format!("{root}/ncloudai-gen/v1/generate"),
        Some(json!({ "prompt": question, "maxTokens": MAX_TOKENS })),
    )
    .await;
    assert_eq!(status, 200, "{reference}");
    let want = reference["text"].as_str().unwrap().to_owned();
    let prompt_ids = netgpt_models::tokenizer::encode(
        &state.tokenizer,
        &render_chatml(&[ChatMessage::new(Role::User, question)], true),
    )
    .unwrap();

    for k in [1, layers / 2] {
        for wire in [HiddenWire::F32, HiddenWire::F16] {
            let edge = EdgeHalf::new(state.model.clone(), k)
                .unwrap()
                .with_wire(wire);
            let out = generate_split_remote(
                &client,
                &root,
                &edge,
                &state.tokenizer,
                &prompt_ids,
                k,
                MAX_TOKENS,
            )
            .await
            .unwrap();
            // Bytes: the session's JSON with the prompt's hidden states, then one fixed-size
            // step body per generated token after the first.
            let create = serde_json::to_vec(&SplitSessionRequest {
                split_layer: k as i64,
                hidden: b64(&vec![0; wire.bytes(prompt_ids.len(), d)]),
                max_tokens: MAX_TOKENS as i64,
                temperature: None,
                stop: None,
                seed: None,
            })
            .unwrap()
            .len();
            let per_step = serde_json::to_vec(&SplitStepRequest {
                hidden: b64(&vec![0; wire.bytes(1, d)]),
            })
            .unwrap()
            .len();
            eprintln!(
                "k={k} {wire:?}: {} prompt tokens -> {create} B up; {per_step} B up per step \
                 ({} B of hidden state); {} steps, {} B up, {} B down; text {:?} (cloud: {want:?})",
                prompt_ids.len(),
                wire.bytes(1, d),
                out.steps,
                out.bytes_up,
                out.bytes_down,
                out.text
            );
            assert_eq!(out.steps + 1, out.tokens.len());
            assert_eq!(out.bytes_up, create + out.steps * per_step);
            assert!(out.bytes_down > 0);
            if wire == HiddenWire::F32 {
                assert_eq!(out.text, want, "split at {k}");
                assert_eq!(
                    out.finish_reason,
                    reference["finishReason"].as_str().unwrap()
                );
            }
        }
    }

    // Bad input, each refused naming its parameter.
    let sessions = format!("{root}/ncloudai-split/v1/sessions");
    let good = b64(&encode_hidden(
        &candle_core::Tensor::zeros((2, d), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    )
    .unwrap());
    let narrow = b64(&encode_hidden(
        &candle_core::Tensor::zeros((2, 8), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    )
    .unwrap());
    for (body, name) in [
        (
            json!({ "splitLayer": 0, "hidden": good, "maxTokens": 2 }),
            "splitLayer",
        ),
        (
            json!({ "splitLayer": layers, "hidden": good, "maxTokens": 2 }),
            "splitLayer",
        ),
        (
            json!({ "splitLayer": 3, "hidden": "not base64!", "maxTokens": 2 }),
            "hidden",
        ),
        (
            json!({ "splitLayer": 3, "hidden": "", "maxTokens": 2 }),
            "hidden",
        ),
        (
            json!({ "splitLayer": 3, "hidden": narrow, "maxTokens": 2 }),
            "hidden",
        ),
        (
            json!({ "splitLayer": 3, "hidden": b64(&[1, 0, 0, 0, 64, 2, 0, 0, 0]), "maxTokens": 2 }),
            "hidden",
        ),
        (
            json!({ "splitLayer": 3, "hidden": good, "maxTokens": 0 }),
            "maxTokens",
        ),
        (
            json!({ "splitLayer": 3, "hidden": good, "maxTokens": 2, "temperature": 5.0 }),
            "temperature",
        ),
    ] {
        let (status, pd) = call(&http, reqwest::Method::POST, &sessions, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {pd}");
        assert_eq!(param(&pd), name, "{body}: {pd}");
    }
    let (status, pd) = call(
        &http,
        reqwest::Method::POST,
        &format!("{sessions}/no-such-session/steps"),
        Some(json!({ "hidden": good })),
    )
    .await;
    assert_eq!(
        (status, pd["cause"].as_str()),
        (404, Some("CONTEXT_NOT_FOUND"))
    );

    // Bounded and expiring sessions (a function with one slot and a short idle time).
    let limited = NfApp::new("cloudai")
        .service(
            SERVICE,
            split_router_with(
                state.clone(),
                SplitLimits {
                    max_sessions: 1,
                    idle_ttl: Duration::from_secs(2),
                },
            ),
            NcloudaiSplitApi::openapi(),
        )
        .build();
    let small = serve(limited, &stop).await;
    let sessions = format!("{small}/ncloudai-split/v1/sessions");
    // Real hidden states (the question's, after 3 layers): the model answers at length.
    let edge = EdgeHalf::new(state.model.clone(), 3).unwrap();
    let mut edge_cache = edge.new_cache();
    let prompt_hidden = b64(&edge.forward_encoded(&prompt_ids, &mut edge_cache).unwrap());
    let open = json!({ "splitLayer": 3, "hidden": prompt_hidden, "maxTokens": 8 });
    let (status, first) = call(&http, reqwest::Method::POST, &sessions, Some(open.clone())).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["finished"], false);
    let id = first["sessionId"].as_str().unwrap().to_owned();
    let (status, pd) = call(&http, reqwest::Method::POST, &sessions, Some(open.clone())).await;
    assert_eq!((status, pd["cause"].as_str()), (503, Some("NF_CONGESTION")));
    // A step of two positions is refused; one position is the next token.
    let (status, pd) = call(
        &http,
        reqwest::Method::POST,
        &format!("{sessions}/{id}/steps"),
        Some(json!({ "hidden": good })),
    )
    .await;
    assert_eq!((status, param(&pd)), (400, "hidden"), "{pd}");
    let token = first["token"].as_u64().unwrap() as u32;
    let one = b64(&edge.forward_encoded(&[token], &mut edge_cache).unwrap());
    let (status, next) = call(
        &http,
        reqwest::Method::POST,
        &format!("{sessions}/{id}/steps"),
        Some(json!({ "hidden": one })),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["sessionId"], id.as_str());
    // Idle past the TTL: gone, and its slot is free again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        &format!("{sessions}/{id}/steps"),
        Some(json!({ "hidden": one })),
    )
    .await;
    assert_eq!(status, 404);
    let (status, second) = call(&http, reqwest::Method::POST, &sessions, Some(open)).await;
    assert_eq!(status, 201, "{second}");
    let id = second["sessionId"].as_str().unwrap();
    let url = format!("{sessions}/{id}");
    assert_eq!(
        call(&http, reqwest::Method::DELETE, &url, None).await.0,
        204
    );
    assert_eq!(
        call(&http, reqwest::Method::DELETE, &url, None).await.0,
        404
    );
    stop.cancel();
}
