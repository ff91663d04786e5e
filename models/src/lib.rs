//! Edge GPT-2 and cloud LLaMA in candle, with their tokenizers, generation, LoRA,
//! training and data sets. No HTTP, no async: the AI network functions call into this.
//!
//! One architecture per file (`gpt2`, `llama`); generation, LoRA, tokenisation and
//! training are their own modules and the model code is unaware of them.

pub mod analytics;
pub(crate) mod attention;
pub mod bench;
pub mod bpe;
pub mod chat;
pub mod data;
pub mod edge;
pub mod fetch;
pub mod footprint;
pub mod generation;
pub mod gguf;
pub mod gpt2;
pub mod llama;
pub mod llama_lora;
pub mod llama_split;
pub mod lora;
pub mod peft;
pub mod stream;
pub mod tokenizer;
pub mod train;

/// Errors of the models crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("bad model file: {0}")]
    Format(String),
    #[error("model fetch: {0}")]
    Fetch(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// Result of the models crate.
pub type Result<T> = std::result::Result<T, Error>;
