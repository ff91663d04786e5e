//! Micro-benchmarks behind design choices of the cloud model; `#[ignore]`d, run with
//! `cargo test --release -p netgpt-models --test cloud_perf -- --ignored --nocapture`.

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

fn time_matmul(w: &QMatMul, x: &Tensor, iters: usize) -> f64 {
    for _ in 0..10 {
        w.forward(x).unwrap();
    }
    let t = Instant::now();
    for _ in 0..iters {
        w.forward(x).unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / iters as f64
}

#[test]
#[ignore]
fn q8_0_gemv_k576_versus_padded_k768() {
    let dev = Device::Cpu;
    for (n, k, kp) in [
        (960usize, 576usize, 768usize),
        (3072, 576, 768),
        (576, 1536, 1536),
        (49152, 576, 768),
    ] {
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let wp = Tensor::cat(
            &[
                &w,
                &Tensor::zeros((n, kp - k), candle_core::DType::F32, &dev).unwrap(),
            ],
            1,
        )
        .unwrap();
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
            let q = QMatMul::from_qtensor(QTensor::quantize(&w, dt).unwrap()).unwrap();
            let qp = QMatMul::from_qtensor(QTensor::quantize(&wp, dt).unwrap()).unwrap();
            for m in [1usize, 8] {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                let xp = Tensor::randn(0f32, 1.0, (m, kp), &dev).unwrap();
                let iters = if n > 10_000 { 20 } else { 200 };
                println!(
                    "{dt:?} n={n} k={k} m={m}: {:.1} us   padded k={kp}: {:.1} us",
                    time_matmul(&q, &x, iters),
                    time_matmul(&qp, &xp, iters)
                );
            }
        }
    }
}

/// The same figures as `netgpt bench models` for the cloud model, from the library.
#[test]
#[ignore]
fn cloud_speed_batching_and_llama_cpp() {
    use netgpt_models::bench;
    use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
    let Some(path) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("SKIPPED: cloud model not cached");
        return;
    };
    let llm = CloudLlm::from_gguf(&path).unwrap();
    let text =
        "The edge AI function at each base station completes a user's concise prompt. ".repeat(12);
    let mut prompt = llm
        .prompt_ids(&[ChatMessage::new(Role::User, text)])
        .unwrap();
    prompt.truncate(128);
    let mut m = llm.model.clone();
    let r = bench::bench_causal_lm(&mut m, &prompt, 64, 4).unwrap();
    println!(
        "ours Q8_0: prefill {:.1} tok/s, decode {:.1} tok/s",
        r.prefill_tok_s, r.decode_tok_s
    );
    let prompts: Vec<Vec<u32>> = (0..8)
        .map(|i| {
            llm.prompt_ids(&[ChatMessage::new(
                Role::User,
                format!("Question {i}: name {} facts about cell {}.", i + 2, 10 + i),
            )])
            .unwrap()
        })
        .collect();
    let b = bench::bench_batch(&llm.model, &llm.tokenizer, &prompts, 32).unwrap();
    println!(
        "batch 8x32: one-by-one {:.1} tok/s, batched {:.1} tok/s, gain x{:.2}, same tokens {}",
        b.sequential_tok_s,
        b.batched_tok_s,
        b.gain(),
        b.same_tokens
    );
    let py = std::env::var("NETGPT_LLAMA_CPP_PYTHON").unwrap_or_else(|_| "python3".into());
    match bench::bench_llama_cpp(&py, &path, &prompt, 64, 2, 4).unwrap() {
        Some(l) => println!("llama.cpp: prefill {:.1} tok/s, decode {:.1} tok/s; ours/llama.cpp prefill x{:.2} decode x{:.2}", l.prefill_tok_s, l.decode_tok_s, r.prefill_tok_s / l.prefill_tok_s, r.decode_tok_s / l.decode_tok_s),
        None => println!("llama.cpp: not available"),
    }
    println!(
        "peak RSS {:?} MiB",
        bench::peak_rss_bytes().map(|b| b / (1 << 20))
    );
}

/// Decode speed with and without the VNNI padding, interleaved to share the machine's noise.
#[test]
#[ignore]
fn cloud_decode_vnni_padding_ab() {
    use netgpt_models::bench;
    let Some(path) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("SKIPPED: cloud model not cached");
        return;
    };
    let mut padded = bench::load_cloud_gguf(&path, true).unwrap();
    std::env::set_var("NETGPT_NO_VNNI_PAD", "1");
    let mut plain = bench::load_cloud_gguf(&path, true).unwrap();
    std::env::remove_var("NETGPT_NO_VNNI_PAD");
    let mut q4_1 = bench::load_cloud_gguf(&path, false).unwrap();
    let mut q4k = netgpt_models::llama::Llama::from_gguf(
        &path,
        &candle_core::Device::Cpu,
        Some(GgmlDType::Q4K),
    )
    .unwrap();
    let prompt: Vec<u32> = (0..64u32).map(|i| 100 + i * 13).collect();
    for round in 0..3 {
        for (name, m) in [
            ("padded Q8_0", &mut padded),
            ("plain Q8_0", &mut plain),
            ("Q4_1", &mut q4_1),
            ("Q4K padded", &mut q4k),
        ] {
            let r = bench::bench_causal_lm(m, &prompt, 32, 1).unwrap();
            println!(
                "round {round} {name:<12} prefill {:>6.1} tok/s decode {:>5.1} tok/s",
                r.prefill_tok_s, r.decode_tok_s
            );
        }
    }
}
