//! Concise -> comprehensive prompt pairs for the edge model.
//!
//! Generated from templates and the site profiles with a seeded RNG: the same seed gives
//! the same files. No teacher LLM is used: every comprehensive prompt is a template filled
//! with the site's real facts, so its facts are correct by construction.

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::profiles::{Profiles, SiteProfile};
use crate::Result;

/// One training / evaluation sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Edge site id (`edge-london`).
    pub site: String,
    /// Profile category asked about (`libraries`).
    pub category: String,
    /// What the user typed.
    pub concise: String,
    /// The comprehensive prompt for the cloud model.
    pub completion: String,
    /// Names of the facts the completion carries.
    pub facts: Vec<String>,
}

/// Per category: concise phrasings, and the request sentence of the comprehensive prompt.
const CATEGORIES: &[(&str, &[&str], &str)] = &[
    (
        "libraries",
        &[
            "Recommend libraries",
            "find a library",
            "where can I study quietly",
            "any libraries nearby",
            "I need a quiet place to read",
            "library near me",
        ],
        "Recommend libraries and quiet places to read or study",
    ),
    (
        "hospitals",
        &[
            "Where can I see a doctor",
            "find a hospital",
            "I feel sick, where should I go",
            "nearest hospital",
            "need medical help",
            "emergency room near me",
        ],
        "Tell me where I can see a doctor or get medical care",
    ),
    (
        "transport",
        &[
            "how do I get to the station",
            "nearest train station",
            "public transport options",
            "how to get around",
            "where can I catch a train",
            "how do I get to the airport",
        ],
        "Explain the public transport options",
    ),
    (
        "parks",
        &[
            "find a park to run",
            "somewhere green to relax",
            "parks nearby",
            "where can I go jogging",
            "a quiet garden for a walk",
            "outdoor space for a picnic",
        ],
        "Suggest parks and green spaces for a run or a walk",
    ),
    (
        "museums",
        &[
            "recommend museums",
            "what museums are near",
            "something cultural to see",
            "ideas for a rainy day",
            "art or history museum",
            "exhibitions nearby",
        ],
        "Recommend museums and exhibitions",
    ),
    (
        "universities",
        &[
            "universities around here",
            "where is the university",
            "a campus to visit",
            "colleges nearby",
            "where can I attend a public lecture",
            "places to study for a degree",
        ],
        "Tell me about the universities and colleges",
    ),
    (
        "food_markets",
        &[
            "where to eat",
            "food market nearby",
            "local street food",
            "hungry, any food markets",
            "where can I buy fresh produce",
            "best place for a snack",
        ],
        "Recommend food markets and streets for local food",
    ),
    (
        "landmarks",
        &[
            "what should I see",
            "sightseeing ideas",
            "famous landmarks nearby",
            "things to do today",
            "show me the sights",
            "where to take photos",
        ],
        "Suggest famous landmarks and sights",
    ),
];

/// Optional user constraint: `(suffix on the concise prompt, sentence in the completion)`.
const MODIFIERS: &[(&str, &str)] = &[
    (" tonight", "I am planning for this evening."),
    (
        " with kids",
        "I am with children, so family-friendly options are best.",
    ),
    (
        " quickly",
        "I am in a hurry and prefer the closest options.",
    ),
    (" on foot", "I would like to walk there."),
    (" for free", "I prefer free or low-cost options."),
    (" in English", "Please answer in English."),
];

/// Comprehensive-prompt templates: `{area} {city} {country} {req} {req_lc} {facts}`.
const TEMPLATES: &[&str] = &[
    "I am near {area} in {city}, {country}. {req} nearby, such as {facts}.",
    "My location: {area}, {city}. {req} within walking distance, for example {facts}.",
    "{req} for someone at {area} in {city}, for instance {facts}.",
    "Context: the user is at {area}, {city}, {country}. Request: {req_lc}. Local options include {facts}.",
];

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn join_facts(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Varies case and punctuation of a concise phrasing the way users type.
fn vary_concise(base: &str, rng: &mut StdRng) -> String {
    let s = match rng.random_range(0..4) {
        0 => lower_first(base),
        1 => {
            let mut c = base.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
        _ => base.to_string(),
    };
    match rng.random_range(0..5) {
        0 => format!("{s}?"),
        1 => format!("{s} please"),
        _ => s,
    }
}

/// One sample for `site` / `category`.
fn make_pair(site_id: &str, site: &SiteProfile, cat: usize, rng: &mut StdRng) -> Pair {
    let (category, phrasings, req) = CATEGORIES[cat];
    let facts = site
        .categories
        .get(category)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let modifier = if rng.random_bool(0.4) {
        Some(*MODIFIERS.choose(rng).expect("modifiers"))
    } else {
        None
    };
    let base = format!(
        "{}{}",
        phrasings.choose(rng).expect("phrasings"),
        modifier.map_or("", |m| m.0)
    );
    let concise = vary_concise(&base, rng);
    let k = if rng.random_bool(0.3) { 3 } else { 2 }.min(facts.len());
    let mut chosen: Vec<_> = facts.choose_multiple(rng, k).collect();
    chosen.shuffle(rng);
    let rendered: Vec<String> = chosen.iter().map(|f| f.render()).collect();
    let mut completion = TEMPLATES
        .choose(rng)
        .expect("templates")
        .replace("{area}", &site.area)
        .replace("{city}", &site.city)
        .replace("{country}", &site.country)
        .replace("{req_lc}", &lower_first(req))
        .replace("{req}", req)
        .replace("{facts}", &join_facts(&rendered));
    if let Some((_, sentence)) = modifier {
        completion = format!("{completion} {sentence}");
    }
    // "I am near the Latin Quarter" reads fine; capitalise a leading "the".
    let completion = completion.replace(". the ", ". The ");
    let completion = if completion.starts_with("the ") {
        format!("T{}", &completion[1..])
    } else {
        completion
    };
    Pair {
        site: site_id.into(),
        category: category.into(),
        concise,
        completion,
        facts: chosen.iter().map(|f| f.name.clone()).collect(),
    }
}

/// `n` samples drawn uniformly over sites and categories, deterministic in `seed`.
pub fn generate(profiles: &Profiles, n: usize, seed: u64) -> Vec<Pair> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sites: Vec<(&String, &SiteProfile)> = profiles.iter().collect();
    (0..n)
        .map(|i| {
            // Round-robin over (site, category) keeps the classes balanced.
            let (sid, site) = sites[i % sites.len()];
            let cat = (i / sites.len()) % CATEGORIES.len();
            make_pair(sid, site, cat, &mut rng)
        })
        .collect()
}

/// Shuffles and splits off `heldout_frac` of `pairs` as the held-out set: `(train, heldout)`.
pub fn split(mut pairs: Vec<Pair>, heldout_frac: f64, seed: u64) -> (Vec<Pair>, Vec<Pair>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    pairs.shuffle(&mut rng);
    let n_held = ((pairs.len() as f64) * heldout_frac).round() as usize;
    let train = pairs.split_off(n_held);
    (train, pairs)
}

/// Writes pairs as JSON lines.
pub fn write_jsonl(path: &Path, pairs: &[Pair]) -> Result<()> {
    super::write_jsonl(path, pairs)
}

/// Reads JSON lines written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<Pair>> {
    super::read_jsonl(path)
}

/// File names of the two splits under the data folder.
pub const TRAIN_FILE: &str = "pairs_train.jsonl";
/// Held-out split file name.
pub const HELDOUT_FILE: &str = "pairs_heldout.jsonl";

/// Generates `n` pairs with `seed`, splits 90/10 and writes both files into `dir`.
/// Returns `(train, heldout)` sizes.
pub fn write_datasets(
    profiles: &Profiles,
    dir: &Path,
    n: usize,
    seed: u64,
) -> Result<(usize, usize)> {
    std::fs::create_dir_all(dir)?;
    let (train, held) = split(generate(profiles, n, seed), 0.1, seed);
    write_jsonl(&dir.join(TRAIN_FILE), &train)?;
    write_jsonl(&dir.join(HELDOUT_FILE), &held)?;
    Ok((train.len(), held.len()))
}

/// How a generated comprehensive prompt fares against the site profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FactCheck {
    /// Names at least one fact of the right site in the requested category.
    pub right_category_fact: bool,
    /// Names at least one fact (any category) of the right site.
    pub right_site_fact: bool,
    /// Names a fact or the area of another site.
    pub other_site: bool,
}

impl FactCheck {
    /// Right site's fact of the right category, and nothing of another site.
    pub fn correct(&self) -> bool {
        self.right_category_fact && !self.other_site
    }
}

/// Checks which sites' facts `text` names, for a request about `category` at `site`.
pub fn check_completion(profiles: &Profiles, site: &str, category: &str, text: &str) -> FactCheck {
    let mut c = FactCheck::default();
    for (sid, p) in profiles {
        if sid == site {
            c.right_site_fact = p.all_facts().any(|f| text.contains(&f.name));
            c.right_category_fact = p
                .categories
                .get(category)
                .is_some_and(|fs| fs.iter().any(|f| text.contains(&f.name)));
        } else if p.all_facts().any(|f| text.contains(&f.name)) || text.contains(&p.area) {
            c.other_site = true;
        }
    }
    c
}

/// Concise prompts phrased unlike any training template, `(category, prompt)`: a probe of
/// how the edge model generalises beyond the generator's phrasings.
pub const NOVEL_PROBES: &[(&str, &str)] = &[
    ("libraries", "I want to borrow some books"),
    ("libraries", "somewhere to read for a few hours"),
    ("hospitals", "my child has a fever"),
    ("hospitals", "I hurt my ankle"),
    ("transport", "how can I travel across the city"),
    ("transport", "which trains leave from here"),
    ("parks", "I want some fresh air"),
    ("parks", "where can I walk my dog"),
    ("museums", "I like art and history"),
    ("museums", "show me a gallery"),
    ("universities", "where do students study here"),
    ("universities", "I want to visit a college"),
    ("food_markets", "I'm starving"),
    ("food_markets", "where can I try local dishes"),
    ("landmarks", "I'm a tourist, what's famous here"),
    ("landmarks", "best photo spots"),
];
