//! Cloud LLM: the LLaMA architecture (RMSNorm, SwiGLU MLP, RoPE, grouped-query attention).
//!
//! One model struct serves three sources: a GGUF file (quantized weights, optionally
//! requantized at load — Q4_1 matmuls are scalar in candle, Q8_0 ones use SIMD), a Hugging
//! Face checkpoint folder (safetensors + `config.json`), and any `VarBuilder` (tests build
//! tiny random models this way).
//!
//! The KV cache lives outside the weights ([`KvCache`]), so one loaded model can run many
//! sequences. [`Llama::forward_seqs`] feeds several sequences at once: the projections and
//! MLP run once over all their tokens stacked, attention runs per sequence over its own
//! cache and position — that is what batched decoding is built on.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::attention::{Dims, LayerKv};
use crate::generation::CausalLm;
use crate::gguf::Gguf;
use crate::{Error, Result};

/// Hyper-parameters, named as in a Hugging Face LLaMA `config.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    /// Longest context.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the output head reuses the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f32 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

impl LlamaConfig {
    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Names and shapes of every tensor of a Hugging Face checkpoint of this configuration
    /// (`lm_head.weight` only when the embeddings are not tied).
    pub fn hf_tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f, hd) = (self.hidden_size, self.intermediate_size, self.head_dim());
        let kv = self.kv_heads() * hd;
        let mut out = vec![
            (
                "model.embed_tokens.weight".to_string(),
                vec![self.vocab_size, d],
            ),
            ("model.norm.weight".to_string(), vec![d]),
        ];
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![self.vocab_size, d]));
        }
        for i in 0..self.num_hidden_layers {
            let p = format!("model.layers.{i}");
            for (n, s) in [
                ("self_attn.q_proj.weight", vec![d, d]),
                ("self_attn.k_proj.weight", vec![kv, d]),
                ("self_attn.v_proj.weight", vec![kv, d]),
                ("self_attn.o_proj.weight", vec![d, d]),
                ("mlp.gate_proj.weight", vec![f, d]),
                ("mlp.up_proj.weight", vec![f, d]),
                ("mlp.down_proj.weight", vec![d, f]),
                ("input_layernorm.weight", vec![d]),
                ("post_attention_layernorm.weight", vec![d]),
            ] {
                out.push((format!("{p}.{n}"), s));
            }
        }
        out
    }
}

/// A weight matrix `[out, in]`, quantized or dense.
#[derive(Debug, Clone)]
pub(crate) enum Proj {
    Quant(QMatMul),
    /// Quantized with `pad` zero columns appended; inputs get `pad` zeros too.
    PaddedQuant {
        q: QMatMul,
        pad: usize,
    },
    Dense(candle_nn::Linear),
    /// Q4_1 or Q8_0 blocks repacked for our own AVX512-VNNI kernels (see [`q41`]).
    #[cfg(target_arch = "x86_64")]
    Q41(std::sync::Arc<q41::PackedQ41>),
}

/// Whether Q4_1 matrices stay Q4_1 and use our own AVX512-VNNI kernels (instead of being
/// requantized to Q8_0): on x86-64 CPUs with avx512f/bw/vnni, unless
/// `NETGPT_NO_Q41_KERNEL=1`.
pub fn native_q41() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        q41::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// candle's repacked AVX512-VNNI Q8_0 kernels only take widths that are multiples of 256.
const VNNI_K: usize = 256;

/// Whether to pad for the VNNI kernels; `NETGPT_NO_VNNI_PAD=1` turns it off (for A/B runs).
fn has_vnni() -> bool {
    if std::env::var_os("NETGPT_NO_VNNI_PAD").is_some_and(|v| v != "0") {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Proj {
    fn from_qtensor(q: QTensor, requant: Option<GgmlDType>) -> Result<Self> {
        let q = match requant {
            // Our Q4_1 kernel reads half the bytes of Q8_0: keep the blocks as they are.
            Some(GgmlDType::Q8_0)
                if q.dtype() == GgmlDType::Q4_1 && q.device().is_cpu() && native_q41() =>
            {
                q
            }
            Some(to) if needs_requant(q.dtype(), to) => {
                let dense = q.dequantize(&q.device())?;
                let (_, k) = dense.dims2()?;
                let bs = to.block_size();
                if k % bs != 0 {
                    // k-quants have 256-wide blocks: widen with zero columns (inputs too).
                    let pad = k.div_ceil(bs) * bs - k;
                    let dense = dense.pad_with_zeros(candle_core::D::Minus1, 0, pad)?;
                    let q = QMatMul::from_qtensor(QTensor::quantize(&dense, to)?)?;
                    return Ok(Proj::PaddedQuant { q, pad });
                }
                QTensor::quantize(&dense, to)?
            }
            _ => q,
        };
        Ok(Proj::Quant(QMatMul::from_qtensor(q)?))
    }

    fn from_dense(w: Tensor, quant: Option<GgmlDType>) -> Result<Self> {
        Ok(match quant {
            Some(to) => Proj::Quant(QMatMul::from_qtensor(QTensor::quantize(&w, to)?)?),
            None => Proj::Dense(candle_nn::Linear::new(w, None)),
        })
    }

    /// Stacks matrices with the same input width into one (more output rows), so one matmul
    /// replaces several: q/k/v, and gate/up. Quantized blocks are whole rows, so same-type
    /// quantized matrices stack by concatenating their bytes.
    fn stack(parts: Vec<Proj>) -> Result<Self> {
        // Quantized parts of one block type and padding stack by concatenating their bytes.
        let quant: Vec<(&QTensor, usize)> = parts
            .iter()
            .filter_map(|p| match p {
                Proj::Quant(QMatMul::QTensor(q)) => Some((q.as_ref(), 0)),
                Proj::PaddedQuant {
                    q: QMatMul::QTensor(q),
                    pad,
                } => Some((q.as_ref(), *pad)),
                _ => None,
            })
            .collect();
        if quant.len() == parts.len()
            && quant
                .iter()
                .all(|(q, pad)| q.dtype() == quant[0].0.dtype() && *pad == quant[0].1)
        {
            let (first, pad) = quant[0];
            let dtype = first.dtype();
            let k = first.shape().dims2()?.1;
            let mut rows = 0;
            let mut bytes = Vec::new();
            for (q, _) in &quant {
                let (n, qk) = q.shape().dims2()?;
                if qk != k {
                    return Err(Error::Format("stacked matrices differ in width".into()));
                }
                rows += n;
                bytes.extend_from_slice(&q.data()?);
            }
            let dev = first.device();
            let storage = candle_core::quantized::QStorage::from_data(
                std::borrow::Cow::Owned(bytes),
                &dev,
                dtype,
            )?;
            let q = QMatMul::from_qtensor(QTensor::new(storage, (rows, k))?)?;
            return Ok(if pad == 0 {
                Proj::Quant(q)
            } else {
                Proj::PaddedQuant { q, pad }
            });
        }
        let ws = parts
            .iter()
            .map(|p| match p {
                Proj::Quant(QMatMul::QTensor(q)) => Ok(q.dequantize(&q.device())?),
                Proj::Quant(QMatMul::Tensor(t)) => Ok(t.clone()),
                Proj::Quant(QMatMul::TensorF16(t)) => Ok(t.to_dtype(DType::F32)?),
                Proj::Dense(l) => Ok(l.weight().clone()),
                Proj::PaddedQuant { .. } => {
                    Err(Error::Format("cannot stack padded matrices".into()))
                }
                #[cfg(target_arch = "x86_64")]
                Proj::Q41(_) => Err(Error::Format("cannot stack packed matrices".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Proj::Dense(candle_nn::Linear::new(
            Tensor::cat(&ws, 0)?,
            None,
        )))
    }

    /// On CPUs with AVX512-VNNI, repacks Q4_1 and Q8_0 matrices for our own kernels
    /// ([`q41`]); with those off (`NETGPT_NO_Q41_KERNEL=1`), widens a Q8_0 matrix whose input
    /// width is not a multiple of 256 with zero blocks, so candle takes its repacked VNNI
    /// kernel instead of the generic one (measured faster even with the extra zeros: see
    /// `tests/cloud_perf.rs`).
    fn pad_for_vnni(self) -> Result<Self> {
        let Proj::Quant(QMatMul::QTensor(q)) = &self else {
            return Ok(self);
        };
        let (n, k) = q.shape().dims2()?;
        #[cfg(target_arch = "x86_64")]
        if q.dtype() == GgmlDType::Q4_1
            && n.is_multiple_of(16)
            && k.is_multiple_of(32)
            && q.device().is_cpu()
            && native_q41()
        {
            let packed = q41::PackedQ41::pack(&q.data()?, n, k)?;
            return Ok(Proj::Q41(std::sync::Arc::new(packed)));
        }
        #[cfg(target_arch = "x86_64")]
        if q.dtype() == GgmlDType::Q8_0
            && n.is_multiple_of(16)
            && k.is_multiple_of(32)
            && q.device().is_cpu()
            && native_q41()
        {
            let packed = q41::PackedQ41::pack_q8_0(&q.data()?, n, k)?;
            return Ok(Proj::Q41(std::sync::Arc::new(packed)));
        }
        if q.dtype() != GgmlDType::Q8_0 || k % VNNI_K == 0 || n % 16 != 0 || !has_vnni() {
            return Ok(self);
        }
        let kp = k.div_ceil(VNNI_K) * VNNI_K;
        let dt = q.dtype();
        let row = k / dt.block_size() * dt.type_size();
        let row_p = kp / dt.block_size() * dt.type_size();
        let data = q.data()?;
        let mut bytes = vec![0u8; n * row_p];
        for (r, chunk) in data.chunks_exact(row).enumerate() {
            // A block of zero bytes is a zero scale with zero quants: it adds nothing.
            bytes[r * row_p..r * row_p + row].copy_from_slice(chunk);
        }
        let storage = candle_core::quantized::QStorage::from_data(
            std::borrow::Cow::Owned(bytes),
            &q.device(),
            dt,
        )?;
        let q = QMatMul::from_qtensor(QTensor::new(storage, (n, kp))?)?;
        Ok(Proj::PaddedQuant { q, pad: kp - k })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Proj::Quant(q) => q.forward(x)?,
            Proj::PaddedQuant { q, pad } => {
                q.forward(&x.pad_with_zeros(candle_core::D::Minus1, 0, *pad)?)?
            }
            Proj::Dense(l) => l.forward(x)?,
            #[cfg(target_arch = "x86_64")]
            Proj::Q41(p) => p.forward(x)?,
        })
    }
}

/// Block types whose candle CPU matmul is scalar; requantizing them pays off.
fn needs_requant(from: GgmlDType, to: GgmlDType) -> bool {
    from != to
        && matches!(
            from,
            GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
        )
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// q, k and v stacked: `[d + 2 * kv, d]`.
    pub(crate) qkv: Proj,
    pub(crate) wo: Proj,
    /// gate and up stacked: `[2 * f, d]`.
    pub(crate) gate_up: Proj,
    pub(crate) down: Proj,
    pub(crate) attn_norm: Tensor,
    pub(crate) ffn_norm: Tensor,
}

/// The per-sequence key/value cache of every layer (plain buffers, see [`crate::attention`]).
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    pub(crate) len: usize,
}

impl KvCache {
    /// Tokens held (the position of the next token fed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.layers.clear();
        self.len = 0;
    }
}

/// The projections of a layer, as a [`ProjHook`] sees them. Fused ones keep their parts in
/// Hugging Face order: `Qkv` is `q|k|v` (q and k rows in the model's own RoPE layout, see
/// [`Llama::rope_interleaved`]), `GateUp` is `gate|up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerProj {
    /// `q_proj`, `k_proj`, `v_proj` stacked.
    Qkv,
    /// `o_proj`.
    O,
    /// `gate_proj`, `up_proj` stacked.
    GateUp,
    /// `down_proj`.
    Down,
}

/// An additive update to a layer projection's output, per batch (e.g. LoRA adapters, each
/// sequence of the batch with its own). The model stays unaware of what the update is.
pub trait ProjHook: Sync {
    /// The update for `layer`'s `proj` given its input `x` (`[T, in]`, the rows of every
    /// sequence of the batch; sequence `s` holds rows `rows[s].0 .. rows[s].0 + rows[s].1`),
    /// shaped like the projection's output `[T, out]`; `None` for no update.
    fn delta(
        &self,
        layer: usize,
        proj: LayerProj,
        x: &Tensor,
        rows: &[(usize, usize)],
    ) -> Result<Option<Tensor>>;
}

impl LlamaConfig {
    /// The configuration in a GGUF file's `llama.*` metadata, with the vocabulary size
    /// (the rows of `token_embd.weight`) given by the caller, who has the tensor or its index.
    pub fn from_gguf(g: &Gguf, vocab_size: usize) -> Result<Self> {
        let heads = g.get_u32("llama.attention.head_count")? as usize;
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size: g.get_u32("llama.embedding_length")? as usize,
            intermediate_size: g.get_u32("llama.feed_forward_length")? as usize,
            num_hidden_layers: g.get_u32("llama.block_count")? as usize,
            num_attention_heads: heads,
            num_key_value_heads: Some(
                g.get_u32("llama.attention.head_count_kv")
                    .unwrap_or(heads as u32) as usize,
            ),
            rms_norm_eps: g
                .get_f32("llama.attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-5) as f64,
            rope_theta: g.get_f32("llama.rope.freq_base").unwrap_or(10_000.0),
            max_position_embeddings: g.get_u32("llama.context_length").unwrap_or(2048) as usize,
            tie_word_embeddings: !g.has_tensor("output.weight"),
        };
        cfg.check_against(g)?;
        Ok(cfg)
    }

    /// Hyper-parameters from a file are checked before anything divides by them or sizes a
    /// buffer with them: heads that split the width, layers the file holds, matrices of the
    /// declared shapes, RoPE tables of a sane size.
    fn check_against(&self, g: &Gguf) -> Result<()> {
        let bad = |what: String| Err(Error::Format(format!("GGUF llama metadata: {what}")));
        let (d, h, kv) = (self.hidden_size, self.num_attention_heads, self.kv_heads());
        if d == 0 || h == 0 || d % h != 0 {
            return bad(format!(
                "{h} attention heads do not split embedding length {d}"
            ));
        }
        if kv == 0 || h % kv != 0 {
            return bad(format!("{kv} key/value heads do not divide {h} heads"));
        }
        if self.vocab_size == 0 || self.intermediate_size == 0 {
            return bad("empty vocabulary or feed-forward width".into());
        }
        // RoPE tables hold max_position_embeddings * head_dim / 2 floats each.
        if self.max_position_embeddings > 1 << 24
            || self.max_position_embeddings * (d / h) > 1 << 30
        {
            return bad(format!(
                "context length {} is too large",
                self.max_position_embeddings
            ));
        }
        let n = self.num_hidden_layers;
        if n > 0 && !g.has_tensor(&format!("blk.{}.attn_q.weight", n - 1)) {
            return bad(format!("block count {n} but no blk.{}.* tensors", n - 1));
        }
        let shape = |name: &str| {
            g.content
                .tensor_infos
                .get(name)
                .map(|t| t.shape.dims().to_vec())
        };
        for (name, want) in [
            ("token_embd.weight", vec![self.vocab_size, d]),
            ("blk.0.ffn_up.weight", vec![self.intermediate_size, d]),
            ("blk.0.attn_q.weight", vec![d, d]),
        ] {
            if let Some(got) = shape(name) {
                if got != want {
                    return bad(format!(
                        "{name} has shape {got:?}, the metadata says {want:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A LLaMA-family model's weights plus one default KV cache (for [`CausalLm`]).
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) lm_head: Proj,
    /// RoPE tables `[max_position_embeddings * head_dim / 2]`, on the host for attention.
    pub(crate) cos: Arc<Vec<f32>>,
    pub(crate) sin: Arc<Vec<f32>>,
    /// GGUF stores q/k permuted for interleaved RoPE; Hugging Face uses the halves layout.
    rope_interleaved: bool,
    device: Device,
    cache: KvCache,
}

/// RoPE cos/sin tables, `[max_position_embeddings, head_dim / 2]`.
pub(crate) fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let inv: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| 1f32 / cfg.rope_theta.powf(i as f32 / hd as f32))
        .collect();
    let inv = Tensor::new(inv.as_slice(), device)?.reshape((1, hd / 2))?;
    let t = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((cfg.max_position_embeddings, 1))?;
    let freqs = t.matmul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

/// RoPE cos and sin tables, flattened on the host.
type HostRope = (Arc<Vec<f32>>, Arc<Vec<f32>>);

fn host_rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<HostRope> {
    let (cos, sin) = rope_tables(cfg, device)?;
    Ok((
        Arc::new(cos.flatten_all()?.to_vec1()?),
        Arc::new(sin.flatten_all()?.to_vec1()?),
    ))
}

impl Llama {
    /// Loads a GGUF file (`general.architecture = llama`). With `requant = Some(Q8_0)`,
    /// Q4_x/Q5_x matrices are requantized to Q8_0 at load, trading memory for speed —
    /// except Q4_1 ones on AVX512-VNNI CPUs: they keep their blocks and use our own kernel
    /// (as they do with `None`), which is faster still; Q8_0 matrices use our own kernel
    /// there too (`NETGPT_NO_Q41_KERNEL=1` turns both off, for A/B runs).
    pub fn from_gguf(
        path: impl AsRef<Path>,
        device: &Device,
        requant: Option<GgmlDType>,
    ) -> Result<Self> {
        let mut g = Gguf::open(path)?;
        let arch = g.get_str("general.architecture")?.to_string();
        if arch != "llama" {
            return Err(Error::Format(format!(
                "GGUF architecture `{arch}` is not llama"
            )));
        }
        let embd = g.tensor("token_embd.weight", device)?;
        let cfg = LlamaConfig::from_gguf(&g, embd.shape().dims()[0])?;
        let embed = embd.dequantize(device)?;
        let lm_head = if cfg.tie_word_embeddings {
            Proj::from_qtensor(embd, requant)?
        } else {
            Proj::from_qtensor(g.tensor("output.weight", device)?, requant)?
        }
        .pad_for_vnni()?;
        let norm = g.tensor("output_norm.weight", device)?.dequantize(device)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let mut t = |n: &str| g.tensor(&format!("blk.{i}.{n}.weight"), device);
            layers.push(Layer {
                qkv: Proj::stack(vec![
                    Proj::from_qtensor(t("attn_q")?, requant)?,
                    Proj::from_qtensor(t("attn_k")?, requant)?,
                    Proj::from_qtensor(t("attn_v")?, requant)?,
                ])?
                .pad_for_vnni()?,
                wo: Proj::from_qtensor(t("attn_output")?, requant)?.pad_for_vnni()?,
                gate_up: Proj::stack(vec![
                    Proj::from_qtensor(t("ffn_gate")?, requant)?,
                    Proj::from_qtensor(t("ffn_up")?, requant)?,
                ])?
                .pad_for_vnni()?,
                down: Proj::from_qtensor(t("ffn_down")?, requant)?.pad_for_vnni()?,
                attn_norm: t("attn_norm")?.dequantize(device)?,
                ffn_norm: t("ffn_norm")?.dequantize(device)?,
            });
        }
        let (cos, sin) = host_rope_tables(&cfg, device)?;
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            rope_interleaved: true,
            device: device.clone(),
            cache: KvCache::default(),
        })
    }

    /// Builds the model from Hugging Face tensor names (see [`LlamaConfig::hf_tensor_shapes`]).
    /// With `quant`, the matrices are quantized (e.g. Q8_0) after loading.
    pub fn from_varbuilder(
        cfg: LlamaConfig,
        vb: VarBuilder,
        quant: Option<GgmlDType>,
    ) -> Result<Self> {
        let device = vb.device().clone();
        let (d, f, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let kv = cfg.kv_heads() * hd;
        let embed = vb
            .get((cfg.vocab_size, d), "model.embed_tokens.weight")?
            .to_dtype(DType::F32)?;
        let lm_w = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            vb.get((cfg.vocab_size, d), "lm_head.weight")?
                .to_dtype(DType::F32)?
        };
        let lm_head = Proj::from_dense(lm_w, quant)?.pad_for_vnni()?;
        let norm = vb.get(d, "model.norm.weight")?.to_dtype(DType::F32)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("model.layers.{i}"));
            let p = |shape: (usize, usize), n: &str| -> Result<Proj> {
                Proj::from_dense(l.get(shape, n)?.to_dtype(DType::F32)?, quant)
            };
            layers.push(Layer {
                qkv: Proj::stack(vec![
                    p((d, d), "self_attn.q_proj.weight")?,
                    p((kv, d), "self_attn.k_proj.weight")?,
                    p((kv, d), "self_attn.v_proj.weight")?,
                ])?
                .pad_for_vnni()?,
                wo: p((d, d), "self_attn.o_proj.weight")?.pad_for_vnni()?,
                gate_up: Proj::stack(vec![
                    p((f, d), "mlp.gate_proj.weight")?,
                    p((f, d), "mlp.up_proj.weight")?,
                ])?
                .pad_for_vnni()?,
                down: p((d, f), "mlp.down_proj.weight")?.pad_for_vnni()?,
                attn_norm: l.get(d, "input_layernorm.weight")?.to_dtype(DType::F32)?,
                ffn_norm: l
                    .get(d, "post_attention_layernorm.weight")?
                    .to_dtype(DType::F32)?,
            });
        }
        let (cos, sin) = host_rope_tables(&cfg, &device)?;
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            rope_interleaved: false,
            device,
            cache: KvCache::default(),
        })
    }

    /// Loads a Hugging Face LLaMA-family checkpoint folder: `config.json` and
    /// `*.safetensors` (the tokenizer, `tokenizer.json`, is loaded separately).
    pub fn from_hf_dir(
        dir: impl AsRef<Path>,
        device: &Device,
        quant: Option<GgmlDType>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let cfg: LlamaConfig = serde_json::from_slice(&std::fs::read(&cfg_path)?)
            .map_err(|e| Error::Format(format!("{}: {e}", cfg_path.display())))?;
        let mut files: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Format(format!(
                "no .safetensors in {}",
                dir.display()
            )));
        }
        // SAFETY: the files are memory-mapped read-only; they must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, device)? };
        Self::from_varbuilder(cfg, vb, quant)
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An empty KV cache for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![LayerKv::default(); self.layers.len()],
            len: 0,
        }
    }

    /// Whether q/k rows are in GGUF's interleaved-RoPE order (pairs `2i, 2i+1`) rather than
    /// Hugging Face's halves order (pairs `i, i + head_dim/2`): what a [`ProjHook`] updating
    /// q or k must follow.
    pub fn rope_interleaved(&self) -> bool {
        self.rope_interleaved
    }

    /// Feeds several sequences at once, each appending `seqs[i]` to `caches[i]`, and returns
    /// the logits of each sequence's last new token, `[seqs.len(), vocab]` (f32).
    ///
    /// All tokens go through the weight matrices together (one matmul per projection);
    /// attention is per sequence, against its own cache, at its own position. On error no
    /// cache changes.
    pub fn forward_seqs(&self, seqs: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        self.forward_seqs_with(seqs, caches, None)
    }

    /// [`Llama::forward_seqs`] with an update added to the layer projections (per-sequence
    /// LoRA adapters, for instance).
    pub fn forward_seqs_with(
        &self,
        seqs: &[&[u32]],
        caches: &mut [&mut KvCache],
        hook: Option<&dyn ProjHook>,
    ) -> Result<Tensor> {
        if seqs.len() != caches.len() || seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            return Err(Error::Invalid(
                "forward_seqs needs one non-empty token slice per cache".into(),
            ));
        }
        for (s, c) in seqs.iter().zip(caches.iter()) {
            if c.len + s.len() > self.cfg.max_position_embeddings {
                return Err(Error::Invalid(format!(
                    "sequence of {} tokens exceeds the context of {}",
                    c.len + s.len(),
                    self.cfg.max_position_embeddings
                )));
            }
        }
        for c in caches.iter_mut() {
            if c.layers.len() != self.layers.len() {
                **c = self.new_cache();
            }
        }
        // On CPU, run the whole pass inside candle's rayon pool: its many small parallel ops
        // (norms, elementwise) then run on a pool thread directly, instead of each handing a
        // job to the pool and sleeping on a futex until it is done.
        let out = self
            .device
            .with_context(|| self.forward_seqs_inner(seqs, caches, hook));
        let kv = self.cfg.kv_heads() * self.cfg.head_dim();
        for (s, c) in seqs.iter().zip(caches.iter_mut()) {
            if out.is_ok() {
                c.len += s.len();
            } else {
                let len = c.len;
                c.layers.iter_mut().for_each(|l| l.truncate(len, kv));
            }
        }
        out
    }

    fn forward_seqs_inner(
        &self,
        seqs: &[&[u32]],
        caches: &mut [&mut KvCache],
        hook: Option<&dyn ProjHook>,
    ) -> Result<Tensor> {
        let dims = Dims {
            heads: self.cfg.num_attention_heads,
            kv_heads: self.cfg.kv_heads(),
            head_dim: self.cfg.head_dim(),
            interleaved: self.rope_interleaved,
        };
        let d = self.cfg.hidden_size;
        let eps = self.cfg.rms_norm_eps as f32;
        let all: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let rows: Vec<(usize, usize)> = lens
            .iter()
            .scan(0, |off, &n| {
                *off += n;
                Some((*off - n, n))
            })
            .collect();
        let ids = Tensor::new(all.as_slice(), &self.device)?;
        let mut x = self.embed.index_select(&ids, 0)?; // [T, d]
        let t_all = all.len();
        let f = self.cfg.intermediate_size;
        let project = |li: usize, which: LayerProj, p: &Proj, x: &Tensor| -> Result<Tensor> {
            let y = p.forward(x)?;
            match hook
                .map(|h| h.delta(li, which, x, &rows))
                .transpose()?
                .flatten()
            {
                Some(dy) => Ok((y + dy)?),
                None => Ok(y),
            }
        };
        for (li, layer) in self.layers.iter().enumerate() {
            let hn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let qkv = project(li, LayerProj::Qkv, &layer.qkv, &hn)?; // [T, d + 2 kv]
            let mut qkv_host = qkv
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let mut layer_caches: Vec<&mut LayerKv> =
                caches.iter_mut().map(|c| &mut c.layers[li]).collect();
            let y = crate::attention::attend(
                &mut qkv_host,
                &lens,
                &mut layer_caches,
                dims,
                &self.cos,
                &self.sin,
            );
            let y = Tensor::from_vec(y, (t_all, d), &self.device)?;
            x = (x + project(li, LayerProj::O, &layer.wo, &y)?)?;
            let hn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gu = project(li, LayerProj::GateUp, &layer.gate_up, &hn)?; // [T, 2 f]
            let g = candle_nn::ops::silu(&gu.narrow(1, 0, f)?)?;
            let u = gu.narrow(1, f, f)?;
            x = (&x + project(li, LayerProj::Down, &layer.down, &(g * u)?)?)?;
        }
        let last: Vec<u32> = rows.iter().map(|&(o, n)| (o + n - 1) as u32).collect();
        let x = if last.len() == 1 && last[0] as usize == t_all - 1 {
            x.i((t_all - 1)..)?
        } else {
            x.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?
        };
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        Ok(self.lm_head.forward(&x)?.to_dtype(DType::F32)?)
    }

    /// Feeds one sequence against `cache`, returning the last logits `[vocab]`.
    pub fn forward_with_cache(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        Ok(self.forward_seqs(&[tokens], &mut [cache])?.squeeze(0)?)
    }
}

impl CausalLm for Llama {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if pos == 0 {
            self.cache = self.new_cache();
        } else if pos != self.cache.len {
            return Err(Error::Invalid(format!(
                "position {pos} does not follow the cache ({} tokens)",
                self.cache.len
            )));
        }
        let mut cache = std::mem::take(&mut self.cache);
        let out = self.forward_with_cache(tokens, &mut cache);
        self.cache = cache;
        out
    }

    fn clear_cache(&mut self) {
        self.cache = self.new_cache();
    }

    fn max_seq_len(&self) -> usize {
        self.cfg.max_position_embeddings
    }
}

/// Native Q4_1 (and Q8_0) matmuls for AVX512-VNNI CPUs. candle's own Q4_1 kernel is scalar,
/// so the GGUF's Q4_1 matrices used to be requantized to Q8_0 and widened to 768 columns for
/// candle's VNNI kernel: over twice the bytes per weight. Decode is memory-bound, so keeping
/// the 4-bit blocks and multiplying them here reads about half the bytes per token. The Q8_0
/// output head (tied embedding) gets the same treatment, without the widening.
///
/// Weights are repacked 16 output rows at a time: per 32-wide block, 64-byte vectors holding
/// row r's 4 bytes at r*4 (for Q4_1 the original nibble bytes, so low nibbles hold
/// k = 4g..4g+4 and high ones k = 16+4g..; for Q8_0 the quants offset by +128) plus the 16
/// rows' f16 scales (and Q4_1 mins). Activations are quantized to i8 per 32-wide block, each
/// row on its own, so a row's result does not depend on how many rows are multiplied together.
#[cfg(target_arch = "x86_64")]
mod q41 {
    use crate::{Error, Result};
    use candle_core::{Device, Tensor};

    const TN: usize = 16;
    const QK: usize = 32;

    /// One Q4_1 32-wide block of 16 rows.
    #[repr(C, align(64))]
    #[derive(Clone)]
    struct Tile {
        qs: [u8; 256],
        d: [u16; TN],
        m: [u16; TN],
    }

    /// The quants of one Q8_0 32-wide block of 16 rows (+128).
    #[repr(C, align(64))]
    #[derive(Clone)]
    struct Tile8 {
        qs: [u8; 512],
    }

    enum Kind {
        Q41(Vec<Tile>),
        /// Quants and the 16 rows' scales of each tile.
        Q80(Vec<Tile8>, Vec<[u16; TN]>),
    }

    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Act {
        q: [i8; QK],
        d: f32,
        /// `d * sum`.
        s: f32,
        sum: i32,
    }

    pub(crate) struct PackedQ41 {
        n: usize,
        k: usize,
        kind: Kind,
    }

    impl std::fmt::Debug for PackedQ41 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let t = match self.kind {
                Kind::Q41(_) => "Q4_1",
                Kind::Q80(..) => "Q8_0",
            };
            write!(f, "Packed{t}({}x{})", self.n, self.k)
        }
    }

    pub(super) fn available() -> bool {
        if std::env::var_os("NETGPT_NO_Q41_KERNEL").is_some_and(|v| v != "0") {
            return false;
        }
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }

    impl PackedQ41 {
        /// `data`: raw Q4_1 blocks (20 bytes: f16 d, f16 m, 16 nibble bytes) of an `[n, k]` matrix.
        pub(super) fn pack(data: &[u8], n: usize, k: usize) -> Result<Self> {
            if !n.is_multiple_of(TN) || !k.is_multiple_of(QK) || data.len() != n * k / QK * 20 {
                return Err(Error::Format("Q4_1 matrix shape not packable".into()));
            }
            let kb = k / QK;
            let mut tiles = Vec::with_capacity(n / TN * kb);
            for t in 0..n / TN {
                for b in 0..kb {
                    let mut tile = Tile {
                        qs: [0; 256],
                        d: [0; TN],
                        m: [0; TN],
                    };
                    for r in 0..TN {
                        let o = ((t * TN + r) * kb + b) * 20;
                        let blk = &data[o..o + 20];
                        tile.d[r] = u16::from_le_bytes([blk[0], blk[1]]);
                        tile.m[r] = u16::from_le_bytes([blk[2], blk[3]]);
                        for g in 0..4 {
                            tile.qs[g * 64 + r * 4..g * 64 + r * 4 + 4]
                                .copy_from_slice(&blk[4 + g * 4..8 + g * 4]);
                        }
                    }
                    tiles.push(tile);
                }
            }
            Ok(Self {
                n,
                k,
                kind: Kind::Q41(tiles),
            })
        }

        /// `data`: raw Q8_0 blocks (34 bytes: f16 d, 32 i8) of an `[n, k]` matrix.
        pub(super) fn pack_q8_0(data: &[u8], n: usize, k: usize) -> Result<Self> {
            if !n.is_multiple_of(TN) || !k.is_multiple_of(QK) || data.len() != n * k / QK * 34 {
                return Err(Error::Format("Q8_0 matrix shape not packable".into()));
            }
            let kb = k / QK;
            let mut tiles = Vec::with_capacity(n / TN * kb);
            let mut ds = Vec::with_capacity(n / TN * kb);
            for t in 0..n / TN {
                for b in 0..kb {
                    let mut tile = Tile8 { qs: [0; 512] };
                    let mut d = [0u16; TN];
                    for (r, dr) in d.iter_mut().enumerate() {
                        let o = ((t * TN + r) * kb + b) * 34;
                        let blk = &data[o..o + 34];
                        *dr = u16::from_le_bytes([blk[0], blk[1]]);
                        for g in 0..8 {
                            for j in 0..4 {
                                tile.qs[g * 64 + r * 4 + j] =
                                    (blk[2 + g * 4 + j] as i8 as i16 + 128) as u8;
                            }
                        }
                    }
                    tiles.push(tile);
                    ds.push(d);
                }
            }
            Ok(Self {
                n,
                k,
                kind: Kind::Q80(tiles, ds),
            })
        }

        /// `x` `[m, k]` (f32) times the matrix transposed: `[m, n]`.
        pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
            let (m, k) = x.dims2()?;
            if k != self.k {
                return Err(Error::Format("packed matmul width mismatch".into()));
            }
            let xs = x.flatten_all()?.to_vec1::<f32>()?;
            let kb = k / QK;
            let mut acts = vec![
                Act {
                    q: [0; QK],
                    d: 0.0,
                    s: 0.0,
                    sum: 0,
                };
                m * kb
            ];
            for (row, out) in xs.chunks_exact(k).zip(acts.chunks_exact_mut(kb)) {
                // SAFETY: `available()` checked the CPU features before this matrix was packed.
                unsafe { quantize_row(row, out) };
            }
            let n = self.n;
            let mut dst = vec![0f32; m * n];
            const MT: usize = 4;
            let m_units = m.div_ceil(MT);
            let units = (n / TN) * m_units;
            let dst_ptr = dst.as_mut_ptr() as usize;
            let acts = &acts;
            let kind = &self.kind;
            candle_core::utils::barrier_pool().execute_chunked(units, |range| {
                for u in range {
                    let nt = u / m_units;
                    let m0 = (u % m_units) * MT;
                    let mt = (m - m0).min(MT);
                    let dst = (dst_ptr as *mut f32).wrapping_add(m0 * n + nt * TN);
                    let tiles = nt * kb..(nt + 1) * kb;
                    // SAFETY: `available()` checked the CPU features; each unit writes its own
                    // 16 columns of its own rows.
                    unsafe {
                        match kind {
                            Kind::Q41(t) => unit(&t[tiles], acts, kb, m0, mt, dst, n),
                            Kind::Q80(t, d) => {
                                unit8(&t[tiles.clone()], &d[tiles], acts, kb, m0, mt, dst, n)
                            }
                        }
                    }
                }
            });
            Ok(Tensor::from_vec(dst, (m, n), &Device::Cpu)?)
        }
    }

    /// Quantizes activations to i8 blocks of 32 (scale = max |x| / 127, round to nearest
    /// even), 32 values per two vector loads.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn quantize_row(row: &[f32], out: &mut [Act]) {
        use std::arch::x86_64::*;
        let sign = _mm512_set1_ps(-0.0);
        for (x, a) in row.chunks_exact(QK).zip(out.iter_mut()) {
            let lo = _mm512_loadu_ps(x.as_ptr());
            let hi = _mm512_loadu_ps(x.as_ptr().add(16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(
                _mm512_andnot_ps(sign, lo),
                _mm512_andnot_ps(sign, hi),
            ));
            let d = amax / 127.0;
            let id = _mm512_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
            // cvtps rounds with the default MXCSR mode: to nearest, ties to even.
            let qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, id));
            let qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, id));
            let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
            _mm_storeu_si128(a.q.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(qlo));
            _mm_storeu_si128(
                a.q.as_mut_ptr().add(16) as *mut __m128i,
                _mm512_cvtepi32_epi8(qhi),
            );
            a.d = d;
            a.s = d * sum as f32;
            a.sum = sum;
        }
    }

    #[cfg(test)]
    #[test]
    fn simd_quantization_equals_scalar_round_half_even() {
        if !available() {
            return;
        }
        let mut seed = 7u32;
        let row: Vec<f32> = (0..32 * 40)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                if i % 97 == 0 {
                    0.0
                } else {
                    v * (1.0 + (i % 13) as f32)
                }
            })
            .collect();
        let blank = Act {
            q: [0; QK],
            d: 0.0,
            s: 0.0,
            sum: 0,
        };
        let mut got = vec![blank; 40];
        // SAFETY: available() checked the features.
        unsafe { quantize_row(&row, &mut got) };
        for (x, a) in row.chunks_exact(QK).zip(&got) {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let want: Vec<i8> = x.iter().map(|v| (v * id).round_ties_even() as i8).collect();
            assert_eq!(a.q.to_vec(), want);
            assert_eq!(a.sum, want.iter().map(|&q| q as i32).sum::<i32>());
            assert_eq!(a.d, d);
        }
    }

    #[inline(always)]
    unsafe fn bcast4(q: &[i8; QK], off: usize) -> std::arch::x86_64::__m512i {
        std::arch::x86_64::_mm512_set1_epi32(std::ptr::read_unaligned(
            q.as_ptr().add(off) as *const i32
        ))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn unit(
        tiles: &[Tile],
        acts: &[Act],
        kb: usize,
        m0: usize,
        mt: usize,
        dst: *mut f32,
        n: usize,
    ) {
        use std::arch::x86_64::*;
        let mask = _mm512_set1_epi8(0x0F);
        let mut acc = [[_mm512_setzero_ps(); 2]; 4];
        for (b, tile) in tiles.iter().enumerate() {
            let p = b & 1;
            let qs = tile.qs.as_ptr() as *const __m512i;
            let mut lo = [_mm512_setzero_si512(); 4];
            let mut hi = [_mm512_setzero_si512(); 4];
            for g in 0..4 {
                let w = _mm512_load_si512(qs.add(g));
                lo[g] = _mm512_and_si512(w, mask);
                hi[g] = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr() as *const __m256i));
            let mw = _mm512_cvtph_ps(_mm256_loadu_si256(tile.m.as_ptr() as *const __m256i));
            for (i, accm) in acc.iter_mut().enumerate().take(mt) {
                let a = &acts[(m0 + i) * kb + b];
                let mut s0 = _mm512_setzero_si512();
                let mut s1 = _mm512_setzero_si512();
                for g in 0..4 {
                    s0 = _mm512_dpbusd_epi32(s0, lo[g], bcast4(&a.q, g * 4));
                    s1 = _mm512_dpbusd_epi32(s1, hi[g], bcast4(&a.q, 16 + g * 4));
                }
                let isum = _mm512_add_epi32(s0, s1);
                let f = _mm512_cvtepi32_ps(isum);
                accm[p] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), accm[p]);
                accm[p] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.s), accm[p]);
            }
        }
        for (i, accm) in acc.iter().enumerate().take(mt) {
            _mm512_storeu_ps(dst.add(i * n), _mm512_add_ps(accm[0], accm[1]));
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn unit8(
        tiles: &[Tile8],
        ds: &[[u16; TN]],
        acts: &[Act],
        kb: usize,
        m0: usize,
        mt: usize,
        dst: *mut f32,
        n: usize,
    ) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); 2]; 4];
        for (b, (tile, d)) in tiles.iter().zip(ds).enumerate() {
            let p = b & 1;
            let qs = tile.qs.as_ptr() as *const __m512i;
            let mut w = [_mm512_setzero_si512(); 8];
            for (g, wg) in w.iter_mut().enumerate() {
                *wg = _mm512_load_si512(qs.add(g));
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr() as *const __m256i));
            for (i, accm) in acc.iter_mut().enumerate().take(mt) {
                let a = &acts[(m0 + i) * kb + b];
                let mut s0 = _mm512_set1_epi32(-128 * a.sum);
                let mut s1 = _mm512_setzero_si512();
                for g in 0..4 {
                    s0 = _mm512_dpbusd_epi32(s0, w[2 * g], bcast4(&a.q, 8 * g));
                    s1 = _mm512_dpbusd_epi32(s1, w[2 * g + 1], bcast4(&a.q, 8 * g + 4));
                }
                let f = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
                accm[p] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), accm[p]);
            }
        }
        for (i, accm) in acc.iter().enumerate().take(mt) {
            _mm512_storeu_ps(dst.add(i * n), _mm512_add_ps(accm[0], accm[1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our packed kernels must compute what the dequantized weights compute, for one row
    /// (decode) and for several rows (prefill, batched decode), within the error of
    /// quantizing activations to 8 bits.
    #[test]
    fn native_kernels_match_the_dequantized_matmul() {
        let dev = Device::Cpu;
        let (n, k) = (48, 96);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let reference = q.dequantize(&dev).unwrap();
            let proj = Proj::from_qtensor(q, None).unwrap().pad_for_vnni().unwrap();
            #[cfg(target_arch = "x86_64")]
            if q41::available() {
                assert!(
                    matches!(proj, Proj::Q41(_)),
                    "{dtype:?} did not take the kernel"
                );
            }
            for rows in [1, 3, 7] {
                let x = Tensor::randn(0f32, 1.0, (rows, k), &dev).unwrap();
                let got = proj.forward(&x).unwrap();
                let want = x.matmul(&reference.t().unwrap()).unwrap();
                let err = (got - &want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let scale = want
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    err < 0.03 * scale,
                    "{dtype:?}, {rows} rows: error {err} vs scale {scale}"
                );
            }
        }
    }
}
