//! Training loop: full fine-tuning and LoRA lower the loss; gradients reach exactly the
//! trainable tensors; prompt masking.

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use netgpt_models::gpt2::{init_tensors, Config, Gpt2};
use netgpt_models::lora::{LoraAdapter, LoraConfig};
use netgpt_models::train::{self, Example, TrainConfig};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny")
}

fn data() -> Vec<Example> {
    (0..8u32)
        .map(|i| Example {
            tokens: (0..12).map(|j| (i * 7 + j * 3) % 100).collect(),
            prompt_len: 3,
        })
        .collect()
}

fn cfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 4,
        lr: 1e-2,
        warmup: 2,
        log_every: 1,
        ..Default::default()
    }
}

#[test]
fn full_training_from_scratch_lowers_the_loss() {
    let c = Config::from_file(&fixture().join("config.json")).unwrap();
    let (model, vars) =
        train::trainable_gpt2(&c, init_tensors(&c, 1, &Device::Cpu).unwrap()).unwrap();
    let d = data();
    let fwd = |ids: &Tensor| model.forward_train(ids, None);
    let (before, _) = train::eval_loss(&fwd, &d, 8, true, &Device::Cpu).unwrap();
    let r = train::train(&vars, &fwd, &d, &cfg(30), &Device::Cpu, &mut |_, _| {}).unwrap();
    let (after, n) = train::eval_loss(&fwd, &d, 8, true, &Device::Cpu).unwrap();
    assert_eq!(n, 8 * (12 - 3));
    assert!(after < before * 0.7, "loss {before} -> {after}");
    assert_eq!(r.losses.len(), 30);
    assert_eq!(
        r.trainable_params,
        vars.iter().map(|(_, v)| v.elem_count()).sum::<usize>()
    );
    // The trained model saves and reloads to the same loss.
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let again = Gpt2::load(dir.path(), &Device::Cpu).unwrap();
    let (reloaded, _) = train::eval_loss(
        &|ids: &Tensor| again.forward_train(ids, None),
        &d,
        8,
        true,
        &Device::Cpu,
    )
    .unwrap();
    assert!((reloaded - after).abs() < 1e-5);
}

#[test]
fn lora_training_lowers_the_loss_and_leaves_the_base_unchanged() {
    let base = Gpt2::load(&fixture(), &Device::Cpu).unwrap();
    let before_w = base.tensors()["transformer.h.0.attn.c_attn.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (ad, vars) = LoraAdapter::new_gpt2(
        base.config(),
        LoraConfig {
            r: 4,
            ..Default::default()
        },
        3,
        &Device::Cpu,
    )
    .unwrap();
    let d = data();
    let fwd = |ids: &Tensor| base.forward_train(ids, Some(&ad));
    let (before, _) = train::eval_loss(&fwd, &d, 8, true, &Device::Cpu).unwrap();
    // The first step checks that every LoRA tensor gets a gradient.
    let r = train::train(&vars, &fwd, &d, &cfg(25), &Device::Cpu, &mut |_, _| {}).unwrap();
    let (after, _) = train::eval_loss(&fwd, &d, 8, true, &Device::Cpu).unwrap();
    assert!(after < before * 0.8, "loss {before} -> {after}");
    assert_eq!(r.trainable_params, ad.num_params());
    let after_w = base.tensors()["transformer.h.0.attn.c_attn.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before_w, after_w);
}

#[test]
fn gradient_check_names_tensors_outside_the_graph() {
    let c = Config::from_file(&fixture().join("config.json")).unwrap();
    let (model, mut vars) =
        train::trainable_gpt2(&c, init_tensors(&c, 1, &Device::Cpu).unwrap()).unwrap();
    vars.push((
        "stray".into(),
        Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    let b = train::make_batch(&[&data()[0]], true, &Device::Cpu).unwrap();
    let loss = train::lm_loss(
        &model.forward_train(&b.ids, None).unwrap(),
        &b.targets,
        &b.mask,
    )
    .unwrap();
    let err = train::check_grads(&vars, &loss.backward().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("stray") && err.contains("1 tensors"), "{err}");
}

#[test]
fn prompt_tokens_are_masked_and_batches_padded() {
    let a = Example {
        tokens: vec![1, 2, 3, 4, 5],
        prompt_len: 3,
    };
    let b = Example {
        tokens: vec![6, 7, 8],
        prompt_len: 1,
    };
    let batch = train::make_batch(&[&a, &b], true, &Device::Cpu).unwrap();
    assert_eq!(
        batch.ids.to_vec2::<u32>().unwrap(),
        vec![vec![1, 2, 3, 4], vec![6, 7, 0, 0]]
    );
    assert_eq!(
        batch.targets.to_vec2::<u32>().unwrap(),
        vec![vec![2, 3, 4, 5], vec![7, 8, 0, 0]]
    );
    assert_eq!(
        batch.mask.to_vec2::<f32>().unwrap(),
        vec![vec![0., 0., 1., 1.], vec![1., 1., 0., 0.]]
    );
    let all = train::make_batch(&[&a], false, &Device::Cpu).unwrap();
    assert_eq!(
        all.mask.to_vec2::<f32>().unwrap(),
        vec![vec![1., 1., 1., 1.]]
    );
    assert!(train::lr_at(&cfg(30), 0) < train::lr_at(&cfg(30), 1));
}
