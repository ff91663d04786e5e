//! Training: next-token cross-entropy (optionally only over the completion), AdamW with
//! warm-up and cosine decay, a check that every trainable tensor receives a gradient.
//! Works for full fine-tuning (all weights are `Var`s) and LoRA (only adapter `Var`s).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::gpt2::{Config, Gpt2};
use crate::{Error, Result};

/// One training sequence: token ids and how many of them are the prompt.
#[derive(Debug, Clone)]
pub struct Example {
    /// Prompt followed by the completion.
    pub tokens: Vec<u32>,
    /// Length of the prompt part (not scored when the prompt is masked).
    pub prompt_len: usize,
}

/// Optimisation settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps; then cosine decay to `lr / 10`.
    pub warmup: usize,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of the batch order.
    pub seed: u64,
    /// Only score completion tokens.
    pub mask_prompt: bool,
    /// Log the loss every this many steps.
    pub log_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            batch_size: 16,
            lr: 2e-3,
            warmup: 20,
            weight_decay: 0.01,
            seed: 42,
            mask_prompt: true,
            log_every: 10,
        }
    }
}

/// What a training run measured.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// `(step, mean loss over the steps since the last entry)`.
    pub losses: Vec<(usize, f32)>,
    /// Number of trainable parameters.
    pub trainable_params: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A batch: inputs `[B, T]`, targets `[B, T]` and a 0/1 loss mask `[B, T]` (f32).
pub struct Batch {
    /// Input ids.
    pub ids: Tensor,
    /// Next-token targets.
    pub targets: Tensor,
    /// Which positions are scored.
    pub mask: Tensor,
}

/// Pads `examples` on the right into a batch (inputs `tokens[..n-1]`, targets `tokens[1..]`).
pub fn make_batch(examples: &[&Example], mask_prompt: bool, device: &Device) -> Result<Batch> {
    let t = examples
        .iter()
        .map(|e| e.tokens.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    if t == 0 {
        return Err(Error::Invalid("empty batch".into()));
    }
    let b = examples.len();
    let (mut ids, mut tg, mut m) = (vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t]);
    for (i, e) in examples.iter().enumerate() {
        for j in 0..e.tokens.len().saturating_sub(1) {
            ids[i * t + j] = e.tokens[j];
            tg[i * t + j] = e.tokens[j + 1];
            // Target j+1 belongs to the completion when j+1 >= prompt_len.
            m[i * t + j] = if !mask_prompt || j + 1 >= e.prompt_len {
                1.0
            } else {
                0.0
            };
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        targets: Tensor::from_vec(tg, (b, t), device)?,
        mask: Tensor::from_vec(m, (b, t), device)?,
    })
}

/// Mean cross-entropy over masked positions; `logits` `[B, T, V]`.
pub fn lm_loss(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    let n = mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
    Ok(((picked * mask)?.sum_all()?.neg()? / n as f64)?)
}

/// Errors unless every var in `vars` received a gradient.
pub fn check_grads(vars: &[(String, Var)], grads: &GradStore) -> Result<()> {
    let missing: Vec<&str> = vars
        .iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "no gradient for {} tensors: {:?}",
            missing.len(),
            missing
        )))
    }
}

/// Learning rate at `step` (0-based): linear warm-up, cosine decay to `lr / 10`.
pub fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    if step < cfg.warmup {
        return cfg.lr * (step + 1) as f64 / cfg.warmup as f64;
    }
    let p = (step - cfg.warmup) as f64 / (cfg.steps - cfg.warmup).max(1) as f64;
    let min = cfg.lr / 10.0;
    min + 0.5 * (cfg.lr - min) * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos())
}

/// Trains `vars` by minimising the loss of `forward` (ids `[B, T]` -> logits `[B, T, V]`)
/// over `data`. The first step checks that every var gets a gradient. `on_log(step, loss)`
/// is called every `log_every` steps.
pub fn train(
    vars: &[(String, Var)],
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    data: &[Example],
    cfg: &TrainConfig,
    device: &Device,
    on_log: &mut dyn FnMut(usize, f32),
) -> Result<TrainReport> {
    if data.is_empty() || cfg.batch_size == 0 {
        return Err(Error::Invalid("no training data".into()));
    }
    let start = Instant::now();
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), params)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rng);
    let mut cursor = 0;
    let (mut acc, mut acc_n) = (0f32, 0usize);
    let mut losses = Vec::new();
    for step in 0..cfg.steps {
        let mut chosen = Vec::with_capacity(cfg.batch_size);
        while chosen.len() < cfg.batch_size {
            if cursor == order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            chosen.push(&data[order[cursor]]);
            cursor += 1;
        }
        let batch = make_batch(&chosen, cfg.mask_prompt, device)?;
        let loss = lm_loss(&forward(&batch.ids)?, &batch.targets, &batch.mask)?;
        let grads = loss.backward()?;
        if step == 0 {
            check_grads(vars, &grads)?;
        }
        opt.set_learning_rate(lr_at(cfg, step));
        opt.step(&grads)?;
        let l = loss.to_scalar::<f32>()?;
        if !l.is_finite() {
            return Err(Error::Invalid(format!("loss diverged at step {step}")));
        }
        acc += l;
        acc_n += 1;
        if (step + 1) % cfg.log_every.max(1) == 0 || step + 1 == cfg.steps {
            let mean = acc / acc_n as f32;
            losses.push((step + 1, mean));
            on_log(step + 1, mean);
            (acc, acc_n) = (0.0, 0);
        }
    }
    Ok(TrainReport {
        losses,
        trainable_params: vars.iter().map(|(_, v)| v.elem_count()).sum(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean per-token loss of `forward` over `data` (no gradients), and the token count.
pub fn eval_loss(
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    data: &[Example],
    batch_size: usize,
    mask_prompt: bool,
    device: &Device,
) -> Result<(f32, usize)> {
    let (mut total, mut count) = (0f64, 0usize);
    for chunk in data.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let b = make_batch(&refs, mask_prompt, device)?;
        let n = b.mask.sum_all()?.to_scalar::<f32>()? as usize;
        let loss = lm_loss(&forward(&b.ids)?.detach(), &b.targets, &b.mask)?.to_scalar::<f32>()?;
        total += loss as f64 * n as f64;
        count += n;
    }
    Ok(((total / count.max(1) as f64) as f32, count))
}

/// Turns every tensor of `init` into a trainable `Var` and builds a GPT-2 over them (full
/// training / fine-tuning). Returns the model and its vars, sorted by name.
pub fn trainable_gpt2(
    cfg: &Config,
    init: HashMap<String, Tensor>,
) -> Result<(Gpt2, Vec<(String, Var)>)> {
    let mut vars: Vec<(String, Var)> = Vec::new();
    let mut ts = HashMap::new();
    let wanted: std::collections::HashSet<String> =
        cfg.tensor_shapes().into_iter().map(|(n, _)| n).collect();
    for (name, t) in init {
        let name = if name.starts_with("transformer.") {
            name
        } else {
            format!("transformer.{name}")
        };
        if !wanted.contains(&name) {
            continue; // buffers such as attn.bias, tied lm_head
        }
        let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
        ts.insert(name.clone(), v.as_tensor().clone());
        vars.push((name, v));
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let model = Gpt2::from_tensors(cfg, &ts)?;
    Ok((model, vars))
}
