//! Resource footprint of the four ways of serving an LLM to a UE (the NetGPT paper's Fig. 1):
//! cloud-only, LLM offload (the cloud model at the edge), LLM splitting (the first layers at the
//! edge) and LLM synergy (a small edge model completes the prompt, the cloud model answers).
//!
//! Everything is computed from a model's configuration: the parameter count is the sum over
//! the tensor shapes of its checkpoint ([`LlamaConfig::hf_tensor_shapes`],
//! [`gpt2::Config::tensor_shapes`]), never a typed-in number, so the same code serves the
//! paper's models (LLaMA-7B, GPT-2 base) and the testbed's.

use serde::Serialize;

use crate::gpt2;
use crate::llama::LlamaConfig;

/// The shape facts of one model that the footprint needs.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDims {
    /// Display name.
    pub name: String,
    /// Decoder layers.
    pub layers: usize,
    /// Model width (the size of one token's hidden state).
    pub hidden: usize,
    /// Width of the keys (= of the values) of one layer: kv heads x head width.
    pub kv_dim: usize,
    /// Longest context the model supports (learned or trained positions).
    pub max_positions: usize,
    /// Every checkpoint tensor with its shape.
    #[serde(skip)]
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Whether the output head reuses the token embedding (then a split's cloud part needs
    /// a copy of it).
    pub tied_embeddings: bool,
}

impl ModelDims {
    /// A LLaMA-architecture model.
    pub fn llama(name: &str, cfg: &LlamaConfig) -> Self {
        Self {
            name: name.into(),
            layers: cfg.num_hidden_layers,
            hidden: cfg.hidden_size,
            kv_dim: cfg.kv_heads() * cfg.head_dim(),
            max_positions: cfg.max_position_embeddings,
            tensors: cfg.hf_tensor_shapes(),
            tied_embeddings: cfg.tie_word_embeddings,
        }
    }

    /// A GPT-2-architecture model (its output head is always the token embedding).
    pub fn gpt2(name: &str, cfg: &gpt2::Config) -> Self {
        Self {
            name: name.into(),
            layers: cfg.n_layer,
            hidden: cfg.n_embd,
            kv_dim: cfg.n_embd,
            max_positions: cfg.n_positions,
            tensors: cfg.tensor_shapes(),
            tied_embeddings: true,
        }
    }

    /// Parameters: the sum of the elements of every tensor.
    pub fn params(&self) -> u64 {
        self.tensors.iter().map(|(_, s)| numel(s)).sum()
    }

    /// The decoder layer a tensor belongs to, if any.
    fn layer_of(name: &str) -> Option<usize> {
        let rest = name
            .strip_prefix("model.layers.")
            .or_else(|| name.strip_prefix("transformer.h."))?;
        rest.split('.').next()?.parse().ok()
    }

    /// Whether a tensor is the token (or position) embedding, which runs before layer 0.
    fn is_input_embedding(name: &str) -> bool {
        name.starts_with("model.embed_tokens")
            || name.starts_with("transformer.wte")
            || name.starts_with("transformer.wpe")
    }

    /// The part that holds the input embeddings and layers `0..k` (k = 0: nothing) or, with
    /// `front = false`, the part that holds layers `k..` and the final norm and output head.
    pub fn part(&self, k: usize, front: bool, lora_rank: usize) -> Part {
        let k = k.min(self.layers);
        let mut params = 0u64;
        if front && k == 0 {
            return Part::default();
        }
        if !front && k == self.layers {
            return Part::default();
        }
        for (n, s) in &self.tensors {
            let here = match Self::layer_of(n) {
                Some(i) => (i < k) == front,
                None if Self::is_input_embedding(n) => {
                    // The back part needs the token embedding as its output head when tied.
                    front
                        || (self.tied_embeddings
                            && (n.starts_with("model.embed_tokens")
                                || n.starts_with("transformer.wte")))
                }
                None => !front,
            };
            if here {
                params += numel(s);
            }
        }
        let layers = if front { k } else { self.layers - k };
        Part {
            params,
            layers,
            lora_params: layers as u64 * self.lora_qv_per_layer(lora_rank),
            kv_dim: self.kv_dim,
            max_positions: self.max_positions,
        }
    }

    /// The whole model as one part.
    pub fn whole(&self, lora_rank: usize) -> Part {
        Part {
            params: self.params(),
            layers: self.layers,
            lora_params: self.layers as u64 * self.lora_qv_per_layer(lora_rank),
            kv_dim: self.kv_dim,
            max_positions: self.max_positions,
        }
    }

    /// LoRA parameters of one layer with rank `r` on the query and value projections:
    /// `r x (in + out)` each (for GPT-2, the query and value thirds of `c_attn`).
    pub fn lora_qv_per_layer(&self, r: usize) -> u64 {
        (r * (self.hidden + self.hidden) + r * (self.hidden + self.kv_dim)) as u64
    }
}

fn numel(s: &[usize]) -> u64 {
    s.iter().map(|&d| d as u64).product()
}

/// A contiguous run of a model's layers (with whatever embeddings or head it needs), as
/// one side of a deployment holds it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Part {
    /// Parameters held.
    pub params: u64,
    /// Decoder layers held (each keeps its own KV cache).
    pub layers: usize,
    /// LoRA parameters on those layers' q and v projections.
    pub lora_params: u64,
    /// Width of one layer's keys.
    pub kv_dim: usize,
    /// Longest context of the model.
    pub max_positions: usize,
}

/// What is assumed about precision, context and traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Bytes per parameter on disk and in memory for inference (2: f16).
    pub weight_bytes: f64,
    /// Bytes per parameter, gradient and AdamW moment when fine-tuning (4: f32).
    pub train_bytes: f64,
    /// Bytes per KV-cache element (2: f16).
    pub kv_bytes: f64,
    /// Context length of inference (capped at each model's longest context).
    pub context: usize,
    /// Sequences decoded at once.
    pub batch: usize,
    /// LoRA rank (on q and v).
    pub lora_rank: usize,
    /// Fraction of the cloud model's layers that run at the edge when splitting.
    pub split_fraction: f64,
    /// Prompts sent.
    pub prompts: u64,
    /// Link rate, bit/s.
    pub link_bps: f64,
    /// Bytes per element of a hidden state on the wire when splitting.
    pub hidden_bytes: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            weight_bytes: 2.0,
            train_bytes: 4.0,
            kv_bytes: 2.0,
            context: 2048,
            batch: 1,
            lora_rank: 8,
            split_fraction: 0.25,
            prompts: 10_000,
            link_bps: 1e9,
            hidden_bytes: 2.0,
        }
    }
}

/// The memory and storage one side needs for its part.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Side {
    /// Parameters held.
    pub params: u64,
    /// Weights on disk, bytes.
    pub storage: f64,
    /// Full fine-tuning with AdamW: weights + gradients + two moments, bytes (activations
    /// not counted).
    pub finetune_full: f64,
    /// LoRA fine-tuning: frozen weights + (weights + gradients + two moments) of the adapters.
    pub finetune_lora: f64,
    /// Inference: weights + KV cache at the settings' context and batch, bytes.
    pub inference: f64,
    /// The KV-cache share of `inference`, bytes.
    pub kv_cache: f64,
}

impl Side {
    /// The footprint of holding `p` under `s`.
    pub fn of(p: &Part, s: &Settings) -> Self {
        if p.params == 0 {
            return Self::default();
        }
        let w = p.params as f64;
        let ctx = s.context.min(p.max_positions) as f64;
        let kv = 2.0 * p.layers as f64 * p.kv_dim as f64 * ctx * s.batch as f64 * s.kv_bytes;
        Self {
            params: p.params,
            storage: w * s.weight_bytes,
            finetune_full: 4.0 * w * s.train_bytes,
            finetune_lora: w * s.train_bytes + 4.0 * p.lora_params as f64 * s.train_bytes,
            inference: w * s.weight_bytes + kv,
            kv_cache: kv,
        }
    }
}

/// The four frameworks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    /// The UE's prompt goes to the cloud model.
    CloudOnly,
    /// The cloud model runs at the edge site.
    Offload,
    /// The first layers run at the edge, hidden states go to the cloud.
    Splitting,
    /// NetGPT: the edge model completes the prompt, the cloud model answers it.
    Synergy,
}

impl Framework {
    /// All four, in the paper's order.
    pub const ALL: [Framework; 4] = [
        Framework::CloudOnly,
        Framework::Offload,
        Framework::Splitting,
        Framework::Synergy,
    ];

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Framework::CloudOnly => "cloud-only",
            Framework::Offload => "LLM offload",
            Framework::Splitting => "LLM splitting",
            Framework::Synergy => "LLM synergy (NetGPT)",
        }
    }
}

/// The traffic a framework's prompts cause.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prompts {
    /// Mean bytes of a concise prompt (what the UE types).
    pub concise_bytes: f64,
    /// Mean bytes of a comprehensive prompt (the edge model's completion).
    pub comprehensive_bytes: f64,
    /// Mean tokens of a concise prompt under the cloud model's tokenizer.
    pub concise_tokens: f64,
}

/// One row of the Fig. 1 table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Which framework.
    pub framework: Framework,
    /// What the edge site holds.
    pub edge: Side,
    /// What the cloud holds.
    pub cloud: Side,
    /// The link the prompt bytes cross.
    pub link: &'static str,
    /// Bytes sent per prompt (before any generated token).
    pub bytes_per_prompt: f64,
    /// Bytes sent per generated token during decoding (splitting: one more hidden state).
    pub bytes_per_generated_token: f64,
    /// Transmission latency of all prompts' bytes at the link rate, seconds (serialisation
    /// only: no propagation delay, headers or set-up).
    pub transmission_s: f64,
}

/// Layers of the cloud model at the edge when splitting: `split_fraction` of them, rounded,
/// at least 1 and at most all but one.
pub fn split_layers(layers: usize, fraction: f64) -> usize {
    ((layers as f64 * fraction).round() as usize).clamp(1, layers.saturating_sub(1).max(1))
}

/// The Fig. 1 rows for `cloud` served alone or with `edge` as the edge model.
pub fn table(cloud: &ModelDims, edge: &ModelDims, p: &Prompts, s: &Settings) -> Vec<Row> {
    let r = s.lora_rank;
    let k = split_layers(cloud.layers, s.split_fraction);
    let none = Side::default();
    let latency = |bytes: f64| bytes * 8.0 * s.prompts as f64 / s.link_bps;
    Framework::ALL
        .iter()
        .map(|&f| {
            let (e, c, link, bytes, per_gen) = match f {
                Framework::CloudOnly => (
                    none,
                    Side::of(&cloud.whole(r), s),
                    "UE -> cloud",
                    p.concise_bytes,
                    0.0,
                ),
                Framework::Offload => (
                    Side::of(&cloud.whole(r), s),
                    none,
                    "UE -> edge",
                    p.concise_bytes,
                    0.0,
                ),
                Framework::Splitting => {
                    let hidden = cloud.hidden as f64 * s.hidden_bytes;
                    (
                        Side::of(&cloud.part(k, true, r), s),
                        Side::of(&cloud.part(k, false, r), s),
                        "edge -> cloud",
                        p.concise_tokens * hidden,
                        hidden,
                    )
                }
                Framework::Synergy => (
                    Side::of(&edge.whole(r), s),
                    Side::of(&cloud.whole(r), s),
                    "edge -> cloud",
                    p.comprehensive_bytes,
                    0.0,
                ),
            };
            Row {
                framework: f,
                edge: e,
                cloud: c,
                link,
                bytes_per_prompt: bytes,
                bytes_per_generated_token: per_gen,
                transmission_s: latency(bytes),
            }
        })
        .collect()
}

/// The paper's splitting-vs-prompt ratio `D = hidden x 4 / prompt_bytes`, taken literally
/// in the units that give its 10,922 for LLaMA-7B and a 12-byte prompt: the BITS of one
/// token's f32 hidden state (`hidden x 4 bytes x 8`) per BYTE of the prompt. In bytes per
/// byte the same quantity is 8 times smaller ([`bytes_ratio_per_token`]).
pub fn paper_d(hidden: usize, prompt_bytes: f64) -> f64 {
    hidden as f64 * 4.0 * 8.0 / prompt_bytes
}

/// Bytes of one token's hidden state (`elem_bytes` per element) per byte of the prompt.
pub fn bytes_ratio_per_token(hidden: usize, elem_bytes: f64, prompt_bytes: f64) -> f64 {
    hidden as f64 * elem_bytes / prompt_bytes
}

/// LLaMA-7B as the paper uses it (the original release's `config.json`).
pub fn llama_7b() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32_000,
        hidden_size: 4096,
        intermediate_size: 11_008,
        num_hidden_layers: 32,
        num_attention_heads: 32,
        num_key_value_heads: None,
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        max_position_embeddings: 2048,
        tie_word_embeddings: false,
    }
}

/// GPT-2 base (the 124 M "gpt2" release).
pub fn gpt2_base() -> gpt2::Config {
    gpt2::Config {
        vocab_size: 50_257,
        n_positions: 1024,
        n_embd: 768,
        n_layer: 12,
        n_head: 12,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        model_type: "gpt2".into(),
    }
}

/// SmolLM2-135M-Instruct's configuration, for when its GGUF is not cached (the published
/// `config.json`; the GGUF metadata is read instead whenever the file is there).
pub fn smollm2_135m() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 49_152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_hidden_layers: 30,
        num_attention_heads: 9,
        num_key_value_heads: Some(3),
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
    }
}

/// The configuration of a LLaMA GGUF file, from its metadata and tensor index (no tensor
/// data is read).
pub fn llama_config_from_gguf(path: &std::path::Path) -> crate::Result<LlamaConfig> {
    let g = crate::gguf::Gguf::open(path)?;
    let embd = g
        .content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| crate::Error::Format("GGUF has no token_embd.weight".into()))?;
    LlamaConfig::from_gguf(&g, embd.shape.dims()[0])
}

/// Bytes of a GGUF file's tensor data held by the first `k` layers plus the token embedding
/// (`front`), or by the other layers plus the output norm and head (a tied head counts the
/// embedding again): what each side of a split would store, from the file's own tensor
/// index and quantisation types.
pub fn gguf_split_bytes(path: &std::path::Path, k: usize) -> crate::Result<(u64, u64)> {
    let g = crate::gguf::Gguf::open(path)?;
    let tied = !g.has_tensor("output.weight");
    let (mut front, mut back) = (0u64, 0u64);
    for (name, info) in &g.content.tensor_infos {
        let dt = info.ggml_dtype;
        let bytes = (info.shape.elem_count() / dt.block_size() * dt.type_size()) as u64;
        let layer = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|i| i.parse::<usize>().ok());
        match layer {
            Some(i) if i < k => front += bytes,
            Some(_) => back += bytes,
            None if name == "token_embd.weight" => {
                front += bytes;
                if tied {
                    back += bytes;
                }
            }
            None => back += bytes,
        }
    }
    Ok((front, back))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_come_from_the_shapes() {
        let l = ModelDims::llama("LLaMA-7B", &llama_7b());
        assert_eq!(l.params(), 6_738_415_616);
        let g = ModelDims::gpt2("GPT-2", &gpt2_base());
        assert_eq!(g.params(), 124_439_808);
        // A split keeps every parameter on one side, except a tied head which both need.
        let k = split_layers(l.layers, 0.25);
        assert_eq!(k, 8);
        assert_eq!(
            l.part(k, true, 8).params + l.part(k, false, 8).params,
            l.params()
        );
        let s = ModelDims::llama("SmolLM2", &smollm2_135m());
        let emb = 49_152 * 576;
        assert_eq!(
            s.part(8, true, 8).params + s.part(8, false, 8).params,
            s.params() + emb
        );
    }

    #[test]
    fn the_papers_d_is_bits_per_byte() {
        assert!((paper_d(4096, 12.0) - 10_922.67).abs() < 0.01);
        assert!((bytes_ratio_per_token(4096, 4.0, 12.0) - 1365.33).abs() < 0.01);
    }
}
