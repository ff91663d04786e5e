//! The edge model: a small GPT-2 trained here to turn a concise prompt at an edge site into
//! a comprehensive prompt carrying that site's facts. Loading, completion (with optional
//! per-request LoRA adapters), training from scratch, LoRA fine-tuning and evaluation.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::bpe;
use crate::data::pairs::{self, Pair};
use crate::data::profiles::Profiles;
use crate::generation::{self, GenerationConfig};
use crate::gpt2::{self, Gpt2};
use crate::lora::{LoraAdapter, LoraConfig};
use crate::peft::AdapterRegistry;
use crate::train::{self, Example, TrainConfig, TrainReport};
use crate::{Error, Result};

/// Tokenizer file name inside a model folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A loaded edge model: shared GPT-2 weights, its tokenizer and its LoRA adapters.
pub struct EdgeModel {
    registry: AdapterRegistry,
    tokenizer: Tokenizer,
    end_ids: Vec<u32>,
}

impl EdgeModel {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let model = Gpt2::load(dir, device)?;
        let tokenizer = bpe::load(&dir.join(TOKENIZER_FILE))?;
        Self::new(model, tokenizer)
    }

    /// Wraps an in-memory model and tokenizer.
    pub fn new(model: Gpt2, tokenizer: Tokenizer) -> Result<Self> {
        let end_ids = vec![
            bpe::special_id(&tokenizer, bpe::END)?,
            bpe::special_id(&tokenizer, bpe::PAD)?,
        ];
        Ok(Self {
            registry: AdapterRegistry::new(Arc::new(model)),
            tokenizer,
            end_ids,
        })
    }

    /// The shared base model.
    pub fn model(&self) -> &Arc<Gpt2> {
        self.registry.base()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The adapters served over the base model.
    pub fn adapters(&self) -> &AdapterRegistry {
        &self.registry
    }

    /// Loads a PEFT adapter folder under `name` (e.g. a site id).
    pub fn load_adapter(&self, name: &str, dir: &Path) -> Result<()> {
        self.registry.load(name, dir)
    }

    /// Greedy completion of `concise` at `site`, with adapter `adapter` (`None`: base).
    /// Returns the comprehensive prompt.
    pub fn complete(&self, site: &str, concise: &str, adapter: Option<&str>) -> Result<String> {
        let cfg = GenerationConfig {
            max_new_tokens: 160,
            stop_token_ids: self.end_ids.clone(),
            ..Default::default()
        };
        self.complete_with(site, concise, adapter, &cfg)
    }

    /// Completion with explicit generation settings (stop tokens `<|end|>` are added).
    pub fn complete_with(
        &self,
        site: &str,
        concise: &str,
        adapter: Option<&str>,
        cfg: &GenerationConfig,
    ) -> Result<String> {
        if concise.trim().is_empty() {
            return Err(Error::Invalid("empty concise prompt".into()));
        }
        let ids = bpe::encode(&self.tokenizer, &bpe::edge_prompt(site, concise))?;
        let mut cfg = cfg.clone();
        cfg.stop_token_ids.extend(&self.end_ids);
        cfg.max_new_tokens = cfg.max_new_tokens.min(
            self.model()
                .config()
                .n_positions
                .saturating_sub(ids.len() + 1),
        );
        let mut lm = self.registry.lm(adapter)?;
        let g = generation::generate(&mut lm, &self.tokenizer, &ids, &cfg, &mut |_| {})?;
        let ids: Vec<u32> = g
            .tokens
            .into_iter()
            .filter(|t| !self.end_ids.contains(t))
            .collect();
        Ok(bpe::decode(&self.tokenizer, &ids)?.trim().to_string())
    }

    /// Greedy completions of several `(site, concise)` prompts decoded together with adapter
    /// `adapter` (dynamic batching: one batched forward per step for all of them). Each
    /// result is what [`EdgeModel::complete`] gives for that prompt alone (up to float
    /// rounding). An invalid item fails only its own slot.
    pub fn complete_batch(
        &self,
        items: &[(&str, &str)],
        adapter: Option<&str>,
    ) -> Result<Vec<Result<String>>> {
        let ctx = self.model().config().n_positions;
        let mut out: Vec<Option<Result<String>>> = Vec::with_capacity(items.len());
        let mut prompts = Vec::new();
        let mut slots = Vec::new();
        for (i, (site, concise)) in items.iter().enumerate() {
            if concise.trim().is_empty() {
                out.push(Some(Err(Error::Invalid("empty concise prompt".into()))));
                continue;
            }
            let ids = bpe::encode(&self.tokenizer, &bpe::edge_prompt(site, concise))?;
            if ids.len() + 1 >= ctx {
                out.push(Some(Err(Error::Invalid(format!(
                    "prompt of {} tokens does not fit the context of {ctx}",
                    ids.len()
                )))));
                continue;
            }
            out.push(None);
            prompts.push(ids);
            slots.push(i);
        }
        if !prompts.is_empty() {
            let cfg = GenerationConfig {
                max_new_tokens: 160,
                stop_token_ids: self.end_ids.clone(),
                ..Default::default()
            };
            let delta: Option<Arc<dyn gpt2::ProjDelta>> = match adapter {
                None => None,
                Some(n) => Some(
                    self.registry
                        .get(n)
                        .ok_or_else(|| Error::Invalid(format!("no adapter {n}")))?,
                ),
            };
            let lm = gpt2::Gpt2Batch::new(self.model().clone(), delta);
            let gens =
                generation::generate_batch(&lm, &self.tokenizer, &prompts, &cfg, &mut |_, _| {})?;
            for (slot, g) in slots.into_iter().zip(gens) {
                let ids: Vec<u32> = g
                    .tokens
                    .into_iter()
                    .filter(|t| !self.end_ids.contains(t))
                    .collect();
                out[slot] = Some(bpe::decode(&self.tokenizer, &ids).map(|s| s.trim().to_string()));
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every slot filled"))
            .collect())
    }

    /// Tokenises pairs into training examples (prompt masked by `prompt_len`).
    pub fn examples(&self, pairs: &[Pair]) -> Result<Vec<Example>> {
        encode_pairs(&self.tokenizer, pairs, self.model().config().n_positions)
    }
}

/// Tokenises pairs as `<|site|>..<|concise|>..<|complete|>..<|end|>`; drops any longer than
/// `max_len`.
pub fn encode_pairs(tok: &Tokenizer, pairs: &[Pair], max_len: usize) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let prompt_len = bpe::encode(tok, &bpe::edge_prompt(&p.site, &p.concise))?.len();
        let tokens = bpe::encode(tok, &bpe::edge_example(&p.site, &p.concise, &p.completion))?;
        if tokens.len() <= max_len {
            out.push(Example { tokens, prompt_len });
        }
    }
    Ok(out)
}

/// Settings of [`train_edge`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeTrainOptions {
    /// Seed of initialisation and batch order.
    pub seed: u64,
    /// BPE vocabulary size.
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Context length.
    pub n_positions: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
}

impl Default for EdgeTrainOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            vocab_size: 2000,
            n_layer: 4,
            n_embd: 128,
            n_head: 4,
            n_positions: 256,
            steps: 800,
            batch_size: 16,
            lr: 3e-3,
        }
    }
}

/// Trains the BPE tokenizer and a GPT-2 from scratch on `train_pairs`; returns the model
/// (as an [`EdgeModel`]) and the training report. `on_log(step, loss)` reports progress.
pub fn train_edge(
    train_pairs: &[Pair],
    profiles: &Profiles,
    opts: &EdgeTrainOptions,
    device: &Device,
    on_log: &mut dyn FnMut(usize, f32),
) -> Result<(EdgeModel, TrainReport)> {
    // Tokenizer corpus: the training texts and every profile fact.
    let mut corpus: Vec<String> = train_pairs
        .iter()
        .map(|p| bpe::edge_example(&p.site, &p.concise, &p.completion))
        .collect();
    for (sid, p) in profiles {
        corpus.push(format!(
            "{sid} {} {} {} {}",
            p.name, p.area, p.city, p.country
        ));
        corpus.extend(p.all_facts().map(|f| f.render()));
    }
    let tok = bpe::train_bpe(corpus.iter(), opts.vocab_size)?;
    let cfg = gpt2::Config {
        vocab_size: tok.get_vocab_size(true),
        n_positions: opts.n_positions,
        n_embd: opts.n_embd,
        n_layer: opts.n_layer,
        n_head: opts.n_head,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        model_type: "gpt2".into(),
    };
    let data = encode_pairs(&tok, train_pairs, cfg.n_positions)?;
    let (model, vars) = train::trainable_gpt2(&cfg, gpt2::init_tensors(&cfg, opts.seed, device)?)?;
    let tcfg = TrainConfig {
        steps: opts.steps,
        batch_size: opts.batch_size,
        lr: opts.lr,
        warmup: (opts.steps / 20).max(1),
        weight_decay: 0.01,
        seed: opts.seed,
        mask_prompt: true,
        log_every: 25,
    };
    let fwd = |ids: &Tensor| model.forward_train(ids, None);
    let report = train::train(&vars, &fwd, &data, &tcfg, device, on_log)?;
    // Rebuild from detached copies so the shipped model holds no autograd state.
    let model = Gpt2::from_tensors(
        &cfg,
        &model
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.detach()))
            .collect(),
    )?;
    Ok((EdgeModel::new(model, tok)?, report))
}

/// Writes an edge model folder: `config.json`, `model.safetensors`, `tokenizer.json`.
pub fn save_edge(model: &EdgeModel, dir: &Path) -> Result<()> {
    model.model().save(dir)?;
    bpe::save(model.tokenizer(), &dir.join(TOKENIZER_FILE))
}

/// LoRA fine-tuning of the edge model on `pairs` (e.g. one site's); returns the adapter.
pub fn train_lora(
    model: &EdgeModel,
    pairs: &[Pair],
    lcfg: LoraConfig,
    tcfg: &TrainConfig,
    on_log: &mut dyn FnMut(usize, f32),
) -> Result<(LoraAdapter, TrainReport)> {
    let base = model.model();
    let (adapter, vars) = LoraAdapter::new_gpt2(base.config(), lcfg, tcfg.seed, base.device())?;
    let data = model.examples(pairs)?;
    let fwd = |ids: &Tensor| base.forward_train(ids, Some(&adapter));
    let report = train::train(&vars, &fwd, &data, tcfg, base.device(), on_log)?;
    // Detach so the adapter serves without autograd state.
    let weights = adapter
        .weights
        .iter()
        .map(|(k, w)| {
            (
                *k,
                crate::lora::LoraWeights {
                    a: w.a.detach(),
                    b: w.b.detach(),
                    scale: w.scale,
                },
            )
        })
        .collect();
    Ok((
        LoraAdapter {
            config: adapter.config.clone(),
            weights,
        },
        report,
    ))
}

/// Held-out figures of an edge model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvalReport {
    /// Held-out pairs scored for loss.
    pub pairs: usize,
    /// Completion tokens scored.
    pub tokens: usize,
    /// Mean next-token cross-entropy over completion tokens (nats).
    pub loss: f32,
    /// `exp(loss)`.
    pub perplexity: f32,
    /// Pairs completed greedily for the fact check.
    pub generated: usize,
    /// Share of completions naming a fact of the right site in the requested category.
    pub right_category_fact_rate: f64,
    /// Share naming any fact of the right site.
    pub right_site_fact_rate: f64,
    /// Share naming a fact or the area of another site.
    pub other_site_rate: f64,
    /// Share with a right-category fact and nothing of another site.
    pub correct_rate: f64,
    /// Share whose completion equals the reference exactly.
    pub exact_match_rate: f64,
    /// Novel-phrasing probes completed ([`pairs::NOVEL_PROBES`] x every site).
    pub novel_probes: usize,
    /// Share of probes naming a right-site fact of the intended category, nothing of another site.
    pub novel_correct_rate: f64,
    /// Share of probes naming any right-site fact and nothing of another site.
    pub novel_right_site_rate: f64,
}

/// Loss/perplexity over all of `heldout`, and the fact check over the first `gen_limit`
/// pairs completed greedily (with adapter `adapter`).
pub fn evaluate(
    model: &EdgeModel,
    heldout: &[Pair],
    profiles: &Profiles,
    gen_limit: usize,
    adapter: Option<&str>,
) -> Result<EvalReport> {
    let base = model.model();
    let data = model.examples(heldout)?;
    let lora = adapter
        .map(|n| {
            model
                .adapters()
                .get(n)
                .ok_or_else(|| Error::Invalid(format!("no adapter {n}")))
        })
        .transpose()?;
    let fwd = |ids: &Tensor| {
        base.forward_train(
            ids,
            lora.as_deref().map(|a| a as &dyn crate::gpt2::ProjDelta),
        )
    };
    let (loss, tokens) = train::eval_loss(&fwd, &data, 32, true, base.device())?;
    let mut r = EvalReport {
        pairs: data.len(),
        tokens,
        loss,
        perplexity: loss.exp(),
        ..Default::default()
    };
    let n = gen_limit.min(heldout.len());
    for p in &heldout[..n] {
        let text = model.complete(&p.site, &p.concise, adapter)?;
        let c = pairs::check_completion(profiles, &p.site, &p.category, &text);
        r.right_category_fact_rate += c.right_category_fact as u8 as f64;
        r.right_site_fact_rate += c.right_site_fact as u8 as f64;
        r.other_site_rate += c.other_site as u8 as f64;
        r.correct_rate += c.correct() as u8 as f64;
        r.exact_match_rate += (text == p.completion) as u8 as f64;
    }
    r.generated = n;
    for sid in profiles.keys() {
        for (cat, concise) in pairs::NOVEL_PROBES {
            let text = model.complete(sid, concise, adapter)?;
            let c = pairs::check_completion(profiles, sid, cat, &text);
            r.novel_probes += 1;
            r.novel_correct_rate += c.correct() as u8 as f64;
            r.novel_right_site_rate += (c.right_site_fact && !c.other_site) as u8 as f64;
        }
    }
    r.novel_correct_rate /= r.novel_probes.max(1) as f64;
    r.novel_right_site_rate /= r.novel_probes.max(1) as f64;
    let d = n.max(1) as f64;
    for v in [
        &mut r.right_category_fact_rate,
        &mut r.right_site_fact_rate,
        &mut r.other_site_rate,
        &mut r.correct_rate,
        &mut r.exact_match_rate,
    ] {
        *v /= d;
    }
    Ok(r)
}

/// What [`train_edge_to_dir`] writes into `train_report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeTrainSummary {
    /// Settings used.
    pub options: EdgeTrainOptions,
    /// Trainable parameters.
    pub parameters: usize,
    /// Training wall-clock seconds.
    pub train_seconds: f64,
    /// `(step, mean loss)` during training.
    pub losses: Vec<(usize, f32)>,
    /// Held-out figures of the saved model.
    pub heldout: EvalReport,
}

/// Trains with [`train_edge`], saves the model folder into `out` (config, weights,
/// tokenizer), evaluates it on `heldout` (fact check over `eval_gen` pairs) and writes
/// `train_report.json` there.
pub fn train_edge_to_dir(
    train_pairs: &[Pair],
    heldout: &[Pair],
    profiles: &Profiles,
    opts: &EdgeTrainOptions,
    out: &Path,
    eval_gen: usize,
    on_log: &mut dyn FnMut(usize, f32),
) -> Result<EdgeTrainSummary> {
    let (model, report) = train_edge(train_pairs, profiles, opts, &Device::Cpu, on_log)?;
    save_edge(&model, out)?;
    // Evaluate what was written, as a user will load it.
    let model = EdgeModel::load(out, &Device::Cpu)?;
    let heldout = evaluate(&model, heldout, profiles, eval_gen, None)?;
    let summary = EdgeTrainSummary {
        options: opts.clone(),
        parameters: report.trainable_params,
        train_seconds: report.seconds,
        losses: report.losses,
        heldout,
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Format(e.to_string()))?;
    std::fs::write(out.join("train_report.json"), text + "\n")?;
    Ok(summary)
}
