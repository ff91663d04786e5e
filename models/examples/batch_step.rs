//! Decode-step throughput of the cloud model at several batch sizes, without any serving:
//! each of B sequences gets a 40-token prompt, then 40 decode steps of one token per
//! sequence are timed. The ceiling continuous batching can reach on this machine.
//!
//! `cargo run --release -p netgpt-models --example batch_step -- 1 8 32`

use std::time::Instant;

use netgpt_models::chat::CloudLlm;

fn main() -> netgpt_models::Result<()> {
    let llm = CloudLlm::load_default()?;
    let m = &llm.model;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    for b in if sizes.is_empty() {
        vec![1, 8, 32]
    } else {
        sizes
    } {
        let mut caches: Vec<_> = (0..b).map(|_| m.new_cache()).collect();
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|i| (0..40).map(|j| (100 + i * 7 + j) as u32).collect())
            .collect();
        let seqs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
        m.forward_seqs(&seqs, &mut caches.iter_mut().collect::<Vec<_>>())?;
        let steps = 40;
        let t = Instant::now();
        for s in 0..steps {
            let toks: Vec<[u32; 1]> = (0..b).map(|i| [(200 + i + s) as u32]).collect();
            let seqs: Vec<&[u32]> = toks.iter().map(|t| t.as_slice()).collect();
            let logits = m.forward_seqs(&seqs, &mut caches.iter_mut().collect::<Vec<_>>())?;
            let _rows: Vec<Vec<f32>> = logits.to_vec2()?;
        }
        let dt = t.elapsed().as_secs_f64() / steps as f64;
        println!(
            "batch {b:>3}: {:>6.1} ms per step, {:>6.0} tok/s",
            dt * 1e3,
            b as f64 / dt
        );
    }
    Ok(())
}
