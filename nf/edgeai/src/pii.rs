//! Desensitisation: find personal data in a prompt and replace it with typed placeholders
//! (`[PHONE_1]`, `[EMAIL_1]`, `[PERSON_1]`, ...) before anything leaves the edge; the edge keeps
//! the [`RestoreMap`] and puts the originals back into the answer with [`restore`].
//!
//! Detection is precise rather than a blunt digit eater: every numeric kind has a shape and,
//! where the identifier has one, a check (Luhn for cards and IMEIs, mod-97 for IBANs, the
//! ISO 7064 check character of the Chinese resident ID, the SSN and NI number allocation
//! rules). Numbers are first cut into *runs* of digit groups joined by one separator
//! (`+44 20 7946 0958`, `(212) 555-0123`, `4111-1111-1111-1111`), and every contiguous
//! sub-run is tried against each kind, so a card followed by a year is still a card.
//! Digits glued to letters (`42nd`, `N1C 4QP`, `5G`) never start or end a run.
//! Person names are only taken after a cue ("my name is", "Dr", "call", ...) or when they are
//! a common given name, never for place names (`King's Cross`, `West Lake`) or a capital
//! at the start of a sentence.
//!
//! Overlapping candidates resolve to the longest match, then to the most specific kind.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A kind of personal data the edge recognises.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiKind {
    /// A telephone number (E.164 or a national format).
    PhoneNumber,
    /// An e-mail address.
    EmailAddress,
    /// A subscription permanent identifier: `imsi-...`, `nai-...`, or a bare IMSI named as such.
    Supi,
    /// A device identity (15 digits passing the Luhn check, or named as an IMEI).
    Imei,
    /// A payment card number (13 to 19 digits, known issuer prefix, Luhn-valid).
    PaymentCard,
    /// A national identity number (UK NI number, US SSN, Chinese resident ID).
    NationalId,
    /// An international bank account number (passing the mod-97 check).
    Iban,
    /// A person's name, where detectable.
    PersonName,
}

impl PiiKind {
    /// Every kind, in declaration order.
    pub const ALL: [PiiKind; 8] = [
        PiiKind::PhoneNumber,
        PiiKind::EmailAddress,
        PiiKind::Supi,
        PiiKind::Imei,
        PiiKind::PaymentCard,
        PiiKind::NationalId,
        PiiKind::Iban,
        PiiKind::PersonName,
    ];

    /// The label used in placeholders (`[<LABEL>_<n>]`).
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::PhoneNumber => "PHONE",
            PiiKind::EmailAddress => "EMAIL",
            PiiKind::Supi => "SUPI",
            PiiKind::Imei => "IMEI",
            PiiKind::PaymentCard => "CARD",
            PiiKind::NationalId => "NATIONAL_ID",
            PiiKind::Iban => "IBAN",
            PiiKind::PersonName => "PERSON",
        }
    }

    /// The wire name (`PHONE_NUMBER`, ...), as serde writes it; for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::PhoneNumber => "PHONE_NUMBER",
            PiiKind::EmailAddress => "EMAIL_ADDRESS",
            PiiKind::Supi => "SUPI",
            PiiKind::Imei => "IMEI",
            PiiKind::PaymentCard => "PAYMENT_CARD",
            PiiKind::NationalId => "NATIONAL_ID",
            PiiKind::Iban => "IBAN",
            PiiKind::PersonName => "PERSON_NAME",
        }
    }

    /// Ties between candidates of the same span go to the more specific kind.
    fn specificity(self) -> u8 {
        match self {
            PiiKind::Supi => 9,
            PiiKind::Imei => 8,
            PiiKind::NationalId => 7,
            PiiKind::Iban => 6,
            PiiKind::PaymentCard => 6,
            PiiKind::PhoneNumber => 5,
            PiiKind::EmailAddress => 4,
            PiiKind::PersonName => 1,
        }
    }
}

impl std::fmt::Display for PiiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of personal data found in a text. The value itself is not carried (only its
/// position), so a finding can be logged or returned without leaking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PiiFinding {
    /// What was found.
    pub kind: PiiKind,
    /// The placeholder that replaced it, e.g. `[PHONE_1]`.
    pub placeholder: String,
    /// Byte offset of the first byte in the original text.
    pub start: usize,
    /// Byte offset one past the last byte in the original text.
    pub end: usize,
}

/// Placeholder -> original text; what the edge keeps (never sent upstream) to restore answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreMap(pub BTreeMap<String, String>);

/// A desensitised text with what was replaced and how to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Desensitized {
    /// The text with every finding replaced by its placeholder.
    pub text: String,
    /// The findings, in order of position in the original text.
    pub findings: Vec<PiiFinding>,
    /// Placeholder -> original value; keep it at the edge.
    pub restore: RestoreMap,
}

/// Replaces the personal data in `text` with placeholders, numbered per kind in order of
/// first appearance; the same value twice gets the same placeholder. A number whose
/// placeholder already appears literally in `text` is skipped, so [`restore`] can never
/// confuse text the user wrote with a placeholder of ours.
pub fn desensitize(text: &str) -> Desensitized {
    let mut candidates = candidates(text);
    let first = resolve_overlaps(candidates.clone());
    candidates.extend(repeats(text, &first));
    let mut accepted = resolve_overlaps(candidates);
    accepted.sort_by_key(|c| c.start);

    let mut next: HashMap<PiiKind, usize> = HashMap::new();
    let mut assigned: HashMap<(PiiKind, &str), String> = HashMap::new();
    let mut map = BTreeMap::new();
    let mut findings = Vec::with_capacity(accepted.len());
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for c in &accepted {
        let value = &text[c.start..c.end];
        let placeholder = assigned
            .entry((c.kind, value))
            .or_insert_with(|| {
                let n = next.entry(c.kind).or_insert(0);
                loop {
                    *n += 1;
                    let p = format!("[{}_{}]", c.kind.label(), n);
                    if !text.contains(&p) {
                        break p;
                    }
                }
            })
            .clone();
        map.insert(placeholder.clone(), value.to_string());
        out.push_str(&text[pos..c.start]);
        out.push_str(&placeholder);
        pos = c.end;
        findings.push(PiiFinding {
            kind: c.kind,
            placeholder,
            start: c.start,
            end: c.end,
        });
    }
    out.push_str(&text[pos..]);
    Desensitized {
        text: out,
        findings,
        restore: RestoreMap(map),
    }
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[[A-Z][A-Z_]*_[0-9]+\]").expect("placeholder regex"));

/// Puts the originals back where placeholders of `map` appear. One pass over `text`: an
/// original that itself looks like a placeholder is not expanded again, and placeholder-like
/// tokens that are not in `map` are left as they are.
pub fn restore(text: &str, map: &RestoreMap) -> String {
    PLACEHOLDER
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let token = &caps[0];
            map.0
                .get(token)
                .cloned()
                .unwrap_or_else(|| token.to_string())
        })
        .into_owned()
}

/// How many findings there are of each kind (occurrences, not distinct values).
pub fn counts(findings: &[PiiFinding]) -> BTreeMap<PiiKind, usize> {
    let mut m = BTreeMap::new();
    for f in findings {
        *m.entry(f.kind).or_insert(0) += 1;
    }
    m
}

/// A candidate match before overlaps are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    kind: PiiKind,
    start: usize,
    end: usize,
}

fn candidates(text: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    numeric_candidates(text, &mut out);
    regex_candidates(text, &mut out);
    person_candidates(text, &mut out);
    out
}

/// Longest first, then the most specific kind, then the leftmost; greedy non-overlapping.
fn resolve_overlaps(mut cands: Vec<Candidate>) -> Vec<Candidate> {
    cands.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(b.kind.specificity().cmp(&a.kind.specificity()))
            .then(a.start.cmp(&b.start))
    });
    let mut accepted: Vec<Candidate> = Vec::new();
    for c in cands {
        if !accepted.iter().any(|a| overlaps(a, &c)) {
            accepted.push(c);
        }
    }
    accepted
}

fn overlaps(a: &Candidate, b: &Candidate) -> bool {
    a.start < b.end && b.start < a.end
}

/// A value found once is personal data wherever it appears (a name given after "my name is"
/// and repeated later without a cue), so every whole-word occurrence becomes a candidate;
/// they compete with the others in a second resolution (longest wins again).
fn repeats(text: &str, accepted: &[Candidate]) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut values: Vec<(PiiKind, String)> = accepted
        .iter()
        .map(|c| (c.kind, text[c.start..c.end].to_string()))
        .collect();
    values.sort();
    values.dedup();
    for (kind, value) in values {
        for (start, _) in text.match_indices(value.as_str()) {
            let c = Candidate {
                kind,
                start,
                end: start + value.len(),
            };
            // Glued to a letter or digit, a repeated name is part of another word. An
            // identifier is still itself next to the other class (`...1111imsi`,
            // `0GB82 WEST...`): only more digits or more letters make another.
            let joins = |outside: Option<char>, inside: Option<char>| match (outside, inside) {
                (Some(o), Some(i)) if kind != PiiKind::PersonName => {
                    (o.is_numeric() && i.is_numeric()) || (o.is_alphabetic() && i.is_alphabetic())
                }
                (Some(o), _) => o.is_alphanumeric(),
                (None, _) => false,
            };
            let whole_word = !joins(prev_char(text, c.start), value.chars().next())
                && !joins(text[c.end..].chars().next(), value.chars().next_back());
            if whole_word {
                out.push(c);
            }
        }
    }
    out
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

/// Largest char boundary <= `i`.
fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The (lower-cased) text in the `n` bytes before `at`, back to the previous digit at most
/// (the cue of an earlier number is not this one's): where cue words are looked for.
fn context_before(text: &str, at: usize, n: usize) -> String {
    let from = floor_boundary(text, at.saturating_sub(n));
    let window = &text[from..at];
    let window = match window.rfind(|c: char| c.is_ascii_digit()) {
        Some(i) => &window[i + 1..],
        None => window,
    };
    window.to_lowercase()
}

/// Whether `ctx` contains one of `cues` as a whole word (or, for cues in scripts without
/// spaces, anywhere).
fn has_cue(ctx: &str, cues: &[&str]) -> bool {
    cues.iter().any(|cue| {
        ctx.match_indices(cue).any(|(i, _)| {
            if !cue.is_ascii() {
                return true;
            }
            let before = prev_char(ctx, i).is_some_and(|c| c.is_ascii_alphanumeric());
            let after = ctx[i + cue.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            !before && !after
        })
    })
}

const PHONE_CUES: &[&str] = &[
    "phone",
    "telephone",
    "tel",
    "mobile",
    "call",
    "ring",
    "whatsapp",
    "sms",
    "text me",
    "fax",
    "contact",
    "reach me",
    "电话",
    "手机",
    "号码",
];
const IMSI_CUES: &[&str] = &["imsi", "supi", "subscriber id", "subscriber identity"];
const IMEI_CUES: &[&str] = &["imei", "imeisv", "handset id", "device id"];
const CARD_CUES: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "credit",
    "debit",
    "卡号",
];
const SSN_CUES: &[&str] = &["ssn", "social security"];

// ---------------------------------------------------------------------------------------------
// Numbers: runs of digit groups.

/// A maximal ASCII digit sequence.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    /// No ASCII letter or underscore directly before it.
    clean_left: bool,
    /// No ASCII letter or underscore directly after it.
    clean_right: bool,
}

/// Text allowed between two digit groups of one number.
const JOINERS: &[&str] = &[" ", "-", ".", ") ", ")", " (", "(", ")-", " - ", "/"];

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn digit_groups(text: &str) -> Vec<Group> {
    let bytes = text.as_bytes();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(Group {
                start,
                end: i,
                clean_left: start == 0 || !is_word_byte(bytes[start - 1]),
                clean_right: i == bytes.len() || !is_word_byte(bytes[i]),
            });
        } else {
            i += 1;
        }
    }
    groups
}

/// Consecutive digit groups joined by one [`JOINERS`] separator.
fn runs(text: &str) -> Vec<Vec<Group>> {
    let mut runs: Vec<Vec<Group>> = Vec::new();
    for g in digit_groups(text) {
        if let Some(run) = runs.last_mut() {
            let last = run.last().expect("runs are never empty");
            if last.clean_right && g.clean_left && JOINERS.contains(&&text[last.end..g.start]) {
                run.push(g);
                continue;
            }
        }
        runs.push(vec![g]);
    }
    runs
}

/// A contiguous sub-run: its text span (with a leading `+` or `(`) and its digits.
struct Span<'a> {
    start: usize,
    end: usize,
    shape: &'a str,
    digits: String,
    groups: Vec<usize>,
    plus: bool,
}

fn numeric_candidates(text: &str, out: &mut Vec<Candidate>) {
    let bytes = text.as_bytes();
    for run in runs(text) {
        for i in 0..run.len() {
            if !run[i].clean_left {
                continue;
            }
            // Numbers longer than 8 groups are not identifiers we know.
            for j in i..run.len().min(i + 8) {
                if !run[j].clean_right {
                    continue;
                }
                let mut start = run[i].start;
                let mut plus = false;
                if start > 0 && bytes[start - 1] == b'(' {
                    start -= 1;
                }
                if start > 0 && bytes[start - 1] == b'+' {
                    start -= 1;
                    plus = true;
                }
                let end = run[j].end;
                let digits: String = run[i..=j].iter().map(|g| &text[g.start..g.end]).collect();
                let span = Span {
                    start,
                    end,
                    shape: &text[start..end],
                    digits,
                    groups: run[i..=j].iter().map(|g| g.end - g.start).collect(),
                    plus,
                };
                // A `(` that opens before the span but closes nowhere in it is not ours.
                let shape_ok = !span.shape.starts_with('(') || span.shape.contains(')');
                if let Some(kind) = classify_number(text, &span).filter(|_| shape_ok) {
                    out.push(Candidate {
                        kind,
                        start: span.start,
                        end: span.end,
                    });
                }
            }
        }
    }
}

static NANP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\+?1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[0-9]{3}[ .\-][0-9]{4}$",
    )
    .expect("NANP regex")
});
static FR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^0[1-9](?:[ .\-]?[0-9]{2}){4}$").expect("FR regex"));
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4})$",
    )
    .expect("date regex")
});
static SSN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{3}([- ])[0-9]{2}([- ])[0-9]{4}$").expect("SSN regex"));
static IMEI_GROUPED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{2}([- ])[0-9]{6}([- ])[0-9]{6}([- ])[0-9]$").expect("IMEI regex")
});

fn classify_number(text: &str, s: &Span<'_>) -> Option<PiiKind> {
    let n = s.digits.len();
    let single = s.groups.len() == 1;
    let ctx = context_before(text, s.start, 32);
    let plain = !s.plus && !s.shape.starts_with('(');

    // Subscription and device identities are named by their context or by a check digit.
    if plain && single && (14..=15).contains(&n) && has_cue(&ctx, IMSI_CUES) {
        return Some(PiiKind::Supi);
    }
    if plain && single && n == 15 {
        if has_cue(&ctx, IMEI_CUES) {
            return Some(PiiKind::Imei);
        }
        if luhn(&s.digits) {
            let amex = s.digits.starts_with("34") || s.digits.starts_with("37");
            return Some(if amex || has_cue(&ctx, CARD_CUES) {
                PiiKind::PaymentCard
            } else {
                PiiKind::Imei
            });
        }
    }
    if plain && single && n == 16 && has_cue(&ctx, &["imeisv"]) {
        return Some(PiiKind::Imei);
    }
    if plain && IMEI_GROUPED.is_match(s.shape) && (luhn(&s.digits) || has_cue(&ctx, IMEI_CUES)) {
        return Some(PiiKind::Imei);
    }
    if plain && single && n == 18 && cn_resident_id(&s.digits) {
        return Some(PiiKind::NationalId);
    }
    if plain {
        if let Some(caps) = SSN.captures(s.shape) {
            let dashed = &caps[1] == "-" && &caps[2] == "-";
            if (dashed || has_cue(&ctx, SSN_CUES)) && ssn_valid(&s.digits) {
                return Some(PiiKind::NationalId);
            }
        }
    }
    if plain && (13..=19).contains(&n) && !(single && n == 15) && card_shape(s) {
        return Some(PiiKind::PaymentCard);
    }
    if is_phone(s, &ctx) {
        return Some(PiiKind::PhoneNumber);
    }
    None
}

fn is_phone(s: &Span<'_>, ctx: &str) -> bool {
    let n = s.digits.len();
    if s.groups.len() > 6 || DATE.is_match(s.shape) {
        return false;
    }
    // Dotted quads are addresses or versions, not phone numbers.
    if s.groups.len() == 4 && s.groups.iter().all(|&g| g <= 3) && !s.shape.contains([' ', '-']) {
        return false;
    }
    if s.plus {
        // E.164: country code and subscriber number, 8 to 15 digits, no leading zero.
        return (8..=15).contains(&n) && !s.digits.starts_with('0');
    }
    if NANP.is_match(s.shape) || FR.is_match(s.shape) {
        return true;
    }
    // Chinese mobile numbers: 11 digits starting 13..19, as one block or 3-4-4.
    if n == 11 && s.groups.len() <= 3 && s.digits.starts_with('1') {
        let second = s.digits.as_bytes()[1];
        if (b'3'..=b'9').contains(&second) {
            return true;
        }
    }
    // National numbers with a trunk prefix: 0 then a non-zero digit, 10 or 11 digits
    // (UK 020 7946 0958, 07700 900123; German 030 1234567; ...).
    if s.digits.starts_with('0') && !s.digits.starts_with("00") && (10..=11).contains(&n) {
        return s.groups.len() <= 4;
    }
    // Anything else only with a cue such as "call" or "phone" right before it.
    (7..=15).contains(&n) && has_cue(ctx, PHONE_CUES)
}

fn card_shape(s: &Span<'_>) -> bool {
    let g = &s.groups;
    let grouped_ok = g.len() == 1
        || (g.len() >= 4 && g[..g.len() - 1].iter().all(|&x| x == 4) && *g.last().unwrap() <= 4)
        || (g.len() == 5 && g[..4].iter().all(|&x| x == 4) && g[4] == 3)
        || g == &[4, 6, 5]
        || g == &[4, 6, 4];
    // One kind of separator throughout.
    let seps: Vec<char> = s.shape.chars().filter(|c| !c.is_ascii_digit()).collect();
    let one_sep =
        seps.windows(2).all(|w| w[0] == w[1]) && seps.iter().all(|c| *c == ' ' || *c == '-');
    grouped_ok && one_sep && card_issuer(&s.digits) && luhn(&s.digits)
}

/// Issuer identification numbers of the major card networks (Visa, Mastercard, Amex,
/// Discover, UnionPay, JCB, Diners, Maestro): keeps runs of years or serials out.
fn card_issuer(d: &str) -> bool {
    let p = |k: usize| d[..k].parse::<u32>().unwrap_or(0);
    d.starts_with('4')
        || (51..=55).contains(&p(2))
        || (2221..=2720).contains(&p(4))
        || matches!(p(2), 34 | 37 | 36 | 38 | 39 | 62 | 65 | 50)
        || (56..=69).contains(&p(2))
        || (300..=305).contains(&p(3))
        || (3528..=3589).contains(&p(4))
        || d.starts_with("6011")
}

/// The Luhn (mod 10) check of card numbers and IMEIs.
pub fn luhn(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// US SSN allocation rules: area not 000, 666 or 9xx; group not 00; serial not 0000.
fn ssn_valid(d: &str) -> bool {
    let area = &d[..3];
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && &d[3..5] != "00"
        && &d[5..] != "0000"
}

/// Chinese resident identity number (GB 11643): 6-digit region, birth date YYYYMMDD,
/// 3-digit sequence, ISO 7064 MOD 11-2 check character (`0`-`9` or `X`).
fn cn_resident_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || !(b'1'..=b'8').contains(&b[0]) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == check
}

// ---------------------------------------------------------------------------------------------
// Patterns with letters: e-mail, SUPI, IBAN, NI number, Chinese ID ending in X.

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)[a-z0-9](?:[a-z0-9._%+\-]*[a-z0-9_%+\-])?@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*\.[a-z]{2,24}(?-u:\b)",
    )
    .expect("email regex")
});
static IMSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)imsi-[0-9]{5,15}(?-u:\b)").expect("imsi regex"));
static NAI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)nai-[a-z0-9._%+\-]*[a-z0-9](?:@[a-z0-9](?:[a-z0-9.\-]*[a-z0-9])?)?")
        .expect("nai regex")
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}").expect("iban regex")
});
static UK_NINO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u:\b)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?-u:\b)",
    )
    .expect("NI regex")
});
static CN_ID_X: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)[0-9]{17}[Xx](?-u:\b)").expect("CN ID regex"));

fn regex_candidates(text: &str, out: &mut Vec<Candidate>) {
    let mut push = |kind, m: regex::Match<'_>| {
        out.push(Candidate {
            kind,
            start: m.start(),
            end: m.end(),
        })
    };
    for m in EMAIL.find_iter(text) {
        push(PiiKind::EmailAddress, m);
    }
    for m in IMSI.find_iter(text).chain(NAI.find_iter(text)) {
        push(PiiKind::Supi, m);
    }
    for m in UK_NINO.find_iter(text) {
        let prefix = &m.as_str()[..2];
        if !matches!(prefix, "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ") {
            push(PiiKind::NationalId, m);
        }
    }
    for m in CN_ID_X.find_iter(text) {
        if cn_resident_id(m.as_str()) {
            push(PiiKind::NationalId, m);
        }
    }
    for m in IBAN.find_iter(text) {
        if let Some(end) = iban_end(text, m.start(), m.end()) {
            out.push(Candidate {
                kind: PiiKind::Iban,
                start: m.start(),
                end,
            });
        }
    }
}

/// The regex is greedy (an IBAN may be followed by an upper-case word), so try every end
/// that falls on a word end, longest first, and keep the first that passes mod-97.
fn iban_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    (start + 15..=end).rev().find(|&e| {
        let at_word_end = e == bytes.len() || !bytes[e].is_ascii_alphanumeric();
        at_word_end && bytes[e - 1] != b' ' && iban_valid(&text[start..e])
    })
}

/// ISO 13616: length per country where known (15..34 otherwise), then mod 97 == 1.
fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| *c != ' ').collect();
    let len = compact.len();
    let expected = match &compact[..2] {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "NL" => 18,
        "AT" | "LU" => 20,
        "CH" => 21,
        "DE" | "GB" | "IE" => 22,
        "ES" | "SE" => 24,
        "PT" => 25,
        "FR" | "IT" | "MC" => 27,
        "PL" => 28,
        _ => 0,
    };
    if (expected != 0 && len != expected) || !(15..=34).contains(&len) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

// ---------------------------------------------------------------------------------------------
// Person names.

/// One to three capitalised words (`O'Brien`, `Smith-Jones`), captured as `name`.
const NAME: &str = r"(?P<name>\p{Lu}(?:\p{Ll}+|['’]\p{Lu}\p{Ll}+)(?:[-'’]\p{Lu}?\p{Ll}+)*(?:[ ]\p{Lu}(?:\p{Ll}+|['’]\p{Lu}\p{Ll}+)(?:[-'’]\p{Lu}?\p{Ll}+)*){0,2})";

/// Cues after which one capitalised word is enough (`my name is Zhang`, `Dr Patel`).
static STRONG_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:(?i:\bmy name is|\bmy name's|\bname\s*[:=])|\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?)\s+{NAME}"
    ))
    .expect("strong cue regex")
});
/// Cues after which the words must be a known given name or at least two words.
static WEAK_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i:\b(?:i am|i'm|i’m|call me|call|this is|contact|ask for|named|called|signed|regards,?|thanks,?|cheers,?))\s+{NAME}"
    ))
    .expect("weak cue regex")
});
static GIVEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\b(?:{})\b(?:[ ]\p{{Lu}}\p{{Ll}}+(?:[-'’]\p{{Lu}}?\p{{Ll}}+)*)?",
        GIVEN_NAMES.join("|")
    ))
    .expect("given names regex")
});
static CN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:我叫|我的名字是)\s*(?P<name>\p{Han}{2,3})").expect("CN name regex")
});

/// Common given names that are not also ordinary words or places (no `Will`, `May`,
/// `Victoria`, `Jordan`, `Charlotte`...).
const GIVEN_NAMES: &[&str] = &[
    "Aaron",
    "Adam",
    "Ahmed",
    "Alan",
    "Alice",
    "Amelia",
    "Amy",
    "Ana",
    "Andrew",
    "Anna",
    "Anthony",
    "Benjamin",
    "Bob",
    "Brian",
    "Carlos",
    "Catherine",
    "Chloe",
    "Christopher",
    "Claire",
    "Daniel",
    "David",
    "Elena",
    "Emily",
    "Emma",
    "Eric",
    "Ethan",
    "Fatima",
    "Hannah",
    "Hans",
    "Harry",
    "Helen",
    "Hiroshi",
    "Isabella",
    "Ivan",
    "James",
    "Jane",
    "Jennifer",
    "Jessica",
    "John",
    "Jonathan",
    "Joseph",
    "Juan",
    "Karen",
    "Kevin",
    "Laura",
    "Linda",
    "Lucy",
    "Lukas",
    "Maria",
    "Mei",
    "Michael",
    "Mohammed",
    "Muhammad",
    "Nicole",
    "Oliver",
    "Olivia",
    "Olga",
    "Patrick",
    "Paul",
    "Pedro",
    "Peter",
    "Pierre",
    "Priya",
    "Rachel",
    "Rebecca",
    "Richard",
    "Robert",
    "Sarah",
    "Sofia",
    "Sophie",
    "Stephen",
    "Steven",
    "Susan",
    "Thomas",
    "Wei",
    "Xiaoming",
    "Yuki",
    "Zoe",
];

/// Capitalised words that are not names (days, months, nationalities, pronouns, ...):
/// a name is cut before the first of them.
const NOT_NAMES: &[&str] = &[
    "The",
    "A",
    "An",
    "This",
    "That",
    "These",
    "Those",
    "It",
    "We",
    "You",
    "He",
    "She",
    "They",
    "I",
    "Hello",
    "Hi",
    "Dear",
    "Thanks",
    "Please",
    "Sorry",
    "Yes",
    "No",
    "Ok",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "English",
    "British",
    "Chinese",
    "French",
    "German",
    "American",
    "Spanish",
    "Italian",
    "Japanese",
    "Indian",
    "Korean",
    "European",
    "London",
    "Paris",
    "Beijing",
    "Shanghai",
    "Hangzhou",
    "Shenzhen",
    "Tokyo",
    "China",
    "England",
    "France",
    "Germany",
    "America",
    "Europe",
    "Asia",
    "Africa",
    "New",
    "York",
    "West",
    "East",
    "North",
    "South",
    "Central",
    "Upper",
    "Lower",
    "Old",
    "Great",
    "Royal",
    "National",
    "International",
    "Saint",
    "Netgpt",
    "Today",
    "Tomorrow",
    "Tonight",
    "Here",
    "There",
    "What",
    "Where",
    "When",
    "Why",
    "How",
    "Which",
    "Who",
    "Can",
    "Could",
    "Would",
    "Should",
    "Is",
    "Are",
    "Do",
    "Does",
];

/// Words that make a capitalised phrase a place or an institution, not a person
/// (`King's Cross`, `West Lake`, `British Library`).
const PLACE_WORDS: &[&str] = &[
    "Street",
    "St",
    "Road",
    "Rd",
    "Avenue",
    "Ave",
    "Lane",
    "Cross",
    "Lake",
    "Library",
    "Station",
    "Park",
    "Square",
    "Bridge",
    "Hill",
    "Hills",
    "Museum",
    "Tower",
    "Airport",
    "Hospital",
    "University",
    "College",
    "School",
    "Centre",
    "Center",
    "Hall",
    "Gate",
    "Market",
    "Palace",
    "Garden",
    "Gardens",
    "Church",
    "Cathedral",
    "Temple",
    "Castle",
    "Hotel",
    "Restaurant",
    "Cafe",
    "Bar",
    "Bank",
    "Mall",
    "Plaza",
    "Court",
    "Place",
    "Terrace",
    "Way",
    "Drive",
    "River",
    "Mountain",
    "Island",
    "Beach",
    "Bay",
    "Valley",
    "Harbour",
    "Harbor",
    "Port",
    "City",
    "Town",
    "Village",
    "District",
    "County",
    "Theatre",
    "Theater",
    "Stadium",
    "Arena",
    "Gallery",
    "Zoo",
    "Pagoda",
    "Abbey",
    "Quay",
    "Wharf",
    "Road's",
    "Building",
    "House",
    "Tube",
    "Line",
];

fn person_candidates(text: &str, out: &mut Vec<Candidate>) {
    let mut push_name = |start: usize, name: &str, need_known: bool| {
        if let Some((offset, len)) = accept_name(name, need_known) {
            out.push(Candidate {
                kind: PiiKind::PersonName,
                start: start + offset,
                end: start + offset + len,
            });
        }
    };
    for caps in STRONG_CUE.captures_iter(text) {
        let m = caps.name("name").expect("name group");
        push_name(m.start(), m.as_str(), false);
    }
    for caps in WEAK_CUE.captures_iter(text) {
        let m = caps.name("name").expect("name group");
        push_name(m.start(), m.as_str(), true);
    }
    for m in GIVEN.find_iter(text) {
        push_name(m.start(), m.as_str(), false);
    }
    for caps in CN_NAME.captures_iter(text) {
        let m = caps.name("name").expect("name group");
        out.push(Candidate {
            kind: PiiKind::PersonName,
            start: m.start(),
            end: m.end(),
        });
    }
}

/// Titles kept out of the name they precede (`I'm Dr Emily Watson` -> `Emily Watson`).
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Miss", "Dr", "Prof", "Sir", "Dame"];

/// Byte offset and length of the name in `phrase`, if it is one: no place words or
/// possessives anywhere in it; leading titles skipped; cut before the first word that is not
/// a name; after a weak cue, a known given name or at least two words.
fn accept_name(phrase: &str, need_known: bool) -> Option<(usize, usize)> {
    let all: Vec<&str> = phrase.split(' ').collect();
    let titles = all.iter().take_while(|w| TITLES.contains(w)).count();
    let offset = all[..titles].iter().map(|w| w.len() + 1).sum::<usize>();
    let words = &all[titles..];
    if words
        .iter()
        .any(|w| PLACE_WORDS.contains(w) || w.ends_with("'s") || w.ends_with("’s"))
    {
        return None;
    }
    let kept = words.iter().take_while(|w| !NOT_NAMES.contains(w)).count();
    if kept == 0 {
        return None;
    }
    if need_known && kept < 2 && !GIVEN_NAMES.contains(&words[0]) {
        return None;
    }
    let len = words[..kept].iter().map(|w| w.len()).sum::<usize>() + kept - 1;
    Some((offset, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        desensitize(text)
            .findings
            .iter()
            .map(|f| (f.kind, text[f.start..f.end].to_string()))
            .collect()
    }

    /// Asserts that `text` yields exactly one finding, of `kind`, covering `value`.
    fn assert_one(text: &str, kind: PiiKind, value: &str) {
        assert_eq!(kinds(text), vec![(kind, value.to_string())], "in {text:?}");
    }

    fn assert_none(text: &str) {
        assert_eq!(kinds(text), vec![], "in {text:?}");
    }

    /// Round trip, and no found value left in the desensitised text.
    fn assert_round_trip(text: &str) {
        let d = desensitize(text);
        assert_eq!(restore(&d.text, &d.restore), text, "round trip of {text:?}");
        for f in &d.findings {
            let value = &text[f.start..f.end];
            assert!(
                !d.text.contains(value),
                "{value:?} ({}) left in {:?}",
                f.kind,
                d.text
            );
        }
    }

    #[test]
    fn phone_numbers_in_international_and_national_formats_are_found() {
        for (text, value) in [
            ("Call me on +44 20 7946 0958 tomorrow", "+44 20 7946 0958"),
            ("my number is (212) 555-0123.", "(212) 555-0123"),
            ("office: 212-555-0123", "212-555-0123"),
            ("手机 138 0013 8000 谢谢", "138 0013 8000"),
            ("我的电话13800138000", "13800138000"),
            ("appelez le 06 12 34 56 78 svp", "06 12 34 56 78"),
            ("ring 020 7946 0958", "020 7946 0958"),
            ("mobile 07700 900123", "07700 900123"),
            ("+86 138 0013 8000", "+86 138 0013 8000"),
            ("+1 (212) 555-0123", "+1 (212) 555-0123"),
            ("phone 5550199 please", "5550199"),
        ] {
            assert_one(text, PiiKind::PhoneNumber, value);
            assert_round_trip(text);
        }
    }

    #[test]
    fn emails_are_found_whole() {
        assert_one(
            "write to jane.doe+netgpt@mail.example.co.uk, thanks",
            PiiKind::EmailAddress,
            "jane.doe+netgpt@mail.example.co.uk",
        );
        assert_one(
            "邮箱zhang_wei@example.cn。",
            PiiKind::EmailAddress,
            "zhang_wei@example.cn",
        );
        assert_none("the @ sign and example.com alone");
    }

    #[test]
    fn supi_forms_are_found_and_bare_imsi_only_with_context() {
        assert_one(
            "UE imsi-001010000000001 is slow",
            PiiKind::Supi,
            "imsi-001010000000001",
        );
        assert_one(
            "subscriber nai-alice@operator.example roams",
            PiiKind::Supi,
            "nai-alice@operator.example",
        );
        assert_one(
            "my IMSI is 001010000000001",
            PiiKind::Supi,
            "001010000000001",
        );
        // 15 digits failing Luhn, no context: not flagged (not a blunt digit eater).
        assert!(!luhn("001010000000001"));
        assert_none("batch 001010000000001 shipped");
    }

    #[test]
    fn imei_is_found_by_luhn_or_by_context() {
        assert!(luhn("490154203237518"));
        assert_one("device 490154203237518", PiiKind::Imei, "490154203237518");
        assert_one(
            "IMEI 35-209900-176148-1",
            PiiKind::Imei,
            "35-209900-176148-1",
        );
        // Grouped 2-6-6-1 failing Luhn counts only when named.
        assert_one(
            "imei: 35-209900-176148-2",
            PiiKind::Imei,
            "35-209900-176148-2",
        );
        assert_none("serial 35-209900-176148-2");
    }

    #[test]
    fn payment_cards_need_length_issuer_and_luhn() {
        for (text, value) in [
            ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
            ("5555-5555-5555-4444", "5555-5555-5555-4444"),
            ("pay with 4111111111111111", "4111111111111111"),
            ("amex 378282246310005", "378282246310005"),
            ("amex 3782 822463 10005", "3782 822463 10005"),
            ("6011 1111 1111 1117 in 2024", "6011 1111 1111 1117"),
        ] {
            assert_one(text, PiiKind::PaymentCard, value);
            assert_round_trip(text);
        }
        // Luhn failure, unknown issuer, mixed separators.
        assert_none("card 4111 1111 1111 1112");
        assert!(luhn("1234567812345670"));
        assert_none("ref 1234 5678 1234 5670");
        assert_none("4111-1111 1111-1111");
    }

    #[test]
    fn ibans_pass_mod_97_even_before_an_upper_case_word() {
        assert_one(
            "IBAN GB82 WEST 1234 5698 7654 32 please",
            PiiKind::Iban,
            "GB82 WEST 1234 5698 7654 32",
        );
        assert_one(
            "to DE89370400440532013000 NOW",
            PiiKind::Iban,
            "DE89370400440532013000",
        );
        assert_one(
            "GB82WEST12345698765432 AND MORE",
            PiiKind::Iban,
            "GB82WEST12345698765432",
        );
        assert_none("to GB82 WEST 1234 5698 7654 33 please");
        assert_none("model AB12 CDEF GHIJ KLMN");
    }

    #[test]
    fn national_ids_follow_their_rules() {
        assert_one("NI number AB123456C", PiiKind::NationalId, "AB123456C");
        assert_one("NI: AB 12 34 56 C", PiiKind::NationalId, "AB 12 34 56 C");
        assert_none("code GB123456A"); // GB is never issued
        assert_none("code DA123456A"); // D is never a first letter
        assert_one("SSN 123-45-6789", PiiKind::NationalId, "123-45-6789");
        assert_none("part 666-45-6789");
        assert_none("part 123-00-6789");
        assert_one(
            "身份证11010519491231002X。",
            PiiKind::NationalId,
            "11010519491231002X",
        );
        assert_one(
            "id 310115198701011116 ok",
            PiiKind::NationalId,
            "310115198701011116",
        );
        assert_none("id 11010519491231002Y ok");
        assert_none("id 310115198701011117 ok"); // wrong check character
    }

    #[test]
    fn person_names_after_cues_and_given_names() {
        for (text, value) in [
            ("Hi, my name is Zhang Wei and I need help", "Zhang Wei"),
            ("I'm Alice, where is the nearest cafe?", "Alice"),
            ("I am Priya Sharma", "Priya Sharma"),
            ("please call Bob", "Bob"),
            ("Dr. Okonkwo will join", "Okonkwo"),
            ("ask Mrs O'Brien-Smith", "O'Brien-Smith"),
            ("this is Maria Garcia speaking", "Maria Garcia"),
            ("contact Li Na at the desk", "Li Na"),
            ("我叫王伟，谢谢", "王伟"),
            ("Thomas wants a library", "Thomas"),
            ("I'm Dr Emily Watson, a GP", "Emily Watson"),
            ("I am Mr Smith", "Smith"),
        ] {
            assert_one(text, PiiKind::PersonName, value);
            assert_round_trip(text);
        }
    }

    #[test]
    fn places_and_sentence_initial_capitals_are_not_names() {
        for text in [
            "I'm at King's Cross, any cafes?",
            "I am near West Lake in Hangzhou",
            "this is British Library, right?",
            "call King's Cross station",
            "Recommend restaurants near Oxford Street",
            "Where can I eat? Restaurants near the British Library please.",
            "I am Hungry",
            "contact support",
            "Thomas Street is closed", // a given name followed by a place word
            "Today I am in London",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn ordinary_numbers_are_left_alone() {
        for text in [
            "In 2024 the match starts at 10:30",
            "tickets cost £20 or $15.50",
            "I want a 10 Gbps link from Access 1 to Cloud 2 with protection",
            "meet at 42nd Street",
            "postcode N1C 4QP",
            "UE in cell 000001001 of TAC 000001, PLMN 001-01",
            "latency under 5 ms, 3 hops, 99.999% availability",
            "on 2024-05-01 and 01/05/2024",
            "server 10.0.0.1 port 8080",
            "room 101, floor 3, 25 people",
            "between 1990 and 2024 there were 1,234,567 users",
            "5G NR band n78 at 3500 MHz",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn network_and_everyday_prompts_pass_untouched() {
        for text in [
            "Set up slice eMBB with 200 Mbps between DC-3 and Edge 7 by 2025-01-31 18:00",
            "In interval 1, movie 'Iron Man 2' appear:",
            "Recommend a restaurant near Tower Bridge for 4 people at 19:30 on 12 March",
            "My flight BA 0283 leaves at 14:05 from Terminal 5",
            "Order #123456789 was delivered to 221B Baker Street, London NW1 6XE",
            "The Apollo 11 mission landed in 1969; 384400 km away",
            "UE handed over from cell 000001001 to 000002001 in PLMN 46000",
            "Version 1.2.3.4 of the firmware, build 20240501123456",
            "ISBN 978-3-16-148410-0 and ISBN 9783161484100",
            "Visit https://example.com/path?id=12345678901 for details",
            "Timestamp 1717171717 and 1717171717123",
            "Call Mom at home",
            "This is Sparta",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn counts_fit_in_an_sbi_body_schema() {
        use utoipa::PartialSchema;
        /// A body as the API would carry it.
        #[derive(Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Body {
            /// Findings by kind.
            counts: BTreeMap<PiiKind, usize>,
            /// The findings.
            findings: Vec<PiiFinding>,
        }
        let schema = serde_json::to_string(&Body::schema()).unwrap();
        assert!(schema.contains("additionalProperties"), "{schema}");
        let kinds = serde_json::to_string(&PiiKind::schema()).unwrap();
        assert!(
            kinds.contains("NATIONAL_ID") && kinds.contains("PERSON_NAME"),
            "{kinds}"
        );
    }

    #[test]
    fn same_value_gets_same_placeholder_and_numbers_are_per_kind() {
        let text = "my name is Zhang Wei; Zhang Wei's phone +44 20 7946 0958, \
                    also +44 20 7946 0958; mail zw@example.com or +86 138 0013 8000";
        let d = desensitize(text);
        assert_eq!(
            d.text,
            "my name is [PERSON_1]; [PERSON_1]'s phone [PHONE_1], \
             also [PHONE_1]; mail [EMAIL_1] or [PHONE_2]"
        );
        assert_eq!(d.restore.0.len(), 4);
        let c = counts(&d.findings);
        assert_eq!(c[&PiiKind::PhoneNumber], 3);
        assert_eq!(c[&PiiKind::PersonName], 2);
        assert_eq!(c[&PiiKind::EmailAddress], 1);
        assert_eq!(c.get(&PiiKind::Iban), None);
        assert_round_trip(text);
    }

    #[test]
    fn placeholder_like_text_from_the_user_does_not_confuse_restore() {
        let text = "template [PHONE_1] and [PERSON_9]; my phone is +44 20 7946 0958";
        let d = desensitize(text);
        assert_eq!(d.findings.len(), 1);
        assert_eq!(d.findings[0].placeholder, "[PHONE_2]");
        assert_eq!(
            d.text,
            "template [PHONE_1] and [PERSON_9]; my phone is [PHONE_2]"
        );
        assert_eq!(restore(&d.text, &d.restore), text);
        // An answer quoting unknown placeholders keeps them.
        assert_eq!(
            restore("call [PHONE_2], not [PHONE_7]", &d.restore),
            "call +44 20 7946 0958, not [PHONE_7]"
        );
    }

    #[test]
    fn restore_is_one_pass() {
        let mut m = BTreeMap::new();
        m.insert("[PERSON_1]".to_string(), "[EMAIL_1]".to_string());
        m.insert("[EMAIL_1]".to_string(), "x@example.com".to_string());
        assert_eq!(
            restore("[PERSON_1] / [EMAIL_1]", &RestoreMap(m)),
            "[EMAIL_1] / x@example.com"
        );
    }

    #[test]
    fn overlaps_resolve_to_the_longest_most_specific_match() {
        // The e-mail regex would also take `nai-...@...`; the SUPI is as long and more specific.
        assert_one("nai-bob@ims.example", PiiKind::Supi, "nai-bob@ims.example");
        // `imsi-` plus digits beats the bare digits.
        assert_one(
            "imsi-001010000000001",
            PiiKind::Supi,
            "imsi-001010000000001",
        );
        // A card followed by a year: the card is found, the year stays.
        let d = desensitize("4111 1111 1111 1111 2024");
        assert_eq!(d.text, "[CARD_1] 2024");
    }

    #[test]
    fn findings_are_byte_ranges_on_char_boundaries_in_non_ascii_text() {
        let text =
            "José 说：我叫王伟，电话+86 138 0013 8000，邮箱 wei@例子.com 或 wei@example.com ✓";
        let d = desensitize(text);
        for f in &d.findings {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let found = kinds(text);
        assert!(
            found.contains(&(PiiKind::PersonName, "王伟".into())),
            "{found:?}"
        );
        assert!(found.contains(&(PiiKind::PhoneNumber, "+86 138 0013 8000".into())));
        assert!(found.contains(&(PiiKind::EmailAddress, "wei@example.com".into())));
        assert_round_trip(text);
    }

    #[test]
    fn a_mixed_prompt_round_trips_and_leaks_nothing() {
        let text = "Hello, I'm Alice Smith (alice.smith@example.org, +44 7700 900123). \
                    My IMSI is 001010000000001, IMEI 490154203237518, card 4111 1111 1111 1111, \
                    IBAN GB82 WEST 1234 5698 7654 32, NI AB123456C. Alice needs a cafe near \
                    King's Cross at 10:30 for £20 with 10 Gbps Wi-Fi in 2024.";
        let d = desensitize(text);
        let c = counts(&d.findings);
        assert_eq!(c[&PiiKind::PersonName], 2, "{:?}", d.text);
        for k in [
            PiiKind::EmailAddress,
            PiiKind::PhoneNumber,
            PiiKind::Supi,
            PiiKind::Imei,
            PiiKind::PaymentCard,
            PiiKind::Iban,
            PiiKind::NationalId,
        ] {
            assert_eq!(c[&k], 1, "{k} in {:?}", d.text);
        }
        for kept in ["King's Cross", "10:30", "£20", "10 Gbps", "2024"] {
            assert!(d.text.contains(kept), "{kept} lost from {:?}", d.text);
        }
        assert_round_trip(text);
    }

    #[test]
    fn serialises_with_3gpp_style_names() {
        let d = desensitize("call +44 20 7946 0958");
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["findings"][0]["kind"], "PHONE_NUMBER");
        assert_eq!(v["restore"]["[PHONE_1]"], "+44 20 7946 0958");
        let c = serde_json::to_value(counts(&d.findings)).unwrap();
        assert_eq!(c["PHONE_NUMBER"], 1);
    }

    #[test]
    fn round_trips_hold_on_generated_mixtures() {
        // A small deterministic generator in place of a property-test framework.
        let parts = [
            "+44 20 7946 0958",
            "Zhang Wei",
            "my name is",
            "4111 1111 1111 1111",
            "2024",
            "10:30",
            "£20",
            "王伟",
            "[PHONE_1]",
            "x@example.com",
            "King's Cross",
            "imsi-001010000000001",
            "，",
            " ",
            "-",
            "(",
            ")",
            "Alice",
            "AB123456C",
            "GB82 WEST 1234 5698 7654 32",
            "é",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..500 {
            let mut text = String::new();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(parts[(state % parts.len() as u64) as usize]);
                if state & 0x100 != 0 {
                    text.push(' ');
                }
            }
            let d = desensitize(&text);
            assert_eq!(restore(&d.text, &d.restore), text, "round trip of {text:?}");
        }
    }
}
