//! Token streaming as an iterator over a channel: generation runs on its own thread and
//! hands each decoded piece of text over a bounded channel, so a server can forward
//! pieces as they come (server-sent events) and a CLI can print them.
//!
//! Dropping the stream early stops the generation at the next token.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::generation::{generate_until, CausalLm, Detokenizer, Generation, GenerationConfig};
use crate::{Error, Result};

/// Pieces of text buffered between the generating thread and the reader.
const CHANNEL_DEPTH: usize = 64;

/// An iterator of decoded text pieces; [`GenerationStream::finish`] returns the model and the
/// whole [`Generation`] (text, tokens, finish reason, usage).
pub struct GenerationStream<M> {
    rx: Receiver<String>,
    handle: Option<JoinHandle<Result<(M, Generation)>>>,
}

impl<M> Iterator for GenerationStream<M> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.rx.recv().ok()
    }
}

impl<M> GenerationStream<M> {
    /// Waits for the generation to end (reading what is left) and returns the model with
    /// the result.
    pub fn finish(mut self) -> Result<(M, Generation)> {
        while self.rx.recv().is_ok() {}
        let handle = self.handle.take().expect("finish is called once");
        handle
            .join()
            .map_err(|_| Error::Invalid("the generation thread panicked".into()))?
    }
}

/// Starts generating from `prompt` on a new thread and returns the stream of text pieces.
/// The model moves into the thread and comes back from [`GenerationStream::finish`].
pub fn stream<M, D>(
    mut model: M,
    detok: D,
    prompt: Vec<u32>,
    cfg: GenerationConfig,
) -> GenerationStream<M>
where
    M: CausalLm + Send + 'static,
    D: Detokenizer + Send + 'static,
{
    let (tx, rx): (SyncSender<String>, Receiver<String>) = mpsc::sync_channel(CHANNEL_DEPTH);
    let handle = std::thread::spawn(move || {
        // A failed send means the reader is gone: stop decoding at the next token.
        let generation = generate_until(&mut model, &detok, &prompt, &cfg, &mut |piece| {
            tx.send(piece.to_owned()).is_ok()
        })?;
        Ok((model, generation))
    });
    GenerationStream {
        rx,
        handle: Some(handle),
    }
}
