//! Hostile text for the edge AI function's personal-data detector (`pii::desensitize` and
//! `pii::restore`): any text (control characters, any Unicode, placeholder look-alikes)
//! never panics and restores exactly; findings are ordered, disjoint, on character
//! boundaries and in the restore map; the desensitised text holds none of the values found;
//! and valid phone numbers, e-mail addresses, SUPIs and Luhn-valid card numbers embedded in
//! random text are found whole.

use netgpt_edgeai::pii::{self, Desensitized, PiiKind};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The invariants every result holds, whatever the input.
fn check(s: &str, d: &Desensitized) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        pii::restore(&d.text, &d.restore),
        s,
        "restore(desensitize(s)) != s"
    );
    let mut end = 0;
    for f in &d.findings {
        prop_assert!(
            f.start >= end && f.start < f.end && f.end <= s.len(),
            "{:?}",
            d.findings
        );
        prop_assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
        let value = &s[f.start..f.end];
        prop_assert_eq!(
            d.restore.0.get(&f.placeholder).map(String::as_str),
            Some(value)
        );
        let prefix = format!("[{}_", f.kind.label());
        prop_assert!(f.placeholder.starts_with(&prefix));
        prop_assert!(d.text.contains(&f.placeholder));
        end = f.end;
    }
    // Nothing that was found is left in what goes upstream, except inside a longer word or
    // number (more letters or more digits glued to it: `11114111 1111 1111`, `Annabel`).
    for (p, value) in &d.restore.0 {
        let name = p.starts_with("[PERSON_");
        let joins = |o: Option<char>, i: Option<char>| match (o, i) {
            (Some(o), Some(i)) if !name => {
                (o.is_numeric() && i.is_numeric()) || (o.is_alphabetic() && i.is_alphabetic())
            }
            (Some(o), _) => o.is_alphanumeric(),
            (None, _) => false,
        };
        for (at, _) in d.text.match_indices(value.as_str()) {
            let before = d.text[..at].chars().next_back();
            let after = d.text[at + value.len()..].chars().next();
            prop_assert!(
                joins(before, value.chars().next()) || joins(after, value.chars().next_back()),
                "{:?} left in {:?}",
                value,
                d.text
            );
        }
    }
    // Every placeholder of the map stands for a finding.
    for p in d.restore.0.keys() {
        prop_assert!(d.findings.iter().any(|f| &f.placeholder == p));
    }
    Ok(())
}

/// Text that is hard on the detector: digits with every separator, cues, placeholder look-
/// alikes, e-mail punctuation, any Unicode and controls.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "\\PC{0,12}",
        "(?s).{0,12}",
        "[0-9 +().\\-/]{1,24}",
        "[0-9]{1,20}",
        "[a-z0-9.+_\\-]{0,8}@[a-z0-9.\\-]{0,10}",
        "\\[[A-Z_]{0,8}_[0-9]{1,2}\\]",
        Just("[PHONE_1]".to_string()),
        Just("[PERSON_1]".to_string()),
        Just("imsi-".to_string()),
        Just("nai-".to_string()),
        Just("IMSI ".to_string()),
        Just("IMEI ".to_string()),
        Just("my name is ".to_string()),
        Just("Dr ".to_string()),
        Just("call ".to_string()),
        Just("GB82 WEST 1234 5698 7654 32".to_string()),
        Just("4111 1111 1111 1111".to_string()),
        Just("+44 20 7946 0958".to_string()),
        Just("\u{0}\u{7}\u{1b}[31m".to_string()),
        Just("١٢٣٤٥٦٧٨٩٠".to_string()),
        Just("１２３４５６７８９０".to_string()),
        Just(" ".to_string()),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Any text: no panic, exact restore, sound findings, nothing found left behind.
    #[test]
    fn any_text_is_sound(s in hostile_text()) {
        let d = pii::desensitize(&s);
        check(&s, &d)?;
    }

    /// Arbitrary bytes made text.
    #[test]
    fn any_bytes_are_sound(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&b).into_owned();
        let d = pii::desensitize(&s);
        check(&s, &d)?;
    }

    /// Desensitising twice finds nothing new in placeholders: the second pass keeps every
    /// placeholder of the first and still restores.
    #[test]
    fn desensitising_twice_is_sound(s in hostile_text()) {
        let d1 = pii::desensitize(&s);
        let d2 = pii::desensitize(&d1.text);
        check(&d1.text, &d2)?;
        for p in d1.restore.0.keys() {
            prop_assert!(d2.text.contains(p.as_str()), "{} lost in {:?}", p, d2.text);
        }
    }

    /// `restore` of arbitrary text with an arbitrary map never panics, and text without
    /// anything placeholder-shaped comes back unchanged.
    #[test]
    fn restore_of_any_text(s in "\\PC{0,64}", k in "\\[[A-Z][A-Z_]{0,5}_[0-9]{1,3}\\]", v in "\\PC{0,12}") {
        let mut map = pii::RestoreMap::default();
        map.0.insert(k.clone(), v.clone());
        let out = pii::restore(&s, &map);
        if !s.contains('[') {
            prop_assert_eq!(out, s.clone());
        }
        prop_assert_eq!(pii::restore(&format!("{s}{k}"), &map), format!("{}{}", pii::restore(&s, &map), v));
    }
}

/// Filler: words of letters only (no digits, so no number runs join across them).
fn filler() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            "[a-z]{1,8}",
            "\\p{L}{1,6}",
            Just("the".to_string()),
            Just("please".to_string()),
        ],
        0..8,
    )
}

fn luhn_complete(body: &str) -> String {
    for c in '0'..='9' {
        let s = format!("{body}{c}");
        if pii::luhn(&s) {
            return s;
        }
    }
    unreachable!()
}

/// A valid value of a kind: (kind, text).
fn valid_value() -> impl Strategy<Value = (PiiKind, String)> {
    let uk_phone =
        "[1-9][0-9] [0-9]{4} [0-9]{4}".prop_map(|s| (PiiKind::PhoneNumber, format!("+44 {s}")));
    let fr_phone = "[1-9][0-9]{8}".prop_map(|s| (PiiKind::PhoneNumber, format!("+33{s}")));
    let us_phone = ("[2-9][0-9]{2}", "[2-9][0-9]{2}", "[0-9]{4}")
        .prop_map(|(a, b, c)| (PiiKind::PhoneNumber, format!("({a}) {b}-{c}")));
    let email = (
        "[a-z][a-z0-9]{0,6}",
        prop::option::of("[a-z0-9]{1,5}"),
        "[a-z][a-z0-9]{1,8}",
        "(com|org|net|co\\.uk|fr|cn)",
    )
        .prop_map(|(a, b, d, t)| {
            let local = match b {
                Some(b) => format!("{a}.{b}"),
                None => a,
            };
            (PiiKind::EmailAddress, format!("{local}@{d}.{t}"))
        });
    let imsi = "[0-9]{15}".prop_map(|d| (PiiKind::Supi, format!("imsi-{d}")));
    let card = ("4[0-9]{14}", 0usize..3).prop_map(|(body, sep)| {
        let n = luhn_complete(&body);
        let s = match sep {
            0 => n,
            1 => n
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" "),
            _ => n
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("-"),
        };
        (PiiKind::PaymentCard, s)
    });
    prop_oneof![uk_phone, fr_phone, us_phone, email, imsi, card]
}

proptest! {
    #![proptest_config(cfg(256))]

    /// A valid value in random text is found whole, of its kind, and does not reach the
    /// desensitised text.
    #[test]
    fn valid_values_in_random_text_are_found(
        before in filler(), after in filler(), (kind, value) in valid_value()
    ) {
        let pre = before.join(" ");
        let post = after.join(" ");
        let s = format!("{pre} {value} {post}");
        let start = pre.len() + 1;
        let d = pii::desensitize(&s);
        check(&s, &d)?;
        let hit = d.findings.iter().find(|f| f.start == start && f.end == start + value.len());
        prop_assert!(hit.is_some(), "{:?} not found whole in {:?}: {:?}", value, s, d.findings);
        prop_assert_eq!(hit.unwrap().kind, kind, "{:?} in {:?}", value, s);
        prop_assert!(!d.text.contains(&value));
    }

    /// Several values in one text: all found, each its own placeholder, all restored.
    #[test]
    fn several_values_are_all_found(vals in proptest::collection::vec(valid_value(), 1..5), words in filler()) {
        let mut s = String::new();
        for (i, (_, v)) in vals.iter().enumerate() {
            s.push_str(words.get(i).map(String::as_str).unwrap_or("and"));
            s.push_str(" , ");
            s.push_str(v);
            s.push_str(" ; ");
        }
        let d = pii::desensitize(&s);
        check(&s, &d)?;
        for (kind, v) in &vals {
            prop_assert!(!d.text.contains(v.as_str()), "{:?} ({:?}) left in {:?}", v, kind, d.text);
            prop_assert!(d.restore.0.values().any(|x| x == v), "{:?} not in the map", v);
        }
    }
}

/// Long and pathological inputs finish (and stay sound): 100 kB of digits and separators,
/// of `@`, of placeholder look-alikes.
#[test]
fn long_inputs_are_sound() {
    for unit in [
        "1 ",
        "+4",
        "a@",
        "@b.",
        "[PHONE_1]",
        "4111 1111 1111 1111 ",
        "imsi-",
        "Dr Anna ",
    ] {
        let s = unit.repeat(20_000 / unit.len());
        let d = pii::desensitize(&s);
        check(&s, &d).unwrap();
    }
}

/// Regression (found by `any_text_is_sound`): a card number or IBAN found in one place was
/// left in the text where it was repeated glued to letters (`...1111imsi`) or digits
/// (`0GB82 ...`), and so went upstream.
#[test]
fn a_found_number_repeated_next_to_letters_is_replaced_too() {
    for s in [
        "4111 1111 1111 1111imsi-4111 1111 1111 1111",
        "call +44 20 7946 0958 or x+44 20 7946 0958th",
        "GB82 WEST 1234 5698 7654 32(0GB82 WEST 1234 5698 7654 32",
    ] {
        let d = pii::desensitize(s);
        check(s, &d).unwrap();
    }
    // More digits make another number: not replaced as a repeat.
    let d = pii::desensitize("4111 1111 1111 1111 and 94111 1111 1111 11119");
    assert_eq!(d.findings.len(), 1, "{:?}", d.findings);
}
