//! The edge's own answer to a place lookup: "where is the nearest hospital", "any libraries
//! nearby". The site profile holds the answer (the site's places of that category), so the
//! request need not leave the edge.
//!
//! The rule, stated so a user can predict it: a concise prompt of at most 8 words that
//! (1) names exactly one category of the site profile, (2) carries a lookup cue (`where`,
//! `nearest`, `nearby`, `near me`, `find`, `list`, `any`, `locate`), and (3) carries no cue of
//! an open request (`recommend`, `suggest`, `why`, `how`, `explain`, `plan`, `compare`,
//! `best`, `ideas`, `tell me about`, `should`). Anything else goes to the cloud.

use netgpt_models::data::profiles::SiteProfile;

/// Category of the site profile -> words that name it.
const CATEGORY_WORDS: &[(&str, &[&str])] = &[
    ("libraries", &["library", "libraries"]),
    (
        "hospitals",
        &[
            "hospital",
            "hospitals",
            "doctor",
            "clinic",
            "emergency room",
            "a&e",
        ],
    ),
    (
        "transport",
        &["station", "train", "metro", "subway", "tube", "bus stop"],
    ),
    ("parks", &["park", "parks", "garden", "gardens"]),
    ("museums", &["museum", "museums", "exhibition", "gallery"]),
    (
        "universities",
        &["university", "universities", "campus", "college"],
    ),
    (
        "food_markets",
        &["food market", "food markets", "market", "markets"],
    ),
    (
        "landmarks",
        &["landmark", "landmarks", "sights", "monument"],
    ),
];

const LOOKUP_CUES: &[&str] = &[
    "where", "nearest", "nearby", "near me", "find", "list", "any", "locate",
];

const OPEN_CUES: &[&str] = &[
    "recommend",
    "suggest",
    "why",
    "how",
    "explain",
    "plan",
    "compare",
    "best",
    "ideas",
    "tell me about",
    "should",
];

/// Lower-case words of `text`, joined by single spaces, padded so phrases match on word
/// boundaries (`" near me "`).
fn words(text: &str) -> String {
    let w: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '&'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    format!(" {} ", w.join(" "))
}

fn has(hay: &str, phrase: &str) -> bool {
    hay.contains(&format!(" {phrase} "))
}

/// The profile category a place lookup asks for, when `concise` is one (see the module doc).
pub fn lookup_category(concise: &str, profile: &SiteProfile) -> Option<&'static str> {
    let w = words(concise);
    if w.split_whitespace().count() > 8
        || !LOOKUP_CUES.iter().any(|c| has(&w, c))
        || OPEN_CUES.iter().any(|c| has(&w, c))
    {
        return None;
    }
    let mut found = CATEGORY_WORDS
        .iter()
        .filter(|(cat, names)| {
            profile.categories.contains_key(*cat) && names.iter().any(|n| has(&w, n))
        })
        .map(|(cat, _)| *cat);
    match (found.next(), found.next()) {
        (Some(cat), None) => Some(cat),
        _ => None,
    }
}

/// The edge's answer to a lookup of `category`: the site's places, with where they are.
pub fn answer(category: &str, profile: &SiteProfile) -> Option<String> {
    let facts = profile.categories.get(category)?;
    if facts.is_empty() {
        return None;
    }
    let list: Vec<String> = facts.iter().map(|f| f.render()).collect();
    Some(format!(
        "Near {}, {} ({}): {}.",
        profile.area,
        profile.city,
        category.replace('_', " "),
        list.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netgpt_models::data::profiles;

    #[test]
    fn lookups_are_answered_and_open_requests_are_not() {
        let p = profiles::builtin();
        let london = &p["edge-london"];
        for (prompt, want) in [
            ("Where is the nearest hospital?", Some("hospitals")),
            ("any libraries nearby", Some("libraries")),
            ("find a park near me", Some("parks")),
            ("nearest train station", Some("transport")),
            ("Recommend libraries", None),
            ("how do I get to the station", None),
            ("where is the best museum", None),
            ("libraries", None),
            ("where is a park or a museum", None),
            (
                "where can I find a library to study for my exam tomorrow morning",
                None,
            ),
        ] {
            assert_eq!(lookup_category(prompt, london), want, "{prompt}");
        }
        let a = answer("hospitals", london).unwrap();
        for f in &london.categories["hospitals"] {
            assert!(a.contains(&f.name), "{a}");
        }
        assert!(a.contains(&london.city));
        assert!(answer("casinos", london).is_none());
    }
}
