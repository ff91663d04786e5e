//! Data policy enforced before a prompt leaves the edge: configurable rules (topics not to
//! forward, geographic restrictions on where prompts of a site may go, fields that must stay
//! local, a length cap) and a verdict with one clear reason.
//!
//! Every rule is evaluated and every hit reported; any hit denies. Reasons name the rule id and
//! what matched, but never echo personal data (the kind is named instead) nor the text a
//! keep-local pattern matched.
//!
//! Rules are data: `{"rules": [{"id": "...", "type": "BLOCK_TOPIC", "keywords": [...]}]}` in
//! JSON, or `[[rules]]` tables in TOML; [`DEFAULT_RULES_TOML`] is the default set and a
//! commented example of each rule type.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::pii::{self, PiiKind};

/// One data-policy rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Identifier of the rule, named in verdicts (unique within a configuration).
    pub id: String,
    /// What the rule is for, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The rule's type (`type`) and its parameters.
    #[serde(flatten)]
    pub kind: RuleKind,
}

/// The type of a rule and its parameters (`type` names it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum RuleKind {
    /// Topics not to forward: a prompt containing one of the keywords (a word or a phrase,
    /// case-insensitive, whole words; a plural `s`/`es` also matches) is denied.
    #[serde(rename = "BLOCK_TOPIC", rename_all = "camelCase")]
    BlockTopic {
        /// Words or phrases naming the topic.
        keywords: Vec<String>,
    },
    /// Prompts from these sites or countries may only go to these destination localities
    /// (e.g. `cloud-cn`). Empty `sites` and `countries` means every prompt.
    #[serde(rename = "GEO_RESTRICTION", rename_all = "camelCase")]
    GeoRestriction {
        /// Edge sites the rule applies to (case-insensitive).
        #[serde(default)]
        sites: Vec<String>,
        /// Countries the rule applies to (ISO 3166 codes or names, case-insensitive).
        #[serde(default)]
        countries: Vec<String>,
        /// Destinations those prompts may be sent to.
        allowed_destinations: Vec<String>,
    },
    /// Fields that must stay local: raw personal data of these kinds, or text matching these
    /// regular expressions (e.g. precise coordinates), must not be in the outgoing prompt.
    #[serde(rename = "KEEP_LOCAL", rename_all = "camelCase")]
    KeepLocal {
        /// Kinds of personal data that must not leave the edge.
        #[serde(default)]
        pii: Vec<PiiKind>,
        /// Regular expressions (Rust `regex` syntax) of text that must not leave the edge.
        #[serde(default)]
        patterns: Vec<String>,
    },
    /// Prompts longer than this many characters are not forwarded.
    #[serde(rename = "MAX_LENGTH", rename_all = "camelCase")]
    MaxLength {
        /// Largest allowed prompt length in characters.
        chars: usize,
    },
}

impl RuleKind {
    /// The wire name of the type (`BLOCK_TOPIC`, ...), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleKind::BlockTopic { .. } => "BLOCK_TOPIC",
            RuleKind::GeoRestriction { .. } => "GEO_RESTRICTION",
            RuleKind::KeepLocal { .. } => "KEEP_LOCAL",
            RuleKind::MaxLength { .. } => "MAX_LENGTH",
        }
    }
}

/// A set of data-policy rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyConfig {
    /// The rules, all evaluated for every prompt.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// The default rules in TOML, with a commented example of a geographic restriction: the
/// format of a policy file.
pub const DEFAULT_RULES_TOML: &str = r#"
# Identifiers of subscribers, devices, payments and persons never leave the edge raw
# (desensitisation replaces them with placeholders first), nor do precise coordinates.
[[rules]]
id = "keep-identifiers-local"
description = "Subscriber, device, payment and national identifiers and precise coordinates stay at the edge"
type = "KEEP_LOCAL"
pii = ["SUPI", "IMEI", "PAYMENT_CARD", "IBAN", "NATIONAL_ID"]
# Two decimal degrees with four or more decimals each (about 10 m or better).
patterns = ['-?\b\d{1,3}\.\d{4,}\s*,\s*-?\d{1,3}\.\d{4,}\b']

[[rules]]
id = "block-sensitive-topics"
description = "Topics the operator does not forward to the cloud"
type = "BLOCK_TOPIC"
keywords = ["weapons manufacturing", "exploit", "bomb making"]

# Prompts of the Hangzhou edge may only go to clouds in China:
# [[rules]]
# id = "cn-data-stays-in-cn"
# type = "GEO_RESTRICTION"
# sites = ["edge-hangzhou"]
# countries = ["CN"]
# allowedDestinations = ["cloud-cn"]
"#;

impl PolicyConfig {
    /// The default rules ([`DEFAULT_RULES_TOML`]): keep SUPI/IMEI/card/IBAN/national ID and
    /// precise coordinates local; block a few clearly sensitive topics; no geo restriction.
    pub fn default_rules() -> Self {
        Self::from_toml(DEFAULT_RULES_TOML).expect("the default rules are valid")
    }

    /// Parses and validates a TOML policy (`[[rules]]` tables).
    pub fn from_toml(s: &str) -> Result<Self, String> {
        let cfg: Self = toml::from_str(s).map_err(|e| format!("policy TOML: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates a JSON policy: `{"rules": [...]}` or a bare array of rules.
    pub fn from_json(s: &str) -> Result<Self, String> {
        let cfg = if s.trim_start().starts_with('[') {
            Self {
                rules: serde_json::from_str(s).map_err(|e| format!("policy JSON: {e}"))?,
            }
        } else {
            serde_json::from_str(s).map_err(|e| format!("policy JSON: {e}"))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the rules; the error names the rule index and field
    /// (`rules[2].patterns[0]: invalid regular expression: ...`).
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            if rule.id.trim().is_empty() {
                return Err(format!("{}: must not be empty", at("id")));
            }
            if let Some(j) = seen.insert(rule.id.as_str(), i) {
                return Err(format!(
                    "{}: duplicate rule id {:?} (also rules[{j}])",
                    at("id"),
                    rule.id
                ));
            }
            match &rule.kind {
                RuleKind::BlockTopic { keywords } => {
                    if keywords.is_empty() {
                        return Err(format!(
                            "{}: at least one keyword is needed",
                            at("keywords")
                        ));
                    }
                    if let Some(k) = keywords.iter().position(|k| words(k).is_empty()) {
                        return Err(format!(
                            "{}: a keyword needs at least one letter or digit",
                            at(&format!("keywords[{k}]"))
                        ));
                    }
                }
                RuleKind::GeoRestriction {
                    allowed_destinations,
                    ..
                } => {
                    if allowed_destinations.is_empty() {
                        return Err(format!(
                            "{}: at least one destination is needed (a rule that allows none \
                             would stop every prompt it applies to)",
                            at("allowedDestinations")
                        ));
                    }
                }
                RuleKind::KeepLocal { pii, patterns } => {
                    if pii.is_empty() && patterns.is_empty() {
                        return Err(format!(
                            "{}: a KEEP_LOCAL rule needs `pii` kinds or `patterns`",
                            at("pii")
                        ));
                    }
                    for (k, p) in patterns.iter().enumerate() {
                        if let Err(e) = Regex::new(p) {
                            let msg = e.to_string().replace('\n', " ");
                            return Err(format!(
                                "{}: invalid regular expression: {msg}",
                                at(&format!("patterns[{k}]"))
                            ));
                        }
                    }
                }
                RuleKind::MaxLength { chars } => {
                    if *chars == 0 {
                        return Err(format!("{}: must be at least 1", at("chars")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What is about to leave the edge, and from where to where.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The outgoing prompt (normally already desensitised).
    pub prompt: &'a str,
    /// The edge site the prompt comes from.
    pub site: &'a str,
    /// The country of the site or UE, where known.
    pub country: Option<&'a str>,
    /// The destination locality (e.g. `cloud-eu`).
    pub destination: &'a str,
}

/// Whether the prompt may leave the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyDecision {
    /// No rule matched: the prompt may be forwarded.
    Allow,
    /// At least one rule matched: the prompt must not be forwarded.
    Deny,
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleHit {
    /// Id of the rule.
    pub rule: String,
    /// What matched (never the personal data itself).
    pub reason: String,
}

/// The verdict on one prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVerdict {
    /// Allow or deny.
    pub decision: PolicyDecision,
    /// Every rule that matched, in configuration order.
    pub hits: Vec<RuleHit>,
    /// One sentence summing up the decision.
    pub reason: String,
}

/// Evaluates every rule of `cfg` on `req`; any hit denies.
pub fn evaluate(cfg: &PolicyConfig, req: &PolicyRequest<'_>) -> PolicyVerdict {
    let prompt_words = words(req.prompt);
    // Personal data is looked for once, and only if a rule asks.
    let mut found: Option<Vec<PiiKind>> = None;
    let mut hits = Vec::new();
    for rule in &cfg.rules {
        let reason = match &rule.kind {
            RuleKind::BlockTopic { keywords } => {
                let matched: Vec<&str> = keywords
                    .iter()
                    .filter(|k| contains_phrase(&prompt_words, &words(k)))
                    .map(String::as_str)
                    .collect();
                (!matched.is_empty()).then(|| {
                    format!(
                        "the prompt mentions the blocked topic {}",
                        quoted_list(&matched)
                    )
                })
            }
            RuleKind::GeoRestriction {
                sites,
                countries,
                allowed_destinations,
            } => geo_hit(req, sites, countries, allowed_destinations),
            RuleKind::KeepLocal { pii, patterns } => {
                let mut what = Vec::new();
                if !pii.is_empty() {
                    let found = found.get_or_insert_with(|| {
                        pii::desensitize(req.prompt)
                            .findings
                            .iter()
                            .map(|f| f.kind)
                            .collect()
                    });
                    for kind in pii {
                        let n = found.iter().filter(|k| *k == kind).count();
                        if n > 0 {
                            what.push(format!("{n} raw {kind} value{}", plural(n)));
                        }
                    }
                }
                for (i, p) in patterns.iter().enumerate() {
                    match cached_regex(p) {
                        Some(re) if re.is_match(req.prompt) => {
                            what.push(format!("text matching local-only pattern #{i}"))
                        }
                        Some(_) => {}
                        // Fail closed: a rule that cannot be checked does not let data out.
                        None => what.push(format!("pattern #{i}, which is not a valid regex")),
                    }
                }
                (!what.is_empty()).then(|| format!("the prompt contains {}", what.join(" and ")))
            }
            RuleKind::MaxLength { chars } => {
                let n = req.prompt.chars().count();
                (n > *chars)
                    .then(|| format!("the prompt has {n} characters, over the limit of {chars}"))
            }
        };
        if let Some(reason) = reason {
            hits.push(RuleHit {
                rule: rule.id.clone(),
                reason,
            });
        }
    }
    let (decision, reason) = if hits.is_empty() {
        (
            PolicyDecision::Allow,
            format!(
                "Allowed: none of the {} policy rule{} matched.",
                cfg.rules.len(),
                plural(cfg.rules.len())
            ),
        )
    } else {
        let parts: Vec<String> = hits
            .iter()
            .map(|h| format!("rule {:?}: {}", h.rule, h.reason))
            .collect();
        (
            PolicyDecision::Deny,
            format!(
                "Denied by {} rule{}: {}.",
                hits.len(),
                plural(hits.len()),
                parts.join("; ")
            ),
        )
    };
    PolicyVerdict {
        decision,
        hits,
        reason,
    }
}

fn geo_hit(
    req: &PolicyRequest<'_>,
    sites: &[String],
    countries: &[String],
    allowed: &[String],
) -> Option<String> {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let site_hit = sites.iter().any(|s| eq(s, req.site));
    let country_hit = req
        .country
        .is_some_and(|c| countries.iter().any(|x| eq(x, c)));
    let applies = (sites.is_empty() && countries.is_empty()) || site_hit || country_hit;
    if !applies || allowed.iter().any(|d| eq(d, req.destination)) {
        return None;
    }
    let origin = if site_hit {
        format!("site {:?}", req.site)
    } else if country_hit {
        format!("country {:?}", req.country.unwrap_or_default())
    } else {
        "any site".to_string()
    };
    Some(format!(
        "prompts from {origin} may only go to {}, not to {:?}",
        quoted_list(&allowed.iter().map(String::as_str).collect::<Vec<_>>()),
        req.destination
    ))
}

/// Lower-cased words (runs of letters and digits).
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `phrase` occurs as consecutive words of `text`; the last word may carry a plural
/// `s` or `es` ("exploits" matches "exploit").
fn contains_phrase(text: &[String], phrase: &[String]) -> bool {
    if phrase.is_empty() || phrase.len() > text.len() {
        return false;
    }
    let last = phrase.len() - 1;
    text.windows(phrase.len()).any(|w| {
        w[..last] == phrase[..last] && {
            let (t, p) = (&w[last], &phrase[last]);
            t == p
                || t.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest == "s" || rest == "es")
        }
    })
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Compiled keep-local patterns, so a prompt does not recompile them; bounded because the
/// patterns come from configuration, which can change at run time.
fn cached_regex(pattern: &str) -> Option<Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(re) = cache.get(pattern) {
        return re.clone();
    }
    if cache.len() >= 256 {
        cache.clear();
    }
    let re = Regex::new(pattern).ok();
    cache.insert(pattern.to_string(), re.clone());
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(prompt: &'a str) -> PolicyRequest<'a> {
        PolicyRequest {
            prompt,
            site: "edge-london",
            country: Some("GB"),
            destination: "cloud-eu",
        }
    }

    fn rule(id: &str, kind: RuleKind) -> PolicyRule {
        PolicyRule {
            id: id.into(),
            description: None,
            kind,
        }
    }

    fn one(kind: RuleKind) -> PolicyConfig {
        PolicyConfig {
            rules: vec![rule("r1", kind)],
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn block_topic_matches_whole_words_and_phrases_case_insensitively() {
        let cfg = one(RuleKind::BlockTopic {
            keywords: strings(&["Weapons Manufacturing", "exploit"]),
        });
        for denied in [
            "How does weapons   manufacturing work?",
            "write an EXPLOIT for this router",
            "list known exploits of 5G cores",
        ] {
            let v = evaluate(&cfg, &req(denied));
            assert_eq!(v.decision, PolicyDecision::Deny, "{denied}");
            assert_eq!(v.hits.len(), 1);
            assert_eq!(v.hits[0].rule, "r1");
        }
        let v = evaluate(&cfg, &req("write an exploit"));
        assert!(
            v.reason.contains("\"exploit\"") && v.reason.contains("r1"),
            "{}",
            v.reason
        );
        for allowed in [
            "weapons are discussed in history class; manufacturing too",
            "exploitation of spectrum",
            "recommend libraries near King's Cross",
        ] {
            let v = evaluate(&cfg, &req(allowed));
            assert_eq!(v.decision, PolicyDecision::Allow, "{allowed}: {}", v.reason);
            assert!(v.hits.is_empty());
        }
    }

    #[test]
    fn geo_restriction_applies_to_its_sites_and_countries_only() {
        let cfg = one(RuleKind::GeoRestriction {
            sites: strings(&["edge-hangzhou"]),
            countries: strings(&["CN"]),
            allowed_destinations: strings(&["cloud-cn"]),
        });
        let from = |site, country, destination| PolicyRequest {
            prompt: "hello",
            site,
            country,
            destination,
        };
        let v = evaluate(&cfg, &from("edge-hangzhou", None, "cloud-eu"));
        assert_eq!(v.decision, PolicyDecision::Deny);
        assert!(
            v.hits[0].reason.contains("edge-hangzhou"),
            "{}",
            v.hits[0].reason
        );
        assert!(v.hits[0].reason.contains("cloud-eu"));
        let v = evaluate(&cfg, &from("edge-beijing", Some("cn"), "cloud-eu"));
        assert_eq!(
            v.decision,
            PolicyDecision::Deny,
            "country matches case-insensitively"
        );
        assert!(v.hits[0].reason.contains("country"));
        let v = evaluate(&cfg, &from("edge-hangzhou", Some("CN"), "CLOUD-CN"));
        assert_eq!(v.decision, PolicyDecision::Allow);
        let v = evaluate(&cfg, &from("edge-london", Some("GB"), "cloud-eu"));
        assert_eq!(
            v.decision,
            PolicyDecision::Allow,
            "other sites are not restricted"
        );
        let v = evaluate(&cfg, &from("edge-london", None, "cloud-eu"));
        assert_eq!(v.decision, PolicyDecision::Allow);

        let everywhere = one(RuleKind::GeoRestriction {
            sites: vec![],
            countries: vec![],
            allowed_destinations: strings(&["cloud-eu"]),
        });
        assert_eq!(
            evaluate(&everywhere, &from("edge-x", None, "cloud-us")).decision,
            PolicyDecision::Deny
        );
        assert_eq!(
            evaluate(&everywhere, &from("edge-x", None, "cloud-eu")).decision,
            PolicyDecision::Allow
        );
    }

    #[test]
    fn keep_local_names_pii_kinds_without_echoing_values() {
        let cfg = one(RuleKind::KeepLocal {
            pii: vec![PiiKind::Supi, PiiKind::PaymentCard],
            patterns: vec![],
        });
        let prompt = "my imsi-001010000000001 and card 4111 1111 1111 1111, phone +44 20 7946 0958";
        let v = evaluate(&cfg, &req(prompt));
        assert_eq!(v.decision, PolicyDecision::Deny);
        assert!(
            v.reason.contains("SUPI") && v.reason.contains("PAYMENT_CARD"),
            "{}",
            v.reason
        );
        assert!(!v.reason.contains("PHONE"), "phones are not in this rule");
        for value in ["001010000000001", "4111", "7946"] {
            assert!(!v.reason.contains(value), "{value} echoed in {}", v.reason);
        }
        // The desensitised prompt passes: placeholders are not personal data.
        let clean = pii::desensitize(prompt).text;
        assert_eq!(evaluate(&cfg, &req(&clean)).decision, PolicyDecision::Allow);
    }

    #[test]
    fn keep_local_patterns_deny_without_echoing_the_match() {
        let cfg = PolicyConfig::default_rules();
        let v = evaluate(&cfg, &req("I am at 51.53041, -0.12390, find a cafe"));
        assert_eq!(v.decision, PolicyDecision::Deny);
        assert_eq!(v.hits[0].rule, "keep-identifiers-local");
        assert!(v.reason.contains("pattern #0"), "{}", v.reason);
        assert!(!v.reason.contains("51.53041"));
        let v = evaluate(&cfg, &req("I am near 51.5, -0.1, find a cafe"));
        assert_eq!(v.decision, PolicyDecision::Allow, "{}", v.reason);
    }

    #[test]
    fn max_length_counts_characters_not_bytes() {
        let cfg = one(RuleKind::MaxLength { chars: 5 });
        assert_eq!(
            evaluate(&cfg, &req("王伟你好吗")).decision,
            PolicyDecision::Allow
        );
        let v = evaluate(&cfg, &req("王伟你好吗?"));
        assert_eq!(v.decision, PolicyDecision::Deny);
        assert!(v.reason.contains("6 characters"), "{}", v.reason);
    }

    #[test]
    fn every_rule_is_evaluated_and_all_hits_are_reported() {
        let cfg = PolicyConfig {
            rules: vec![
                rule(
                    "topics",
                    RuleKind::BlockTopic {
                        keywords: strings(&["exploit"]),
                    },
                ),
                rule("short", RuleKind::MaxLength { chars: 10 }),
                rule(
                    "geo",
                    RuleKind::GeoRestriction {
                        sites: vec![],
                        countries: vec![],
                        allowed_destinations: strings(&["cloud-cn"]),
                    },
                ),
            ],
        };
        let v = evaluate(&cfg, &req("write an exploit please"));
        assert_eq!(v.decision, PolicyDecision::Deny);
        let ids: Vec<&str> = v.hits.iter().map(|h| h.rule.as_str()).collect();
        assert_eq!(ids, ["topics", "short", "geo"]);
        assert!(v.reason.starts_with("Denied by 3 rules"), "{}", v.reason);
        assert_eq!(
            v.reason.matches('.').count(),
            1,
            "one sentence: {}",
            v.reason
        );
        let v = evaluate(&PolicyConfig::default(), &req("anything"));
        assert_eq!(v.decision, PolicyDecision::Allow);
        assert!(v.reason.starts_with("Allowed"));
    }

    #[test]
    fn default_rules_keep_identifiers_local_and_block_sensitive_topics() {
        let cfg = PolicyConfig::default_rules();
        cfg.validate().unwrap();
        assert!(cfg
            .rules
            .iter()
            .all(|r| !matches!(r.kind, RuleKind::GeoRestriction { .. })));
        for denied in [
            "IMEI 490154203237518 is lost",
            "pay with 4111 1111 1111 1111",
            "SSN 123-45-6789",
            "IBAN GB82 WEST 1234 5698 7654 32",
            "imsi-001010000000001 cannot attach",
            "guide to weapons manufacturing",
        ] {
            assert_eq!(
                evaluate(&cfg, &req(denied)).decision,
                PolicyDecision::Deny,
                "{denied}"
            );
        }
        // Phones, e-mails and names are desensitised, not forbidden by default.
        for allowed in [
            "Recommend libraries near King's Cross at 10:30",
            "call me on +44 20 7946 0958",
            "I want a 10 Gbps link from Access 1 to Cloud 2 with protection",
        ] {
            let v = evaluate(&cfg, &req(allowed));
            assert_eq!(v.decision, PolicyDecision::Allow, "{allowed}: {}", v.reason);
        }
    }

    #[test]
    fn config_reads_from_json_and_toml() {
        let json = r#"{"rules": [
            {"id": "geo", "type": "GEO_RESTRICTION", "sites": ["edge-hangzhou"],
             "allowedDestinations": ["cloud-cn"]},
            {"id": "local", "description": "no cards", "type": "KEEP_LOCAL", "pii": ["PAYMENT_CARD"]}
        ]}"#;
        let cfg = PolicyConfig::from_json(json).unwrap();
        assert_eq!(cfg.rules.len(), 2);
        assert_eq!(
            cfg.rules[0].kind,
            RuleKind::GeoRestriction {
                sites: strings(&["edge-hangzhou"]),
                countries: vec![],
                allowed_destinations: strings(&["cloud-cn"]),
            }
        );
        assert_eq!(cfg.rules[1].description.as_deref(), Some("no cards"));
        // A bare array works too, and serialising gives the same document shape back.
        let bare = PolicyConfig::from_json(
            r#"[{"id": "t", "type": "BLOCK_TOPIC", "keywords": ["exploit"]}]"#,
        )
        .unwrap();
        let v = serde_json::to_value(&bare).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"rules": [{"id": "t", "type": "BLOCK_TOPIC", "keywords": ["exploit"]}]})
        );
        let toml = r#"
            [[rules]]
            id = "max"
            type = "MAX_LENGTH"
            chars = 2000
        "#;
        let cfg = PolicyConfig::from_toml(toml).unwrap();
        assert_eq!(cfg.rules[0].kind, RuleKind::MaxLength { chars: 2000 });
        // The commented geo example in the defaults is a valid rule once uncommented.
        let (head, example) = DEFAULT_RULES_TOML.split_once("# [[rules]]").unwrap();
        let uncommented = format!("{head}[[rules]]{}", example.replace("\n# ", "\n"));
        let with_geo = PolicyConfig::from_toml(&uncommented).unwrap();
        assert!(with_geo
            .rules
            .iter()
            .any(|r| r.id == "cn-data-stays-in-cn"
                && matches!(r.kind, RuleKind::GeoRestriction { .. })));
        let err =
            PolicyConfig::from_json(r#"{"rules": [{"id": "x", "type": "NOPE"}]}"#).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn validate_names_the_rule_index_and_field() {
        let bad = |kind: RuleKind| PolicyConfig {
            rules: vec![
                rule("ok", RuleKind::MaxLength { chars: 10 }),
                rule("bad", kind),
            ],
        };
        let err = bad(RuleKind::KeepLocal {
            pii: vec![],
            patterns: strings(&["fine", "(unclosed"]),
        })
        .validate()
        .unwrap_err();
        assert!(
            err.starts_with("rules[1].patterns[1]: invalid regular expression"),
            "{err}"
        );
        let err = bad(RuleKind::BlockTopic { keywords: vec![] })
            .validate()
            .unwrap_err();
        assert!(err.starts_with("rules[1].keywords"), "{err}");
        let err = bad(RuleKind::BlockTopic {
            keywords: strings(&["ok", " -- "]),
        })
        .validate()
        .unwrap_err();
        assert!(err.starts_with("rules[1].keywords[1]"), "{err}");
        let err = bad(RuleKind::GeoRestriction {
            sites: vec![],
            countries: vec![],
            allowed_destinations: vec![],
        })
        .validate()
        .unwrap_err();
        assert!(err.starts_with("rules[1].allowedDestinations"), "{err}");
        let err = bad(RuleKind::KeepLocal {
            pii: vec![],
            patterns: vec![],
        })
        .validate()
        .unwrap_err();
        assert!(err.starts_with("rules[1].pii"), "{err}");
        let err = bad(RuleKind::MaxLength { chars: 0 })
            .validate()
            .unwrap_err();
        assert!(err.starts_with("rules[1].chars"), "{err}");
        let mut dup = bad(RuleKind::MaxLength { chars: 1 });
        dup.rules[1].id = "ok".into();
        let err = dup.validate().unwrap_err();
        assert!(err.starts_with("rules[1].id: duplicate"), "{err}");
        // An invalid pattern that slipped past validation fails closed.
        let v = evaluate(
            &one(RuleKind::KeepLocal {
                pii: vec![],
                patterns: strings(&["(unclosed"]),
            }),
            &req("hello"),
        );
        assert_eq!(v.decision, PolicyDecision::Deny);
    }

    #[test]
    fn schemas_use_the_wire_names() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_string(&(PolicyRule::schema(), RuleKind::schema())).unwrap();
        for name in [
            "allowedDestinations",
            "BLOCK_TOPIC",
            "KEEP_LOCAL",
            "keywords",
        ] {
            assert!(schema.contains(name), "{name} missing from {schema}");
        }
        assert!(!schema.contains("allowed_destinations"), "{schema}");
        // `kind` is flattened: its fields sit beside `id`, there is no `kind` property.
        assert!(!schema.contains("\"kind\""), "{schema}");
        let verdict = serde_json::to_value(evaluate(&PolicyConfig::default(), &req("x"))).unwrap();
        assert_eq!(verdict["decision"], "ALLOW");
    }
}
