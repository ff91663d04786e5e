//! LoRA layers and adapters over GPT-2, PEFT files, the adapter registry.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use netgpt_models::generation::CausalLm;
use netgpt_models::gpt2::{Gpt2, Gpt2Lm};
use netgpt_models::lora::{LoraAdapter, LoraConfig, LoraLinear, SeededNormal};
use netgpt_models::peft::{self, AdapterRegistry};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny")
}

fn randn(shape: (usize, usize), seed: u64) -> Tensor {
    let mut r = SeededNormal::new(seed);
    let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| r.sample() * 0.3).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// An adapter whose B matrices are random (a fresh one has B = 0).
fn random_adapter(model: &Gpt2, seed: u64) -> LoraAdapter {
    let (mut ad, _) =
        LoraAdapter::new_gpt2(model.config(), LoraConfig::default(), seed, &Device::Cpu).unwrap();
    for (i, w) in ad.weights.values_mut().enumerate() {
        let (o, r) = w.b.dims2().unwrap();
        w.b = randn((o, r), seed * 100 + i as u64);
    }
    ad
}

fn logits(lm: &mut Gpt2Lm) -> Vec<f32> {
    lm.clear_cache();
    vec(&lm.forward(&[3, 17, 42, 99, 0, 5], 0).unwrap())
}

#[test]
fn lora_linear_with_zero_b_equals_base_exactly() {
    let x = randn((5, 16), 1);
    for fan_in_fan_out in [false, true] {
        let w = if fan_in_fan_out {
            randn((16, 24), 2)
        } else {
            randn((24, 16), 2)
        };
        let b = randn((1, 24), 3).squeeze(0).unwrap();
        let (layer, vars) = LoraLinear::new(
            &w,
            Some(&b),
            fan_in_fan_out,
            &LoraConfig::default(),
            &mut SeededNormal::new(4),
        )
        .unwrap();
        assert_eq!(vars[0].dims(), &[8, 16]);
        assert_eq!(vars[1].dims(), &[24, 8]);
        assert_eq!(
            vec(&layer.forward(&x).unwrap()),
            vec(&layer.forward_base(&x).unwrap())
        );
        let plain = if fan_in_fan_out {
            x.matmul(&w).unwrap()
        } else {
            x.matmul(&w.t().unwrap()).unwrap()
        };
        assert_eq!(
            vec(&layer.forward_base(&x).unwrap()),
            vec(&plain.broadcast_add(&b).unwrap())
        );
    }
}

#[test]
fn lora_linear_merge_equals_adapted_forward_and_base_gets_no_gradient() {
    let x = randn((5, 16), 1);
    let w = randn((24, 16), 2);
    let (mut layer, vars) = LoraLinear::new(
        &w,
        None,
        false,
        &LoraConfig::default(),
        &mut SeededNormal::new(4),
    )
    .unwrap();
    vars[1].set(&randn((24, 8), 9)).unwrap();
    layer.lora.b = vars[1].as_tensor().clone();
    let y = layer.forward(&x).unwrap();
    let merged = x
        .matmul(&layer.merged_weight().unwrap().t().unwrap())
        .unwrap();
    let d = vec(&(y.clone() - merged).unwrap())
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(d < 1e-5, "merged differs by {d}");
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(vars[0].as_tensor()).is_some() && grads.get(vars[1].as_tensor()).is_some());
    assert!(
        grads.get(&layer.weight).is_none(),
        "the base weight is frozen"
    );
}

#[test]
fn fresh_adapter_equals_base_model_and_merge_equals_adapter() {
    let model = Arc::new(Gpt2::load(&fixture(), &Device::Cpu).unwrap());
    let (fresh, vars) =
        LoraAdapter::new_gpt2(model.config(), LoraConfig::default(), 7, &Device::Cpu).unwrap();
    // c_attn + attn.c_proj + mlp.c_proj on 2 layers, A and B each.
    assert_eq!(vars.len(), 2 * 3 * 2);
    assert!(vars
        .iter()
        .any(|(n, _)| n == "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight"));
    let base = logits(&mut Gpt2Lm::new(model.clone(), None));
    assert_eq!(
        logits(&mut Gpt2Lm::new(model.clone(), Some(Arc::new(fresh)))),
        base
    );

    let ad = random_adapter(&model, 1);
    let adapted = logits(&mut Gpt2Lm::new(
        model.clone(),
        Some(Arc::new(random_adapter(&model, 1))),
    ));
    assert_ne!(adapted, base);
    let merged = Gpt2::from_tensors(model.config(), &ad.merge_into(&model).unwrap()).unwrap();
    let m = logits(&mut Gpt2Lm::new(Arc::new(merged), None));
    let d = m
        .iter()
        .zip(&adapted)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4, "merged model differs by {d}");
}

#[test]
fn peft_round_trip_gives_identical_outputs() {
    let model = Arc::new(Gpt2::load(&fixture(), &Device::Cpu).unwrap());
    let ad = random_adapter(&model, 3);
    let dir = tempfile::tempdir().unwrap();
    peft::save_adapter(&ad, "tests/fixtures/gpt2_tiny", dir.path()).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["lora_alpha"], 16.0);
    assert_eq!(cfg["fan_in_fan_out"], true);
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["c_attn", "c_proj"])
    );
    let ts =
        candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(
        ts["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"].dims(),
        &[8, 32]
    );
    assert_eq!(
        ts["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"].dims(),
        &[96, 8]
    );
    let loaded = peft::load_adapter(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.num_params(), ad.num_params());
    let a = logits(&mut Gpt2Lm::new(model.clone(), Some(Arc::new(ad))));
    let b = logits(&mut Gpt2Lm::new(model.clone(), Some(Arc::new(loaded))));
    assert_eq!(a, b);
}

#[test]
fn registry_serves_two_adapters_over_one_base_per_request() {
    let model = Arc::new(Gpt2::load(&fixture(), &Device::Cpu).unwrap());
    let reg = AdapterRegistry::new(model.clone());
    let dir = tempfile::tempdir().unwrap();
    peft::save_adapter(&random_adapter(&model, 5), "base", &dir.path().join("a")).unwrap();
    reg.load("edge-london", &dir.path().join("a")).unwrap();
    reg.insert("edge-paris", random_adapter(&model, 6));
    assert_eq!(reg.names(), vec!["edge-london", "edge-paris"]);
    let base = logits(&mut reg.lm(None).unwrap());
    let london = logits(&mut reg.lm(Some("edge-london")).unwrap());
    let paris = logits(&mut reg.lm(Some("edge-paris")).unwrap());
    assert_ne!(london, paris);
    assert_ne!(london, base);
    // Interleaved requests see their own adapter; the base is untouched.
    assert_eq!(logits(&mut reg.lm(Some("edge-london")).unwrap()), london);
    assert_eq!(logits(&mut reg.lm(None).unwrap()), base);
    assert!(Arc::ptr_eq(
        reg.lm(Some("edge-paris")).unwrap().model(),
        &model
    ));
    assert!(reg.lm(Some("edge-tokyo")).is_err());
}
