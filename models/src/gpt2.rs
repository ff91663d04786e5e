//! GPT-2 in candle: learned absolute positions, pre-LayerNorm blocks, GELU (tanh) MLP,
//! tied embeddings, KV cache. Loads Hugging Face GPT-2 checkpoints (safetensors).
//!
//! Built only from ops that carry gradients (candle's fused LayerNorm and
//! `softmax_last_dim` do not, candle issue #2168), so the same code trains.
//! Projections keep HF's Conv1D layout `[in, out]`: `y = x · W + b`, no transpose, and a
//! checkpoint saved from here is a valid HF GPT-2 checkpoint.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::generation::CausalLm;
use crate::{Error, Result};

/// Model hyper-parameters, field names as in Hugging Face's GPT-2 `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest sequence (number of learned positions).
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads.
    pub n_head: usize,
    /// MLP inner size; `None` means `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Always `"gpt2"`, so HF tools recognise the folder.
    #[serde(default = "default_model_type")]
    pub model_type: String,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_model_type() -> String {
    "gpt2".into()
}

impl Config {
    /// Reads a HF `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
    }
    /// MLP inner size.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
    /// Canonical tensor names (with the `transformer.` prefix) and shapes of a checkpoint.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (e, i) = (self.n_embd, self.inner());
        let mut v = vec![
            (
                "transformer.wte.weight".to_string(),
                vec![self.vocab_size, e],
            ),
            (
                "transformer.wpe.weight".to_string(),
                vec![self.n_positions, e],
            ),
        ];
        for l in 0..self.n_layer {
            let p = format!("transformer.h.{l}");
            for (n, s) in [
                ("ln_1.weight", vec![e]),
                ("ln_1.bias", vec![e]),
                ("attn.c_attn.weight", vec![e, 3 * e]),
                ("attn.c_attn.bias", vec![3 * e]),
                ("attn.c_proj.weight", vec![e, e]),
                ("attn.c_proj.bias", vec![e]),
                ("ln_2.weight", vec![e]),
                ("ln_2.bias", vec![e]),
                ("mlp.c_fc.weight", vec![e, i]),
                ("mlp.c_fc.bias", vec![i]),
                ("mlp.c_proj.weight", vec![i, e]),
                ("mlp.c_proj.bias", vec![e]),
            ] {
                v.push((format!("{p}.{n}"), s));
            }
        }
        v.push(("transformer.ln_f.weight".into(), vec![e]));
        v.push(("transformer.ln_f.bias".into(), vec![e]));
        v
    }
}

/// The four projections of a block, named as in HF (`attn.c_attn`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    /// Fused query/key/value projection.
    AttnCAttn,
    /// Attention output projection.
    AttnCProj,
    /// MLP up projection.
    MlpCFc,
    /// MLP down projection.
    MlpCProj,
}

impl Proj {
    /// All projections, in block order.
    pub const ALL: [Proj; 4] = [
        Proj::AttnCAttn,
        Proj::AttnCProj,
        Proj::MlpCFc,
        Proj::MlpCProj,
    ];
    /// HF module path inside a block, e.g. `attn.c_attn`.
    pub fn name(self) -> &'static str {
        match self {
            Proj::AttnCAttn => "attn.c_attn",
            Proj::AttnCProj => "attn.c_proj",
            Proj::MlpCFc => "mlp.c_fc",
            Proj::MlpCProj => "mlp.c_proj",
        }
    }
    /// `(in, out)` features of this projection under `cfg`.
    pub fn dims(self, cfg: &Config) -> (usize, usize) {
        let (e, i) = (cfg.n_embd, cfg.inner());
        match self {
            Proj::AttnCAttn => (e, 3 * e),
            Proj::AttnCProj => (e, e),
            Proj::MlpCFc => (e, i),
            Proj::MlpCProj => (i, e),
        }
    }
}

/// Something that adds a term to a projection's output (e.g. a LoRA adapter), chosen per
/// forward call so one set of base weights serves many adapters.
pub trait ProjDelta: Send + Sync {
    /// The term to add to the output of projection `proj` of block `layer` for input `x`
    /// (`[.., in]` -> `[.., out]`), or `None`.
    fn delta(&self, layer: usize, proj: Proj, x: &Tensor) -> Result<Option<Tensor>>;
}

struct Conv1D {
    w: Tensor, // [in, out]
    b: Tensor, // [out]
}

impl Conv1D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_matmul(&self.w)?.broadcast_add(&self.b)?)
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // From primitive ops so that gradients flow (the fused kernel has no backward).
        Ok(candle_nn::ops::layer_norm_slow(
            x, &self.w, &self.b, self.eps,
        )?)
    }
}

struct Block {
    ln_1: LayerNorm,
    ln_2: LayerNorm,
    proj: [Conv1D; 4], // indexed like Proj::ALL
}

impl Block {
    /// Projection `p` of this block (number `layer`) on `h`, plus the adapter's term.
    fn project(
        &self,
        layer: usize,
        p: Proj,
        h: &Tensor,
        delta: Option<&dyn ProjDelta>,
    ) -> Result<Tensor> {
        let y = self.proj[p as usize].forward(h)?;
        match delta.map(|d| d.delta(layer, p, h)).transpose()?.flatten() {
            Some(d) => Ok((y + d)?),
            None => Ok(y),
        }
    }
}

/// Per-sequence key/value cache: one `(k, v)` per block, `[B, heads, T, head_dim]`.
#[derive(Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of positions cached so far.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dim(2).unwrap_or(0),
            _ => 0,
        }
    }
    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drops everything cached.
    pub fn clear(&mut self) {
        self.layers.clear();
    }
}

/// GPT-2 weights (immutable; share with `Arc`). Use [`Gpt2Lm`] for generation.
pub struct Gpt2 {
    cfg: Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt2 {
    /// Builds the model from named tensors. Names may carry HF's `transformer.` prefix or not;
    /// extra tensors (e.g. `lm_head.weight`, `attn.bias` buffers) are ignored. Tensors that
    /// are `Var`s stay trainable.
    pub fn from_tensors(cfg: &Config, ts: &HashMap<String, Tensor>) -> Result<Self> {
        let prefix = if ts.contains_key("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let full = format!("{prefix}{name}");
            let t = ts
                .get(&full)
                .ok_or_else(|| Error::Format(format!("missing tensor {full}")))?;
            if t.dims() != shape {
                return Err(Error::Format(format!(
                    "{full}: shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            // No-op (and gradient-preserving) when already f32.
            Ok(t.to_dtype(DType::F32)?)
        };
        let (e, eps) = (cfg.n_embd, cfg.layer_norm_epsilon as f32);
        if e % cfg.n_head != 0 {
            return Err(Error::Format("n_embd must be a multiple of n_head".into()));
        }
        let ln = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                w: get(&format!("{p}.weight"), &[e])?,
                b: get(&format!("{p}.bias"), &[e])?,
                eps,
            })
        };
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let conv = |p: Proj| -> Result<Conv1D> {
                let (i, o) = p.dims(cfg);
                let n = format!("h.{l}.{}", p.name());
                Ok(Conv1D {
                    w: get(&format!("{n}.weight"), &[i, o])?,
                    b: get(&format!("{n}.bias"), &[o])?,
                })
            };
            blocks.push(Block {
                ln_1: ln(&format!("h.{l}.ln_1"))?,
                ln_2: ln(&format!("h.{l}.ln_2"))?,
                proj: [
                    conv(Proj::AttnCAttn)?,
                    conv(Proj::AttnCProj)?,
                    conv(Proj::MlpCFc)?,
                    conv(Proj::MlpCProj)?,
                ],
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            wte: get("wte.weight", &[cfg.vocab_size, e])?,
            wpe: get("wpe.weight", &[cfg.n_positions, e])?,
            blocks,
            ln_f: ln("ln_f")?,
        })
    }

    /// Loads `config.json` and `model.safetensors` from a local HF-style folder.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = Config::from_file(&dir.join("config.json"))?;
        let ts = candle_core::safetensors::load(dir.join("model.safetensors"), device)?;
        Self::from_tensors(&cfg, &ts)
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Device the weights live on.
    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// Final hidden states `[B, T, n_embd]` (after `ln_f`) for token ids `[B, T]` starting at
    /// position `pos`. With a cache, keys/values are appended to it; `delta` adds adapter
    /// terms to the projections.
    pub fn hidden(
        &self,
        ids: &Tensor,
        pos: usize,
        mut cache: Option<&mut KvCache>,
        delta: Option<&dyn ProjDelta>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if pos + t > self.cfg.n_positions {
            return Err(Error::Invalid(format!(
                "sequence of {} exceeds n_positions {}",
                pos + t,
                self.cfg.n_positions
            )));
        }
        let e = self.cfg.n_embd;
        let tok = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, e))?;
        let positions = Tensor::arange(pos as u32, (pos + t) as u32, ids.device())?;
        let mut x = tok.broadcast_add(&self.wpe.index_select(&positions, 0)?)?;
        if let Some(c) = cache.as_deref_mut() {
            c.layers.resize(self.blocks.len(), None);
        }
        for (l, blk) in self.blocks.iter().enumerate() {
            let proj = |p: Proj, h: &Tensor| blk.project(l, p, h, delta);
            let h = blk.ln_1.forward(&x)?;
            let kv = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            let a = self.attention(&proj(Proj::AttnCAttn, &h)?, kv)?;
            x = (x + proj(Proj::AttnCProj, &a)?)?;
            let h = blk.ln_2.forward(&x)?;
            let m = proj(Proj::MlpCFc, &h)?.gelu()?; // candle's gelu is the tanh form ("gelu_new")
            x = (x + proj(Proj::MlpCProj, &m)?)?;
        }
        self.ln_f.forward(&x)
    }

    /// Causal self-attention over the fused `qkv` `[B, T, 3E]`, returns `[B, T, E]`.
    fn attention(&self, qkv: &Tensor, kv: Option<&mut Option<(Tensor, Tensor)>>) -> Result<Tensor> {
        let (b, t, _) = qkv.dims3()?;
        let (e, nh) = (self.cfg.n_embd, self.cfg.n_head);
        let hd = e / nh;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * e, e)?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
        if let Some(slot) = kv {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let total = k.dim(2)?;
        let past = total - t;
        let att = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (hd as f64).sqrt())?;
        let att = if t > 1 {
            // Query i (absolute past + i) sees keys 0..=past + i.
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..total).map(move |j| {
                        if j <= past + i {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            att.broadcast_add(&Tensor::from_vec(mask, (t, total), qkv.device())?)?
        } else {
            att
        };
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, e))?)
    }

    /// Logits `[B, T, vocab]` from hidden states (tied embeddings: `h · wteᵀ`).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.broadcast_matmul(&self.wte.t()?)?)
    }

    /// Full forward without cache: logits `[B, T, vocab]` for ids `[B, T]` (training path).
    pub fn forward_train(&self, ids: &Tensor, delta: Option<&dyn ProjDelta>) -> Result<Tensor> {
        let h = self.hidden(ids, 0, None, delta)?;
        self.logits(&h)
    }

    /// Named weights (canonical `transformer.` names), e.g. to save or to merge into.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut m = HashMap::new();
        m.insert("transformer.wte.weight".into(), self.wte.clone());
        m.insert("transformer.wpe.weight".into(), self.wpe.clone());
        for (l, blk) in self.blocks.iter().enumerate() {
            let p = format!("transformer.h.{l}");
            for (ln, n) in [(&blk.ln_1, "ln_1"), (&blk.ln_2, "ln_2")] {
                m.insert(format!("{p}.{n}.weight"), ln.w.clone());
                m.insert(format!("{p}.{n}.bias"), ln.b.clone());
            }
            for pr in Proj::ALL {
                let c = &blk.proj[pr as usize];
                m.insert(format!("{p}.{}.weight", pr.name()), c.w.clone());
                m.insert(format!("{p}.{}.bias", pr.name()), c.b.clone());
            }
        }
        m.insert("transformer.ln_f.weight".into(), self.ln_f.w.clone());
        m.insert("transformer.ln_f.bias".into(), self.ln_f.b.clone());
        m
    }

    /// Writes `config.json` and `model.safetensors` (HF GPT-2 layout) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let cfg =
            serde_json::to_string_pretty(&self.cfg).map_err(|e| Error::Format(e.to_string()))?;
        std::fs::write(dir.join("config.json"), cfg)?;
        let ts: HashMap<String, Tensor> = self
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.detach()))
            .collect();
        candle_core::safetensors::save(&ts, dir.join("model.safetensors"))?;
        Ok(())
    }
}

/// GPT-2 initialisation (normal(0, 0.02), residual projections scaled by 1/sqrt(2·n_layer),
/// LayerNorm ones/zeros), seeded and deterministic.
pub fn init_tensors(cfg: &Config, seed: u64, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut rng = crate::lora::SeededNormal::new(seed);
    let mut m = HashMap::new();
    for (name, shape) in cfg.tensor_shapes() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; n]
        } else if name.contains(".ln_") {
            vec![1.0; n]
        } else {
            let std = if name.ends_with("c_proj.weight") {
                0.02 / (2.0 * cfg.n_layer as f32).sqrt()
            } else {
                0.02
            };
            (0..n).map(|_| rng.sample() * std).collect()
        };
        m.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Ok(m)
}

/// A GPT-2 with its own KV cache and an optional adapter: the [`CausalLm`] that generation
/// drives. Many of these can share one `Arc<Gpt2>`.
pub struct Gpt2Lm {
    model: Arc<Gpt2>,
    cache: KvCache,
    adapter: Option<Arc<dyn ProjDelta>>,
}

impl Gpt2Lm {
    /// A fresh sequence over `model`, with `adapter` applied to every forward call.
    pub fn new(model: Arc<Gpt2>, adapter: Option<Arc<dyn ProjDelta>>) -> Self {
        Self {
            model,
            cache: KvCache::default(),
            adapter,
        }
    }
    /// The shared base model.
    pub fn model(&self) -> &Arc<Gpt2> {
        &self.model
    }
}

impl CausalLm for Gpt2Lm {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::Invalid("forward on no tokens".into()));
        }
        if pos != self.cache.len() {
            return Err(Error::Invalid(format!(
                "position {pos} but cache holds {}",
                self.cache.len()
            )));
        }
        let ids = Tensor::new(tokens, self.model.device())?.unsqueeze(0)?;
        let h = self
            .model
            .hidden(&ids, pos, Some(&mut self.cache), self.adapter.as_deref())?;
        let last = h.narrow(1, tokens.len() - 1, 1)?;
        Ok(self.model.logits(&last)?.flatten_all()?)
    }
    fn clear_cache(&mut self) {
        self.cache.clear();
    }
    fn max_seq_len(&self) -> usize {
        self.model.cfg.n_positions
    }
}

impl Gpt2 {
    /// One decode step for several sequences at once: `tokens[i]` is appended to
    /// `caches[i]` (each at its own position) and the logits `[n, vocab]` of the new positions
    /// are returned. The projections and the MLP run once for the whole batch; attention runs
    /// over the caches padded to the longest one, with the padding masked out.
    pub fn decode_batch(
        &self,
        tokens: &[u32],
        caches: &mut [&mut KvCache],
        delta: Option<&dyn ProjDelta>,
    ) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 || n != caches.len() {
            return Err(Error::Invalid(format!(
                "decode_batch: {n} tokens for {} caches",
                caches.len()
            )));
        }
        let dev = self.wte.device();
        let (e, nh) = (self.cfg.n_embd, self.cfg.n_head);
        let hd = e / nh;
        let pos: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        if let Some(&p) = pos.iter().find(|&&p| p + 1 > self.cfg.n_positions) {
            return Err(Error::Invalid(format!(
                "sequence of {} exceeds n_positions {}",
                p + 1,
                self.cfg.n_positions
            )));
        }
        let total = pos.iter().max().copied().unwrap_or(0) + 1;
        let ids = Tensor::new(tokens, dev)?;
        let pos_ids = Tensor::new(pos.iter().map(|&p| p as u32).collect::<Vec<_>>(), dev)?;
        let mut x = self
            .wte
            .index_select(&ids, 0)?
            .add(&self.wpe.index_select(&pos_ids, 0)?)?
            .reshape((n, 1, e))?;
        // Sequence i sees its own keys 0..=pos[i]; the rest is padding.
        let mask: Vec<f32> = pos
            .iter()
            .flat_map(|&p| (0..total).map(move |j| if j <= p { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, 1, 1, total), dev)?;
        for c in caches.iter_mut() {
            c.layers.resize(self.blocks.len(), None);
        }
        for (l, blk) in self.blocks.iter().enumerate() {
            let proj = |p: Proj, h: &Tensor| blk.project(l, p, h, delta);
            let h = blk.ln_1.forward(&x)?;
            let qkv = proj(Proj::AttnCAttn, &h)?;
            let split = |i: usize| -> Result<Tensor> {
                Ok(qkv
                    .narrow(2, i * e, e)?
                    .reshape((n, 1, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let (mut ks, mut vs) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for (i, c) in caches.iter_mut().enumerate() {
                let (ki, vi) = (k.narrow(0, i, 1)?, v.narrow(0, i, 1)?);
                let slot = &mut c.layers[l];
                let (ck, cv) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &ki], 2)?, Tensor::cat(&[&pv, &vi], 2)?),
                    None => (ki, vi),
                };
                let pad = total - ck.dim(2)?;
                let padded = |t: &Tensor| -> Result<Tensor> {
                    if pad == 0 {
                        return Ok(t.clone());
                    }
                    let z = Tensor::zeros((1, nh, pad, hd), t.dtype(), dev)?;
                    Ok(Tensor::cat(&[t, &z], 2)?)
                };
                ks.push(padded(&ck)?);
                vs.push(padded(&cv)?);
                *slot = Some((ck, cv));
            }
            let (kb, vb) = (Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?);
            let att = (q.matmul(&kb.transpose(2, 3)?.contiguous()?)? / (hd as f64).sqrt())?;
            let att = candle_nn::ops::softmax(&att.broadcast_add(&mask)?, D::Minus1)?;
            let a = att.matmul(&vb)?.transpose(1, 2)?.reshape((n, 1, e))?;
            x = (x + proj(Proj::AttnCProj, &a)?)?;
            let h = blk.ln_2.forward(&x)?;
            let m = proj(Proj::MlpCFc, &h)?.gelu()?;
            x = (x + proj(Proj::MlpCProj, &m)?)?;
        }
        let h = self.ln_f.forward(&x)?;
        Ok(self.logits(&h)?.reshape((n, self.cfg.vocab_size))?)
    }
}

/// Several GPT-2 sequences decoded together over shared weights and one adapter: the
/// [`BatchedLm`](crate::generation::BatchedLm) that batched generation drives. Prompts are
/// prefilled one sequence at a time (their lengths differ); decode steps run as one batch
/// ([`Gpt2::decode_batch`]).
pub struct Gpt2Batch {
    model: Arc<Gpt2>,
    adapter: Option<Arc<dyn ProjDelta>>,
}

impl Gpt2Batch {
    /// A batch driver over `model` with `adapter` applied to every sequence.
    pub fn new(model: Arc<Gpt2>, adapter: Option<Arc<dyn ProjDelta>>) -> Self {
        Self { model, adapter }
    }
}

impl crate::generation::BatchedLm for Gpt2Batch {
    type Cache = KvCache;
    fn new_cache(&self) -> KvCache {
        KvCache::default()
    }
    fn forward_batch(&self, seqs: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let delta = self.adapter.as_deref();
        if seqs.iter().all(|s| s.len() == 1) && caches.iter().all(|c| !c.is_empty()) {
            let tokens: Vec<u32> = seqs.iter().map(|s| s[0]).collect();
            return self.model.decode_batch(&tokens, caches, delta);
        }
        let mut rows = Vec::with_capacity(seqs.len());
        for (s, c) in seqs.iter().zip(caches.iter_mut()) {
            if s.is_empty() {
                return Err(Error::Invalid("forward on no tokens".into()));
            }
            let ids = Tensor::new(*s, self.model.device())?.unsqueeze(0)?;
            let pos = c.len();
            let h = self.model.hidden(&ids, pos, Some(&mut **c), delta)?;
            let last = h.narrow(1, s.len() - 1, 1)?;
            rows.push(self.model.logits(&last)?.flatten_all()?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }
    fn context_len(&self) -> usize {
        self.model.cfg.n_positions
    }
}
