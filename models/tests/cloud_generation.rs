//! Cloud LLaMA generation on a tiny randomly initialised model (fast, no download), plus
//! the ChatML template.

mod support;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use netgpt_models::chat::{render_chatml, ChatMessage, Role};
use netgpt_models::generation::{
    generate, generate_batch, CausalLm, Detokenizer, FinishReason, GenerationConfig,
};
use netgpt_models::llama::{Llama, LlamaConfig};

/// Token `i` is the character `'a' + i % 26` so stop strings can be tested without a tokenizer.
struct Letters;
impl Detokenizer for Letters {
    fn detokenize(&self, ids: &[u32]) -> netgpt_models::Result<String> {
        Ok(ids
            .iter()
            .map(|&i| (b'a' + (i % 26) as u8) as char)
            .collect())
    }
}

fn tiny_config() -> LlamaConfig {
    support::tiny_llama_config(2)
}

fn tiny_weights(seed: u64, std: f32) -> HashMap<String, Tensor> {
    support::tiny_llama_weights(&tiny_config(), seed, std)
}

fn tiny_llama(seed: u64) -> Llama {
    // Large enough weights that the logits are far from uniform.
    let vb = VarBuilder::from_tensors(tiny_weights(seed, 0.5), DType::F32, &Device::Cpu);
    Llama::from_varbuilder(tiny_config(), vb, None).expect("tiny llama")
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        ..GenerationConfig::default()
    }
}

#[test]
fn chatml_template_renders_smollm2_format() {
    let msgs = vec![
        ChatMessage::new(Role::System, "Be brief."),
        ChatMessage::new(Role::User, "hi"),
    ];
    assert_eq!(
        render_chatml(&msgs, true),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let no_system = render_chatml(&[ChatMessage::new(Role::User, "hi")], false);
    assert!(no_system.starts_with("<|im_start|>system\nYou are a helpful AI assistant"));
    assert!(no_system.ends_with("<|im_start|>user\nhi<|im_end|>\n"));
}

#[test]
fn kv_cache_gives_same_logits_as_full_recompute() {
    let mut m = tiny_llama(1);
    let prompt = [3u32, 14, 15, 92, 65, 35];
    let full = m.forward(&prompt, 0).unwrap().to_vec1::<f32>().unwrap();
    m.forward(&prompt[..4], 0).unwrap();
    let inc = m
        .forward(&prompt[4..], 4)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let max_diff = full
        .iter()
        .zip(&inc)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-3,
        "cached and uncached logits differ by {max_diff}"
    );
}

#[test]
fn greedy_generation_is_deterministic_and_respects_max_tokens() {
    let mut m = tiny_llama(2);
    let prompt = [1u32, 2, 3, 4];
    let a = generate(&mut m, &Letters, &prompt, &greedy(20), &mut |_| {}).unwrap();
    let b = generate(&mut m, &Letters, &prompt, &greedy(20), &mut |_| {}).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.tokens.len(), 20);
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.usage.prompt_tokens, 4);
    assert_eq!(a.usage.completion_tokens, 20);
    assert!(a.usage.time_to_first_token <= a.usage.total);
}

#[test]
fn generation_stops_at_stop_sequence_and_streams_the_same_text() {
    let mut m = tiny_llama(3);
    let prompt = [5u32, 6, 7];
    let full = generate(&mut m, &Letters, &prompt, &greedy(30), &mut |_| {}).unwrap();
    // Pick a stop string from the middle of what greedy decoding produces.
    let stop = full.text[8..10].to_string();
    let cut = full.text.find(&stop).unwrap();
    let cfg = GenerationConfig {
        stop_sequences: vec![stop.clone()],
        ..greedy(30)
    };
    let mut streamed = String::new();
    let g = generate(&mut m, &Letters, &prompt, &cfg, &mut |p| {
        streamed.push_str(p)
    })
    .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(g.text, full.text[..cut]);
    assert_eq!(
        streamed, g.text,
        "streamed pieces must add up to the text, without the stop"
    );
    assert!(g.tokens.len() < 30);

    // A stop token ends generation too, and is not part of the text.
    let tok = full.tokens[5];
    let cfg = GenerationConfig {
        stop_token_ids: vec![tok],
        ..greedy(30)
    };
    let g = generate(&mut m, &Letters, &prompt, &cfg, &mut |_| {}).unwrap();
    let first = full.tokens.iter().position(|&t| t == tok).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(g.tokens.len(), first + 1);
    assert_eq!(g.text.len(), first);
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_matters() {
    let mut m = tiny_llama(4);
    let prompt = [9u32, 8, 7];
    let cfg = |seed| GenerationConfig {
        max_new_tokens: 24,
        temperature: 1.5,
        top_k: Some(40),
        top_p: Some(0.95),
        repetition_penalty: 1.1,
        seed,
        ..GenerationConfig::default()
    };
    let a = generate(&mut m, &Letters, &prompt, &cfg(7), &mut |_| {}).unwrap();
    let b = generate(&mut m, &Letters, &prompt, &cfg(7), &mut |_| {}).unwrap();
    let c = generate(&mut m, &Letters, &prompt, &cfg(8), &mut |_| {}).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_ne!(
        a.tokens, c.tokens,
        "different seeds gave the same 24 sampled tokens"
    );
}

#[test]
fn batched_generation_matches_one_by_one() {
    let mut m = tiny_llama(5);
    let prompts = vec![
        vec![1u32, 2, 3],
        vec![40, 41, 42, 43, 44, 45, 46],
        vec![7],
        vec![90, 3, 3, 3],
    ];
    let cfg = greedy(16);
    let batched = generate_batch(&m, &Letters, &prompts, &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(batched.len(), prompts.len());
    for (p, b) in prompts.iter().zip(&batched) {
        let single = generate(&mut m, &Letters, p, &cfg, &mut |_| {}).unwrap();
        assert_eq!(b.tokens, single.tokens, "prompt {p:?}");
        assert_eq!(b.usage.prompt_tokens, p.len());
    }
    // Sequences stopping at different steps leave the others running correctly.
    let stop_cfg = GenerationConfig {
        stop_token_ids: vec![batched[0].tokens[3]],
        ..greedy(16)
    };
    let b2 = generate_batch(&m, &Letters, &prompts, &stop_cfg, &mut |_, _| {}).unwrap();
    for (p, b) in prompts.iter().zip(&b2) {
        let single = generate(&mut m, &Letters, p, &stop_cfg, &mut |_| {}).unwrap();
        assert_eq!(b.tokens, single.tokens);
    }
    assert_eq!(b2[0].finish_reason, FinishReason::Stop);
}

/// A Q8_0-quantized tiny model (padded for the VNNI kernels where the CPU has them, since
/// the width 64 is not a multiple of 256) predicts like the f32 one.
#[test]
fn q8_0_quantized_model_agrees_with_f32() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    // Weights at the scale of a trained model: with std 0.5 a random two-layer net is
    // chaotic enough that Q8_0 rounding alone swings the logits.
    let ts = tiny_weights(17, 0.1);
    let mut f = Llama::from_varbuilder(
        cfg.clone(),
        VarBuilder::from_tensors(ts.clone(), DType::F32, &dev),
        None,
    )
    .unwrap();
    let mut q = Llama::from_varbuilder(
        cfg,
        VarBuilder::from_tensors(ts, DType::F32, &dev),
        Some(candle_core::quantized::GgmlDType::Q8_0),
    )
    .unwrap();
    let prompt = [4u32, 8, 15, 16, 23, 42];
    let a = f.forward(&prompt, 0).unwrap();
    let b = q.forward(&prompt, 0).unwrap();
    let cos = support::cosine_t(&a, &b);
    assert!(cos > 0.99, "Q8_0 and f32 logits cosine {cos}");
    let b1 = q.forward(&[7], prompt.len()).unwrap();
    assert_eq!(b1.dims(), &[97]);
}

#[test]
fn text_stream_iterates_the_same_pieces_and_returns_the_model() {
    let mut m = tiny_llama(6);
    let prompt = vec![3u32, 1, 4, 1, 5];
    let mut pieces = Vec::new();
    let direct = generate(&mut m, &Letters, &prompt, &greedy(24), &mut |p| {
        pieces.push(p.to_owned())
    })
    .unwrap();
    let mut s = netgpt_models::stream::stream(m, Letters, prompt.clone(), greedy(24));
    let streamed: Vec<String> = s.by_ref().collect();
    assert_eq!(streamed, pieces);
    let (mut m, g) = s.finish().unwrap();
    assert_eq!(g.tokens, direct.tokens);
    // The model comes back usable.
    let again = generate(&mut m, &Letters, &prompt, &greedy(24), &mut |_| {}).unwrap();
    assert_eq!(again.tokens, direct.tokens);
}

#[test]
fn a_consumer_that_stops_reading_cancels_generation() {
    let mut m = tiny_llama(7);
    let prompt = [2u32, 7, 1, 8];
    let mut seen = 0;
    let g = netgpt_models::generation::generate_until(
        &mut m,
        &Letters,
        &prompt,
        &greedy(30),
        &mut |_| {
            seen += 1;
            seen < 3
        },
    )
    .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert_eq!(seen, 3);
    assert!(g.tokens.len() < 30);
}
