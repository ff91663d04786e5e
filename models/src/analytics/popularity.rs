//! Content popularity prediction, the NetGPT paper's protocol: time is cut into 6-hour
//! intervals (UTC boundaries 00/06/12/18, index counted from the interval holding the first
//! event), the 20 most viewed items are followed, and each (interval, item) becomes a
//! natural-language sample such as
//!
//! `In interval 57 (Sat 18-24h, last 8: 0,1,1,0,0,1,1,0), movie 'Iron Man 2' appear:` -> `1`
//!
//! The paper's bare form (`In interval 1, movie 'Iron Man 2' appear:`) gives a forecaster
//! nothing to go on but the interval number, so the sample also carries what a forecaster
//! legitimately knows: the weekday and time-of-day slot of the interval and whether the
//! item appeared in each of its last `history` intervals. The LSTM/GRU baselines get exactly
//! that information (the history as a sequence, the slot, weekday and item as static
//! features), on the same split.
//!
//! The split is chronological: the last 5 % of intervals are the test set. A forecaster
//! only ever knows the past; a random split would let a model interpolate a test interval
//! from its neighbours on both sides.
//!
//! The edge GPT-2 (`models/edge`) is fully fine-tuned on the samples with the loss on the
//! label token only; its prediction is whichever of the two label tokens (`0`, `1`) has the
//! higher logit after `appear:` (no free generation), and its probability is the softmax
//! over those two logits.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::rnn::{self, CellKind, RnnClassifier, RnnConfig, RnnTrainConfig, SeqData};
use super::trace::{self, TraceConfig, ViewEvent};
use crate::gpt2::Gpt2;
use crate::train::{self, Example, TrainConfig};
use crate::{bpe, Error, Result};

/// Hours per interval.
pub const INTERVAL_HOURS: i64 = 6;
/// Items followed (the most viewed ones).
pub const TOP_N: usize = 20;
/// Artefact folder under the `models` directory.
pub const ARTEFACT_DIR: &str = "analytics/popularity";
/// Settings file inside the artefact folder.
pub const SETTINGS_FILE: &str = "settings.json";
/// LSTM weights inside the artefact folder.
pub const LSTM_FILE: &str = "lstm.safetensors";
/// GRU weights inside the artefact folder.
pub const GRU_FILE: &str = "gru.safetensors";
/// Measured report inside the artefact folder.
pub const REPORT_FILE: &str = "report.json";

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Start of the 6-hour interval holding `t` (UTC boundaries 00/06/12/18).
pub fn interval_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let h = t.hour() as i64 / INTERVAL_HOURS * INTERVAL_HOURS;
    Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), h as u32, 0, 0)
        .single()
        .unwrap_or(t)
}

/// Index of the interval holding `t`, counted from the interval holding `origin`.
pub fn interval_index(origin: DateTime<Utc>, t: DateTime<Utc>) -> usize {
    let d = interval_floor(t) - interval_floor(origin);
    (d.num_hours() / INTERVAL_HOURS).max(0) as usize
}

/// Number of intervals spanned by `events` (from the first event's interval to the last
/// event's, inclusive); 0 without events.
pub fn intervals(events: &[ViewEvent]) -> usize {
    match (
        events.iter().map(|e| e.datetime).min(),
        events.iter().map(|e| e.datetime).max(),
    ) {
        (Some(a), Some(b)) => interval_index(a, b) + 1,
        _ => 0,
    }
}

/// A followed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopItem {
    /// Item id.
    pub movie_id: String,
    /// Title (the first one seen for the id).
    pub title: String,
    /// Views in the events considered.
    pub views: usize,
}

/// The `n` most viewed items of `events`, most viewed first (ties: smaller id first).
pub fn top_items(events: &[ViewEvent], n: usize) -> Vec<TopItem> {
    let mut counts: HashMap<&str, (usize, &str)> = HashMap::new();
    for e in events {
        counts
            .entry(e.movie_id.as_str())
            .or_insert((0, e.title.as_str()))
            .0 += 1;
    }
    let mut v: Vec<TopItem> = counts
        .into_iter()
        .map(|(id, (views, title))| TopItem {
            movie_id: id.to_string(),
            title: title.to_string(),
            views,
        })
        .collect();
    v.sort_by(|a, b| {
        b.views
            .cmp(&a.views)
            .then_with(|| a.movie_id.cmp(&b.movie_id))
    });
    v.truncate(n);
    v
}

/// `appears[item][interval]`: whether `items[item]` was viewed in the interval, over
/// `n_intervals` intervals counted from `origin`.
pub fn appearances(
    events: &[ViewEvent],
    items: &[TopItem],
    origin: DateTime<Utc>,
    n_intervals: usize,
) -> Vec<Vec<bool>> {
    let pos: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (t.movie_id.as_str(), i))
        .collect();
    let mut m = vec![vec![false; n_intervals]; items.len()];
    for e in events {
        if let Some(&i) = pos.get(e.movie_id.as_str()) {
            if e.datetime >= interval_floor(origin) {
                let k = interval_index(origin, e.datetime);
                if k < n_intervals {
                    m[i][k] = true;
                }
            }
        }
    }
    m
}

/// One (interval, item) sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Interval index.
    pub interval: usize,
    /// Start of the interval (UTC).
    pub start: DateTime<Utc>,
    /// Rank of the item among the followed ones (0 = most viewed).
    pub item: usize,
    /// Item id.
    pub movie_id: String,
    /// Title.
    pub title: String,
    /// Appearance in the previous intervals, oldest first.
    pub history: Vec<bool>,
    /// Whether the item appears in the interval.
    pub label: bool,
}

/// Time-of-day slot of an interval start: 0 (00-06h) .. 3 (18-24h).
pub fn slot_of(start: DateTime<Utc>) -> usize {
    start.hour() as usize / INTERVAL_HOURS as usize
}

/// The sample text up to `appear:`; the label token (`0`/`1`) follows it directly.
pub fn prompt_text(interval: usize, start: DateTime<Utc>, title: &str, history: &[bool]) -> String {
    let s = slot_of(start) * INTERVAL_HOURS as usize;
    let wd = WEEKDAYS[start.weekday().num_days_from_monday() as usize];
    let hist: Vec<&str> = history.iter().map(|b| if *b { "1" } else { "0" }).collect();
    format!(
        "In interval {interval} ({wd} {s:02}-{:02}h, last {}: {}), movie '{title}' appear:",
        s + INTERVAL_HOURS as usize,
        history.len(),
        hist.join(",")
    )
}

impl Sample {
    /// The prompt (see [`prompt_text`]).
    pub fn prompt(&self) -> String {
        prompt_text(self.interval, self.start, &self.title, &self.history)
    }
}

/// The followed items and all samples of a trace.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Followed items, most viewed first.
    pub items: Vec<TopItem>,
    /// Intervals in the trace.
    pub intervals: usize,
    /// Samples for intervals `history..intervals`, interval-major, item-minor.
    pub samples: Vec<Sample>,
}

/// Builds the samples of `events`: the `top_n` most viewed items, one sample per item for
/// every interval that has `history` earlier intervals.
pub fn build_dataset(events: &[ViewEvent], top_n: usize, history: usize) -> Result<Dataset> {
    let origin = events
        .iter()
        .map(|e| e.datetime)
        .min()
        .ok_or_else(|| Error::Invalid("no events".into()))?;
    let n = intervals(events);
    let items = top_items(events, top_n);
    let m = appearances(events, &items, origin, n);
    let mut samples = Vec::new();
    for k in history..n {
        let start = interval_floor(origin) + Duration::hours(INTERVAL_HOURS * k as i64);
        for (i, it) in items.iter().enumerate() {
            samples.push(Sample {
                interval: k,
                start,
                item: i,
                movie_id: it.movie_id.clone(),
                title: it.title.clone(),
                history: m[i][k - history..k].to_vec(),
                label: m[i][k],
            });
        }
    }
    Ok(Dataset {
        items,
        intervals: n,
        samples,
    })
}

/// Chronological split: samples of the last `ceil(test_frac x intervals)` intervals are the
/// test set. Returns `(train, test)`.
pub fn split_chronological(ds: &Dataset, test_frac: f64) -> (Vec<Sample>, Vec<Sample>) {
    let first = ds.samples.first().map(|s| s.interval).unwrap_or(0);
    let span = ds.intervals.saturating_sub(first);
    let n_test = ((span as f64 * test_frac).ceil() as usize).clamp(1, span.max(1));
    let cut = ds.intervals.saturating_sub(n_test);
    ds.samples.iter().cloned().partition(|s| s.interval < cut)
}

/// RNN features of samples: the history as a sequence (per step: appeared, one-hot slot of
/// that interval), and static features (one-hot slot and weekday of the target interval,
/// one-hot item rank among `top_n`) — the same information the prompt text carries.
pub fn seq_features(samples: &[Sample], top_n: usize) -> SeqData {
    let steps = samples.first().map(|s| s.history.len()).unwrap_or(0);
    let mut d = SeqData {
        n: samples.len(),
        steps,
        input: 5,
        static_dim: 4 + 7 + top_n,
        ..Default::default()
    };
    for s in samples {
        let slot = slot_of(s.start);
        for (j, h) in s.history.iter().enumerate() {
            let back = steps - j; // intervals before the target
            let sl = (slot + 4 * steps - back) % 4;
            d.seq.push(*h as u8 as f32);
            d.seq.extend((0..4).map(|q| (q == sl) as u8 as f32));
        }
        d.stat.extend((0..4).map(|q| (q == slot) as u8 as f32));
        let wd = s.start.weekday().num_days_from_monday() as usize;
        d.stat.extend((0..7).map(|q| (q == wd) as u8 as f32));
        d.stat
            .extend((0..top_n).map(|q| (q == s.item) as u8 as f32));
        d.labels.push(s.label as u8 as f32);
    }
    d
}

/// Classification figures of one predictor on the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scores {
    /// Predictor name.
    pub model: String,
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Precision of the positive class (0 when nothing is predicted positive).
    pub precision: f64,
    /// Recall of the positive class.
    pub recall: f64,
    /// F1 of the positive class.
    pub f1: f64,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// True negatives.
    pub tn: usize,
    /// False negatives.
    pub fn_: usize,
}

impl Scores {
    /// Scores of predictions `pred` against `labels`.
    pub fn new(model: &str, pred: &[bool], labels: &[bool]) -> Self {
        let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
        for (p, y) in pred.iter().zip(labels) {
            match (p, y) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, false) => tn += 1,
                (false, true) => fn_ += 1,
            }
        }
        let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (div(tp, tp + fp), div(tp, tp + fn_));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            model: model.to_string(),
            accuracy: div(tp + tn, tp + fp + tn + fn_),
            precision,
            recall,
            f1,
            tp,
            fp,
            tn,
            fn_,
        }
    }
}

/// Settings of the whole experiment; shipped as `settings.json` beside the artefacts so
/// that [`evaluate_shipped`] rebuilds the same data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PopularitySettings {
    /// The generated trace.
    pub trace: TraceConfig,
    /// Items followed.
    pub top_n: usize,
    /// Past intervals in each sample.
    pub history: usize,
    /// Share of intervals in the (chronological) test set.
    pub test_frac: f64,
    /// GPT-2 fine-tuning steps.
    pub gpt_steps: usize,
    /// GPT-2 sequences per step.
    pub gpt_batch: usize,
    /// GPT-2 peak learning rate.
    pub gpt_lr: f64,
    /// Hidden size of the LSTM and GRU.
    pub rnn_hidden: usize,
    /// LSTM/GRU training.
    pub rnn_train: RnnTrainConfig,
    /// Seed of the GPT-2 batch order and RNN initialisation.
    pub seed: u64,
}

impl Default for PopularitySettings {
    fn default() -> Self {
        Self {
            trace: TraceConfig::default(),
            top_n: TOP_N,
            history: 8,
            test_frac: 0.05,
            gpt_steps: 600,
            gpt_batch: 32,
            gpt_lr: 1e-3,
            rnn_hidden: 32,
            rnn_train: RnnTrainConfig::default(),
            seed: 42,
        }
    }
}

/// Split sizes and label balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitInfo {
    /// Events in the trace.
    pub events: usize,
    /// Intervals in the trace.
    pub intervals: usize,
    /// Training samples.
    pub train: usize,
    /// Test samples.
    pub test: usize,
    /// First test interval (all later ones are test too).
    pub first_test_interval: usize,
    /// Share of positive labels in training.
    pub positive_rate_train: f64,
    /// Share of positive labels in test.
    pub positive_rate_test: f64,
    /// Share of all views that go to the followed items.
    pub top_share: f64,
}

/// The measured table: every predictor on the same test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Settings that produced the data and models.
    pub settings: PopularitySettings,
    /// Split sizes.
    pub split: SplitInfo,
    /// One row per predictor: GPT-2, LSTM, GRU, majority, previous interval.
    pub rows: Vec<Scores>,
    /// Training wall-clock seconds per model (empty when nothing was trained).
    pub train_seconds: BTreeMap<String, f64>,
}

impl Report {
    /// The row of `model`.
    pub fn row(&self, model: &str) -> Option<&Scores> {
        self.rows.iter().find(|r| r.model == model)
    }

    /// Markdown: the split and the table.
    pub fn to_markdown(&self) -> String {
        let s = &self.split;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Content popularity prediction: {} events, {} intervals of 6 h, top {} items, history {}.",
            s.events, s.intervals, self.settings.top_n, self.settings.history
        );
        let _ = writeln!(
            out,
            "Chronological split: {} training samples, {} test samples (intervals {}..{}); positive rate train {:.1} %, test {:.1} %.\n",
            s.train,
            s.test,
            s.first_test_interval,
            s.intervals.saturating_sub(1),
            100.0 * s.positive_rate_train,
            100.0 * s.positive_rate_test
        );
        out.push_str("| model | accuracy | precision | recall | F1 | TP | FP | TN | FN |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {} |",
                r.model, r.accuracy, r.precision, r.recall, r.f1, r.tp, r.fp, r.tn, r.fn_
            );
        }
        if !self.train_seconds.is_empty() {
            let t: Vec<String> = self
                .train_seconds
                .iter()
                .map(|(k, v)| format!("{k} {v:.1} s"))
                .collect();
            let _ = writeln!(out, "\nTraining time: {}.", t.join(", "));
        }
        out
    }
}

/// Row names of the report.
pub const GPT_ROW: &str = "edge GPT-2 (fine-tuned)";
/// LSTM row.
pub const LSTM_ROW: &str = "LSTM";
/// GRU row.
pub const GRU_ROW: &str = "GRU";
/// Majority-class row.
pub const MAJORITY_ROW: &str = "majority class";
/// Previous-interval row.
pub const PREVIOUS_ROW: &str = "same as previous interval";

/// Token ids of the labels `0` and `1` right after `appear:`; errors unless each label is
/// one token appended to the prompt's tokens.
pub fn label_ids(tok: &Tokenizer) -> Result<[u32; 2]> {
    let p = prompt_text(
        8,
        Utc.with_ymd_and_hms(2017, 1, 2, 0, 0, 0).unwrap(),
        "X",
        &[true],
    );
    let base = bpe::encode(tok, &p)?;
    let mut ids = [0u32; 2];
    for (k, l) in ["0", "1"].iter().enumerate() {
        let t = bpe::encode(tok, &format!("{p}{l}"))?;
        if t.len() != base.len() + 1 || t[..base.len()] != base[..] {
            return Err(Error::Tokenizer(format!(
                "label '{l}' is not a single token after 'appear:'"
            )));
        }
        ids[k] = t[base.len()];
    }
    Ok(ids)
}

/// P(label `1`) for each prompt: softmax over the two label logits at the last position.
pub fn gpt_probabilities(
    model: &Gpt2,
    tok: &Tokenizer,
    labels: [u32; 2],
    prompts: &[String],
) -> Result<Vec<f64>> {
    let dev = model.device().clone();
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(64) {
        let enc: Vec<Vec<u32>> = chunk
            .iter()
            .map(|p| bpe::encode(tok, p))
            .collect::<Result<_>>()?;
        let t = enc.iter().map(Vec::len).max().unwrap_or(1);
        let mut ids = vec![0u32; enc.len() * t];
        for (i, e) in enc.iter().enumerate() {
            ids[i * t..i * t + e.len()].copy_from_slice(e);
        }
        let ids = Tensor::from_vec(ids, (enc.len(), t), &dev)?;
        let h = model.hidden(&ids, 0, None, None)?;
        let last: Vec<Tensor> = enc
            .iter()
            .enumerate()
            .map(|(i, e)| h.get(i)?.get(e.len() - 1))
            .collect::<std::result::Result<_, _>>()?;
        let logits = model.logits(&Tensor::stack(&last, 0)?)?.to_vec2::<f32>()?;
        for row in logits {
            let d = row[labels[1] as usize] as f64 - row[labels[0] as usize] as f64;
            out.push(1.0 / (1.0 + (-d).exp()));
        }
    }
    Ok(out)
}

fn gpt_examples(tok: &Tokenizer, labels: [u32; 2], samples: &[Sample]) -> Result<Vec<Example>> {
    samples
        .iter()
        .map(|s| {
            let mut tokens = bpe::encode(tok, &s.prompt())?;
            let prompt_len = tokens.len();
            tokens.push(labels[s.label as usize]);
            Ok(Example { tokens, prompt_len })
        })
        .collect()
}

/// Everything [`evaluate_shipped`] and [`reproduce`] need about the data.
struct Prepared {
    split: SplitInfo,
    train: Vec<Sample>,
    test: Vec<Sample>,
}

fn prepare(settings: &PopularitySettings) -> Result<Prepared> {
    let events = trace::generate(&settings.trace)?;
    let ds = build_dataset(&events, settings.top_n, settings.history)?;
    let (train, test) = split_chronological(&ds, settings.test_frac);
    let rate = |v: &[Sample]| v.iter().filter(|s| s.label).count() as f64 / v.len().max(1) as f64;
    let top: usize = ds.items.iter().map(|i| i.views).sum();
    Ok(Prepared {
        split: SplitInfo {
            events: events.len(),
            intervals: ds.intervals,
            train: train.len(),
            test: test.len(),
            first_test_interval: test.first().map(|s| s.interval).unwrap_or(0),
            positive_rate_train: rate(&train),
            positive_rate_test: rate(&test),
            top_share: top as f64 / events.len().max(1) as f64,
        },
        train,
        test,
    })
}

/// The table rows for the trained models plus the two trivial baselines.
fn score_all(
    p: &Prepared,
    settings: &PopularitySettings,
    gpt: (&Gpt2, &Tokenizer),
    lstm: &RnnClassifier,
    gru: &RnnClassifier,
) -> Result<Vec<Scores>> {
    let dev = Device::Cpu;
    let labels: Vec<bool> = p.test.iter().map(|s| s.label).collect();
    let ids = label_ids(gpt.1)?;
    let prompts: Vec<String> = p.test.iter().map(Sample::prompt).collect();
    let g = gpt_probabilities(gpt.0, gpt.1, ids, &prompts)?;
    let feats = seq_features(&p.test, settings.top_n);
    let thr = |v: Vec<f64>| v.into_iter().map(|x| x > 0.5).collect::<Vec<bool>>();
    let majority = p.split.positive_rate_train >= 0.5;
    Ok(vec![
        Scores::new(GPT_ROW, &thr(g), &labels),
        Scores::new(LSTM_ROW, &thr(lstm.predict(&feats, &dev)?), &labels),
        Scores::new(GRU_ROW, &thr(gru.predict(&feats, &dev)?), &labels),
        Scores::new(MAJORITY_ROW, &vec![majority; labels.len()], &labels),
        Scores::new(
            PREVIOUS_ROW,
            &p.test
                .iter()
                .map(|s| s.history.last().copied().unwrap_or(false))
                .collect::<Vec<_>>(),
            &labels,
        ),
    ])
}

fn read_settings(dir: &Path) -> Result<PopularitySettings> {
    let path = dir.join(SETTINGS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
}

/// Loads the committed artefacts under `root/models/analytics/popularity` (GPT-2, LSTM,
/// GRU, settings), regenerates the trace from the shipped settings and scores every
/// predictor on the held-out split. Nothing is retrained.
pub fn evaluate_shipped(root: &Path) -> Result<Report> {
    let models = root.join("models");
    let dir = models.join(ARTEFACT_DIR);
    let settings = read_settings(&dir)?;
    let p = prepare(&settings)?;
    let dev = Device::Cpu;
    let gpt = Gpt2::load(&dir, &dev)?;
    let tok = bpe::load(&models.join("edge").join(crate::edge::TOKENIZER_FILE))?;
    let lstm = RnnClassifier::load(&dir.join(LSTM_FILE), &dev)?;
    let gru = RnnClassifier::load(&dir.join(GRU_FILE), &dev)?;
    let rows = score_all(&p, &settings, (&gpt, &tok), &lstm, &gru)?;
    Ok(Report {
        settings,
        split: p.split,
        rows,
        train_seconds: BTreeMap::new(),
    })
}

/// Options of [`reproduce`].
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// The `models` directory holding `edge/` (the base GPT-2 and tokenizer).
    pub models_dir: PathBuf,
    /// Where the artefacts go (e.g. `models/analytics/popularity`).
    pub out: PathBuf,
    /// Data and training settings.
    pub settings: PopularitySettings,
}

/// Regenerates the trace, fine-tunes the edge GPT-2 and trains the LSTM and GRU from the
/// seed, writes the artefacts (`config.json`, `model.safetensors`, `lstm.safetensors`,
/// `gru.safetensors`, `settings.json`, `report.json`) into `opts.out` and returns the
/// report, measured on the written artefacts. `log` receives progress lines.
pub fn reproduce(opts: &ReproduceOptions, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let s = &opts.settings;
    let dev = Device::Cpu;
    let p = prepare(s)?;
    log(&format!(
        "{} events, {} intervals; {} training / {} test samples, positive rate {:.3} / {:.3}",
        p.split.events,
        p.split.intervals,
        p.split.train,
        p.split.test,
        p.split.positive_rate_train,
        p.split.positive_rate_test
    ));
    std::fs::create_dir_all(&opts.out)?;
    let mut secs = BTreeMap::new();

    // Baselines first: they take seconds.
    let train_feats = seq_features(&p.train, s.top_n);
    for (kind, file, seed) in [
        (CellKind::Lstm, LSTM_FILE, s.seed),
        (CellKind::Gru, GRU_FILE, s.seed + 1),
    ] {
        let t = Instant::now();
        let m = RnnClassifier::new(
            RnnConfig {
                kind,
                input: train_feats.input,
                hidden: s.rnn_hidden,
                static_dim: train_feats.static_dim,
            },
            seed,
            &dev,
        )?;
        let curve = rnn::train_classifier(&m, &train_feats, &s.rnn_train, &dev)?;
        m.save(&opts.out.join(file))?;
        secs.insert(kind.name().to_string(), t.elapsed().as_secs_f64());
        log(&format!(
            "{}: loss {:.4} -> {:.4} in {:.1} s",
            kind.name(),
            curve.first().copied().unwrap_or(f32::NAN),
            curve.last().copied().unwrap_or(f32::NAN),
            t.elapsed().as_secs_f64()
        ));
    }

    // Full fine-tuning of the edge GPT-2 (see the README for why not LoRA).
    let edge = opts.models_dir.join("edge");
    let base = Gpt2::load(&edge, &dev)?;
    let tok = bpe::load(&edge.join(crate::edge::TOKENIZER_FILE))?;
    let ids = label_ids(&tok)?;
    let data = gpt_examples(&tok, ids, &p.train)?;
    let (model, vars) = train::trainable_gpt2(base.config(), base.tensors())?;
    let tcfg = TrainConfig {
        steps: s.gpt_steps,
        batch_size: s.gpt_batch,
        lr: s.gpt_lr,
        warmup: (s.gpt_steps / 10).max(1),
        weight_decay: 0.01,
        seed: s.seed,
        mask_prompt: true,
        log_every: 10,
    };
    let fwd = |x: &Tensor| model.forward_train(x, None);
    let t = Instant::now();
    let rep = train::train(&vars, &fwd, &data, &tcfg, &dev, &mut |step, loss| {
        log(&format!(
            "GPT-2 step {step}/{}: label loss {loss:.4} ({:.0} s)",
            s.gpt_steps,
            t.elapsed().as_secs_f64()
        ))
    })?;
    secs.insert("GPT-2".to_string(), rep.seconds);
    let detached: HashMap<String, Tensor> = model
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.detach()))
        .collect();
    Gpt2::from_tensors(base.config(), &detached)?.save(&opts.out)?;
    let text = serde_json::to_string_pretty(s).map_err(|e| Error::Format(e.to_string()))?;
    std::fs::write(opts.out.join(SETTINGS_FILE), text + "\n")?;

    // Score what was written, as a user loads it.
    let gpt = Gpt2::load(&opts.out, &dev)?;
    let lstm = RnnClassifier::load(&opts.out.join(LSTM_FILE), &dev)?;
    let gru = RnnClassifier::load(&opts.out.join(GRU_FILE), &dev)?;
    let rows = score_all(&p, s, (&gpt, &tok), &lstm, &gru)?;
    let report = Report {
        settings: s.clone(),
        split: p.split,
        rows,
        train_seconds: secs,
    };
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Format(e.to_string()))?;
    std::fs::write(opts.out.join(REPORT_FILE), text + "\n")?;
    Ok(report)
}

/// One item's forecast for an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemForecast {
    /// Item id.
    pub movie_id: String,
    /// Title.
    pub title: String,
    /// Probability that the item is viewed in the interval.
    pub probability: f64,
    /// `probability > 0.5`.
    pub appears: bool,
}

/// The fine-tuned edge GPT-2 as a popularity forecaster, loaded once and shared (it is
/// `Send + Sync`; forecasts take `&self`).
pub struct PopularityPredictor {
    model: Gpt2,
    tokenizer: Tokenizer,
    labels: [u32; 2],
    settings: PopularitySettings,
}

impl PopularityPredictor {
    /// Loads the fine-tuned model from `root_models_dir/analytics/popularity` and the edge
    /// tokenizer from `root_models_dir/edge` (`root_models_dir` is e.g. `<repo>/models`).
    pub fn load(root_models_dir: &Path, device: &Device) -> Result<Self> {
        let dir = root_models_dir.join(ARTEFACT_DIR);
        let settings = read_settings(&dir)?;
        let model = Gpt2::load(&dir, device)?;
        let tokenizer = bpe::load(
            &root_models_dir
                .join("edge")
                .join(crate::edge::TOKENIZER_FILE),
        )?;
        let labels = label_ids(&tokenizer)?;
        Ok(Self {
            model,
            tokenizer,
            labels,
            settings,
        })
    }

    /// Past intervals the model looks at.
    pub fn history(&self) -> usize {
        self.settings.history
    }

    /// Intervals spanned by `events` (see [`intervals`]).
    pub fn intervals(events: &[ViewEvent]) -> usize {
        intervals(events)
    }

    /// Forecast for interval `interval` (counted from the first event's interval) of the
    /// most viewed items, using only events before that interval: the top items are the
    /// most viewed before it, and their history is their appearance in the intervals before
    /// it (intervals before the trace count as absent). `interval` may be one past the
    /// last interval of `events` (the next one).
    pub fn forecast(&self, events: &[ViewEvent], interval: usize) -> Result<Vec<ItemForecast>> {
        let origin = events
            .iter()
            .map(|e| e.datetime)
            .min()
            .ok_or_else(|| Error::Invalid("no events to forecast from".into()))?;
        let start = interval_floor(origin) + Duration::hours(INTERVAL_HOURS * interval as i64);
        let past: Vec<ViewEvent> = events
            .iter()
            .filter(|e| e.datetime < start)
            .cloned()
            .collect();
        if past.is_empty() {
            return Err(Error::Invalid(format!(
                "no events before interval {interval}: nothing to forecast from"
            )));
        }
        let items = top_items(&past, self.settings.top_n);
        let m = appearances(&past, &items, origin, interval);
        let k = self.settings.history;
        let prompts: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let hist: Vec<bool> = (0..k)
                    .map(|j| {
                        (interval + j)
                            .checked_sub(k)
                            .map(|q| m[i][q])
                            .unwrap_or(false)
                    })
                    .collect();
                prompt_text(interval, start, &it.title, &hist)
            })
            .collect();
        let probs = gpt_probabilities(&self.model, &self.tokenizer, self.labels, &prompts)?;
        Ok(items
            .into_iter()
            .zip(probs)
            .map(|(it, p)| ItemForecast {
                movie_id: it.movie_id,
                title: it.title,
                probability: p,
                appears: p > 0.5,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_start_at_utc_six_hour_boundaries() {
        let t = Utc.with_ymd_and_hms(2017, 1, 2, 17, 59, 59).unwrap();
        assert_eq!(
            interval_floor(t),
            Utc.with_ymd_and_hms(2017, 1, 2, 12, 0, 0).unwrap()
        );
        let o = Utc.with_ymd_and_hms(2017, 1, 2, 5, 0, 0).unwrap();
        assert_eq!(interval_index(o, o), 0);
        assert_eq!(
            interval_index(o, Utc.with_ymd_and_hms(2017, 1, 2, 6, 0, 0).unwrap()),
            1
        );
        assert_eq!(
            interval_index(o, Utc.with_ymd_and_hms(2017, 1, 3, 0, 0, 0).unwrap()),
            4
        );
    }

    #[test]
    fn scores_count_the_positive_class() {
        let s = Scores::new(
            "x",
            &[true, true, false, false],
            &[true, false, true, false],
        );
        assert_eq!((s.tp, s.fp, s.fn_, s.tn), (1, 1, 1, 1));
        assert!((s.f1 - 0.5).abs() < 1e-12 && (s.accuracy - 0.5).abs() < 1e-12);
        let none = Scores::new("y", &[false, false], &[true, false]);
        assert_eq!((none.precision, none.f1), (0.0, 0.0));
    }

    #[test]
    fn prompt_carries_slot_weekday_and_history() {
        let t = Utc.with_ymd_and_hms(2017, 1, 7, 18, 0, 0).unwrap(); // a Saturday
        assert_eq!(
            prompt_text(57, t, "Iron Man 2", &[false, true, true]),
            "In interval 57 (Sat 18-24h, last 3: 0,1,1), movie 'Iron Man 2' appear:"
        );
    }
}
