//! Generation over any causal LM: KV cache handling is the model's, sampling and stopping are here.

use candle_core::Tensor;

/// A decoder-only language model with its own KV cache.
///
/// Implemented by the GPT-2 edge model and the LLaMA cloud model.
pub trait CausalLm {
    /// Feeds `tokens` at positions `pos..pos + tokens.len()` (appending to the KV cache)
    /// and returns the logits of the last position, shape `[vocab]`, f32.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> crate::Result<Tensor>;
    /// Drops the KV cache so the next call starts a new sequence at position 0.
    fn clear_cache(&mut self);
    /// Longest context the model supports.
    fn max_seq_len(&self) -> usize;
}
