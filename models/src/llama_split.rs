//! Split inference of the cloud LLaMA: the decoder cut at layer `k` into an edge half and a
//! cloud half, with the hidden states crossing the network between them.
//!
//! - [`EdgeHalf`]: token embedding and layers `0..k`; it turns tokens into the residual
//!   stream after layer `k - 1`, `[T, hidden]`.
//! - [`CloudHalf`]: layers `k..n`, the final RMSNorm and the output head; it turns those
//!   hidden states into the logits of the last position.
//!
//! Each half keeps its own [`KvCache`] (only its own layers), so after the prompt each
//! decode step sends one row `[1, hidden]` up and one token id down. Both halves borrow one
//! loaded `Arc<Llama>`: the cloud AI function already holds the weights, and an edge that
//! loads the same GGUF computes exactly what the unsplit model computes for its layers —
//! the layer code below runs the same operations in the same order as
//! [`Llama::forward_seqs`], so the only difference from unsplit inference is the f16
//! rounding of the hidden states on the wire.
//!
//! # Wire format of hidden states
//!
//! [`encode_hidden`] writes a `[rows, cols]` f32 tensor as
//!
//! ```text
//! u32 rows (LE) | u32 cols (LE) | rows * cols IEEE-754 binary16 values (LE), row-major
//! ```
//!
//! i.e. `8 + 2 * rows * cols` bytes ([`HEADER_BYTES`] of header): 1,160 bytes per decode
//! step for the 576-wide SmolLM2-135M. [`decode_hidden`] checks the header against the length and
//! returns f32.
//!
//! f16 halves the bytes but is not lossless: SmolLM2's residual stream carries values in
//! the tens of thousands next to small ones, and its quantized matmuls round activations
//! again, so greedy decoding through an f16 cut can pick a different token where the
//! unsplit model's top two logits nearly tie (measured with the GGUF requantized to Q8_0 on
//! a CPU without AVX512-VNNI: 10 of 20 prompt/cut pairs diverged within 24 greedy tokens,
//! 4 of them at the first token).
//! [`HiddenWire::F32`] sends the same header with 4-byte IEEE-754 binary32 values instead
//! (`8 + 4 * rows * cols` bytes); the width is implied by the length, so
//! [`decode_hidden`] reads both, and through an f32 cut the split model's tokens are
//! exactly the whole model's.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::attention::{attend, Dims, LayerKv};
use crate::generation::{Detokenizer, Generation, GenerationConfig, Sequence};
use crate::llama::{KvCache, Llama};
use crate::{Error, Result};

/// Bytes of the hidden-state header (rows and cols, two little-endian `u32`).
pub const HEADER_BYTES: usize = 8;

/// How hidden-state values cross the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HiddenWire {
    /// IEEE-754 binary16: half the bytes, rounded (the default).
    #[default]
    F16,
    /// IEEE-754 binary32: lossless.
    F32,
}

impl HiddenWire {
    /// Bytes of one value.
    pub fn value_bytes(self) -> usize {
        match self {
            HiddenWire::F16 => 2,
            HiddenWire::F32 => 4,
        }
    }

    /// Bytes of `rows` hidden states of width `cols`, header included (saturating, for
    /// headers that claim more than memory holds).
    pub fn bytes(self, rows: usize, cols: usize) -> usize {
        rows.saturating_mul(cols)
            .saturating_mul(self.value_bytes())
            .saturating_add(HEADER_BYTES)
    }
}

/// Bytes of `rows` hidden states of width `cols` in the default (f16) wire format.
pub fn wire_bytes(rows: usize, cols: usize) -> usize {
    HiddenWire::F16.bytes(rows, cols)
}

/// Encodes hidden states `[rows, cols]` (any float dtype) in the f16 wire format (see the
/// module docs). Fails on a tensor that is not 2-D or has a value beyond the f16 range
/// (rounding it to infinity would silently change the cloud half's result).
pub fn encode_hidden(hidden: &Tensor) -> Result<Vec<u8>> {
    encode_hidden_as(hidden, HiddenWire::F16)
}

/// Encodes hidden states `[rows, cols]` with values as `wire` says.
pub fn encode_hidden_as(hidden: &Tensor, wire: HiddenWire) -> Result<Vec<u8>> {
    let (rows, cols) = hidden.dims2()?;
    let values = hidden
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(wire.bytes(rows, cols));
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    out.extend_from_slice(&(cols as u32).to_le_bytes());
    for v in values {
        match wire {
            HiddenWire::F16 => {
                let h = half::f16::from_f32(v);
                if !h.is_finite() {
                    return Err(Error::Invalid(format!(
                        "hidden state value {v} does not fit in f16"
                    )));
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
            HiddenWire::F32 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    Ok(out)
}

/// Decodes hidden states written by [`encode_hidden`] or [`encode_hidden_as`] (f16 or f32
/// values, told apart by the length) into an f32 tensor `[rows, cols]` on `device`. Fails
/// when the header and the length disagree, or rows or cols is zero.
pub fn decode_hidden(bytes: &[u8], device: &Device) -> Result<Tensor> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::Invalid(format!(
            "hidden states of {} bytes are shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        )));
    }
    let rows = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let cols = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if rows == 0 || cols == 0 {
        return Err(Error::Invalid(format!(
            "hidden states of {rows} rows by {cols} columns are empty"
        )));
    }
    let values = rows.checked_mul(cols);
    let fits = |w: usize| {
        values
            .and_then(|n| n.checked_mul(w))
            .and_then(|n| n.checked_add(HEADER_BYTES))
            == Some(bytes.len())
    };
    let body = &bytes[HEADER_BYTES..];
    let values: Vec<f32> = if fits(2) {
        body.chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    } else if fits(4) {
        body.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        return Err(Error::Invalid(format!(
            "hidden states of {rows} rows by {cols} columns need {} (f16) or {} (f32) bytes, got {}",
            HiddenWire::F16.bytes(rows, cols),
            HiddenWire::F32.bytes(rows, cols),
            bytes.len()
        )));
    };
    Ok(Tensor::from_vec(values, (rows, cols), device)?)
}

/// Checks a split layer against the model: both halves need at least one layer.
fn check_split(model: &Llama, split: usize) -> Result<()> {
    let n = model.layers.len();
    if split == 0 || split >= n {
        return Err(Error::Invalid(format!(
            "split layer {split} is outside 1..{n} (the model has {n} layers)"
        )));
    }
    Ok(())
}

/// A cache for `layers` decoder layers.
fn cache_of(layers: usize) -> KvCache {
    KvCache {
        layers: vec![LayerKv::default(); layers],
        len: 0,
    }
}

/// Runs decoder layers `first..first + cache.layers.len()` of `model` over the residual
/// stream `x` (`[T, d]`) of one sequence, appending to `cache`; on error the cache is left
/// as it was. The layer body is [`Llama::forward_seqs`]'s, operation for operation, so a
/// split model computes bit for bit what the whole one does.
fn run_layers(model: &Llama, x: Tensor, first: usize, cache: &mut KvCache) -> Result<Tensor> {
    let cfg = model.config();
    let t = x.dim(0)?;
    if t == 0 {
        return Err(Error::Invalid("no positions to feed".into()));
    }
    if cache.len + t > cfg.max_position_embeddings {
        return Err(Error::Invalid(format!(
            "sequence of {} tokens exceeds the context of {}",
            cache.len + t,
            cfg.max_position_embeddings
        )));
    }
    let dims = Dims {
        heads: cfg.num_attention_heads,
        kv_heads: cfg.kv_heads(),
        head_dim: cfg.head_dim(),
        interleaved: model.rope_interleaved(),
    };
    let kv = cfg.kv_heads() * cfg.head_dim();
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let eps = cfg.rms_norm_eps as f32;
    let layers = &model.layers[first..first + cache.layers.len()];
    let inner = |cache: &mut KvCache| -> Result<Tensor> {
        let mut x = x;
        for (layer, lkv) in layers.iter().zip(cache.layers.iter_mut()) {
            let hn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let qkv = layer.qkv.forward(&hn)?;
            let mut qkv_host = qkv
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let y = attend(
                &mut qkv_host,
                &[t],
                &mut [lkv],
                dims,
                &model.cos,
                &model.sin,
            );
            let y = Tensor::from_vec(y, (t, d), model.device())?;
            x = (x + layer.wo.forward(&y)?)?;
            let hn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gu = layer.gate_up.forward(&hn)?;
            let g = candle_nn::ops::silu(&gu.narrow(1, 0, f)?)?;
            let u = gu.narrow(1, f, f)?;
            x = (&x + layer.down.forward(&(g * u)?)?)?;
        }
        Ok(x)
    };
    // As in `forward_seqs`: the whole pass inside candle's pool on CPU.
    let out = model.device().with_context(|| inner(cache));
    match &out {
        Ok(_) => cache.len += t,
        Err(_) => {
            let len = cache.len;
            cache.layers.iter_mut().for_each(|l| l.truncate(len, kv));
        }
    }
    out
}

/// The edge half of a split model: token embedding and layers `0..k`.
#[derive(Debug, Clone)]
pub struct EdgeHalf {
    model: Arc<Llama>,
    split: usize,
    wire: HiddenWire,
}

impl EdgeHalf {
    /// The first `split` layers of `model` (`0 < split < layers`), sending f16.
    pub fn new(model: Arc<Llama>, split: usize) -> Result<Self> {
        check_split(&model, split)?;
        Ok(Self {
            model,
            split,
            wire: HiddenWire::F16,
        })
    }

    /// The same half sending its hidden states as `wire` says.
    pub fn with_wire(mut self, wire: HiddenWire) -> Self {
        self.wire = wire;
        self
    }

    /// How it sends its hidden states.
    pub fn wire(&self) -> HiddenWire {
        self.wire
    }

    /// Feeds `tokens` (see [`EdgeHalf::forward`]) and encodes the hidden states for the wire.
    pub fn forward_encoded(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<u8>> {
        encode_hidden_as(&self.forward(tokens, cache)?, self.wire)
    }

    /// The split layer `k`: this half runs layers `0..k`.
    pub fn split_layer(&self) -> usize {
        self.split
    }

    /// Width of the hidden states it produces.
    pub fn hidden_size(&self) -> usize {
        self.model.config().hidden_size
    }

    /// The whole model whose first layers this half runs.
    pub fn model(&self) -> &Arc<Llama> {
        &self.model
    }

    /// An empty cache of this half's layers, for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        cache_of(self.split)
    }

    /// Feeds `tokens` (appending to `cache`) and returns their hidden states after layer
    /// `k - 1`, `[tokens.len(), hidden]` f32.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::Invalid("no tokens to feed".into()));
        }
        if cache.layers.len() != self.split {
            return Err(Error::Invalid(format!(
                "a cache of {} layers is not the edge half's ({})",
                cache.layers.len(),
                self.split
            )));
        }
        let vocab = self.model.config().vocab_size as u32;
        if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(Error::Invalid(format!(
                "token {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let ids = Tensor::new(tokens, self.model.device())?;
        let x = self.model.embed.index_select(&ids, 0)?;
        run_layers(&self.model, x, 0, cache)
    }
}

/// The cloud half of a split model: layers `k..n`, the final norm and the output head.
#[derive(Debug, Clone)]
pub struct CloudHalf {
    model: Arc<Llama>,
    split: usize,
}

impl CloudHalf {
    /// Layers `split..` of `model` (`0 < split < layers`).
    pub fn new(model: Arc<Llama>, split: usize) -> Result<Self> {
        check_split(&model, split)?;
        Ok(Self { model, split })
    }

    /// The split layer `k`: this half runs layers `k..n`.
    pub fn split_layer(&self) -> usize {
        self.split
    }

    /// Width of the hidden states it takes.
    pub fn hidden_size(&self) -> usize {
        self.model.config().hidden_size
    }

    /// The whole model whose last layers this half runs.
    pub fn model(&self) -> &Arc<Llama> {
        &self.model
    }

    /// An empty cache of this half's layers, for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        cache_of(self.model.layers.len() - self.split)
    }

    /// Feeds the edge half's hidden states `[T, hidden]` (appending to `cache`) and returns
    /// the logits of the last position, `[vocab]` f32.
    pub fn forward(&self, hidden: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (t, d) = hidden.dims2()?;
        if d != self.hidden_size() {
            return Err(Error::Invalid(format!(
                "hidden states are {d} wide, the model is {}",
                self.hidden_size()
            )));
        }
        if t == 0 {
            return Err(Error::Invalid("no hidden states to feed".into()));
        }
        if cache.layers.len() != self.model.layers.len() - self.split {
            return Err(Error::Invalid(format!(
                "a cache of {} layers is not the cloud half's ({})",
                cache.layers.len(),
                self.model.layers.len() - self.split
            )));
        }
        let x = hidden
            .to_dtype(DType::F32)?
            .to_device(self.model.device())?;
        let x = run_layers(&self.model, x, self.split, cache)?;
        let eps = self.model.config().rms_norm_eps as f32;
        let x = candle_nn::ops::rms_norm(&x.i((t - 1)..)?, &self.model.norm, eps)?;
        Ok(self
            .model
            .lm_head
            .forward(&x)?
            .to_dtype(DType::F32)?
            .squeeze(0)?)
    }
}

/// What crossed the cut in one step of [`generate_split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// 0 for the prompt, then one per decode step.
    pub step: usize,
    /// Positions whose hidden states went up.
    pub positions: usize,
    /// Bytes edge → cloud (the encoded hidden states).
    pub up_bytes: usize,
    /// Bytes cloud → edge (the sampled token id, a `u32`).
    pub down_bytes: usize,
}

/// Generates a continuation of `prompt` through the split model, in process: each step the
/// edge half feeds the new tokens (the whole prompt, then the last token), its hidden states
/// go through the wire format ([`EdgeHalf::forward_encoded`] → [`decode_hidden`], f16 or
/// f32 as [`EdgeHalf::wire`] says) to the cloud half,
/// which samples the next token with `cfg` (sampling, stop tokens and strings as
/// [`crate::generation::generate`]). `on_transfer` hears the bytes of every step.
pub fn generate_split(
    edge: &EdgeHalf,
    cloud: &CloudHalf,
    detok: &dyn Detokenizer,
    prompt: &[u32],
    cfg: &GenerationConfig,
    on_transfer: &mut dyn FnMut(&Transfer),
) -> Result<Generation> {
    if !Arc::ptr_eq(&edge.model, &cloud.model) && edge.model.config() != cloud.model.config() {
        return Err(Error::Invalid(
            "the edge and cloud halves are of different models".into(),
        ));
    }
    if edge.split != cloud.split {
        return Err(Error::Invalid(format!(
            "the edge half ends at layer {} but the cloud half starts at {}",
            edge.split, cloud.split
        )));
    }
    let ctx = edge.model.config().max_position_embeddings;
    let mut seq = Sequence::new(prompt.to_vec(), cfg.clone(), (), ctx, Instant::now())?;
    let (mut edge_cache, mut cloud_cache) = (edge.new_cache(), cloud.new_cache());
    for step in 0.. {
        let input = seq.next_input(usize::MAX).to_vec();
        let wire = edge.forward_encoded(&input, &mut edge_cache)?;
        let hidden = decode_hidden(&wire, cloud.model.device())?;
        let logits = cloud.forward(&hidden, &mut cloud_cache)?;
        let out = seq.accept(input.len(), logits, detok, ctx)?;
        on_transfer(&Transfer {
            step,
            positions: input.len(),
            up_bytes: wire.len(),
            down_bytes: std::mem::size_of::<u32>(),
        });
        if out.finished.is_some() {
            break;
        }
    }
    Ok(seq.finish())
}
