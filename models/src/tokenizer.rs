//! Tokenizers: a byte-level BPE built from GGUF metadata, or a plain `tokenizer.json`.
//!
//! The GGUF path is written here rather than taken from candle because candle's
//! `TokenizerFromGguf` adds a prefix space for SmolLM2 and so gets ids wrong. This one
//! mirrors the Hugging Face `tokenizer.json` of the GPT-2-style ("gpt2" GGUF model) family:
//! digits split one by one, byte-level pre-tokenisation with GPT-2's regex, no prefix space.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::gguf::Gguf;
use crate::{Error, Result};

/// GGUF token type of control tokens (`<|im_start|>`, `<|endoftext|>`).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens, also treated as special.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Builds the tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`).
///
/// Only the byte-level BPE kind (`tokenizer.ggml.model = "gpt2"`) is supported; token
/// types 3 (control) and 4 (user-defined) become special tokens, matched before BPE.
pub fn from_gguf(gguf: &Gguf) -> Result<Tokenizer> {
    let kind = gguf.get_str("tokenizer.ggml.model")?;
    if kind != "gpt2" {
        return Err(Error::Tokenizer(format!(
            "GGUF tokenizer model `{kind}` is not supported (only byte-level BPE `gpt2`)"
        )));
    }
    let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
    let merges = gguf.get_str_array("tokenizer.ggml.merges")?;
    let types = gguf
        .get_i32_array("tokenizer.ggml.token_type")
        .unwrap_or_else(|_| vec![1; tokens.len()]);

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| Error::Tokenizer(format!("bad merge `{m}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(tok_err)?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
        .map(|(tok, _)| AddedToken::from(tok.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(specials).map_err(tok_err)?;
    Ok(tokenizer)
}

/// Builds the tokenizer of the GGUF file at `path`.
pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
    from_gguf(&Gguf::open(path)?)
}

/// Loads a Hugging Face `tokenizer.json`.
pub fn from_json_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    // The tokenizers crate panics on some malformed sections (see `bpe::load`).
    std::panic::catch_unwind(|| Tokenizer::from_file(path))
        .map_err(|_| Error::Tokenizer(format!("{}: malformed tokenizer", path.display())))?
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

/// Encodes `text` with special tokens parsed (`<|im_start|>` is one id) and no BOS/post-processing.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer
        .encode_fast(text, false)
        .map_err(tok_err)?
        .get_ids()
        .to_vec())
}

/// Decodes `ids` to text, keeping special tokens in the text.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer.decode(ids, false).map_err(tok_err)
}

/// The id of `token` (exact vocabulary entry, e.g. `<|im_end|>`), if any.
pub fn token_id(tokenizer: &Tokenizer, token: &str) -> Option<u32> {
    tokenizer.token_to_id(token)
}
