//! Chat with the cloud model: the ChatML template of SmolLM2 and a loaded model + tokenizer.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::generation::{generate, generate_batch, Generation, GenerationConfig};
use crate::llama::Llama;
use crate::{tokenizer, Error, Result};

/// System prompt used when a conversation brings none (SmolLM2's own default).
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
/// ChatML end-of-turn token.
pub const IM_END: &str = "<|im_end|>";
/// ChatML start-of-turn token.
pub const IM_START: &str = "<|im_start|>";

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the assistant.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Renders `messages` in ChatML. A system message with [`DEFAULT_SYSTEM_PROMPT`] is put first
/// when there is none; with `add_generation_prompt` the text ends with an open assistant turn.
pub fn render_chatml(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    if messages.first().map(|m| m.role) != Some(Role::System) {
        push_turn(&mut out, Role::System, DEFAULT_SYSTEM_PROMPT);
    }
    for m in messages {
        push_turn(&mut out, m.role, &m.content);
    }
    if add_generation_prompt {
        out.push_str(IM_START);
        out.push_str("assistant\n");
    }
    out
}

fn push_turn(out: &mut String, role: Role, content: &str) {
    out.push_str(IM_START);
    out.push_str(role.as_str());
    out.push('\n');
    out.push_str(content);
    out.push_str(IM_END);
    out.push('\n');
}

/// Block type the cloud GGUF's Q4_x matrices are requantized to at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requant {
    /// Keep the file's blocks (Q4_1: our AVX512-VNNI kernel where the CPU has it, else
    /// candle's scalar one, the slowest).
    Keep,
    /// 8-bit blocks: SIMD kernels, twice the weight bytes of Q4_1, no visible quality loss.
    /// Where [`crate::llama::native_q41`] holds, Q4_1 matrices stay Q4_1 (our kernel reads
    /// half the bytes) and only other block types are requantized.
    #[default]
    Q8_0,
    /// 4-bit k-quant blocks (widths padded to 256): VNNI kernels at Q4 size, but a second
    /// rounding of already 4-bit weights.
    Q4K,
}

impl Requant {
    /// The candle block type, `None` to keep the file's.
    pub fn dtype(self) -> Option<GgmlDType> {
        match self {
            Requant::Keep => None,
            Requant::Q8_0 => Some(GgmlDType::Q8_0),
            Requant::Q4K => Some(GgmlDType::Q4K),
        }
    }
}

impl std::str::FromStr for Requant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "keep" | "none" | "q4_1" => Ok(Requant::Keep),
            "q8_0" | "q8" => Ok(Requant::Q8_0),
            "q4k" | "q4_k" => Ok(Requant::Q4K),
            _ => Err(Error::Invalid(format!(
                "requant `{s}`: expected keep, q8_0 or q4k"
            ))),
        }
    }
}

/// The cloud LLM ready to chat: weights, tokenizer and the ids that end a turn.
pub struct CloudLlm {
    /// The model.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// `<|im_end|>` and EOS ids: generation stops on them.
    pub stop_ids: Vec<u32>,
}

impl CloudLlm {
    /// Loads a GGUF file with its built-in tokenizer, requantizing Q4_x to Q8_0 for speed.
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_gguf_with(path, Requant::default())
    }

    /// Loads a GGUF file with its built-in tokenizer, requantizing as asked.
    pub fn from_gguf_with(path: impl AsRef<Path>, requant: Requant) -> Result<Self> {
        let path = path.as_ref();
        let tokenizer = tokenizer::from_gguf_file(path)?;
        let model = Llama::from_gguf(path, &Device::Cpu, requant.dtype())?;
        Ok(Self::new(model, tokenizer))
    }

    /// Loads a Hugging Face LLaMA folder (`config.json`, `*.safetensors`, `tokenizer.json`).
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let tokenizer = tokenizer::from_json_file(dir.join("tokenizer.json"))?;
        let model = Llama::from_hf_dir(dir, &Device::Cpu, None)?;
        Ok(Self::new(model, tokenizer))
    }

    /// The default cloud model (SmolLM2-135M-Instruct), fetched on first use.
    pub fn load_default() -> Result<Self> {
        Self::from_gguf(crate::fetch::ensure_cloud_model()?)
    }

    /// Wraps an already loaded model and tokenizer.
    pub fn new(model: Llama, tokenizer: Tokenizer) -> Self {
        let stop_ids = [IM_END, "<|endoftext|>", "</s>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        Self {
            model,
            tokenizer,
            stop_ids,
        }
    }

    /// `cfg` with this model's end-of-turn ids added to the stop tokens.
    pub fn with_stops(&self, cfg: &GenerationConfig) -> GenerationConfig {
        let mut cfg = cfg.clone();
        for id in &self.stop_ids {
            if !cfg.stop_token_ids.contains(id) {
                cfg.stop_token_ids.push(*id);
            }
        }
        cfg
    }

    /// Token ids of the ChatML rendering of `messages`, ending with an open assistant turn.
    pub fn prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(Error::Invalid("no messages".into()));
        }
        tokenizer::encode(&self.tokenizer, &render_chatml(messages, true))
    }

    /// Answers the conversation, streaming text pieces to `on_text`.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let ids = self.prompt_ids(messages)?;
        let cfg = self.with_stops(cfg);
        generate(&mut self.model, &self.tokenizer, &ids, &cfg, on_text)
    }

    /// Answers several conversations together (batched decode).
    pub fn chat_batch(
        &self,
        conversations: &[Vec<ChatMessage>],
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Generation>> {
        let prompts = conversations
            .iter()
            .map(|c| self.prompt_ids(c))
            .collect::<Result<Vec<_>>>()?;
        let cfg = self.with_stops(cfg);
        generate_batch(&self.model, &self.tokenizer, &prompts, &cfg, on_text)
    }
}
