//! GPT-2 against the numpy port of Hugging Face's modeling_gpt2 (fixture made by
//! `models/scripts/make_gpt2_fixture.py`), KV cache, checkpoint names, gradients.

mod support;
use support::max_diff;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use netgpt_models::generation::CausalLm;
use netgpt_models::gpt2::{Config, Gpt2, Gpt2Lm};
use netgpt_models::train;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny")
}

fn reference() -> (Vec<u32>, Vec<Vec<f32>>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap())
            .unwrap();
    let ids = v["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    (ids, logits)
}

#[test]
fn full_forward_matches_reference_logits() {
    let model = Gpt2::load(&fixture(), &Device::Cpu).unwrap();
    let (ids, want) = reference();
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let got = model
        .forward_train(&x, None)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (t, (g, w)) in got.iter().zip(&want).enumerate() {
        let d = max_diff(g, w);
        assert!(d < 1e-4, "position {t}: max abs diff {d}");
    }
}

#[test]
fn incremental_decode_with_kv_cache_matches_reference() {
    let model = Arc::new(Gpt2::load(&fixture(), &Device::Cpu).unwrap());
    let (ids, want) = reference();
    let mut lm = Gpt2Lm::new(model, None);
    // A 5-token prefill, then one token at a time.
    let l = lm.forward(&ids[..5], 0).unwrap().to_vec1::<f32>().unwrap();
    assert!(max_diff(&l, &want[4]) < 1e-4);
    for p in 5..ids.len() {
        let l = lm
            .forward(&ids[p..p + 1], p)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let d = max_diff(&l, &want[p]);
        assert!(d < 1e-4, "position {p}: max abs diff {d}");
    }
    assert_eq!(lm.max_seq_len(), 64);
    lm.clear_cache();
    let l = lm.forward(&ids[..1], 0).unwrap().to_vec1::<f32>().unwrap();
    assert!(max_diff(&l, &want[0]) < 1e-4);
    assert!(
        lm.forward(&ids[..1], 7).is_err(),
        "position must follow the cache"
    );
}

#[test]
fn loads_names_without_transformer_prefix_and_ignores_buffers() {
    let cfg = Config::from_file(&fixture().join("config.json")).unwrap();
    let ts =
        candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    let mut bare: HashMap<String, Tensor> = ts
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("transformer.").to_string(), v))
        .collect();
    bare.insert(
        "h.0.attn.bias".into(),
        Tensor::zeros((1, 1, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let model = Gpt2::from_tensors(&cfg, &bare).unwrap();
    let (ids, want) = reference();
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let got = model
        .forward_train(&x, None)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!(max_diff(got.last().unwrap(), want.last().unwrap()) < 1e-4);
}

#[test]
fn save_then_load_round_trips() {
    let model = Gpt2::load(&fixture(), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let again = Gpt2::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(again.config(), model.config());
    let x = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let a = model
        .forward_train(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = again
        .forward_train(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_weight_receives_a_gradient() {
    let cfg = Config::from_file(&fixture().join("config.json")).unwrap();
    let ts =
        candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    let (model, vars) = train::trainable_gpt2(&cfg, ts).unwrap();
    assert_eq!(vars.len(), cfg.tensor_shapes().len());
    let ex = train::Example {
        tokens: vec![1, 5, 9, 13, 2, 7],
        prompt_len: 2,
    };
    let b = train::make_batch(&[&ex], true, &Device::Cpu).unwrap();
    let loss = train::lm_loss(
        &model.forward_train(&b.ids, None).unwrap(),
        &b.targets,
        &b.mask,
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    train::check_grads(&vars, &grads).unwrap();
    for (name, v) in &vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(g > 0.0, "{name}: zero gradient");
    }
}
