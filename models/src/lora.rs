//! LoRA: low-rank adapters `W x + (alpha / r) · B A x` on chosen projections, with the base
//! weight frozen (a plain tensor) and only `A` (r x in) and `B` (out x r) trainable.
//!
//! [`LoraLinear`] wraps one projection; [`LoraAdapter`] holds a full set for a GPT-2 and
//! plugs into the model per forward call (see [`crate::gpt2::ProjDelta`]), so one base
//! model serves many adapters.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::gpt2::{self, Proj, ProjDelta};
use crate::{Error, Result};

/// Seeded standard-normal sampler (Box-Muller), so initialisation is reproducible on CPU
/// (candle's CPU backend cannot be seeded).
pub struct SeededNormal {
    rng: StdRng,
    spare: Option<f32>,
}

impl SeededNormal {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            spare: None,
        }
    }
    /// One sample from N(0, 1).
    pub fn sample(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * th.sin()) as f32);
        (r * th.cos()) as f32
    }
}

/// LoRA hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank.
    pub r: usize,
    /// Scaling numerator: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Module names adapted, matched like PEFT: a module is adapted when its path equals
    /// a target or ends with `.target` (so `c_proj` adapts `attn.c_proj` and `mlp.c_proj`).
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            target_modules: vec!["c_attn".into(), "c_proj".into()],
        }
    }
}

impl LoraConfig {
    /// `alpha / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
    /// Whether module path `name` (e.g. `attn.c_proj`) is a target.
    pub fn targets(&self, name: &str) -> bool {
        self.target_modules
            .iter()
            .any(|t| name == t || name.ends_with(&format!(".{t}")))
    }
}

/// The pair of low-rank matrices of one adapted projection.
#[derive(Clone)]
pub struct LoraWeights {
    /// `[r, in]`; a `Var` while training.
    pub a: Tensor,
    /// `[out, r]`; zeros at initialisation, so a fresh adapter changes nothing.
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
}

impl LoraWeights {
    /// Fresh trainable weights: `A` ~ N(0, 1/in) (Kaiming-style), `B` = 0.
    pub fn init(
        in_f: usize,
        out_f: usize,
        r: usize,
        scale: f64,
        rng: &mut SeededNormal,
        dev: &Device,
    ) -> Result<(Self, Var, Var)> {
        let std = 1.0 / (in_f as f32).sqrt();
        let a: Vec<f32> = (0..r * in_f).map(|_| rng.sample() * std).collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (r, in_f), dev)?)?;
        let b = Var::zeros((out_f, r), DType::F32, dev)?;
        Ok((
            Self {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale,
            },
            a,
            b,
        ))
    }
    /// The update `scale · x Aᵀ Bᵀ` for `x` `[.., in]`.
    pub fn delta(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.broadcast_matmul(&self.a.t()?)?;
        Ok((h.broadcast_matmul(&self.b.t()?)? * self.scale)?)
    }
    /// The dense update `scale · B A`, `[out, in]`.
    pub fn dense(&self) -> Result<Tensor> {
        Ok((self.b.matmul(&self.a)? * self.scale)?)
    }
}

/// A linear layer with a frozen base weight and a LoRA update.
pub struct LoraLinear {
    /// Frozen base weight: `[out, in]`, or `[in, out]` when `fan_in_fan_out` (HF Conv1D).
    pub weight: Tensor,
    /// Optional frozen bias `[out]`.
    pub bias: Option<Tensor>,
    /// True for Conv1D-layout weights (GPT-2).
    pub fan_in_fan_out: bool,
    /// The low-rank update.
    pub lora: LoraWeights,
}

impl LoraLinear {
    /// Wraps `weight` (detached, so it never trains) with fresh LoRA weights; returns the
    /// layer and its trainable vars `(A, B)`.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        fan_in_fan_out: bool,
        cfg: &LoraConfig,
        rng: &mut SeededNormal,
    ) -> Result<(Self, [Var; 2])> {
        let (d0, d1) = weight.dims2()?;
        let (in_f, out_f) = if fan_in_fan_out { (d0, d1) } else { (d1, d0) };
        let (lora, a, b) =
            LoraWeights::init(in_f, out_f, cfg.r, cfg.scale(), rng, weight.device())?;
        let layer = Self {
            weight: weight.detach(),
            bias: bias.map(|b| b.detach()),
            fan_in_fan_out,
            lora,
        };
        Ok((layer, [a, b]))
    }
    /// The base projection alone.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        let w = if self.fan_in_fan_out {
            self.weight.clone()
        } else {
            self.weight.t()?
        };
        let y = x.broadcast_matmul(&w)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
    /// Base projection plus the LoRA update.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok((self.forward_base(x)? + self.lora.delta(x)?)?)
    }
    /// The base weight with the update merged in (same layout as `weight`).
    pub fn merged_weight(&self) -> Result<Tensor> {
        let d = self.lora.dense()?;
        let d = if self.fan_in_fan_out { d.t()? } else { d };
        Ok((&self.weight + d)?.detach())
    }
}

/// A set of LoRA weights over a GPT-2, keyed by `(layer, projection)`.
pub struct LoraAdapter {
    /// Hyper-parameters.
    pub config: LoraConfig,
    /// Weights per adapted projection.
    pub weights: BTreeMap<(usize, Proj), LoraWeights>,
}

impl LoraAdapter {
    /// A fresh adapter for `model_cfg` (`B` = 0, so it starts as the identity), plus its
    /// trainable vars named like PEFT (`...c_attn.lora_A.weight`).
    pub fn new_gpt2(
        model_cfg: &gpt2::Config,
        config: LoraConfig,
        seed: u64,
        dev: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        if config.r == 0 {
            return Err(Error::Invalid("LoRA rank must be > 0".into()));
        }
        let mut rng = SeededNormal::new(seed);
        let mut weights = BTreeMap::new();
        let mut vars = Vec::new();
        for l in 0..model_cfg.n_layer {
            for p in Proj::ALL {
                if !config.targets(p.name()) {
                    continue;
                }
                let (i, o) = p.dims(model_cfg);
                let (w, a, b) = LoraWeights::init(i, o, config.r, config.scale(), &mut rng, dev)?;
                let n = crate::peft::gpt2_module_path(l, p);
                vars.push((format!("{n}.lora_A.weight"), a));
                vars.push((format!("{n}.lora_B.weight"), b));
                weights.insert((l, p), w);
            }
        }
        if weights.is_empty() {
            return Err(Error::Invalid(format!(
                "no module matches {:?}",
                config.target_modules
            )));
        }
        Ok((Self { config, weights }, vars))
    }

    /// Number of adapter parameters.
    pub fn num_params(&self) -> usize {
        self.weights
            .values()
            .map(|w| w.a.elem_count() + w.b.elem_count())
            .sum()
    }

    /// The base model's tensors with every update merged in (`W + scale · (B A)ᵀ`, Conv1D
    /// layout), ready for [`gpt2::Gpt2::from_tensors`].
    pub fn merge_into(
        &self,
        base: &gpt2::Gpt2,
    ) -> Result<std::collections::HashMap<String, Tensor>> {
        let mut ts = base.tensors();
        for ((l, p), w) in &self.weights {
            let name = format!("transformer.h.{l}.{}.weight", p.name());
            let t = ts
                .get(&name)
                .ok_or_else(|| Error::Format(format!("missing {name}")))?;
            let merged = (t + w.dense()?.t()?)?.detach();
            ts.insert(name, merged);
        }
        Ok(ts)
    }
}

impl ProjDelta for LoraAdapter {
    fn delta(&self, layer: usize, proj: Proj, x: &Tensor) -> Result<Option<Tensor>> {
        self.weights
            .get(&(layer, proj))
            .map(|w| w.delta(x))
            .transpose()
    }
}
