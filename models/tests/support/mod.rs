//! Comparisons the model tests share.

#![allow(dead_code)] // each test file uses part of it

/// Largest absolute element-wise difference (the slices have equal length).
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Euclidean norm.
pub fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b))
}

/// Cosine similarity of two tensors, flattened.
pub fn cosine_t(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    cosine(&v(a), &v(b))
}

/// A tiny LLaMA configuration (vocabulary 97, hidden 64, GQA 4/2 heads) with `layers` blocks,
/// for tests that need a real model but not a download.
pub fn tiny_llama_config(layers: usize) -> netgpt_models::llama::LlamaConfig {
    netgpt_models::llama::LlamaConfig {
        vocab_size: 97,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_position_embeddings: 256,
        tie_word_embeddings: false,
    }
}

/// Normal(0, std) weights from a seeded generator: candle's CPU device ignores `set_seed`,
/// and a test must not depend on whichever weights the global RNG happens to give.
pub fn seeded_randn(shape: &[usize], std: f32, seed: &mut u64) -> candle_core::Tensor {
    let mut next = || {
        // SplitMix64, mapped to (0, 1].
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    };
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2) = (next(), next());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * std
        })
        .collect();
    candle_core::Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
}

/// Seeded weights for `cfg` in Hugging Face names: norms near 1, matrices Normal(0, std).
pub fn tiny_llama_weights(
    cfg: &netgpt_models::llama::LlamaConfig,
    mut seed: u64,
    std: f32,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    let mut ts = std::collections::HashMap::new();
    for (name, shape) in cfg.hf_tensor_shapes() {
        let t = if shape.len() == 1 {
            (seeded_randn(&shape, 0.1, &mut seed) + 1.0).unwrap()
        } else {
            seeded_randn(&shape, std, &mut seed)
        };
        ts.insert(name, t);
    }
    ts
}

/// GPT-2's byte-to-character map (printable stand-ins for every byte), for building
/// byte-level BPE vocabularies in tests.
pub fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (33..=126).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut chars = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        chars[*b as usize] = char::from_u32(c).unwrap();
    }
    chars
}
