//! The cloud AI function end to end, on the real cloud model (SmolLM2-135M-Instruct, cached
//! by `netgpt models fetch`, which the test command runs first): SBI generation found through
//! NRF discovery, the OpenAI-compatible routes streamed and not, bad input, admission
//! control, cancellation, several LoRA adapters in one batch, metrics, and the real `openai`
//! Python client where the test command installed it.
//!
//! OAuth2 is off here (`open_config`): these tests exercise the NF's function with plain
//! HTTP clients; `security.rs` and `edge.rs` run the NFs with OAuth2 on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netgpt_e2e::{fast_nrf_options, h2_client, open_config, start_open_nrf, TestNrf};
use netgpt_sbi::config::CloudAiConfig;
use netgpt_sbi::{NfContext, RunningNf};
use serde_json::{json, Value};

struct Cloud {
    nrf: TestNrf,
    running: RunningNf,
    base: String,
    name: String,
    _dir: tempfile::TempDir,
}

/// Starts an NRF and the cloud AI function on the cached model; `None` (test skipped) when
/// the model is not cached.
/// `name` is the NF instance name, one per test: the `nf` label keeps each test's metrics
/// apart in the process-wide recorder.
async fn start(
    name: &str,
    limits: impl FnOnce(&mut CloudAiConfig, &std::path::Path),
) -> Option<Cloud> {
    let Some(model) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("cloud model not cached (run `netgpt models fetch`): skipped");
        return None;
    };
    let nrf = start_open_nrf(fast_nrf_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = open_config(&nrf.base);
    cfg.cloudai.model = Some(model);
    let nf = cfg.nf["cloudai"].clone();
    cfg.nf.insert(name.to_owned(), nf);
    limits(&mut cfg.cloudai, dir.path());
    let db = netgpt_sbi::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cloud.db").display()
    ))
    .await
    .unwrap();
    let ctx = NfContext::ephemeral(Arc::new(cfg), name, db).await.unwrap();
    let base = ctx.api_root.clone();
    let running = netgpt_cloudai::start(ctx).await.expect("start cloud AI");
    Some(Cloud {
        nrf,
        running,
        base,
        name: name.to_owned(),
        _dir: dir,
    })
}

impl Cloud {
    async fn stop(self) {
        self.running.stop().await;
        self.nrf.stop().await;
    }

    async fn status(&self) -> Value {
        h2_client()
            .get(format!("{}/ncloudai-gen/v1/model", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the status until `f` holds (10 s at most).
    async fn wait_status(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let s = self.status().await;
            if f(&s) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{what}: status {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> String {
        h2_client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn generate(&self, body: Value) -> (u16, Value) {
        let r = h2_client()
            .post(format!("{}/ncloudai-gen/v1/generate", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

#[tokio::test]
async fn sbi_generation_through_nrf_discovery_with_usage() {
    let Some(cloud) = start("cloudai-sbi", |_, _| {}).await else {
        return;
    };
    // A consumer finds the function in the NRF, as an edge AI function does.
    let client = netgpt_sbi::SbiClient::new("edge-test");
    let nrf = netgpt_sbi::NrfClient::new(client.clone(), cloud.nrf.base.clone());
    let root = nrf
        .api_root_of(
            &netgpt_sbi::DiscoveryQuery::new("CLOUDAI", "EDGEAI"),
            "ncloudai-gen",
        )
        .await
        .expect("discover CLOUDAI");
    assert_eq!(root, cloud.base);
    let body = json!({"prompt": "What is the capital of France?", "maxTokens": 24});
    let r = client
        .post(format!("{root}/ncloudai-gen/v1/generate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    let v: Value = r.json().unwrap();
    let text = v["text"].as_str().unwrap();
    // A 135M model at greedy is no oracle: assert the serving, not the facts.
    assert!(text.split_whitespace().count() >= 3, "{v}");
    let u = &v["usage"];
    assert!(u["promptTokens"].as_u64().unwrap() > 10);
    let n = u["completionTokens"].as_u64().unwrap();
    assert!((1..=24).contains(&n), "{v}");
    assert!(u["timeToFirstTokenMs"].as_f64().unwrap() > 0.0);
    assert!(u["totalMs"].as_f64().unwrap() >= u["timeToFirstTokenMs"].as_f64().unwrap());
    assert!(["stop", "length"].contains(&v["finishReason"].as_str().unwrap()));
    assert_eq!(v["model"], "SmolLM2-135M-Instruct");
    // Greedy by default: the same request gives the same text.
    let (_, again) = cloud.generate(body).await;
    assert_eq!(again["text"], v["text"]);
    // And the text plain one-sequence generation gives (no batching, no cached system-prompt
    // prefix): the serving machinery changes nothing in the answer.
    let reference = tokio::task::spawn_blocking(|| {
        use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
        let path = netgpt_models::fetch::cached_cloud_model().unwrap();
        let mut llm = CloudLlm::from_gguf(&path).unwrap();
        let cfg = netgpt_models::generation::GenerationConfig {
            max_new_tokens: 24,
            ..Default::default()
        };
        let msg = [ChatMessage::new(
            Role::User,
            "What is the capital of France?",
        )];
        llm.chat(&msg, &cfg, &mut |_| {}).unwrap().text
    })
    .await
    .unwrap();
    assert_eq!(v["text"].as_str().unwrap(), reference);
    let metrics = cloud.metrics().await;
    assert!(
        metrics.contains(&format!(
            "cloudai_prefix_cache_hits_total{{nf=\"{}\"}} 2",
            cloud.name
        )),
        "the system-prompt prefix was not reused: {metrics}"
    );
    let s = cloud.wait_status("idle", |s| s["running"] == 0).await;
    assert_eq!(s["maxBatch"], 32);
    cloud.stop().await;
}

#[tokio::test]
async fn bad_input_gets_problem_details_and_does_not_disturb_others() {
    let Some(cloud) = start("cloudai-bad", |c, _| c.max_prompt_tokens = 200).await else {
        return;
    };
    let long = "word ".repeat(400);
    let cases = [
        (json!({"prompt": "  "}), "prompt"),
        (json!({}), "prompt"),
        (
            json!({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}),
            "prompt",
        ),
        (json!({"prompt": long}), "prompt"),
        (json!({"prompt": "hi", "maxTokens": -1}), "maxTokens"),
        (json!({"prompt": "hi", "maxTokens": 100000}), "maxTokens"),
        (json!({"prompt": "hi", "temperature": 3.5}), "temperature"),
        (json!({"prompt": "hi", "topP": 0}), "topP"),
        (json!({"prompt": "hi", "topK": 0}), "topK"),
        (json!({"prompt": "hi", "stop": ["", "x"]}), "stop"),
        (json!({"prompt": "hi", "adapter": "nowhere"}), "adapter"),
        (
            json!({"messages": [{"role": "robot", "content": "hi"}]}),
            "messages.role",
        ),
        (json!({"prompt": 7}), "prompt"),
    ];
    // Bad requests fired while a good one is decoding must not touch it.
    let good = {
        let base = cloud.base.clone();
        tokio::spawn(async move {
            h2_client()
                .post(format!("{base}/ncloudai-gen/v1/generate"))
                .json(&json!({"prompt": "Name three colours.", "maxTokens": 32}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    for (body, param) in cases {
        let r = h2_client()
            .post(format!("{}/ncloudai-gen/v1/generate", cloud.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let p: Value = r.json().await.unwrap();
        assert!(p["cause"].is_string(), "{p}");
        assert_eq!(p["invalidParams"][0]["param"], param, "{body}: {p}");
    }
    let g = good.await.unwrap();
    assert!(!g["text"].as_str().unwrap().is_empty(), "{g}");
    let (alone_status, alone) = cloud
        .generate(json!({"prompt": "Name three colours.", "maxTokens": 32}))
        .await;
    assert_eq!(alone_status, 200);
    assert_eq!(alone["text"], g["text"]);
    cloud.stop().await;
}

/// Reads an SSE body: the `data:` payloads in order.
async fn sse_data(mut r: reqwest::Response, stop_after: Option<usize>) -> Vec<String> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(i) = buf.find("\n\n") {
            let event: String = buf.drain(..i + 2).collect();
            for line in event.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    out.push(d.to_owned());
                }
            }
        }
        if stop_after.is_some_and(|n| out.len() >= n) {
            return out;
        }
    }
    out
}

#[tokio::test]
async fn openai_route_answers_streamed_and_not_like_the_sbi_service() {
    let Some(cloud) = start("cloudai-openai", |_, _| {}).await else {
        return;
    };
    let http = reqwest::Client::new(); // HTTP/1.1, as most OpenAI clients speak
    let url = format!("{}/v1/chat/completions", cloud.base);
    let question = "Give one tip for a rainy day in London.";
    let req = json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 40,
        "messages": [{"role": "user", "content": question}]});
    let v: Value = http
        .post(&url)
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    // The same conversation over SBI gives the same (greedy) answer.
    let (_, sbi) = cloud
        .generate(json!({"prompt": question, "maxTokens": 40}))
        .await;
    assert_eq!(sbi["text"].as_str().unwrap(), text);

    // Streamed: the deltas add up to the same text, then a finish chunk, usage, [DONE].
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let r = http.post(&url).json(&sreq).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(r, None).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() > 3, "{chunks:?}");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text);
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"].is_string()));
    assert_eq!(
        chunks.last().unwrap()["usage"]["completion_tokens"],
        u["completion_tokens"]
    );
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));

    // Models, and errors in OpenAI's shape.
    let models: Value = http
        .get(format!("{}/v1/models", cloud.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct");
    for (body, status, param) in [
        (
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model",
        ),
        (
            json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "max_tokens",
        ),
        (
            json!({"model": "SmolLM2-135M-Instruct", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "n",
        ),
        (
            json!({"model": "SmolLM2-135M-Instruct", "messages": []}),
            400,
            "messages",
        ),
    ] {
        let r = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
        assert!(e["error"]["message"].is_string());
    }
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    cloud.stop().await;
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_retry_after_and_a_gone_client_is_dropped() {
    let Some(cloud) = start("cloudai-queue", |c, _| {
        c.max_batch = 1;
        c.max_queue = 1;
    })
    .await
    else {
        return;
    };
    let long = json!({"prompt": "Write a long story about a lighthouse keeper.", "maxTokens": 400});
    let spawn = |base: String| {
        let body = long.clone();
        tokio::spawn(async move {
            h2_client()
                .post(format!("{base}/ncloudai-gen/v1/generate"))
                .json(&body)
                .send()
                .await
        })
    };
    let a = spawn(cloud.base.clone());
    cloud.wait_status("A running", |s| s["running"] == 1).await;
    let b = spawn(cloud.base.clone());
    cloud.wait_status("B queued", |s| s["queued"] == 1).await;
    let r = h2_client()
        .post(format!("{}/ncloudai-gen/v1/generate", cloud.base))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Refused without waiting for a slot: A still decodes and B still waits.
    let s = cloud.status().await;
    assert_eq!(
        (s["running"].as_u64(), s["queued"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["cause"], "NF_CONGESTION");

    // Both clients go away (RST_STREAM on HTTP/2): their generations stop, long before
    // 400 tokens each.
    a.abort();
    b.abort();
    let s = cloud
        .wait_status("both cancelled", |s| {
            s["running"] == 0 && s["queued"] == 0 && s["cancelled"].as_u64().unwrap() >= 2
        })
        .await;
    assert_eq!(s["cancelled"], 2, "{s}");
    let metrics = cloud.metrics().await;
    assert!(metrics.contains("outcome=\"cancelled\""), "{metrics}");
    cloud.stop().await;
}

#[tokio::test]
async fn a_streaming_client_that_disconnects_stops_its_generation() {
    let Some(cloud) = start("cloudai-cancel", |_, _| {}).await else {
        return;
    };
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", cloud.base))
        .json(
            &json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 500, "stream": true,
            "messages": [{"role": "user", "content": "Count from one to one thousand in words."}]}),
        )
        .send()
        .await
        .unwrap();
    let first = sse_data(r, Some(3)).await; // the response is dropped here
    assert_eq!(first.len(), 3);
    let s = cloud
        .wait_status("cancelled", |s| s["cancelled"] == 1 && s["running"] == 0)
        .await;
    assert_eq!(s["running"], 0);
    let metrics = cloud.metrics().await;
    let generated: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("cloudai_generated_tokens_total")
                && l.contains(&format!("nf=\"{}\"", cloud.name))
                && l.contains("adapter=\"base\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("generated tokens counter");
    assert!(generated < 400.0, "kept generating: {generated} tokens");
    cloud.stop().await;
}

/// A random LoRA adapter on q, v and o for the cloud model, saved in the PEFT layout.
fn write_adapter(dir: &std::path::Path, seed: u64) {
    use candle_core::{Device, Tensor};
    use netgpt_models::llama_lora::LlamaLoraAdapter;
    use netgpt_models::lora::{LoraConfig, SeededNormal};
    let path = netgpt_models::fetch::cached_cloud_model().unwrap();
    let cfg = netgpt_models::llama::Llama::from_gguf(&path, &Device::Cpu, None)
        .unwrap()
        .config()
        .clone();
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "o_proj".into()],
    };
    let (ad, vars) = LlamaLoraAdapter::new(&cfg, lcfg, seed, &Device::Cpu).unwrap();
    let mut rng = SeededNormal::new(seed + 7);
    for (name, v) in &vars {
        if name.ends_with("lora_B.weight") {
            let (o, r) = v.as_tensor().dims2().unwrap();
            let b: Vec<f32> = (0..o * r).map(|_| 0.5 * rng.sample()).collect();
            v.set(&Tensor::from_vec(b, (o, r), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    ad.save("SmolLM2-135M-Instruct", dir).unwrap();
}

#[tokio::test]
async fn one_base_model_serves_several_adapters_in_one_batch() {
    let Some(cloud) = start("cloudai-adapters", |c, dir| {
        for (name, seed) in [("tenant-a", 1), ("tenant-b", 2)] {
            let d = dir.join(name);
            write_adapter(&d, seed);
            c.adapters.insert(name.into(), d);
        }
    })
    .await
    else {
        return;
    };
    let ask = |adapter: Option<&str>| {
        let mut body =
            json!({"prompt": "Describe your favourite city in two sentences.", "maxTokens": 24});
        if let Some(a) = adapter {
            body["adapter"] = json!(a);
        }
        body
    };
    let mut alone = Vec::new();
    for a in [None, Some("tenant-a"), Some("tenant-b")] {
        let (st, v) = cloud.generate(ask(a)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["adapter"], json!(a));
        alone.push(v["text"].as_str().unwrap().to_owned());
    }
    assert_ne!(alone[0], alone[1], "adapter A changes nothing");
    assert_ne!(alone[1], alone[2], "adapters A and B answer alike");
    assert_ne!(alone[0], alone[2], "adapter B changes nothing");

    // All three at once: one batch, each with its own adapter, each as when alone.
    let (x, y, z) = tokio::join!(
        cloud.generate(ask(None)),
        cloud.generate(ask(Some("tenant-a"))),
        cloud.generate(ask(Some("tenant-b")))
    );
    let together: Vec<String> = [x, y, z]
        .iter()
        .map(|(_, v)| v["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(together, alone);
    let s = cloud.status().await;
    assert!(s["largestBatch"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(
        s["adapters"],
        json!(["tenant-a", "tenant-b"]),
        "adapters listed"
    );
    // Per-adapter metrics.
    let metrics = cloud.metrics().await;
    for series in [
        "cloudai_queue_depth",
        "cloudai_batch_size",
        "cloudai_time_to_first_token_seconds",
        "cloudai_time_per_output_token_seconds",
        "cloudai_decode_tokens_per_second",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    for adapter in ["base", "tenant-a", "tenant-b"] {
        assert!(
            metrics.contains(&format!(
                "cloudai_generated_tokens_total{{nf=\"{}\",adapter=\"{adapter}\"}}",
                cloud.name
            )),
            "{adapter}: {metrics}"
        );
    }
    // OpenAI clients pick an adapter by model name.
    let models: Value = reqwest::get(format!("{}/v1/models", cloud.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][1]["id"], "tenant-a");
    assert_eq!(models["data"][1]["parent"], "SmolLM2-135M-Instruct");
    cloud.stop().await;
}

/// The real `openai` Python package against the function (installed by the test command
/// into a virtualenv named by `NETGPT_OPENAI_PYTHON`).
#[tokio::test]
async fn the_openai_python_client_works_unchanged() {
    let Ok(python) = std::env::var("NETGPT_OPENAI_PYTHON") else {
        eprintln!("NETGPT_OPENAI_PYTHON unset (tests/run.sh sets it): skipped");
        return;
    };
    let Some(cloud) = start("cloudai-python", |_, _| {}).await else {
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/openai_client.py");
    let base = format!("{}/v1", cloud.base);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(base)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["models"][0], "SmolLM2-135M-Instruct");
    // The Python client gets what an SBI consumer gets for the same conversation.
    let (_, sbi) = cloud
        .generate(json!({"prompt": "What is the capital of France?", "maxTokens": 24}))
        .await;
    assert_eq!(v["text"], sbi["text"], "{v}");
    assert_eq!(v["streamed"], v["text"]);
    assert!(v["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["not_found_status"], 404);
    cloud.stop().await;
}
