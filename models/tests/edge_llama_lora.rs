//! LoRA on a LLaMA-architecture model: the trainable f32 forward matches the cloud
//! `Llama` on the same weights, a fresh adapter changes nothing, merging equals the adapter,
//! training lowers the loss with gradients only in the adapter, PEFT names.

mod support;
use support::{cosine, max_diff, norm};

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use netgpt_models::generation::CausalLm;
use netgpt_models::llama::{Llama, LlamaConfig};
use netgpt_models::llama_lora::{LlamaLoraAdapter, TrainableLlama};
use netgpt_models::lora::{LoraConfig, SeededNormal};
use netgpt_models::train::{self, Example, TrainConfig};

fn tiny() -> (LlamaConfig, HashMap<String, Tensor>) {
    let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": true
    }))
    .unwrap();
    let mut rng = SeededNormal::new(11);
    let mut w = HashMap::new();
    for (name, shape) in cfg.hf_tensor_shapes() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = if name.ends_with("norm.weight") {
            (0..n).map(|_| 1.0 + 0.1 * rng.sample()).collect()
        } else {
            (0..n).map(|_| 0.2 * rng.sample()).collect()
        };
        w.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    }
    (cfg, w)
}

const IDS: [u32; 7] = [1, 9, 33, 4, 63, 20, 7];

fn last_logits(m: &TrainableLlama, a: Option<&LlamaLoraAdapter>) -> Vec<f32> {
    let x = Tensor::new(&[IDS], &Device::Cpu).unwrap();
    m.forward(&x, a)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .get(IDS.len() - 1)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn trainable_forward_matches_the_cloud_llama() {
    let (cfg, w) = tiny();
    let vb = candle_nn::VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let mut cloud = Llama::from_varbuilder(cfg.clone(), vb, None).unwrap();
    let want = cloud.forward(&IDS, 0).unwrap().to_vec1::<f32>().unwrap();
    let got = last_logits(&TrainableLlama::new(&cfg, &w, &Device::Cpu).unwrap(), None);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
fn lora_on_q_and_v_identity_merge_training_and_peft_files() {
    let (cfg, w) = tiny();
    let m = TrainableLlama::new(&cfg, &w, &Device::Cpu).unwrap();
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
    };
    let (ad, vars) = LlamaLoraAdapter::new(&cfg, lcfg, 5, &Device::Cpu).unwrap();
    assert_eq!(vars.len(), 2 * 2 * 2);
    assert_eq!(ad.num_params(), 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4));
    let base = last_logits(&m, None);
    assert_eq!(
        last_logits(&m, Some(&ad)),
        base,
        "B = 0 must leave the model unchanged"
    );

    let data: Vec<Example> = (0..6u32)
        .map(|i| Example {
            tokens: (0..10).map(|j| (i * 5 + j * 7) % 64).collect(),
            prompt_len: 2,
        })
        .collect();
    let fwd = |ids: &Tensor| m.forward(ids, Some(&ad));
    let (before, _) = train::eval_loss(&fwd, &data, 6, true, &Device::Cpu).unwrap();
    let tcfg = TrainConfig {
        steps: 25,
        batch_size: 3,
        lr: 1e-2,
        warmup: 2,
        log_every: 5,
        ..Default::default()
    };
    train::train(&vars, &fwd, &data, &tcfg, &Device::Cpu, &mut |_, _| {}).unwrap();
    let (after, _) = train::eval_loss(&fwd, &data, 6, true, &Device::Cpu).unwrap();
    assert!(after < before * 0.8, "loss {before} -> {after}");
    let adapted = last_logits(&m, Some(&ad));
    assert_ne!(adapted, base);

    let merged = TrainableLlama::new(&cfg, &ad.merge_into(&w).unwrap(), &Device::Cpu).unwrap();
    assert!(max_diff(&last_logits(&merged, None), &adapted) < 1e-4);

    let dir = tempfile::tempdir().unwrap();
    ad.save("tiny-llama", dir.path()).unwrap();
    let ts =
        candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(
        ts["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"].dims(),
        &[16, 4]
    );
    assert_eq!(ts.len(), 8);
    let loaded = LlamaLoraAdapter::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.num_params(), ad.num_params());
    assert_eq!(last_logits(&m, Some(&loaded)), adapted);
}

#[test]
fn cloud_gguf_loads_into_the_trainable_llama() {
    // Uses the cached cloud model when present (`netgpt models fetch`); no network here.
    let Some(path) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("cloud GGUF not cached: skipped");
        return;
    };
    let (cfg, w) = netgpt_models::llama_lora::hf_weights_from_gguf(&path, &Device::Cpu).unwrap();
    let m = TrainableLlama::new(&cfg, &w, &Device::Cpu).unwrap();
    let mut cloud = Llama::from_gguf(&path, &Device::Cpu, None).unwrap();
    let ids = [1u32, 504, 3458, 282, 4649, 314, 253];
    let want = cloud.forward(&ids, 0).unwrap().to_vec1::<f32>().unwrap();
    let x = Tensor::new(&[ids], &Device::Cpu).unwrap();
    let got: Vec<f32> = m
        .forward(&x, None)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .get(ids.len() - 1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    };
    // Our forward equals their dense path on the same real weights; agreement (argmax,
    // cosine) with their quantized GGUF path, which keeps GGUF's row order and interleaved
    // RoPE, checks the un-permutation (a wrong one scrambles RoPE).
    let vb = candle_nn::VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let mut dense = Llama::from_varbuilder(cfg.clone(), vb, None).unwrap();
    let dense_logits = dense.forward(&ids, 0).unwrap().to_vec1::<f32>().unwrap();
    let d_dense = max_diff(&got, &dense_logits);
    let d_quant = max_diff(&got, &want);
    let cos = cosine(&got, &want);
    eprintln!("vs dense: {d_dense}, vs quantized: {d_quant}, cosine {cos}");
    assert!(d_dense < 1e-3, "dense path differs by {d_dense}");
    assert_eq!(argmax(&got), argmax(&want));
    assert!(cos > 0.99, "cosine {cos} with the quantized model");
}

/// An adapter on every projection with random (non-zero) `B`, so it changes the output.
fn random_adapter(cfg: &LlamaConfig, targets: &[&str], seed: u64) -> LlamaLoraAdapter {
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        target_modules: targets.iter().map(|t| t.to_string()).collect(),
    };
    let (ad, vars) = LlamaLoraAdapter::new(cfg, lcfg, seed, &Device::Cpu).unwrap();
    let mut rng = SeededNormal::new(seed + 1);
    for (name, v) in &vars {
        if name.ends_with("lora_B.weight") {
            let (o, r) = v.as_tensor().dims2().unwrap();
            let b: Vec<f32> = (0..o * r).map(|_| 0.3 * rng.sample()).collect();
            v.set(&Tensor::from_vec(b, (o, r), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    ad
}

fn logits_rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

#[test]
fn one_batch_serves_each_sequence_its_own_adapter() {
    use netgpt_models::llama_lora::{BatchLora, ServingLora};
    let (cfg, w) = tiny();
    let all = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];
    let ad_a = random_adapter(&cfg, &all, 21);
    let ad_b = random_adapter(&cfg, &["q_proj", "v_proj"], 31);
    let load = |w: &HashMap<String, Tensor>| {
        let vb = candle_nn::VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
        Llama::from_varbuilder(cfg.clone(), vb, None).unwrap()
    };
    let base = load(&w);
    let merged_a = load(&ad_a.merge_into(&w).unwrap());
    let merged_b = load(&ad_b.merge_into(&w).unwrap());
    let (sa, sb) = (
        ServingLora::new(&ad_a, &base).unwrap(),
        ServingLora::new(&ad_b, &base).unwrap(),
    );

    // Three sequences of different lengths, adapters A, none, B; prefill then one decode step.
    let prompts: [&[u32]; 3] = [&IDS, &[5, 6, 7], &[60, 2, 9, 11, 3]];
    let mut caches: Vec<_> = (0..3).map(|_| base.new_cache()).collect();
    let hook = BatchLora::new(&base, vec![Some(&sa), None, Some(&sb)]);
    let mut refs: Vec<_> = caches.iter_mut().collect();
    let got = logits_rows(
        &base
            .forward_seqs_with(&prompts, &mut refs, Some(&hook))
            .unwrap(),
    );
    let next: [&[u32]; 3] = [&[8], &[9], &[10]];
    let mut refs: Vec<_> = caches.iter_mut().collect();
    let got2 = logits_rows(
        &base
            .forward_seqs_with(&next, &mut refs, Some(&hook))
            .unwrap(),
    );

    for (i, m) in [&merged_a, &base, &merged_b].into_iter().enumerate() {
        let mut c = m.new_cache();
        let want = m.forward_with_cache(prompts[i], &mut c).unwrap();
        let want2 = m.forward_with_cache(next[i], &mut c).unwrap();
        let d1 = max_diff(&got[i], &want.to_vec1::<f32>().unwrap());
        let d2 = max_diff(&got2[i], &want2.to_vec1::<f32>().unwrap());
        assert!(d1 < 1e-4 && d2 < 1e-4, "sequence {i}: {d1}, {d2}");
    }
    // The adapters really change the output (else the comparison above proves nothing).
    assert!(max_diff(&got[0], &got2[1]) > 1e-2);
    let mut c = base.new_cache();
    let plain = base.forward_with_cache(prompts[0], &mut c).unwrap();
    assert!(max_diff(&got[0], &plain.to_vec1::<f32>().unwrap()) > 1e-2);
}

#[test]
fn serving_adapter_refuses_a_model_of_another_size() {
    use netgpt_models::llama_lora::ServingLora;
    let (cfg, w) = tiny();
    let ad = random_adapter(&cfg, &["q_proj"], 3);
    let mut other = cfg.clone();
    other.hidden_size = 64;
    other.num_attention_heads = 8;
    other.num_key_value_heads = Some(4);
    let mut ow = HashMap::new();
    for (name, shape) in other.hf_tensor_shapes() {
        ow.insert(
            name,
            Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap(),
        );
    }
    let _ = w;
    let vb = candle_nn::VarBuilder::from_tensors(ow, DType::F32, &Device::Cpu);
    let m = Llama::from_varbuilder(other, vb, None).unwrap();
    let err = ServingLora::new(&ad, &m)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
}

/// On the real GGUF model (q/k rows interleaved for RoPE), a served adapter moves the logits
/// the way the same adapter does on the Hugging Face-layout f32 model: a wrong q/k row
/// permutation would scramble the update.
#[test]
fn served_adapter_on_the_gguf_model_matches_the_hf_layout_update() {
    use netgpt_models::llama_lora::{BatchLora, ServingLora};
    let Some(path) = netgpt_models::fetch::cached_cloud_model() else {
        eprintln!("cloud GGUF not cached: skipped");
        return;
    };
    let (cfg, w) = netgpt_models::llama_lora::hf_weights_from_gguf(&path, &Device::Cpu).unwrap();
    let ad = random_adapter(&cfg, &["q_proj", "k_proj"], 41);
    let hf = TrainableLlama::new(&cfg, &w, &Device::Cpu).unwrap();
    let ids = [1u32, 504, 3458, 282, 4649, 314, 253];
    let x = Tensor::new(&[ids], &Device::Cpu).unwrap();
    let hf_last = |a: Option<&LlamaLoraAdapter>| -> Vec<f32> {
        hf.forward(&x, a)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .get(ids.len() - 1)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let want: Vec<f32> = hf_last(Some(&ad))
        .iter()
        .zip(hf_last(None))
        .map(|(a, b)| a - b)
        .collect();
    let gguf = Llama::from_gguf(&path, &Device::Cpu, None).unwrap();
    let served = ServingLora::new(&ad, &gguf).unwrap();
    let run = |a: Option<&ServingLora>| -> Vec<f32> {
        let mut c = gguf.new_cache();
        let hook = BatchLora::new(&gguf, vec![a]);
        gguf.forward_seqs_with(&[&ids], &mut [&mut c], Some(&hook))
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let got: Vec<f32> = run(Some(&served))
        .iter()
        .zip(run(None))
        .map(|(a, b)| a - b)
        .collect();
    let cos = cosine(&got, &want);
    eprintln!(
        "update norm {} (hf {}), cosine {cos}",
        norm(&got),
        norm(&want)
    );
    assert!(norm(&want) > 0.1, "the adapter must change the logits");
    assert!(
        cos > 0.9,
        "served update cosine {cos} with the HF-layout update"
    );
}
