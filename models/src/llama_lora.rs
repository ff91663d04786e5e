//! LoRA fine-tuning of LLaMA-architecture models (the cloud model's family): a trainable f32
//! forward pass built from primitive ops (RMSNorm, RoPE, softmax and SiLU all carry
//! gradients, unlike candle's fused kernels and `QMatMul`), with LoRA on chosen projections
//! (PEFT's usual `q_proj`, `v_proj`), saved in the Hugging Face PEFT layout.
//!
//! Weights use Hugging Face names and layout (`model.layers.N.self_attn.q_proj.weight`,
//! `[out, in]`, RoPE in the "halves" layout), e.g. a dequantized checkpoint folder. Serving
//! stays with [`crate::llama::Llama`]; merge an adapter into the dense weights with
//! [`LlamaLoraAdapter::merge_into`] to serve it there.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::llama::{LayerProj, Llama, LlamaConfig, ProjHook};
use crate::lora::{LoraConfig, LoraWeights, SeededNormal};
use crate::{Error, Result};

/// The seven projections of a LLaMA layer, by HF module path.
pub const LLAMA_PROJS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// LoRA weights over a LLaMA, keyed by `(layer, module path)`.
pub struct LlamaLoraAdapter {
    /// Hyper-parameters.
    pub config: LoraConfig,
    /// Weights per adapted projection.
    pub weights: BTreeMap<(usize, String), LoraWeights>,
}

impl LlamaLoraAdapter {
    /// A fresh adapter (`B` = 0) and its trainable vars named like PEFT.
    pub fn new(
        cfg: &LlamaConfig,
        config: LoraConfig,
        seed: u64,
        dev: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let mut rng = SeededNormal::new(seed);
        let (mut weights, mut vars) = (BTreeMap::new(), Vec::new());
        for l in 0..cfg.num_hidden_layers {
            for p in LLAMA_PROJS {
                if !config.targets(p) {
                    continue;
                }
                let (i, o) = proj_dims(cfg, p);
                let (w, a, b) = LoraWeights::init(i, o, config.r, config.scale(), &mut rng, dev)?;
                let n = format!("base_model.model.model.layers.{l}.{p}");
                vars.push((format!("{n}.lora_A.weight"), a));
                vars.push((format!("{n}.lora_B.weight"), b));
                weights.insert((l, p.to_string()), w);
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

    /// Writes `adapter_config.json` + `adapter_model.safetensors` (PEFT layout).
    pub fn save(&self, base_model: &str, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let cfg = serde_json::json!({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": self.config.r,
            "lora_alpha": self.config.alpha, "lora_dropout": 0.0,
            "target_modules": self.config.target_modules, "base_model_name_or_path": base_model,
            "fan_in_fan_out": false, "bias": "none", "inference_mode": true,
        });
        std::fs::write(
            dir.join(crate::peft::CONFIG_FILE),
            serde_json::to_string_pretty(&cfg).map_err(|e| Error::Format(e.to_string()))?,
        )?;
        let mut ts = HashMap::new();
        for ((l, p), w) in &self.weights {
            let n = format!("base_model.model.model.layers.{l}.{p}");
            ts.insert(format!("{n}.lora_A.weight"), w.a.detach());
            ts.insert(format!("{n}.lora_B.weight"), w.b.detach());
        }
        candle_core::safetensors::save(&ts, dir.join(crate::peft::WEIGHTS_FILE))?;
        Ok(())
    }

    /// Reads an adapter written by [`Self::save`] (or PEFT, names with or without `.default`).
    pub fn load(dir: &Path, dev: &Device) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join(crate::peft::CONFIG_FILE))?;
        let c: crate::peft::AdapterConfig =
            serde_json::from_str(&text).map_err(|e| Error::Format(e.to_string()))?;
        let config = LoraConfig {
            r: c.r,
            alpha: c.lora_alpha,
            target_modules: c.target_modules,
        };
        let ts = candle_core::safetensors::load(dir.join(crate::peft::WEIGHTS_FILE), dev)?;
        let mut parts: BTreeMap<(usize, String), (Option<Tensor>, Option<Tensor>)> =
            BTreeMap::new();
        for (name, t) in ts {
            let name = name.replace(".default", "");
            let (stem, is_a) = match (
                name.strip_suffix(".lora_A.weight"),
                name.strip_suffix(".lora_B.weight"),
            ) {
                (Some(s), _) => (s.to_string(), true),
                (_, Some(s)) => (s.to_string(), false),
                _ => return Err(Error::Format(format!("unexpected tensor {name}"))),
            };
            let rest = stem
                .split("layers.")
                .nth(1)
                .ok_or_else(|| Error::Format(format!("unexpected tensor {name}")))?;
            let (l, module) = rest
                .split_once('.')
                .ok_or_else(|| Error::Format(format!("unexpected tensor {name}")))?;
            let l: usize = l
                .parse()
                .map_err(|_| Error::Format(format!("unexpected tensor {name}")))?;
            let e = parts.entry((l, module.to_string())).or_default();
            let t = t.to_dtype(DType::F32)?;
            if is_a {
                e.0 = Some(t)
            } else {
                e.1 = Some(t)
            }
        }
        let mut weights = BTreeMap::new();
        for (k, v) in parts {
            match v {
                (Some(a), Some(b)) => weights.insert(
                    k,
                    LoraWeights {
                        a,
                        b,
                        scale: config.scale(),
                    },
                ),
                _ => {
                    return Err(Error::Format(format!(
                        "layer {} {}: lora_A or lora_B missing",
                        k.0, k.1
                    )))
                }
            };
        }
        Ok(Self { config, weights })
    }

    /// `weights` (HF names) with every update merged in: `W + scale · B A`.
    pub fn merge_into(&self, weights: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        let mut out = weights.clone();
        for ((l, p), w) in &self.weights {
            let name = format!("model.layers.{l}.{p}.weight");
            let t = out
                .get(&name)
                .ok_or_else(|| Error::Format(format!("missing {name}")))?;
            let merged = (t + w.dense()?)?.detach();
            out.insert(name, merged);
        }
        Ok(out)
    }
}

fn proj_dims(cfg: &LlamaConfig, p: &str) -> (usize, usize) {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let kv = cfg.kv_heads() * cfg.head_dim();
    match p {
        "self_attn.k_proj" | "self_attn.v_proj" => (d, kv),
        "mlp.gate_proj" | "mlp.up_proj" => (d, f),
        "mlp.down_proj" => (f, d),
        _ => (d, d),
    }
}

/// An adapter prepared for serving on one [`Llama`]: shapes checked against the model, and
/// q/k updates permuted into the model's RoPE row order (GGUF files interleave them). Many
/// of these share one base model; [`BatchLora`] applies each sequence's own in a batch.
pub struct ServingLora {
    weights: BTreeMap<(usize, String), LoraWeights>,
}

impl ServingLora {
    /// Prepares `adapter` (Hugging Face layout, as trained and saved here or by PEFT) for
    /// `model`; an adapter for another architecture or size is refused.
    pub fn new(adapter: &LlamaLoraAdapter, model: &Llama) -> Result<Self> {
        let cfg = model.config();
        let mut weights = BTreeMap::new();
        for ((l, p), w) in &adapter.weights {
            if *l >= cfg.num_hidden_layers || !LLAMA_PROJS.contains(&p.as_str()) {
                return Err(Error::Invalid(format!(
                    "adapter module layers.{l}.{p} does not exist in the base model"
                )));
            }
            let (i, o) = proj_dims(cfg, p);
            let (r, a_in) = w.a.dims2()?;
            let (b_out, b_r) = w.b.dims2()?;
            if a_in != i || b_out != o || b_r != r {
                return Err(Error::Invalid(format!(
                    "adapter layers.{l}.{p}: A {r}x{a_in}, B {b_out}x{b_r} do not fit a {o}x{i} projection"
                )));
            }
            let mut w = w.clone();
            let heads = match p.as_str() {
                "self_attn.q_proj" => Some(cfg.num_attention_heads),
                "self_attn.k_proj" => Some(cfg.kv_heads()),
                _ => None,
            };
            if let (Some(h), true) = (heads, model.rope_interleaved()) {
                // HF rows (head, 2, hd/2) -> GGUF rows (head, hd/2, 2), as llama.cpp permutes.
                let hd = o / h;
                w.b =
                    w.b.reshape((h, 2, hd / 2, r))?
                        .transpose(1, 2)?
                        .contiguous()?
                        .reshape((o, r))?;
            }
            weights.insert((*l, p.clone()), w);
        }
        Ok(Self { weights })
    }
}

/// The adapters of one batch, sequence by sequence (`None`: the base model), as a
/// [`ProjHook`] for [`Llama::forward_seqs_with`].
pub struct BatchLora<'a> {
    /// One entry per sequence of the batch.
    pub per_seq: Vec<Option<&'a ServingLora>>,
    /// Widths of the model's projections, by [`LayerProj`] part.
    dims: (usize, usize, usize),
}

impl<'a> BatchLora<'a> {
    /// The hook for a batch whose sequence `s` uses `per_seq[s]`.
    pub fn new(model: &Llama, per_seq: Vec<Option<&'a ServingLora>>) -> Self {
        let c = model.config();
        Self {
            per_seq,
            dims: (
                c.hidden_size,
                c.kv_heads() * c.head_dim(),
                c.intermediate_size,
            ),
        }
    }

    /// Whether any sequence has an adapter (otherwise pass no hook at all).
    pub fn any(&self) -> bool {
        self.per_seq.iter().any(|a| a.is_some())
    }
}

impl ProjHook for BatchLora<'_> {
    fn delta(
        &self,
        layer: usize,
        proj: LayerProj,
        x: &Tensor,
        rows: &[(usize, usize)],
    ) -> Result<Option<Tensor>> {
        let (d, kv, f) = self.dims;
        let parts: &[(&str, usize)] = match proj {
            LayerProj::Qkv => &[
                ("self_attn.q_proj", d),
                ("self_attn.k_proj", kv),
                ("self_attn.v_proj", kv),
            ],
            LayerProj::O => &[("self_attn.o_proj", d)],
            LayerProj::GateUp => &[("mlp.gate_proj", f), ("mlp.up_proj", f)],
            LayerProj::Down => &[("mlp.down_proj", d)],
        };
        let out: usize = parts.iter().map(|p| p.1).sum();
        let mut blocks = Vec::with_capacity(rows.len());
        let mut any = false;
        for (&(off, n), adapter) in rows.iter().zip(&self.per_seq) {
            let ws: Vec<Option<&LoraWeights>> = parts
                .iter()
                .map(|(p, _)| adapter.and_then(|a| a.weights.get(&(layer, p.to_string()))))
                .collect();
            if ws.iter().all(|w| w.is_none()) {
                blocks.push(Tensor::zeros((n, out), DType::F32, x.device())?);
                continue;
            }
            any = true;
            let xs = x.narrow(0, off, n)?;
            let cols = ws
                .iter()
                .zip(parts)
                .map(|(w, (_, width))| match w {
                    Some(w) => w.delta(&xs),
                    None => Ok(Tensor::zeros((n, *width), DType::F32, x.device())?),
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(Tensor::cat(&cols, 1)?);
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(Tensor::cat(&blocks, 0)?))
    }
}

/// A LLaMA whose forward pass is differentiable end to end (f32, no KV cache): the
/// training path for LoRA.
pub struct TrainableLlama {
    cfg: LlamaConfig,
    w: HashMap<String, Tensor>,
    cos: Tensor, // [max_pos, head_dim]
    sin: Tensor,
}

impl TrainableLlama {
    /// Builds from HF-named tensors (see [`LlamaConfig::hf_tensor_shapes`]), frozen.
    pub fn new(cfg: &LlamaConfig, weights: &HashMap<String, Tensor>, dev: &Device) -> Result<Self> {
        Self::build(cfg, weights, dev, true)
    }

    /// Every weight as a trainable `Var` (full fine-tuning): the model and its vars.
    pub fn trainable(
        cfg: &LlamaConfig,
        weights: &HashMap<String, Tensor>,
        dev: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let mut vars = Vec::new();
        let mut ts = HashMap::new();
        for (name, _) in cfg.hf_tensor_shapes() {
            let t = weights
                .get(&name)
                .ok_or_else(|| Error::Format(format!("missing tensor {name}")))?;
            let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
            ts.insert(name.clone(), v.as_tensor().clone());
            vars.push((name, v));
        }
        Ok((Self::build(cfg, &ts, dev, false)?, vars))
    }

    /// The weights (HF names).
    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.w
    }

    fn build(
        cfg: &LlamaConfig,
        weights: &HashMap<String, Tensor>,
        dev: &Device,
        freeze: bool,
    ) -> Result<Self> {
        let mut w = HashMap::new();
        for (name, shape) in cfg.hf_tensor_shapes() {
            let t = weights
                .get(&name)
                .ok_or_else(|| Error::Format(format!("missing tensor {name}")))?;
            if t.dims() != shape.as_slice() {
                return Err(Error::Format(format!(
                    "{name}: shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(DType::F32)?;
            w.insert(name, if freeze { t.detach() } else { t });
        }
        let (cos, sin) = crate::llama::rope_tables(cfg, dev)?;
        Ok(Self {
            cfg: cfg.clone(),
            w,
            // HF: emb = cat(freqs, freqs)
            cos: Tensor::cat(&[&cos, &cos], 1)?,
            sin: Tensor::cat(&[&sin, &sin], 1)?,
        })
    }

    fn rms(&self, x: &Tensor, w: &str) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(ms + self.cfg.rms_norm_eps)?.sqrt()?)?;
        Ok(x.broadcast_mul(&self.w[w])?)
    }

    fn rope(&self, x: &Tensor, t: usize) -> Result<Tensor> {
        let hd = self.cfg.head_dim();
        let (cos, sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
        let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?)
    }

    /// Logits `[B, T, vocab]` for ids `[B, T]`, with `adapter` applied.
    pub fn forward(&self, ids: &Tensor, adapter: Option<&LlamaLoraAdapter>) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let embed = &self.w["model.embed_tokens.weight"];
        let mut x = embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, c.hidden_size))?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), ids.device())?;
        for l in 0..c.num_hidden_layers {
            let proj = |p: &str, h: &Tensor| -> Result<Tensor> {
                let y =
                    h.broadcast_matmul(&self.w[&format!("model.layers.{l}.{p}.weight")].t()?)?;
                match adapter.and_then(|a| a.weights.get(&(l, p.to_string()))) {
                    Some(lw) => Ok((y + lw.delta(h)?)?),
                    None => Ok(y),
                }
            };
            let h = self.rms(&x, &format!("model.layers.{l}.input_layernorm.weight"))?;
            let heads = |y: Tensor, n: usize| -> Result<Tensor> {
                Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let q = self.rope(&heads(proj("self_attn.q_proj", &h)?, nh)?, t)?;
            let k = self.rope(&heads(proj("self_attn.k_proj", &h)?, nkv)?, t)?;
            let v = heads(proj("self_attn.v_proj", &h)?, nkv)?;
            // Grouped-query attention: each kv head serves nh / nkv query heads.
            let rep = |x: Tensor| -> Result<Tensor> {
                Ok(if nh == nkv {
                    x
                } else {
                    x.unsqueeze(2)?
                        .repeat((1, 1, nh / nkv, 1, 1))?
                        .reshape((b, nh, t, hd))?
                })
            };
            let (k, v) = (rep(k)?, rep(v)?);
            let att = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (hd as f64).sqrt())?
                .broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * hd))?;
            x = (x + proj("self_attn.o_proj", &o)?)?;
            let h = self.rms(
                &x,
                &format!("model.layers.{l}.post_attention_layernorm.weight"),
            )?;
            let m = (proj("mlp.gate_proj", &h)?.silu()? * proj("mlp.up_proj", &h)?)?;
            x = (x + proj("mlp.down_proj", &m)?)?;
        }
        let x = self.rms(&x, "model.norm.weight")?;
        let head = if c.tie_word_embeddings {
            embed
        } else {
            &self.w["lm_head.weight"]
        };
        Ok(x.broadcast_matmul(&head.t()?)?)
    }
}

/// Reads a llama GGUF (e.g. the cloud model) as dense f32 tensors under Hugging Face names
/// and layout: dequantized, and with q/k rows un-permuted from GGUF's interleaved-RoPE order
/// back to HF's halves order.
pub fn hf_weights_from_gguf(
    path: &Path,
    dev: &Device,
) -> Result<(LlamaConfig, HashMap<String, Tensor>)> {
    let mut g = crate::gguf::Gguf::open(path)?;
    let heads = g.get_u32("llama.attention.head_count")? as usize;
    let kv_heads = g
        .get_u32("llama.attention.head_count_kv")
        .unwrap_or(heads as u32) as usize;
    let embed = g.tensor("token_embd.weight", dev)?.dequantize(dev)?;
    let cfg = LlamaConfig {
        vocab_size: embed.dim(0)?,
        hidden_size: g.get_u32("llama.embedding_length")? as usize,
        intermediate_size: g.get_u32("llama.feed_forward_length")? as usize,
        num_hidden_layers: g.get_u32("llama.block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv_heads),
        rms_norm_eps: g
            .get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap_or(1e-5) as f64,
        rope_theta: g.get_f32("llama.rope.freq_base").unwrap_or(10_000.0),
        max_position_embeddings: g.get_u32("llama.context_length").unwrap_or(2048) as usize,
        tie_word_embeddings: !g.has_tensor("output.weight"),
    };
    // Inverse of llama.cpp's `permute`: rows (head, 2, hd/2) -> (head, hd/2, 2) ... and back.
    let unpermute = |w: Tensor, n_head: usize| -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        let hd = rows / n_head;
        Ok(w.reshape((n_head, hd / 2, 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?)
    };
    let mut w = HashMap::new();
    if !cfg.tie_word_embeddings {
        w.insert(
            "lm_head.weight".to_string(),
            g.tensor("output.weight", dev)?.dequantize(dev)?,
        );
    }
    w.insert("model.embed_tokens.weight".to_string(), embed);
    w.insert(
        "model.norm.weight".to_string(),
        g.tensor("output_norm.weight", dev)?.dequantize(dev)?,
    );
    for i in 0..cfg.num_hidden_layers {
        let mut t = |n: &str| -> Result<Tensor> {
            Ok(g.tensor(&format!("blk.{i}.{n}.weight"), dev)?
                .dequantize(dev)?)
        };
        let p = format!("model.layers.{i}");
        let q = unpermute(t("attn_q")?, heads)?;
        let k = unpermute(t("attn_k")?, kv_heads)?;
        for (name, v) in [
            ("self_attn.q_proj", q),
            ("self_attn.k_proj", k),
            ("self_attn.v_proj", t("attn_v")?),
            ("self_attn.o_proj", t("attn_output")?),
            ("mlp.gate_proj", t("ffn_gate")?),
            ("mlp.up_proj", t("ffn_up")?),
            ("mlp.down_proj", t("ffn_down")?),
            ("input_layernorm", t("attn_norm")?),
            ("post_attention_layernorm", t("ffn_norm")?),
        ] {
            w.insert(format!("{p}.{name}.weight"), v);
        }
    }
    Ok((cfg, w))
}
