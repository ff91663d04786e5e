//! Network intent inference, a by-product of the edge model: a natural-language network
//! intent ("I want a 10 Gbps link from Access 1 to Cloud 2 with protection") becomes
//! configuration keywords (`rate=10Gbps; src=Access 1; dst=Cloud 2; protection=yes`) and a
//! TS 28.312-style [`Intent`].
//!
//! Parts:
//! - a seeded pair generator ([`generate`], [`split`], [`write_datasets`]) with many sentence
//!   frames, synonyms, unit spellings, fillers and casings; some frames are held out of
//!   training entirely so the held-out set has a "novel phrasing" subset;
//! - the keyword format ([`format_keywords`], [`parse_keywords`]; the parser is robust to
//!   malformed model output);
//! - a rule-based baseline ([`rule_based`]) and a trivial majority baseline ([`Majority`]);
//! - the edge GPT-2 fully fine-tuned on the training pairs ([`train_model`],
//!   [`IntentModel`]);
//! - scoring ([`score`]: micro P/R/F1 over (key, value) pairs, exact match, per-key F1) and
//!   the [`Report`] of [`evaluate_shipped`] / [`reproduce`];
//! - the TS 28.312 mapping ([`to_intent`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokenizers::Tokenizer;

use crate::generation::{self, GenerationConfig};
use crate::gpt2::{Gpt2, Gpt2Batch};
use crate::train::{self, Example, TrainConfig};
use crate::{bpe, Error, Result};

/// Keys of the keyword string, in the order [`format_keywords`] writes them.
pub const KEYS: [&str; 7] = [
    "rate",
    "src",
    "dst",
    "protection",
    "latency",
    "slice",
    "reliability",
];
/// Training pairs file name (in `models/data/`).
pub const TRAIN_FILE: &str = "intents_train.jsonl";
/// Held-out pairs file name (in `models/data/`).
pub const HELDOUT_FILE: &str = "intents_heldout.jsonl";
/// Artefact folder of the fine-tuned model, relative to `<repo>/models`.
pub const ARTEFACT_DIR: &str = "analytics/intent";
/// Seed of the shipped data set and model.
pub const SEED: u64 = 42;
/// Pairs generated for the shipped data set.
pub const N_PAIRS: usize = 4000;
/// Task tag put in the `<|site|>` slot of the edge prompt format, so the intent task has
/// its own prefix and does not collide with the site prompts the edge model was trained on.
pub const TASK_TAG: &str = "intent";
/// Longest intent text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 400;
/// Most tokens generated for a keyword string.
pub const MAX_NEW_TOKENS: usize = 80;

// ---------------------------------------------------------------------------------------
// Pairs and the generator
// ---------------------------------------------------------------------------------------

/// One generated pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentPair {
    /// The natural-language intent.
    pub text: String,
    /// The reference keyword string ([`format_keywords`] layout).
    pub keywords: String,
    /// Index of the sentence frame in [`FRAMES`].
    pub template: usize,
    /// Whether the frame is held out of training (novel phrasing).
    pub novel: bool,
}

/// Sentence frames. `{R}` rate, `{S}` source, `{D}` destination, `{E}` trailing extras
/// (", with protection and ..."), `{L}` leading extras ("With protection, "). A frame
/// without `{R}` yields an intent with no rate. The bool marks frames held out of training.
pub const FRAMES: &[(&str, bool)] = &[
    ("I want a {R} link from {S} to {D}{E}", false),
    ("I need {R} between {S} and {D}{E}", false),
    ("Set up a {R} connection from {S} to {D}{E}", false),
    ("Connect {S} to {D} at {R}{E}", false),
    ("Can you provision {R} from {S} towards {D}{E}?", false),
    ("{S} to {D}, {R}{E}", false),
    (
        "Please create a link {S} -> {D} with {R} of bandwidth{E}",
        false,
    ),
    ("We require a {R} circuit linking {S} with {D}{E}", false),
    ("{L}I'd like a {R} path from {S} to {D}", false),
    (
        "Could you establish a {R} service between {S} and {D}{E}?",
        false,
    ),
    ("Provision bandwidth of {R} from {S} to {D}{E}", false),
    ("Need a link: {S} to {D}, {R}{E}", false),
    ("To {D} from {S}: {R}{E}", false),
    ("I need {D} reachable from {S} at {R}{E}", false),
    ("Allocate {R} on the path {S} - {D}{E}", false),
    ("{L}connect {S} and {D} with {R}", false),
    ("Give me {R} from {S} to {D}{E}", false),
    ("Please set up connectivity from {S} to {D}{E}", false),
    ("Connect {S} to {D}{E}", false),
    ("I want {S} linked to {D}{E}", false),
    ("Build a {R} pipe from {S} into {D}{E}", false),
    ("How about a {R} link {S} to {D}{E}?", false),
    ("Requesting {R} capacity from {S} to {D}{E}", false),
    (
        "Create a new {R} transport service, source {S}, destination {D}{E}",
        false,
    ),
    ("Can I get {R} between {S} and {D}{E}?", false),
    ("{L}we need {R} from {S} to {D}", false),
    ("Order a {R} wavelength from {S} to {D}{E}", false),
    (
        "Establish connectivity between {S} and {D} at {R}{E}",
        false,
    ),
    ("Traffic from {S} to {D} needs {R}{E}", false),
    (
        "Would it be possible to link {S} to {D} with {R}{E}?",
        false,
    ),
    ("Please route {R} from {S} to {D}{E}", false),
    ("Make a {R} link between {S} and {D}{E}", false),
    ("Set up {S} to {D}{E}", false),
    ("Add a {R} tunnel from {S} to {D}{E}", false),
    ("Reserve {R} for {S} to {D}{E}", false),
    ("Let's have {R} from {S} to {D}{E}", false),
    // Held out of training entirely: the "novel phrasing" subset.
    ("From {S}, I'd like {R} reaching {D}{E}", true),
    ("Our team at {S} must reach {D} with {R}{E}", true),
    ("Is it possible to get {R} between {S} and {D}{E}?", true),
    (
        "Link request. Source: {S}. Destination: {D}. Bandwidth: {R}{E}",
        true,
    ),
    (
        "Bring up {R} of capacity that goes from {S} all the way to {D}{E}",
        true,
    ),
    ("{D} should receive {R} from {S}{E}", true),
];

const KINDS: [&str; 5] = ["Access", "Metro", "Core", "Cloud", "Edge"];

/// The testbed's edge sites and ways of naming them.
const SITES: [(&str, &[&str]); 4] = [
    (
        "edge-london",
        &[
            "edge-london",
            "the London edge",
            "London edge site",
            "edge london",
            "the edge site in London",
        ],
    ),
    (
        "edge-paris",
        &[
            "edge-paris",
            "the Paris edge",
            "Paris edge site",
            "edge paris",
            "the edge site in Paris",
        ],
    ),
    (
        "edge-newyork",
        &[
            "edge-newyork",
            "the New York edge",
            "New York edge site",
            "edge newyork",
            "the edge site in New York",
        ],
    ),
    (
        "edge-hangzhou",
        &[
            "edge-hangzhou",
            "the Hangzhou edge",
            "Hangzhou edge site",
            "edge hangzhou",
            "the edge site in Hangzhou",
        ],
    ),
];

/// Canonical and written forms of one endpoint.
fn endpoint(rng: &mut StdRng) -> (String, String) {
    if rng.random_bool(0.2) {
        let (id, names) = SITES[rng.random_range(0..SITES.len())];
        return (id.to_string(), names.choose(rng).unwrap().to_string());
    }
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let n = rng.random_range(1..=12);
    let lower = kind.to_lowercase();
    let written = match rng.random_range(0..9) {
        0..=2 => format!("{kind} {n}"),
        3 => format!("{lower} {n}"),
        4 => format!("{kind}{n}"),
        5 => format!("{kind}-{n}"),
        6 => format!("{lower} node {n}"),
        7 => format!("{kind} site {n}"),
        _ => format!("the {kind} {n} site"),
    };
    (format!("{kind} {n}"), written)
}

/// Rates some people write in words, with their canonical form.
const RATE_WORDS: [(&str, &str); 12] = [
    ("1Gbps", "a gig"),
    ("1Gbps", "one gigabit per second"),
    ("2Gbps", "two gigabits per second"),
    ("5Gbps", "five gig"),
    ("10Gbps", "ten gigabits per second"),
    ("10Gbps", "ten gig"),
    ("40Gbps", "forty gig"),
    ("100Gbps", "a hundred gig"),
    ("10Mbps", "ten megabits per second"),
    ("100Mbps", "a hundred meg"),
    ("200Mbps", "two hundred megabits per second"),
    ("500Mbps", "half a gig"),
];

fn rate(rng: &mut StdRng) -> (String, String) {
    if rng.random_bool(0.12) {
        let (c, w) = *RATE_WORDS.choose(rng).unwrap();
        return (c.into(), w.into());
    }
    if rng.random_bool(0.55) {
        let n = *[1, 2, 5, 10, 25, 40, 100].choose(rng).unwrap();
        let w = match rng.random_range(0..8) {
            0 | 1 => format!("{n} Gbps"),
            2 => format!("{n}Gbps"),
            3 => format!("{n}G"),
            4 => format!("{n} gigabits per second"),
            5 => format!("{n} Gbit/s"),
            6 => format!("{n} Gb/s"),
            _ => format!("{n} gig"),
        };
        (format!("{n}Gbps"), w)
    } else {
        let n = *[10, 50, 100, 200, 250, 500].choose(rng).unwrap();
        let w = match rng.random_range(0..8) {
            0 | 1 => format!("{n} Mbps"),
            2 => format!("{n}Mbps"),
            3 => format!("{n}M"),
            4 => format!("{n} megabits per second"),
            5 => format!("{n} Mbit/s"),
            6 => format!("{n} Mb/s"),
            _ => format!("{n} meg"),
        };
        (format!("{n}Mbps"), w)
    }
}

fn protection(rng: &mut StdRng) -> (String, String) {
    if rng.random_bool(0.6) {
        let w = *[
            "with protection",
            "protected",
            "with 1+1 protection",
            "with a backup path",
            "and it must be protected",
            "fully protected",
            "with path protection",
            "with a protected route",
            "with no single point of failure",
            "with a diverse second route",
            "dual-homed",
        ]
        .choose(rng)
        .unwrap();
        ("yes".into(), w.into())
    } else {
        let w = *[
            "without protection",
            "no protection needed",
            "unprotected is fine",
            "no backup path required",
            "protection not required",
            "don't bother protecting it",
            "no need for protection",
            "a single path is fine",
            "best-effort routing is fine",
        ]
        .choose(rng)
        .unwrap();
        ("no".into(), w.into())
    }
}

fn latency(rng: &mut StdRng) -> (String, String) {
    let n = *[1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100]
        .choose(rng)
        .unwrap();
    let w = match rng.random_range(0..9) {
        0 => format!("under {n} milliseconds"),
        1 => format!("latency below {n} ms"),
        2 => format!("at most {n}ms of delay"),
        3 => format!("max latency {n} ms"),
        4 => format!("less than {n} msec latency"),
        5 => format!("a delay no higher than {n} ms"),
        6 => format!("{n} ms latency or better"),
        7 => format!("round-trip under {n}ms"),
        _ => format!("latency within {n} milliseconds"),
    };
    (format!("{n}ms"), w)
}

fn slice(rng: &mut StdRng) -> (String, String) {
    let (canon, names): (&str, &[&str]) = match rng.random_range(0..3) {
        0 => (
            "eMBB",
            &["eMBB", "embb", "enhanced mobile broadband", "EMBB"],
        ),
        1 => (
            "URLLC",
            &["URLLC", "urllc", "ultra-reliable low-latency", "URLLC"],
        ),
        _ => (
            "mMTC",
            &["mMTC", "mmtc", "massive IoT", "massive machine-type"],
        ),
    };
    let name = names.choose(rng).unwrap();
    if rng.random_bool(0.15) {
        let other = *["eMBB", "URLLC", "mMTC"]
            .iter()
            .filter(|o| **o != canon)
            .collect::<Vec<_>>()
            .choose(rng)
            .unwrap();
        let w = match rng.random_range(0..2) {
            0 => format!("not {other}, the {name} slice is enough"),
            _ => format!("no {other} needed, {name} will do"),
        };
        return (canon.into(), w);
    }
    let w = match rng.random_range(0..5) {
        0 => format!("on the {name} slice"),
        1 => format!("slice {name}"),
        2 => format!("for {name} traffic"),
        3 => format!("using a {name} slice"),
        _ => format!("as a {name} service"),
    };
    (canon.into(), w)
}

fn reliability(rng: &mut StdRng) -> (String, String) {
    let (v, nines) = *[
        ("99.9", "three"),
        ("99.99", "four"),
        ("99.999", "five"),
        ("99.9999", "six"),
    ]
    .choose(rng)
    .unwrap();
    let digits = v.len() - 1;
    let w = match rng.random_range(0..7) {
        6 => format!("{digits} 9s of availability"),
        0 => format!("{v}% reliability"),
        1 => format!("{v} percent availability"),
        2 => format!("reliability of {v}%"),
        3 => format!("{nines} nines of availability"),
        4 => format!("availability at least {v}%"),
        _ => format!("{v}% uptime"),
    };
    (format!("{v}%"), w)
}

const PREFIXES: [&str; 8] = [
    "",
    "",
    "",
    "Hi, ",
    "Hello team, ",
    "Quick request: ",
    "Urgent: ",
    "Hey, ",
];
const SUFFIXES: [&str; 10] = [
    "",
    "",
    "",
    " please",
    ", thanks",
    ", thank you!",
    " asap",
    " for the demo on Friday",
    " by 5 pm today",
    " (ticket 4711)",
];

/// Draws the canonical and the written form of one optional key.
type SlotGen = fn(&mut StdRng) -> (String, String);

/// Generates one pair from frame `t`.
fn make_pair(t: usize, rng: &mut StdRng) -> IntentPair {
    let (frame, novel) = FRAMES[t];
    let mut kw: BTreeMap<String, String> = BTreeMap::new();
    let (s_c, s_w) = endpoint(rng);
    let (mut d_c, mut d_w) = endpoint(rng);
    while d_c == s_c {
        (d_c, d_w) = endpoint(rng);
    }
    kw.insert("src".into(), s_c);
    kw.insert("dst".into(), d_c);
    let mut text = frame.replace("{S}", &s_w).replace("{D}", &d_w);
    if frame.contains("{R}") {
        let (c, w) = rate(rng);
        kw.insert("rate".into(), c);
        text = text.replace("{R}", &w);
    }
    // Optional keys: each present or absent, in random order.
    let mut extras = Vec::new();
    let gens: [(&str, SlotGen, f64); 4] = [
        ("protection", protection, 0.55),
        ("latency", latency, 0.45),
        ("slice", slice, 0.4),
        ("reliability", reliability, 0.3),
    ];
    for (k, g, p) in gens {
        if rng.random_bool(p) {
            let (c, w) = g(rng);
            kw.insert(k.into(), c);
            extras.push(w);
        }
    }
    extras.shuffle(rng);
    let joined = match extras.len() {
        0 => String::new(),
        1 => extras[0].clone(),
        n => {
            let sep = *[", ", "; ", " and "].choose(rng).unwrap();
            format!("{} and {}", extras[..n - 1].join(sep), extras[n - 1])
        }
    };
    let e = if joined.is_empty() {
        String::new()
    } else {
        format!(", {joined}")
    };
    let l = if joined.is_empty() {
        String::new()
    } else {
        format!("{joined}, ")
    };
    text = text.replace("{E}", &e).replace("{L}", &l);
    if !frame.contains("{E}") && !frame.contains("{L}") && !joined.is_empty() {
        text.push_str(&e);
    }
    // Context sentences with a current value that is not the requested one.
    let mut context = String::new();
    if kw.contains_key("rate") && rng.random_bool(0.12) {
        let old = *["1 Mbps", "2 Mbps", "5 Mbps", "500 kbps"]
            .choose(rng)
            .unwrap();
        context = match rng.random_range(0..2) {
            0 => format!("Currently we only get {old}. "),
            _ => format!("Our old circuit was {old}, not enough any more. "),
        };
    }
    if let Some(l) = kw.get("latency") {
        if context.is_empty() && rng.random_bool(0.12) {
            let new: u32 = l.trim_end_matches("ms").parse().unwrap_or(1);
            context = format!("Today's latency is around {} ms. ", new * 4 + 20);
        }
    }
    text = format!("{context}{text}");
    let prefix = *PREFIXES.choose(rng).unwrap();
    let suffix = *SUFFIXES.choose(rng).unwrap();
    let mut text = format!("{prefix}{text}{suffix}");
    let mut chars = text.chars();
    if let Some(c) = chars.next() {
        text = c.to_uppercase().collect::<String>() + chars.as_str();
    }
    let r: f64 = rng.random();
    if r < 0.08 {
        text = text.to_lowercase();
    } else if r < 0.12 {
        text = text.to_uppercase();
    }
    IntentPair {
        text,
        keywords: format_keywords(&kw),
        template: t,
        novel,
    }
}

/// Generates `n` pairs from `seed`: a tenth from the held-out (novel) frames, the rest from
/// the training frames, frames drawn uniformly within each group.
pub fn generate(n: usize, seed: u64) -> Vec<IntentPair> {
    let mut rng = StdRng::seed_from_u64(seed);
    let seen: Vec<usize> = (0..FRAMES.len()).filter(|&i| !FRAMES[i].1).collect();
    let novel: Vec<usize> = (0..FRAMES.len()).filter(|&i| FRAMES[i].1).collect();
    let n_novel = n / 10;
    (0..n)
        .map(|i| {
            let t = if i < n_novel {
                novel[i % novel.len()]
            } else {
                seen[i % seen.len()]
            };
            make_pair(t, &mut rng)
        })
        .collect()
}

/// Splits generated pairs into `(train, heldout)`: every novel-frame pair is held out, and
/// 10 % of the others (seeded shuffle). The held-out set lists seen-frame pairs first.
pub fn split(pairs: Vec<IntentPair>, seed: u64) -> (Vec<IntentPair>, Vec<IntentPair>) {
    let (novel, mut seen): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|p| p.novel);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    seen.shuffle(&mut rng);
    let n_held = seen.len() / 10;
    let train = seen.split_off(n_held);
    let mut held = seen;
    held.extend(novel);
    (train, held)
}

/// Writes pairs as JSON lines.
pub fn write_jsonl(path: &Path, pairs: &[IntentPair]) -> Result<()> {
    crate::data::write_jsonl(path, pairs)
}

/// Reads pairs written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<IntentPair>> {
    crate::data::read_jsonl(path)
}

/// Generates [`N_PAIRS`] pairs with `seed`, splits them and writes [`TRAIN_FILE`] and
/// [`HELDOUT_FILE`] into `dir`; returns `(train, heldout)` sizes.
pub fn write_datasets(dir: &Path, seed: u64) -> Result<(usize, usize)> {
    std::fs::create_dir_all(dir)?;
    let (train, held) = split(generate(N_PAIRS, seed), seed);
    write_jsonl(&dir.join(TRAIN_FILE), &train)?;
    write_jsonl(&dir.join(HELDOUT_FILE), &held)?;
    Ok((train.len(), held.len()))
}

// ---------------------------------------------------------------------------------------
// Keyword strings
// ---------------------------------------------------------------------------------------

/// Writes keywords as `key=value; key=value` in [`KEYS`] order (unknown keys last, sorted).
pub fn format_keywords(kw: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = KEYS
        .iter()
        .filter_map(|k| kw.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    parts.extend(
        kw.iter()
            .filter(|(k, _)| !KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}")),
    );
    parts.join("; ")
}

/// Parses a keyword string, tolerating malformed model output: fields split on `;` or
/// newlines, each `key=value` (or `key: value`) with both sides trimmed; fields without a
/// separator, with an empty value, or with a key outside [`KEYS`] are dropped; the first
/// occurrence of a key wins.
pub fn parse_keywords(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for field in s.split([';', '\n']) {
        let Some((k, v)) = field.split_once('=').or_else(|| field.split_once(':')) else {
            continue;
        };
        let (k, v) = (k.trim().to_lowercase(), v.trim());
        if v.is_empty() || !KEYS.contains(&k.as_str()) {
            continue;
        }
        out.entry(k).or_insert_with(|| v.to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Rule-based baseline
// ---------------------------------------------------------------------------------------

struct Rules {
    rate: regex::Regex,
    latency: regex::Regex,
    latency_cue: regex::Regex,
    reliability: regex::Regex,
    nines: regex::Regex,
    node: regex::Regex,
    prot_no: regex::Regex,
    prot_yes: regex::Regex,
}

fn rules() -> &'static Rules {
    static R: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let re = |s: &str| regex::Regex::new(s).expect("valid rule regex");
        Rules {
            rate: re(
                r"(?i)\b(\d+(?:\.\d+)?)\s*(gbps|gbit/s|gb/s|gigabits?(?:\s+per\s+second)?|gig|g|mbps|mbit/s|mb/s|megabits?(?:\s+per\s+second)?|meg|m)\b",
            ),
            latency: re(r"(?i)\b(\d+(?:\.\d+)?)\s*(ms|msec|milliseconds?)\b"),
            latency_cue: re(r"(?i)latency|delay|round.trip|under|below|less than|at most|within"),
            reliability: re(r"(?i)\b(\d{2}(?:\.\d+)?)\s*(%|percent)"),
            nines: re(r"(?i)\b(two|three|four|five|six|seven)\s+nines\b"),
            node: re(
                r"(?i)\b(access|metro|core|cloud|edge)(?:\s*-\s*|\s+node\s+|\s+site\s+|\s*#\s*|\s*)(\d+)\b|\bedge[\s-]*(london|paris|new\s*york|hangzhou)\b|\b(london|paris|new\s*york|hangzhou)\s+edge\b|\bedge\s+site\s+in\s+(london|paris|new\s*york|hangzhou)\b",
            ),
            prot_no: re(
                r"(?i)without\s+protection|no\s+protection|unprotected|no\s+backup|protection\s+(?:is\s+)?not\s+(?:required|needed)|no\s+need\s+for\s+(?:protection|a\s+backup)|don'?t\s+(?:need|bother|want)\s+(?:\w+\s+)?protect",
            ),
            prot_yes: re(r"(?i)protect|1\+1|backup|redundan|diverse\s+path|resilien"),
        }
    })
}

fn canonical_site(name: &str) -> String {
    let n: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    format!("edge-{n}")
}

/// The rule-based baseline: regular expressions and keyword lists for each key. Rate: a
/// number with a bandwidth unit; latency: a number in ms; reliability: a percentage of 90
/// or more, or "N nines"; slice: slice names and their spelled-out forms; protection:
/// negations first, then protection words; endpoints: node names (kind + number, site
/// names), the one after "from"/"source" is the source, the one after
/// "to"/"towards"/"destination"/"reach" the destination, otherwise text order.
pub fn rule_based(text: &str) -> BTreeMap<String, String> {
    let r = rules();
    let mut kw = BTreeMap::new();
    if let Some(c) = r.rate.captures(text) {
        let unit = c[2].to_lowercase();
        let u = if unit.starts_with('g') {
            "Gbps"
        } else {
            "Mbps"
        };
        kw.insert("rate".into(), format!("{}{u}", &c[1]));
    }
    for c in r.latency.captures_iter(text) {
        // A number in ms is a latency bound; prefer one with a latency cue before it.
        let start = c.get(0).unwrap().start();
        let before = &text[start.saturating_sub(30)..start];
        let cue = r.latency_cue.is_match(before) || r.latency_cue.is_match(&text[start..]);
        if cue || !kw.contains_key("latency") {
            kw.insert("latency".into(), format!("{}ms", &c[1]));
        }
        if cue {
            break;
        }
    }
    if let Some(c) = r.reliability.captures(text) {
        let v: f64 = c[1].parse().unwrap_or(0.0);
        if v >= 90.0 {
            kw.insert("reliability".into(), format!("{}%", &c[1]));
        }
    } else if let Some(c) = r.nines.captures(text) {
        let n = match c[1].to_lowercase().as_str() {
            "two" => 2,
            "three" => 3,
            "four" => 4,
            "five" => 5,
            "six" => 6,
            _ => 7,
        };
        kw.insert("reliability".into(), format!("99.{}%", "9".repeat(n - 2)));
    }
    let lower = text.to_lowercase();
    let slice = if lower.contains("urllc") || lower.contains("ultra-reliable") {
        Some("URLLC")
    } else if lower.contains("mmtc") || lower.contains("massive") || lower.contains("iot") {
        Some("mMTC")
    } else if lower.contains("embb") || lower.contains("broadband") {
        Some("eMBB")
    } else {
        None
    };
    if let Some(s) = slice {
        kw.insert("slice".into(), s.into());
    }
    if r.prot_no.is_match(text) {
        kw.insert("protection".into(), "no".into());
    } else if r.prot_yes.is_match(text) {
        kw.insert("protection".into(), "yes".into());
    }
    // Endpoints with their cue word.
    let mut nodes: Vec<(String, Option<bool>)> = Vec::new();
    for c in r.node.captures_iter(text) {
        let name = if let (Some(k), Some(n)) = (c.get(1), c.get(2)) {
            let k = k.as_str().to_lowercase();
            let mut ch = k.chars();
            let k = ch.next().unwrap().to_uppercase().collect::<String>() + ch.as_str();
            format!("{k} {}", n.as_str())
        } else {
            let site = c.get(3).or(c.get(4)).or(c.get(5)).unwrap().as_str();
            canonical_site(site)
        };
        let start = c.get(0).unwrap().start();
        let before = text[..start].to_lowercase();
        let before = before.trim_end();
        let before = before.strip_suffix("the").unwrap_or(before).trim_end();
        let word = before
            .rsplit(|ch: char| !ch.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        let role = match word {
            "from" | "source" | "between" => Some(true),
            "to" | "towards" | "destination" | "reach" | "reaching" | "into" | "and" | "with" => {
                Some(false)
            }
            _ => None,
        };
        if !nodes.iter().any(|(n, _)| *n == name) {
            nodes.push((name, role));
        }
    }
    let src = nodes
        .iter()
        .position(|(_, r)| *r == Some(true))
        .or_else(|| nodes.iter().position(|(_, r)| r.is_none()));
    let dst = nodes
        .iter()
        .enumerate()
        .position(|(i, (_, r))| *r == Some(false) && Some(i) != src)
        .or_else(|| (0..nodes.len()).find(|&i| Some(i) != src));
    if let Some(i) = src {
        kw.insert("src".into(), nodes[i].0.clone());
    }
    if let Some(i) = dst {
        kw.insert("dst".into(), nodes[i].0.clone());
    }
    kw
}

/// The trivial baseline: for every key present in more than half of the training pairs,
/// always predicts its most frequent value there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Majority {
    /// The constant prediction.
    pub prediction: BTreeMap<String, String>,
}

impl Majority {
    /// Fits the constant prediction on training pairs.
    pub fn fit(train: &[IntentPair]) -> Self {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for p in train {
            for (k, v) in parse_keywords(&p.keywords) {
                *counts.entry(k).or_default().entry(v).or_default() += 1;
            }
        }
        let prediction = counts
            .into_iter()
            .filter(|(_, vs)| vs.values().sum::<usize>() * 2 > train.len())
            .map(|(k, vs)| {
                let best = vs
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                    .unwrap()
                    .0;
                (k, best)
            })
            .collect();
        Self { prediction }
    }
}

// ---------------------------------------------------------------------------------------
// Scoring
// ---------------------------------------------------------------------------------------

/// Precision/recall/F1 counts of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyScore {
    /// Right value predicted.
    pub tp: usize,
    /// Key predicted with a value the reference does not have.
    pub fp: usize,
    /// Reference value not predicted.
    pub fn_: usize,
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// `tp / (tp + fn)`.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

impl KeyScore {
    fn finish(&mut self) {
        let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.precision = div(self.tp, self.tp + self.fp);
        self.recall = div(self.tp, self.tp + self.fn_);
        self.f1 = if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        };
    }
}

/// Scores of predictions against references.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Pairs scored.
    pub n: usize,
    /// Micro-averaged over all (key, value) pairs.
    pub micro: KeyScore,
    /// Share of pairs whose predicted keywords equal the reference exactly.
    pub exact_match: f64,
    /// Per key.
    pub per_key: BTreeMap<String, KeyScore>,
}

/// Micro P/R/F1 over (key, value) pairs, exact-match rate and per-key P/R/F1.
pub fn score(gold: &[BTreeMap<String, String>], pred: &[BTreeMap<String, String>]) -> Scores {
    let mut s = Scores {
        n: gold.len(),
        ..Default::default()
    };
    let mut exact = 0;
    for (g, p) in gold.iter().zip(pred) {
        exact += (g == p) as usize;
        for (k, v) in g {
            let e = s.per_key.entry(k.clone()).or_default();
            if p.get(k) == Some(v) {
                e.tp += 1;
            } else {
                e.fn_ += 1;
            }
        }
        for (k, v) in p {
            if g.get(k) != Some(v) {
                s.per_key.entry(k.clone()).or_default().fp += 1;
            }
        }
    }
    for e in s.per_key.values_mut() {
        s.micro.tp += e.tp;
        s.micro.fp += e.fp;
        s.micro.fn_ += e.fn_;
        e.finish();
    }
    s.micro.finish();
    s.exact_match = if gold.is_empty() {
        0.0
    } else {
        exact as f64 / gold.len() as f64
    };
    s
}

// ---------------------------------------------------------------------------------------
// TS 28.312 intent
// ---------------------------------------------------------------------------------------

/// The expectation object type used for a transport link (see [`to_intent`]).
pub const OBJECT_TYPE: &str = "Edge_Service_Support";

/// TS 28.312 `Context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// What the context constrains.
    pub context_attribute: String,
    /// `Condition` enum value (`IS_EQUAL_TO`, ...).
    pub context_condition: String,
    /// Value (`ValueRangeType`).
    pub context_value_range: Value,
}

/// TS 28.312 `ExpectationObject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationObject {
    /// One of the generic `objectType` values; [`OBJECT_TYPE`] here.
    pub object_type: String,
    /// DN of the object.
    pub object_instance: String,
    /// Filters identifying the object (the link's endpoints).
    pub object_contexts: Vec<Context>,
}

/// TS 28.312 `ExpectationTarget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationTarget {
    /// Target name.
    pub target_name: String,
    /// `Condition` enum value.
    pub target_condition: String,
    /// Value (`ValueRangeType`).
    pub target_value_range: Value,
    /// Constraints of this target (e.g. its unit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_contexts: Vec<Context>,
}

/// TS 28.312 `IntentExpectation` (generic, without specialisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentExpectation {
    /// Identifier within the intent.
    pub expectation_id: String,
    /// `DELIVER` or `ENSURE`.
    pub expectation_verb: String,
    /// What the expectation applies to.
    pub expectation_object: ExpectationObject,
    /// Targets to achieve.
    pub expectation_targets: Vec<ExpectationTarget>,
    /// Conditions of the whole expectation (e.g. the slice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expectation_contexts: Vec<Context>,
}

/// TS 28.312 `Intent` (the attributes of `Intent-Single`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// `Top.id`.
    pub id: String,
    /// Human-readable label: the original intent text.
    pub user_label: String,
    /// The expectations.
    pub intent_expectations: Vec<IntentExpectation>,
    /// Conditions of the whole intent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intent_contexts: Vec<Context>,
    /// `ACTIVATED` or `DEACTIVATED`.
    pub intent_admin_state: String,
}

fn ctx(attr: &str, cond: &str, v: Value) -> Context {
    Context {
        context_attribute: attr.into(),
        context_condition: cond.into(),
        context_value_range: v,
    }
}

/// Parses `10Gbps` / `500Mbps` into Mbit/s.
pub fn rate_mbps(v: &str) -> Option<f64> {
    let l = v.trim().to_lowercase();
    let (num, mult) = if let Some(n) = l.strip_suffix("gbps") {
        (n, 1000.0)
    } else if let Some(n) = l.strip_suffix("mbps") {
        (n, 1.0)
    } else if let Some(n) = l.strip_suffix("tbps") {
        (n, 1_000_000.0)
    } else if let Some(n) = l.strip_suffix("kbps") {
        (n, 0.001)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * mult)
}

fn number(v: &str, suffix: &str) -> Option<f64> {
    v.trim().strip_suffix(suffix)?.trim().parse().ok()
}

fn json_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// Expresses keywords as a TS 28.312 intent with one `DELIVER` expectation.
///
/// TS 28.312 (Rel-18) has no transport-network expectation object; of the generic
/// `objectType` values (`RAN_SubNetwork`, `Edge_Service_Support`, `5GC_SubNetwork`) the link
/// requests here are closest to edge service support: connectivity with throughput and
/// latency targets delivered between edge/access sites and the cloud, not the management
/// of a RAN or 5GC subnetwork. So the object is [`OBJECT_TYPE`] with the link as
/// `objectInstance` (a DN) and the endpoints as `objectContexts` (`sourceEndpoint`,
/// `destinationEndpoint`, `IS_EQUAL_TO`). Targets: `linkThroughput` (Mbit/s,
/// `IS_EQUAL_TO_OR_GREATER_THAN`), `linkLatency` (ms, `IS_LESS_THAN`, as TS 28.312's
/// `DLLatencyTarget`), `reliability` (percent, `IS_EQUAL_TO_OR_GREATER_THAN`),
/// `pathProtection` (boolean, `IS_EQUAL_TO`). The slice type is an `expectationContexts`
/// entry (`sliceType`). Values that do not parse keep their text.
pub fn to_intent(keywords: &BTreeMap<String, String>) -> Intent {
    to_intent_labelled(keywords, &format_keywords(keywords))
}

fn to_intent_labelled(keywords: &BTreeMap<String, String>, label: &str) -> Intent {
    let get = |k: &str| keywords.get(k).map(|s| s.as_str());
    let dn_part = |s: &str| s.replace([' ', ',', '='], "-");
    let src = get("src").unwrap_or("unknown");
    let dst = get("dst").unwrap_or("unknown");
    let mut object_contexts = Vec::new();
    if let Some(s) = get("src") {
        object_contexts.push(ctx("sourceEndpoint", "IS_EQUAL_TO", json!(s)));
    }
    if let Some(d) = get("dst") {
        object_contexts.push(ctx("destinationEndpoint", "IS_EQUAL_TO", json!(d)));
    }
    let mut targets = Vec::new();
    let unit = |u: &str| vec![ctx("unit", "IS_EQUAL_TO", json!(u))];
    if let Some(r) = get("rate") {
        let (v, c) = match rate_mbps(r) {
            Some(m) => (json_number(m), unit("Mbit/s")),
            None => (json!(r), Vec::new()),
        };
        targets.push(ExpectationTarget {
            target_name: "linkThroughput".into(),
            target_condition: "IS_EQUAL_TO_OR_GREATER_THAN".into(),
            target_value_range: v,
            target_contexts: c,
        });
    }
    if let Some(l) = get("latency") {
        let (v, c) = match number(l, "ms") {
            Some(m) => (json_number(m), unit("ms")),
            None => (json!(l), Vec::new()),
        };
        targets.push(ExpectationTarget {
            target_name: "linkLatency".into(),
            target_condition: "IS_LESS_THAN".into(),
            target_value_range: v,
            target_contexts: c,
        });
    }
    if let Some(r) = get("reliability") {
        let (v, c) = match number(r, "%") {
            Some(m) => (json_number(m), unit("%")),
            None => (json!(r), Vec::new()),
        };
        targets.push(ExpectationTarget {
            target_name: "reliability".into(),
            target_condition: "IS_EQUAL_TO_OR_GREATER_THAN".into(),
            target_value_range: v,
            target_contexts: c,
        });
    }
    if let Some(p) = get("protection") {
        let v = match p {
            "yes" => json!(true),
            "no" => json!(false),
            other => json!(other),
        };
        targets.push(ExpectationTarget {
            target_name: "pathProtection".into(),
            target_condition: "IS_EQUAL_TO".into(),
            target_value_range: v,
            target_contexts: Vec::new(),
        });
    }
    let mut expectation_contexts = Vec::new();
    if let Some(s) = get("slice") {
        expectation_contexts.push(ctx("sliceType", "IS_EQUAL_TO", json!(s)));
    }
    let link = format!("{}_{}", dn_part(src), dn_part(dst));
    Intent {
        id: format!("intent-{link}"),
        user_label: label.to_string(),
        intent_expectations: vec![IntentExpectation {
            expectation_id: "1".into(),
            expectation_verb: "DELIVER".into(),
            expectation_object: ExpectationObject {
                object_type: OBJECT_TYPE.into(),
                object_instance: format!("SubNetwork=NetGPT,TransportLink={link}"),
                object_contexts,
            },
            expectation_targets: targets,
            expectation_contexts,
        }],
        intent_contexts: Vec::new(),
        intent_admin_state: "ACTIVATED".into(),
    }
}

// ---------------------------------------------------------------------------------------
// The fine-tuned edge model
// ---------------------------------------------------------------------------------------

/// What [`IntentModel::infer`] returns.
#[derive(Debug, Clone, Serialize)]
pub struct IntentInference {
    /// Parsed keywords.
    pub keywords: BTreeMap<String, String>,
    /// The keywords as a TS 28.312 intent.
    pub intent: Intent,
    /// The model's raw output.
    pub raw: String,
}

/// The fine-tuned edge GPT-2 for intents, loaded once and shared (it is `Send + Sync`).
pub struct IntentModel {
    model: Arc<Gpt2>,
    tokenizer: Tokenizer,
    end_ids: Vec<u32>,
}

fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::Invalid("empty intent text".into()));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(Error::Invalid(format!(
            "intent text of {n} characters is longer than the {MAX_TEXT_CHARS} accepted"
        )));
    }
    Ok(())
}

impl IntentModel {
    /// Loads the artefact folder `root_models_dir/analytics/intent` (`<repo>/models`).
    pub fn load(root_models_dir: &Path, device: &Device) -> Result<Self> {
        Self::load_dir(&root_models_dir.join(ARTEFACT_DIR), device)
    }

    /// Loads a model folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let model = Gpt2::load(dir, device)?;
        let tokenizer = bpe::load(&dir.join(crate::edge::TOKENIZER_FILE))?;
        Self::new(model, tokenizer)
    }

    /// Wraps an in-memory model and tokenizer.
    pub fn new(model: Gpt2, tokenizer: Tokenizer) -> Result<Self> {
        let end_ids = vec![
            bpe::special_id(&tokenizer, bpe::END)?,
            bpe::special_id(&tokenizer, bpe::PAD)?,
        ];
        Ok(Self {
            model: Arc::new(model),
            tokenizer,
            end_ids,
        })
    }

    /// Greedy keyword string for one intent text, parsed and expressed as an intent.
    /// Empty text, or text over [`MAX_TEXT_CHARS`], is `Error::Invalid`.
    pub fn infer(&self, text: &str) -> Result<IntentInference> {
        self.infer_batch(&[text])?
            .pop()
            .ok_or_else(|| Error::Invalid("no output".into()))
    }

    /// [`IntentModel::infer`] for several texts decoded together (one batched forward per
    /// step). Fails as a whole if any text is invalid.
    pub fn infer_batch(&self, texts: &[&str]) -> Result<Vec<IntentInference>> {
        let raws = self.raw_batch(texts)?;
        Ok(texts
            .iter()
            .zip(raws)
            .map(|(t, raw)| {
                let keywords = parse_keywords(&raw);
                IntentInference {
                    intent: to_intent_labelled(&keywords, t.trim()),
                    keywords,
                    raw,
                }
            })
            .collect())
    }

    /// Raw greedy outputs for several texts.
    pub fn raw_batch(&self, texts: &[&str]) -> Result<Vec<String>> {
        let ctx = self.model.config().n_positions;
        let mut prompts = Vec::with_capacity(texts.len());
        for t in texts {
            check_text(t)?;
            let ids = bpe::encode(&self.tokenizer, &bpe::edge_prompt(TASK_TAG, t))?;
            if ids.len() + 8 >= ctx {
                return Err(Error::Invalid(format!(
                    "intent text of {} tokens does not fit the model's context of {ctx}",
                    ids.len()
                )));
            }
            prompts.push(ids);
        }
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let cfg = GenerationConfig {
            max_new_tokens: MAX_NEW_TOKENS.min(ctx - longest - 1),
            stop_token_ids: self.end_ids.clone(),
            ..Default::default()
        };
        let lm = Gpt2Batch::new(self.model.clone(), None);
        let mut out = Vec::with_capacity(texts.len());
        // Chunks bound the padded attention work of one batched step.
        for chunk in prompts.chunks(64) {
            let gens =
                generation::generate_batch(&lm, &self.tokenizer, chunk, &cfg, &mut |_, _| {})?;
            for g in gens {
                let ids: Vec<u32> = g
                    .tokens
                    .into_iter()
                    .filter(|t| !self.end_ids.contains(t))
                    .collect();
                out.push(bpe::decode(&self.tokenizer, &ids)?.trim().to_string());
            }
        }
        Ok(out)
    }

    /// The model.
    pub fn model(&self) -> &Arc<Gpt2> {
        &self.model
    }
}

/// Tokenises pairs as `<|site|>intent<|concise|>text<|complete|>keywords<|end|>`, prompt
/// masked; drops any longer than `max_len`.
pub fn encode_pairs(tok: &Tokenizer, pairs: &[IntentPair], max_len: usize) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let prompt_len = bpe::encode(tok, &bpe::edge_prompt(TASK_TAG, &p.text))?.len();
        let tokens = bpe::encode(tok, &bpe::edge_example(TASK_TAG, &p.text, &p.keywords))?;
        if tokens.len() <= max_len {
            out.push(Example { tokens, prompt_len });
        }
    }
    Ok(out)
}

/// Fine-tuning settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Seed of the data set and of the batch order.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW, warm-up then cosine decay).
    pub lr: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: SEED,
            steps: 2000,
            batch_size: 16,
            lr: 4e-3,
        }
    }
}

/// Full fine-tuning of the edge model (`base_dir`: `models/edge`) on `train_pairs`; returns
/// the model and the training report. `on_log(step, loss)` reports progress.
pub fn train_model(
    base_dir: &Path,
    train_pairs: &[IntentPair],
    opts: &TrainOptions,
    on_log: &mut dyn FnMut(usize, f32),
) -> Result<(IntentModel, train::TrainReport)> {
    let device = Device::Cpu;
    let base = Gpt2::load(base_dir, &device)?;
    let tok = bpe::load(&base_dir.join(crate::edge::TOKENIZER_FILE))?;
    let cfg = base.config().clone();
    let data = encode_pairs(&tok, train_pairs, cfg.n_positions)?;
    let (model, vars) = train::trainable_gpt2(&cfg, base.tensors())?;
    let tcfg = TrainConfig {
        steps: opts.steps,
        batch_size: opts.batch_size,
        lr: opts.lr,
        warmup: (opts.steps / 20).max(1),
        weight_decay: 0.01,
        seed: opts.seed,
        mask_prompt: true,
        log_every: 10,
    };
    let fwd = |ids: &Tensor| model.forward_train(ids, None);
    let report = train::train(&vars, &fwd, &data, &tcfg, &device, on_log)?;
    let model = Gpt2::from_tensors(
        &cfg,
        &model
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.detach()))
            .collect(),
    )?;
    Ok((IntentModel::new(model, tok)?, report))
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

/// One method scored on one subset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRow {
    /// `majority`, `rules` or `edge-gpt2`.
    pub method: String,
    /// `seen` (held-out pairs of training frames), `novel` (held-out frames) or `all`.
    pub subset: String,
    /// The scores.
    pub scores: Scores,
}

/// How the shipped model was trained (from its `train_report.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Settings.
    pub options: Option<TrainOptions>,
    /// Trainable parameters.
    pub parameters: usize,
    /// Training wall-clock seconds.
    pub train_seconds: f64,
    /// `(step, mean loss)`.
    pub losses: Vec<(usize, f32)>,
}

/// Intent-inference figures: the three methods on the held-out subsets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Training pairs.
    pub train_pairs: usize,
    /// Held-out pairs from training frames.
    pub heldout_seen: usize,
    /// Held-out pairs from frames never trained on.
    pub heldout_novel: usize,
    /// Frames used in training / held out.
    pub frames_seen: usize,
    /// Frames held out.
    pub frames_novel: usize,
    /// Scores.
    pub rows: Vec<ReportRow>,
    /// Seconds the model took to decode the held-out set.
    pub decode_seconds: f64,
    /// Training of the evaluated model.
    pub training: TrainingInfo,
}

impl Report {
    /// The row of `method` on `subset`.
    pub fn get(&self, method: &str, subset: &str) -> Option<&Scores> {
        self.rows
            .iter()
            .find(|r| r.method == method && r.subset == subset)
            .map(|r| &r.scores)
    }

    /// Markdown tables: micro P/R/F1 and exact match per method and subset, then per-key F1.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Intent inference: {} training pairs; held-out {} pairs from the {} training frames \
             (seen) + {} pairs from {} frames never trained on (novel).\n",
            self.train_pairs,
            self.heldout_seen,
            self.frames_seen,
            self.heldout_novel,
            self.frames_novel
        );
        let _ = writeln!(
            s,
            "| method | subset | pairs | precision | recall | F1 | exact match |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let m = &r.scores.micro;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} % |",
                r.method,
                r.subset,
                r.scores.n,
                m.precision,
                m.recall,
                m.f1,
                100.0 * r.scores.exact_match
            );
        }
        let cols: Vec<&ReportRow> = self.rows.iter().filter(|r| r.subset != "all").collect();
        let _ = writeln!(s, "\nPer-key F1:\n");
        let mut head = String::from("| key |");
        let mut sep = String::from("|---|");
        for r in &cols {
            let _ = write!(head, " {} {} |", r.method, r.subset);
            sep.push_str("---|");
        }
        let _ = writeln!(s, "{head}\n{sep}");
        for k in KEYS {
            let mut line = format!("| {k} |");
            for r in &cols {
                match r.scores.per_key.get(k) {
                    Some(e) => {
                        let _ = write!(line, " {:.3} |", e.f1);
                    }
                    None => line.push_str(" - |"),
                }
            }
            let _ = writeln!(s, "{line}");
        }
        if self.training.train_seconds > 0.0 {
            let last = self.training.losses.last().map(|l| l.1).unwrap_or(f32::NAN);
            let _ = writeln!(
                s,
                "\nedge-gpt2: full fine-tuning of models/edge ({} parameters), {:.0} s training, \
                 final loss {:.4}; held-out decoding {:.1} s.",
                self.training.parameters, self.training.train_seconds, last, self.decode_seconds
            );
        }
        s
    }
}

fn keywords_of(pairs: &[&IntentPair]) -> Vec<BTreeMap<String, String>> {
    pairs.iter().map(|p| parse_keywords(&p.keywords)).collect()
}

/// Scores the three methods on `heldout` (`model` may be absent: baselines only).
pub fn evaluate(
    train_pairs: &[IntentPair],
    heldout: &[IntentPair],
    model: Option<&IntentModel>,
    training: TrainingInfo,
) -> Result<Report> {
    let majority = Majority::fit(train_pairs);
    let texts: Vec<&str> = heldout.iter().map(|p| p.text.as_str()).collect();
    let start = Instant::now();
    let model_preds = match model {
        Some(m) => Some(
            m.raw_batch(&texts)?
                .iter()
                .map(|r| parse_keywords(r))
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let decode_seconds = start.elapsed().as_secs_f64();
    let rule_preds: Vec<_> = texts.iter().map(|t| rule_based(t)).collect();
    let mut rows = Vec::new();
    for subset in ["seen", "novel", "all"] {
        let idx: Vec<usize> = (0..heldout.len())
            .filter(|&i| match subset {
                "seen" => !heldout[i].novel,
                "novel" => heldout[i].novel,
                _ => true,
            })
            .collect();
        let gold = keywords_of(&idx.iter().map(|&i| &heldout[i]).collect::<Vec<_>>());
        let pick =
            |p: &[BTreeMap<String, String>]| idx.iter().map(|&i| p[i].clone()).collect::<Vec<_>>();
        rows.push(ReportRow {
            method: "majority".into(),
            subset: subset.into(),
            scores: score(&gold, &vec![majority.prediction.clone(); idx.len()]),
        });
        rows.push(ReportRow {
            method: "rules".into(),
            subset: subset.into(),
            scores: score(&gold, &pick(&rule_preds)),
        });
        if let Some(mp) = &model_preds {
            rows.push(ReportRow {
                method: "edge-gpt2".into(),
                subset: subset.into(),
                scores: score(&gold, &pick(mp)),
            });
        }
    }
    Ok(Report {
        train_pairs: train_pairs.len(),
        heldout_seen: heldout.iter().filter(|p| !p.novel).count(),
        heldout_novel: heldout.iter().filter(|p| p.novel).count(),
        frames_seen: FRAMES.iter().filter(|f| !f.1).count(),
        frames_novel: FRAMES.iter().filter(|f| f.1).count(),
        rows,
        decode_seconds,
        training,
    })
}

/// What [`reproduce`] writes into `train_report.json` beside the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Training settings and loss curve.
    pub training: TrainingInfo,
    /// Held-out figures of the saved model.
    pub report: Report,
}

/// Evaluates the committed artefacts: reads `root/models/data/intents_*.jsonl` and the model
/// in `root/models/analytics/intent`, decodes the held-out set greedily (no retraining) and
/// scores it with the baselines.
pub fn evaluate_shipped(root: &Path) -> Result<Report> {
    let models = root.join("models");
    let train_pairs = read_jsonl(&models.join("data").join(TRAIN_FILE))?;
    let heldout = read_jsonl(&models.join("data").join(HELDOUT_FILE))?;
    let model = IntentModel::load(&models, &Device::Cpu)?;
    let training = std::fs::read_to_string(models.join(ARTEFACT_DIR).join("train_report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<TrainSummary>(&t).ok())
        .map(|s| s.training)
        .unwrap_or_default();
    evaluate(&train_pairs, &heldout, Some(&model), training)
}

/// Settings of [`reproduce`].
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// Repository root (reads `root/models/edge`).
    pub root: PathBuf,
    /// Folder the model, tokenizer and `train_report.json` are written to.
    pub out: PathBuf,
    /// Training settings (its seed also seeds the data set).
    pub train: TrainOptions,
}

/// Regenerates the data set from the seed, fine-tunes the edge model, writes the artefacts
/// into `opts.out`, reloads them and evaluates. `on_log(step, loss)` reports progress.
pub fn reproduce(opts: &ReproduceOptions, on_log: &mut dyn FnMut(usize, f32)) -> Result<Report> {
    let (train_pairs, heldout) = split(generate(N_PAIRS, opts.train.seed), opts.train.seed);
    let (model, tr) = train_model(
        &opts.root.join("models").join("edge"),
        &train_pairs,
        &opts.train,
        on_log,
    )?;
    std::fs::create_dir_all(&opts.out)?;
    model.model().save(&opts.out)?;
    bpe::save(
        &model.tokenizer,
        &opts.out.join(crate::edge::TOKENIZER_FILE),
    )?;
    let model = IntentModel::load_dir(&opts.out, &Device::Cpu)?;
    let training = TrainingInfo {
        options: Some(opts.train.clone()),
        parameters: tr.trainable_params,
        train_seconds: tr.seconds,
        losses: tr.losses,
    };
    let report = evaluate(&train_pairs, &heldout, Some(&model), training.clone())?;
    let summary = TrainSummary {
        training,
        report: report.clone(),
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Format(e.to_string()))?;
    std::fs::write(opts.out.join("train_report.json"), text + "\n")?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_round_trips_and_tolerates_garbage() {
        let kw = parse_keywords("rate=10Gbps; src=Access 1; dst=Cloud 2; protection=yes");
        assert_eq!(kw.len(), 4);
        assert_eq!(
            format_keywords(&kw),
            "rate=10Gbps; src=Access 1; dst=Cloud 2; protection=yes"
        );
        let kw = parse_keywords("rate=; src = Core 3 ;bogus; colour=red; src=Core 4; dst: Edge 1");
        assert_eq!(kw.get("src").map(String::as_str), Some("Core 3"));
        assert_eq!(kw.get("dst").map(String::as_str), Some("Edge 1"));
        assert_eq!(kw.len(), 2);
    }
}
