//! Split inference of the cloud LLaMA (`llama_split`): the edge half and the cloud half
//! together compute what the whole model computes, on a tiny seeded model (always) and on
//! the real SmolLM2-135M GGUF (skipped when it is not cached); the wire format round-trips
//! and costs exactly its header plus two bytes per value.

mod support;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use netgpt_models::chat::{ChatMessage, CloudLlm, Role};
use netgpt_models::fetch;
use netgpt_models::generation::{generate, Detokenizer, GenerationConfig};
use netgpt_models::llama::Llama;
use netgpt_models::llama_split::{
    decode_hidden, encode_hidden, encode_hidden_as, generate_split, wire_bytes, CloudHalf,
    EdgeHalf, HiddenWire, Transfer, HEADER_BYTES,
};

/// Token `i` is the character `'a' + i % 26`.
struct Letters;
impl Detokenizer for Letters {
    fn detokenize(&self, ids: &[u32]) -> netgpt_models::Result<String> {
        Ok(ids
            .iter()
            .map(|&i| (b'a' + (i % 26) as u8) as char)
            .collect())
    }
}

fn tiny_llama(seed: u64) -> Arc<Llama> {
    let cfg = support::tiny_llama_config(4);
    let ts = support::tiny_llama_weights(&cfg, seed, 0.5);
    let vb = VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu);
    Arc::new(Llama::from_varbuilder(cfg, vb, None).expect("tiny llama"))
}

fn halves(model: &Arc<Llama>, k: usize) -> (EdgeHalf, CloudHalf) {
    (
        EdgeHalf::new(model.clone(), k)
            .unwrap()
            .with_wire(HiddenWire::F32),
        CloudHalf::new(model.clone(), k).unwrap(),
    )
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        ..GenerationConfig::default()
    }
}

/// Splits at `k`, generates with hidden states sent as `wire`, and checks every step's
/// bytes: the prompt's hidden states once, then one row up and one token down per step.
fn split_tokens(
    model: &Arc<Llama>,
    k: usize,
    wire: HiddenWire,
    detok: &dyn Detokenizer,
    prompt: &[u32],
    cfg: &GenerationConfig,
) -> (Vec<u32>, Vec<Transfer>) {
    let (edge, cloud) = halves(model, k);
    let edge = edge.with_wire(wire);
    let mut transfers = Vec::new();
    let g = generate_split(&edge, &cloud, detok, prompt, cfg, &mut |t| {
        transfers.push(*t)
    })
    .unwrap();
    let d = model.config().hidden_size;
    assert_eq!(transfers.len(), g.tokens.len(), "one transfer per token");
    for (i, t) in transfers.iter().enumerate() {
        assert_eq!(t.step, i);
        let rows = if i == 0 { prompt.len() } else { 1 };
        assert_eq!(t.positions, rows);
        assert_eq!(
            t.up_bytes,
            HEADER_BYTES + rows * d * wire.value_bytes(),
            "step {i}"
        );
        assert_eq!(t.down_bytes, 4);
    }
    (g.tokens, transfers)
}

#[test]
fn halves_compute_the_whole_models_logits_bit_for_bit() {
    let model = tiny_llama(3);
    let prompt = [3u32, 14, 15, 92, 65, 35, 89, 79];
    let mut whole = model.new_cache();
    let want = model.forward_with_cache(&prompt[..6], &mut whole).unwrap();
    let want_next = model.forward_with_cache(&prompt[6..], &mut whole).unwrap();
    for k in 1..4 {
        let (edge, cloud) = halves(&model, k);
        let (mut ec, mut cc) = (edge.new_cache(), cloud.new_cache());
        let h = edge.forward(&prompt[..6], &mut ec).unwrap();
        assert_eq!(h.dims(), &[6, 64]);
        let got = cloud.forward(&h, &mut cc).unwrap();
        let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "prompt logits, k={k}"
        );
        // Two more positions against both caches.
        let h = edge.forward(&prompt[6..], &mut ec).unwrap();
        let got = cloud.forward(&h, &mut cc).unwrap();
        let diff = (&got - &want_next)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "cached logits, k={k}"
        );
        assert_eq!((ec.len(), cc.len()), (8, 8));
    }
}

#[test]
fn tiny_split_generation_equals_unsplit_generation_at_every_cut() {
    let model = tiny_llama(1);
    let prompt = [5u32, 17, 42, 8, 61];
    let mut whole = (*model).clone();
    for cfg in [
        greedy(12),
        GenerationConfig {
            max_new_tokens: 12,
            temperature: 0.8,
            top_k: Some(20),
            seed: 42,
            ..GenerationConfig::default()
        },
    ] {
        let want = generate(&mut whole, &Letters, &prompt, &cfg, &mut |_| {}).unwrap();
        assert_eq!(want.tokens.len(), 12);
        for k in 1..4 {
            let (got, _) = split_tokens(&model, k, HiddenWire::F32, &Letters, &prompt, &cfg);
            assert_eq!(got, want.tokens, "k={k}, temperature {}", cfg.temperature);
            // The f16 wire costs half the bytes per value (checked inside).
            let (got, _) = split_tokens(&model, k, HiddenWire::F16, &Letters, &prompt, &cfg);
            assert!(!got.is_empty());
        }
    }
}

#[test]
fn split_generation_stops_where_unsplit_generation_stops() {
    let model = tiny_llama(1);
    let prompt = [5u32, 17, 42, 8, 61];
    let mut whole = (*model).clone();
    let free = generate(&mut whole, &Letters, &prompt, &greedy(12), &mut |_| {}).unwrap();
    // Stop on the fourth generated token: both stop there, with the same text.
    let cfg = GenerationConfig {
        stop_token_ids: vec![free.tokens[3]],
        ..greedy(12)
    };
    let want = generate(&mut whole, &Letters, &prompt, &cfg, &mut |_| {}).unwrap();
    let (edge, cloud) = halves(&model, 2);
    let got = generate_split(&edge, &cloud, &Letters, &prompt, &cfg, &mut |_| {}).unwrap();
    assert_eq!(got.tokens, want.tokens);
    assert_eq!(got.text, want.text);
    assert_eq!(got.finish_reason, want.finish_reason);
    assert!(got.tokens.len() <= 4);
}

#[test]
fn split_layer_must_leave_layers_on_both_sides() {
    let model = tiny_llama(2);
    for k in [0, 4, 9] {
        assert!(EdgeHalf::new(model.clone(), k).is_err(), "edge k={k}");
        assert!(CloudHalf::new(model.clone(), k).is_err(), "cloud k={k}");
    }
    let (edge, cloud) = halves(&model, 1);
    let mut cc = cloud.new_cache();
    let narrow = Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap();
    assert!(cloud.forward(&narrow, &mut cc).is_err());
    assert_eq!(cc.len(), 0, "a refused feed leaves the cache alone");
    let mut ec = edge.new_cache();
    assert!(edge.forward(&[], &mut ec).is_err());
    assert!(
        edge.forward(&[97], &mut ec).is_err(),
        "token beyond the vocabulary"
    );
    // Halves of different cuts do not pair.
    let other = CloudHalf::new(model.clone(), 2).unwrap();
    assert!(generate_split(&edge, &other, &Letters, &[1, 2], &greedy(2), &mut |_| {}).is_err());
}

#[test]
fn wire_format_round_trips_within_f16_precision_and_checks_its_header() {
    let dev = Device::Cpu;
    let mut seed = 9;
    let x = (support::seeded_randn(&[5, 576], 3.0, &mut seed) * 10.0).unwrap();
    let bytes = encode_hidden(&x).unwrap();
    assert_eq!(bytes.len(), 8 + 5 * 576 * 2);
    assert_eq!(bytes.len(), wire_bytes(5, 576));
    assert_eq!(&bytes[..8], &[5, 0, 0, 0, 64, 2, 0, 0]);
    let y = decode_hidden(&bytes, &dev).unwrap();
    assert_eq!(y.dims(), &[5, 576]);
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (a, b) in xv.iter().zip(&yv) {
        // f16 has an 11-bit significand: relative error at most 2^-11.
        assert!((a - b).abs() <= a.abs() * 4.9e-4 + 1e-7, "{a} vs {b}");
    }
    // Decoding what was decoded and encoded again is exact.
    assert_eq!(encode_hidden(&y).unwrap(), bytes);
    // The f32 wire is lossless, and its width is told by its length.
    let exact = encode_hidden_as(&x, HiddenWire::F32).unwrap();
    assert_eq!(exact.len(), HiddenWire::F32.bytes(5, 576));
    assert_eq!(exact.len(), 8 + 5 * 576 * 4);
    let z = decode_hidden(&exact, &dev).unwrap();
    assert_eq!(z.flatten_all().unwrap().to_vec1::<f32>().unwrap(), xv);

    assert!(decode_hidden(&bytes[..7], &dev).is_err(), "short header");
    assert!(
        decode_hidden(&bytes[..bytes.len() - 2], &dev).is_err(),
        "truncated"
    );
    let mut zero_rows = bytes.clone();
    zero_rows[..4].copy_from_slice(&0u32.to_le_bytes());
    assert!(decode_hidden(&zero_rows[..8], &dev).is_err(), "empty");
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&[255; 8]);
    assert!(decode_hidden(&huge, &dev).is_err(), "overflowing header");
    let vec1 = Tensor::zeros(4, DType::F32, &dev).unwrap();
    assert!(encode_hidden(&vec1).is_err(), "not [rows, cols]");
    let big = Tensor::new(&[[1e6f32, 0.0]], &dev).unwrap();
    assert!(encode_hidden(&big).is_err(), "beyond f16");
}

/// The real model, split at several layers: greedy split generation through the lossless
/// (f32) wire yields exactly the tokens of unsplit greedy generation; through the f16 wire
/// the cloud half's logits stay close to the whole model's (tokens may differ where the top
/// two nearly tie, so they are counted, not asserted).
#[test]
fn real_cloud_model_split_generation_matches_unsplit_greedy() {
    let Some(path) = fetch::cached_cloud_model() else {
        eprintln!(
            "SKIPPED: cloud model not cached at {}",
            fetch::cloud_model_path().display()
        );
        return;
    };
    let llm = CloudLlm::from_gguf(path).expect("load cloud gguf");
    let cfg = llm.with_stops(&greedy(12));
    let model = Arc::new(llm.model.clone());
    let mut whole = llm.model.clone();
    let n = model.config().num_hidden_layers;
    let d = model.config().hidden_size;
    for question in [
        "What is the capital of France?",
        "Name three colours of the rainbow.",
    ] {
        let prompt = llm
            .prompt_ids(&[ChatMessage::new(Role::User, question)])
            .unwrap();
        let want = generate(&mut whole, &llm.tokenizer, &prompt, &cfg, &mut |_| {}).unwrap();
        for k in [1, n / 2, n - 1] {
            for wire in [HiddenWire::F32, HiddenWire::F16] {
                let (got, transfers) = split_tokens(&model, k, wire, &llm.tokenizer, &prompt, &cfg);
                let same = got.iter().zip(&want.tokens).take_while(|(a, b)| a == b);
                eprintln!(
                    "k={k} {wire:?}: prompt {} tokens -> {} B up; decode step {} B up, {} B down; \
                     {} tokens, first {} equal to unsplit",
                    prompt.len(),
                    transfers[0].up_bytes,
                    transfers.get(1).map_or(0, |t| t.up_bytes),
                    transfers[0].down_bytes,
                    got.len(),
                    same.count()
                );
                assert_eq!(
                    transfers[0].up_bytes,
                    8 + prompt.len() * d * wire.value_bytes()
                );
                if wire == HiddenWire::F32 {
                    assert_eq!(got, want.tokens, "{question:?} split at {k}");
                }
            }
            // f16 on the wire: the prompt's logits stay close to the whole model's.
            let edge = EdgeHalf::new(model.clone(), k).unwrap();
            let cloud = CloudHalf::new(model.clone(), k).unwrap();
            let (mut ec, mut cc) = (edge.new_cache(), cloud.new_cache());
            let wire = edge.forward_encoded(&prompt, &mut ec).unwrap();
            let got = cloud
                .forward(&decode_hidden(&wire, &Device::Cpu).unwrap(), &mut cc)
                .unwrap();
            let mut full = model.new_cache();
            let exact = model.forward_with_cache(&prompt, &mut full).unwrap();
            let cos = cosine(&got, &exact);
            assert!(cos > 0.99, "f16 cut at {k}: logits cosine {cos}");
        }
    }
}

fn cosine(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(&a) * norm(&b))
}
