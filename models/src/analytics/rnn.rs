//! LSTM and GRU binary classifiers in candle (own cells, PyTorch gate layout), used as the
//! baselines of content popularity prediction: a sequence of per-interval feature vectors
//! `[B, T, I]` runs through the recurrent cell; the last hidden state, concatenated with a
//! vector of static features `[B, S]` (the target interval's context), goes through a
//! linear head to one logit. Trained with binary cross-entropy and AdamW.
//!
//! The cells are written with plain tensor ops (`tanh`, `matmul`, ...) whose backward passes
//! candle implements, so every weight receives a gradient ([`check_gradients`] proves it
//! numerically). Initialisation is seeded (candle's CPU RNG cannot be).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Recurrent cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellKind {
    /// Long short-term memory (gates i, f, g, o).
    Lstm,
    /// Gated recurrent unit (gates r, z, n).
    Gru,
}

impl CellKind {
    /// Gate blocks stacked in the weight matrices.
    fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// Shape of a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RnnConfig {
    /// Cell type.
    pub kind: CellKind,
    /// Features per time step.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Static features joined to the last hidden state.
    pub static_dim: usize,
}

/// A data set of sequences: row-major `seq` `[n, steps, input]`, `stat` `[n, static_dim]`
/// and 0/1 `labels` `[n]`.
#[derive(Debug, Clone, Default)]
pub struct SeqData {
    /// Sequences.
    pub n: usize,
    /// Time steps per sequence.
    pub steps: usize,
    /// Features per step.
    pub input: usize,
    /// Static features per sequence.
    pub static_dim: usize,
    /// `[n * steps * input]`.
    pub seq: Vec<f32>,
    /// `[n * static_dim]`.
    pub stat: Vec<f32>,
    /// `[n]`, 0.0 or 1.0.
    pub labels: Vec<f32>,
}

impl SeqData {
    /// Tensors `(seq [B,T,I], stat [B,S], labels [B])` for the rows `idx`.
    pub fn batch(&self, idx: &[usize], dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let (t, i, s) = (self.steps, self.input, self.static_dim);
        let mut seq = Vec::with_capacity(idx.len() * t * i);
        let mut stat = Vec::with_capacity(idx.len() * s);
        let mut lab = Vec::with_capacity(idx.len());
        for &r in idx {
            seq.extend_from_slice(&self.seq[r * t * i..(r + 1) * t * i]);
            stat.extend_from_slice(&self.stat[r * s..(r + 1) * s]);
            lab.push(self.labels[r]);
        }
        let b = idx.len();
        Ok((
            Tensor::from_vec(seq, (b, t, i), dev)?,
            Tensor::from_vec(stat, (b, s), dev)?,
            Tensor::from_vec(lab, b, dev)?,
        ))
    }
}

/// An LSTM or GRU classifier with trainable weights.
pub struct RnnClassifier {
    cfg: RnnConfig,
    vars: Vec<(String, Var)>,
}

/// Logistic sigmoid through `tanh` (differentiable in candle): `σ(x) = (1 + tanh(x/2)) / 2`.
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((((x * 0.5)?.tanh()? + 1.0)? * 0.5)?)
}

/// Mean binary cross-entropy of `logits` against 0/1 `labels`, in the stable form
/// `max(z,0) - z·y + log(1 + e^-|z|)`.
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let l =
        ((logits.relu()? - (logits * labels)?)? + ((logits.abs()?.neg()?.exp()? + 1.0)?.log())?)?;
    Ok(l.mean_all()?)
}

impl RnnClassifier {
    /// A fresh classifier, weights uniform in `±1/sqrt(hidden)` drawn from `seed` (the
    /// PyTorch default), head bias 0.
    pub fn new(cfg: RnnConfig, seed: u64, dev: &Device) -> Result<Self> {
        if cfg.hidden == 0 || cfg.input == 0 {
            return Err(Error::Invalid(
                "RNN needs input and hidden sizes > 0".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let k = 1.0 / (cfg.hidden as f32).sqrt();
        let g = cfg.kind.gates() * cfg.hidden;
        let mut uni = |shape: &[usize]| -> Result<Var> {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-k..k)).collect();
            Ok(Var::from_tensor(&Tensor::from_vec(v, shape, dev)?)?)
        };
        let vars = vec![
            ("w_ih".to_string(), uni(&[g, cfg.input])?),
            ("w_hh".to_string(), uni(&[g, cfg.hidden])?),
            ("b_ih".to_string(), uni(&[g])?),
            ("b_hh".to_string(), uni(&[g])?),
            (
                "head.weight".to_string(),
                uni(&[1, cfg.hidden + cfg.static_dim])?,
            ),
            (
                "head.bias".to_string(),
                Var::from_tensor(&Tensor::zeros(1, DType::F32, dev)?)?,
            ),
        ];
        Ok(Self { cfg, vars })
    }

    /// The shape.
    pub fn config(&self) -> RnnConfig {
        self.cfg
    }

    /// Trainable tensors, by name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn get(&self, name: &str) -> &Tensor {
        // Names are fixed by `new`/`load`, so the lookup cannot fail.
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .expect("rnn weight present")
    }

    /// Logits `[B]` for sequences `[B, T, I]` and static features `[B, S]`.
    pub fn forward(&self, seq: &Tensor, stat: &Tensor) -> Result<Tensor> {
        let (b, t, _) = seq.dims3()?;
        let hsz = self.cfg.hidden;
        let (w_ih, w_hh) = (self.get("w_ih").t()?, self.get("w_hh").t()?);
        let (b_ih, b_hh) = (self.get("b_ih"), self.get("b_hh"));
        let mut h = Tensor::zeros((b, hsz), DType::F32, seq.device())?;
        let mut c = h.clone();
        for step in 0..t {
            let x = seq.narrow(1, step, 1)?.squeeze(1)?;
            let gi = x.matmul(&w_ih)?.broadcast_add(b_ih)?;
            let gh = h.matmul(&w_hh)?.broadcast_add(b_hh)?;
            match self.cfg.kind {
                CellKind::Lstm => {
                    let gates = (gi + gh)?;
                    let part = |k: usize| gates.narrow(1, k * hsz, hsz);
                    let i = sigmoid(&part(0)?)?;
                    let f = sigmoid(&part(1)?)?;
                    let g = part(2)?.tanh()?;
                    let o = sigmoid(&part(3)?)?;
                    c = ((f * &c)? + (i * g)?)?;
                    h = (o * c.tanh()?)?;
                }
                CellKind::Gru => {
                    let pi = |k: usize| gi.narrow(1, k * hsz, hsz);
                    let ph = |k: usize| gh.narrow(1, k * hsz, hsz);
                    let r = sigmoid(&(pi(0)? + ph(0)?)?)?;
                    let z = sigmoid(&(pi(1)? + ph(1)?)?)?;
                    let n = (pi(2)? + (r * ph(2)?)?)?.tanh()?;
                    // h' = (1 - z) n + z h
                    h = ((n.clone() - (&z * &n)?)? + (z * &h)?)?;
                }
            }
        }
        let feat = if self.cfg.static_dim > 0 {
            Tensor::cat(&[&h, stat], 1)?
        } else {
            h
        };
        let logit = feat
            .matmul(&self.get("head.weight").t()?)?
            .broadcast_add(self.get("head.bias"))?;
        Ok(logit.squeeze(D::Minus1)?)
    }

    /// Probabilities of the positive class for every row of `data`.
    pub fn predict(&self, data: &SeqData, dev: &Device) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(data.n);
        let idx: Vec<usize> = (0..data.n).collect();
        for chunk in idx.chunks(512) {
            let (seq, stat, _) = data.batch(chunk, dev)?;
            let p = sigmoid(&self.forward(&seq, &stat)?.detach())?;
            out.extend(p.to_vec1::<f32>()?.into_iter().map(|x| x as f64));
        }
        Ok(out)
    }

    /// Saves the weights as safetensors (the shape is implied by the tensor shapes).
    pub fn save(&self, path: &Path) -> Result<()> {
        let m: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        candle_core::safetensors::save(&m, path)?;
        Ok(())
    }

    /// Loads weights saved by [`RnnClassifier::save`]; the cell type follows from the gate
    /// count (4 blocks: LSTM, 3: GRU).
    pub fn load(path: &Path, dev: &Device) -> Result<Self> {
        let mut m = candle_core::safetensors::load(path, dev)?;
        let mut take = |n: &str| {
            m.remove(n)
                .ok_or_else(|| Error::Format(format!("{}: missing {n}", path.display())))
        };
        let (w_ih, w_hh, b_ih, b_hh, hw, hb) = (
            take("w_ih")?,
            take("w_hh")?,
            take("b_ih")?,
            take("b_hh")?,
            take("head.weight")?,
            take("head.bias")?,
        );
        let (g, input) = w_ih.dims2()?;
        let hidden = w_hh.dim(1)?;
        let kind = match g / hidden.max(1) {
            4 => CellKind::Lstm,
            3 => CellKind::Gru,
            n => {
                return Err(Error::Format(format!(
                    "{n} gate blocks: not an LSTM or GRU"
                )))
            }
        };
        let static_dim = hw.dim(1)?.saturating_sub(hidden);
        let vars = [
            ("w_ih", w_ih),
            ("w_hh", w_hh),
            ("b_ih", b_ih),
            ("b_hh", b_hh),
            ("head.weight", hw),
            ("head.bias", hb),
        ]
        .into_iter()
        .map(|(n, t)| Ok((n.to_string(), Var::from_tensor(&t)?)))
        .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: RnnConfig {
                kind,
                input,
                hidden,
                static_dim,
            },
            vars,
        })
    }
}

/// Optimisation settings of [`train_classifier`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RnnTrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for RnnTrainConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            batch_size: 128,
            lr: 1e-2,
            seed: 42,
        }
    }
}

/// Trains `model` on `data` with BCE and AdamW; returns the mean loss of every 50 steps.
/// The first step errors unless every weight receives a gradient.
pub fn train_classifier(
    model: &RnnClassifier,
    data: &SeqData,
    cfg: &RnnTrainConfig,
    dev: &Device,
) -> Result<Vec<f32>> {
    if data.n == 0 {
        return Err(Error::Invalid("no training rows".into()));
    }
    let vars: Vec<Var> = model.vars.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..data.n).collect();
    order.shuffle(&mut rng);
    let (mut cursor, mut acc, mut acc_n, mut curve) = (0usize, 0f32, 0usize, Vec::new());
    for step in 0..cfg.steps {
        let mut idx = Vec::with_capacity(cfg.batch_size);
        while idx.len() < cfg.batch_size.min(data.n) {
            if cursor == order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            idx.push(order[cursor]);
            cursor += 1;
        }
        let (seq, stat, y) = data.batch(&idx, dev)?;
        let loss = bce_with_logits(&model.forward(&seq, &stat)?, &y)?;
        let grads = loss.backward()?;
        if step == 0 {
            crate::train::check_grads(&model.vars, &grads)?;
        }
        opt.step(&grads)?;
        let l = loss.to_scalar::<f32>()?;
        if !l.is_finite() {
            return Err(Error::Invalid(format!("RNN loss diverged at step {step}")));
        }
        acc += l;
        acc_n += 1;
        if (step + 1) % 50 == 0 || step + 1 == cfg.steps {
            curve.push(acc / acc_n as f32);
            (acc, acc_n) = (0.0, 0);
        }
    }
    Ok(curve)
}

/// Compares the analytic gradient of the BCE loss on `data` rows `idx` with central finite
/// differences for `probes` entries of every weight tensor. Returns the largest relative
/// error `|analytic - numeric| / max(|analytic| + |numeric|, 1e-3)`; errors if some weight
/// gets no gradient.
pub fn check_gradients(
    model: &RnnClassifier,
    data: &SeqData,
    idx: &[usize],
    probes: usize,
    dev: &Device,
) -> Result<f64> {
    let (seq, stat, y) = data.batch(idx, dev)?;
    let loss_of = || -> Result<f64> {
        Ok(bce_with_logits(&model.forward(&seq, &stat)?, &y)?.to_scalar::<f32>()? as f64)
    };
    let grads = bce_with_logits(&model.forward(&seq, &stat)?, &y)?.backward()?;
    crate::train::check_grads(&model.vars, &grads)?;
    let mut worst = 0f64;
    let eps = 1e-2f32;
    for (_, var) in &model.vars {
        let g = grads
            .get(var.as_tensor())
            .expect("checked above")
            .flatten_all()?
            .to_vec1::<f32>()?;
        let base = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let shape = var.as_tensor().shape().clone();
        for p in 0..probes.min(base.len()) {
            // Spread the probes over the tensor.
            let k = p * base.len() / probes.min(base.len());
            let mut w = base.clone();
            w[k] = base[k] + eps;
            var.set(&Tensor::from_vec(w.clone(), &shape, dev)?)?;
            let up = loss_of()?;
            w[k] = base[k] - eps;
            var.set(&Tensor::from_vec(w, &shape, dev)?)?;
            let down = loss_of()?;
            var.set(&Tensor::from_vec(base.clone(), &shape, dev)?)?;
            let numeric = (up - down) / (2.0 * eps as f64);
            let analytic = g[k] as f64;
            let rel = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-3);
            worst = worst.max(rel);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Toy task needing memory: the label is the first feature two steps before the end.
    pub(crate) fn toy(n: usize, seed: u64) -> SeqData {
        let mut rng = StdRng::seed_from_u64(seed);
        let (steps, input) = (6, 2);
        let mut d = SeqData {
            n,
            steps,
            input,
            static_dim: 1,
            ..Default::default()
        };
        for _ in 0..n {
            let bits: Vec<f32> = (0..steps).map(|_| rng.random_range(0..2) as f32).collect();
            for b in &bits {
                d.seq.extend([*b, 1.0 - *b]);
            }
            d.stat.push(rng.random_range(0..2) as f32);
            d.labels.push(bits[steps - 3]);
        }
        d
    }

    fn cfg(kind: CellKind) -> RnnConfig {
        RnnConfig {
            kind,
            input: 2,
            hidden: 8,
            static_dim: 1,
        }
    }

    #[test]
    fn gradients_match_finite_differences_for_lstm_and_gru() {
        let data = toy(16, 1);
        let idx: Vec<usize> = (0..16).collect();
        for kind in [CellKind::Lstm, CellKind::Gru] {
            let m = RnnClassifier::new(cfg(kind), 3, &Device::Cpu).unwrap();
            let worst = check_gradients(&m, &data, &idx, 4, &Device::Cpu).unwrap();
            assert!(worst < 0.05, "{kind:?}: worst relative error {worst}");
        }
    }

    #[test]
    fn tiny_lstm_and_gru_learn_a_pattern_that_needs_memory() {
        let (train, test) = (toy(512, 5), toy(200, 6));
        for kind in [CellKind::Lstm, CellKind::Gru] {
            let m = RnnClassifier::new(cfg(kind), 7, &Device::Cpu).unwrap();
            let tc = RnnTrainConfig {
                steps: 300,
                batch_size: 64,
                lr: 2e-2,
                seed: 1,
            };
            let curve = train_classifier(&m, &train, &tc, &Device::Cpu).unwrap();
            let p = m.predict(&test, &Device::Cpu).unwrap();
            let acc = p
                .iter()
                .zip(&test.labels)
                .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
                .count() as f64
                / test.n as f64;
            assert!(acc > 0.95, "{kind:?}: accuracy {acc}, losses {curve:?}");
        }
    }

    #[test]
    fn save_and_load_give_the_same_predictions() {
        let dir = tempfile::tempdir().unwrap();
        let data = toy(20, 2);
        for kind in [CellKind::Lstm, CellKind::Gru] {
            let m = RnnClassifier::new(cfg(kind), 9, &Device::Cpu).unwrap();
            let path = dir.path().join("m.safetensors");
            m.save(&path).unwrap();
            let back = RnnClassifier::load(&path, &Device::Cpu).unwrap();
            assert_eq!(back.config(), m.config());
            assert_eq!(
                back.predict(&data, &Device::Cpu).unwrap(),
                m.predict(&data, &Device::Cpu).unwrap()
            );
        }
    }
}
