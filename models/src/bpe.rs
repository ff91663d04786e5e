//! Byte-level BPE tokenizer for the edge model, trained with the `tokenizers` crate on the
//! project's own corpus, plus the edge model's prompt format.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, Tokenizer, TokenizerBuilder};

use crate::{Error, Result};

/// Padding / end-of-text token (id 0).
pub const PAD: &str = "<|endoftext|>";
/// Introduces the edge site id.
pub const SITE: &str = "<|site|>";
/// Introduces the user's concise prompt.
pub const CONCISE: &str = "<|concise|>";
/// Introduces the comprehensive prompt the model writes.
pub const COMPLETE: &str = "<|complete|>";
/// Ends the comprehensive prompt.
pub const END: &str = "<|end|>";
/// All special tokens, in id order (ids 0..5).
pub const SPECIAL_TOKENS: [&str; 5] = [PAD, SITE, CONCISE, COMPLETE, END];

/// The model input for a concise prompt at a site: `<|site|>SITE<|concise|>PROMPT<|complete|>`.
pub fn edge_prompt(site: &str, concise: &str) -> String {
    format!("{SITE}{site}{CONCISE}{}{COMPLETE}", concise.trim())
}

/// A full training text: the prompt, the completion and `<|end|>`.
pub fn edge_example(site: &str, concise: &str, completion: &str) -> String {
    format!("{}{}{END}", edge_prompt(site, concise), completion.trim())
}

/// Trains a byte-level BPE tokenizer of about `vocab_size` tokens on `texts`, with the
/// special tokens first.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let err = |e: tokenizers::Error| Error::Tokenizer(e.to_string());
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .build();
    let mut tok = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(ByteLevel::new(false, true, true).into()))
    .with_post_processor(Some(ByteLevel::new(false, true, true).into()))
    .with_decoder(Some(ByteLevel::new(false, true, true).into()))
    .build()
    .map_err(err)?;
    tok.train(&mut trainer, texts).map_err(err)?;
    Ok(Tokenizer::from(tok))
}

/// Saves a tokenizer as `tokenizer.json`.
pub fn save(tok: &Tokenizer, path: &Path) -> Result<()> {
    tok.save(path, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))
}

/// Loads a `tokenizer.json`.
pub fn load(path: &Path) -> Result<Tokenizer> {
    // The tokenizers crate panics (`expect("Helper")`) on some malformed sections: a bad
    // file is an error here, not a crash of the NF loading it.
    std::panic::catch_unwind(|| Tokenizer::from_file(path))
        .map_err(|_| Error::Tokenizer(format!("{}: malformed tokenizer", path.display())))?
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

/// Token ids of `text` (special tokens recognised, nothing added).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tok
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .get_ids()
        .to_vec())
}

/// Text of `ids`, special tokens dropped.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true)
        .map_err(|e| Error::Tokenizer(e.to_string()))
}

/// Id of a special token.
pub fn special_id(tok: &Tokenizer, token: &str) -> Result<u32> {
    tok.token_to_id(token)
        .ok_or_else(|| Error::Tokenizer(format!("{token} not in vocabulary")))
}
