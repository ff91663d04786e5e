//! Hostile input for the testbed configuration parser
//! (`TestbedConfig::from_toml_str` and its `NETGPT__...` environment overrides):
//! garbage and deeply nested TOML never panic, a hostile value in one key of the
//! embedded default either loads or is a `ConfigError::Key` naming a key, random
//! overrides never panic, and a valid configuration round-trips through TOML.

use netgpt_sbi::config::{ConfigError, TestbedConfig, DEFAULT_TESTBED_TOML};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// The top-level sections and keys of the configuration (what a `Key` error may start with).
const TOP_LEVEL: &[&str] = &[
    "(root)", "data_dir", "plmn", "nrf", "oauth2", "limits", "database", "nf", "cloudai", "edgeai",
    "site", "cell", "ue", "node", "link", "ue_link", "tls_ca",
];

/// Checks the shape of an error: `Syntax` for bad TOML, otherwise `Key` with a non-empty key
/// and a one-line reason. Returns the key (if any).
fn check_error(e: &ConfigError) -> Option<String> {
    let text = e.to_string();
    assert!(!text.is_empty());
    match e {
        ConfigError::Syntax(s) => {
            assert!(!s.is_empty());
            None
        }
        ConfigError::Key { key, reason } => {
            assert!(!key.is_empty(), "empty key in {text}");
            assert!(!reason.is_empty(), "empty reason in {text}");
            assert!(!reason.contains('\n'), "multi-line reason: {text}");
            Some(key.clone())
        }
        ConfigError::Read { .. } => panic!("from_toml_str read a file: {text}"),
    }
}

/// Fragments TOML is made of, to build structured garbage that gets past the lexer more often
/// than random bytes do.
fn toml_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[plmn]\n".to_string()),
        Just("[[site]]\n".to_string()),
        Just("[[cell]]\n".to_string()),
        Just("[nf.amf]\n".to_string()),
        Just("[nrf]\n".to_string()),
        Just("[limits]\n".to_string()),
        Just("mcc = \"001\"\n".to_string()),
        Just("uri = \"http://x\"\n".to_string()),
        Just("heartbeat_timer = 99999999999999999999\n".to_string()),
        Just("heartbeat_timer = -1\n".to_string()),
        Just("lat = nan\n".to_string()),
        Just("lon = inf\n".to_string()),
        Just("x = [1, \"a\", {b = 2}]\n".to_string()),
        Just("a.b.c.d = 1\n".to_string()),
        Just("= 1\n".to_string()),
        Just("\"\u{0}\" = 1\n".to_string()),
        Just("k = \"\\u0000\\uD800\"\n".to_string()),
        Just("k = '''\n".to_string()),
        Just("k = 1979-05-27T07:32:00Z\n".to_string()),
        "[a-z_]{1,8} = [0-9]{1,30}\n",
        "[a-z_]{1,8} = \"\\PC{0,12}\"\n",
        "\\PC{0,16}",
        "[\\[\\]{}=,.\"'#\n ]{1,8}",
    ]
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Arbitrary text (any Unicode, control characters included) never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        if let Err(e) = TestbedConfig::from_toml_str(&text, no_env()) {
            check_error(&e);
        }
    }

    /// Arbitrary bytes made text (lossy) never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = TestbedConfig::from_toml_str(&text, no_env()) {
            check_error(&e);
        }
    }

    /// TOML-shaped garbage never panics, and what parses as TOML fails with a key.
    #[test]
    fn toml_shaped_garbage_never_panics(parts in proptest::collection::vec(toml_fragment(), 0..24)) {
        let text = parts.concat();
        let parses_as_toml = text.parse::<toml::Table>().is_ok();
        match TestbedConfig::from_toml_str(&text, no_env()) {
            Ok(_) => {}
            Err(e) => {
                let key = check_error(&e);
                prop_assert_eq!(key.is_some(), parses_as_toml, "{}", e);
            }
        }
    }

    /// A truncation of the default never panics: it either still loads or names what is wrong.
    #[test]
    fn truncated_default_never_panics(cut in 0usize..DEFAULT_TESTBED_TOML.len()) {
        let mut cut = cut;
        while !DEFAULT_TESTBED_TOML.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Err(e) = TestbedConfig::from_toml_str(&DEFAULT_TESTBED_TOML[..cut], no_env()) {
            check_error(&e);
        }
    }

    /// One byte of the default flipped never panics.
    #[test]
    fn byte_flipped_default_never_panics(at in 0usize..DEFAULT_TESTBED_TOML.len(), bit in 0u8..8) {
        let mut bytes = DEFAULT_TESTBED_TOML.as_bytes().to_vec();
        bytes[at] ^= 1 << bit;
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = TestbedConfig::from_toml_str(&text, no_env()) {
            check_error(&e);
        }
    }
}

/// `key = value` lines of the default (outside multi-line values), with the table header they
/// belong to: (line index, table header, key).
fn assignment_lines() -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut table = String::new();
    for (i, line) in DEFAULT_TESTBED_TOML.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let v = v.split(" #").next().unwrap_or("").trim();
        // Single-line values only: the replacement must leave the rest of the file intact.
        if v.parse::<toml::Value>().is_ok() || format!("v = {v}").parse::<toml::Table>().is_ok() {
            out.push((i, table.clone(), k.to_string()));
        }
    }
    out
}

/// Hostile TOML values: wrong types, huge and negative numbers, non-finite floats, empty and
/// Unicode strings, nested arrays and tables.
fn hostile_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        Just(toml::Value::Integer(i64::MAX)),
        Just(toml::Value::Integer(i64::MIN)),
        Just(toml::Value::Integer(0)),
        Just(toml::Value::Integer(-1)),
        Just(toml::Value::Integer(u32::MAX as i64 + 1)),
        any::<f64>().prop_map(toml::Value::Float),
        Just(toml::Value::Float(f64::NAN)),
        Just(toml::Value::Float(f64::INFINITY)),
        Just(toml::Value::Float(-1e308)),
        any::<bool>().prop_map(toml::Value::Boolean),
        Just(toml::Value::String(String::new())),
        "\\PC{0,40}".prop_map(toml::Value::String),
        "(?s).{0,40}".prop_map(toml::Value::String),
        "[0-9]{1,40}".prop_map(toml::Value::String),
        Just(toml::Value::String("http://".into())),
        Just(toml::Value::String("imsi-00101000000000\u{0663}".into())),
        Just(toml::Value::String("[::1]:99999".into())),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(cfg(256))]

    /// One value of the default replaced by a hostile one: the config loads, or the error is
    /// `Key` naming a key of the configuration (the mutated key itself, or one that refers to
    /// it, e.g. `cell[i].site` after `site[j].id` changed).
    #[test]
    fn one_hostile_value_in_default_names_a_key(pick in any::<prop::sample::Index>(), value in hostile_value()) {
        let lines = assignment_lines();
        prop_assert!(lines.len() > 50, "only {} assignments found", lines.len());
        let (at, table, key) = &lines[pick.index(lines.len())];
        let text: String = DEFAULT_TESTBED_TOML
            .lines()
            .enumerate()
            .map(|(i, l)| if i == *at { format!("{key} = {value}\n") } else { format!("{l}\n") })
            .collect();
        match TestbedConfig::from_toml_str(&text, no_env()) {
            Ok(_) => {}
            Err(e) => {
                let name = check_error(&e);
                prop_assert!(name.is_some(), "[{}] {} = {}: not a key error: {}", table, key, value, e);
                let name = name.unwrap();
                let top = name.split(['.', '[']).next().unwrap_or("");
                prop_assert!(TOP_LEVEL.contains(&top), "[{}] {} = {}: key '{}' is not a config key", table, key, value, name);
                // The mutated key is named unless the value is an identifier others refer to.
                let referenced = matches!(key.as_str(), "id" | "nr_cell_id" | "site" | "cell" | "a" | "b" | "locality" | "enabled");
                let leaf = key.trim_matches('"');
                prop_assert!(
                    referenced || name.contains(leaf) || name.contains(table.split('.').next().unwrap_or("")),
                    "[{}] {} = {}: error names '{}' ({})", table, key, value, name, e
                );
            }
        }
    }
}

/// Real key names, so that random overrides reach deep into the configuration.
fn env_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "NRF",
            "URI",
            "HEARTBEAT_TIMER",
            "NF",
            "AMF",
            "LISTEN",
            "CELL",
            "SITE",
            "UE",
            "SUPI",
            "NODE",
            "DEVICES",
            "LINK",
            "LOSS",
            "CLOUDAI",
            "ADAPTERS",
            "EDGEAI",
            "POLICY",
            "PLMN",
            "MCC",
            "MNC",
            "LIMITS",
            "OAUTH2",
            "CLIENT_SECRET",
            "DATABASE",
            "URL",
            "LAT",
            "LON",
            "TIMEZONE",
            "0",
            "1",
            "2",
            "99",
            "18446744073709551616",
            "-1",
            "",
            "UE_LINK",
            "DATA_DIR",
        ])
        .prop_map(str::to_string),
        "[A-Za-z0-9_\\-]{0,8}",
        "\\PC{0,6}",
    ]
}

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "(?s).{0,24}",
        "-?[0-9]{1,30}",
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("true".to_string()),
        Just(String::new()),
        Just("0.0.0.0:0".to_string()),
        Just("[".to_string()),
    ]
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Random `NETGPT__...` overrides never panic; a failure is a key error.
    #[test]
    fn random_env_overrides_never_panic(
        vars in proptest::collection::vec((proptest::collection::vec(env_segment(), 0..6), env_value()), 0..6)
    ) {
        let env: Vec<(String, String)> = vars
            .into_iter()
            .map(|(segs, v)| (format!("NETGPT__{}", segs.join("__")), v))
            .collect();
        if let Err(e) = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env.clone()) {
            prop_assert!(check_error(&e).is_some(), "{:?}: not a key error: {}", env, e);
        }
    }

    /// Variables without the prefix are ignored, whatever they hold.
    #[test]
    fn foreign_env_is_ignored(k in "[A-Z_]{0,12}", v in "(?s).{0,24}") {
        prop_assume!(!k.starts_with("NETGPT__"));
        let base = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, no_env()).unwrap();
        let got = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, vec![(k, v)]).unwrap();
        prop_assert_eq!(got, base);
    }

    /// A valid heartbeat timer given by the environment lands in the config as that number.
    #[test]
    fn numeric_override_round_trips(n in 1u32..=u32::MAX, lat in -90.0f64..=90.0) {
        let env = vec![
            ("NETGPT__NRF__HEARTBEAT_TIMER".to_string(), n.to_string()),
            ("NETGPT__SITE__0__LAT".to_string(), lat.to_string()),
        ];
        let cfg = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env).unwrap();
        prop_assert_eq!(cfg.nrf.heartbeat_timer, n);
        prop_assert_eq!(cfg.site[0].lat, lat);
    }

    /// Out-of-range numbers for a u32 key are a key error naming it.
    #[test]
    fn out_of_range_override_names_the_key(n in prop_oneof![(u32::MAX as i64 + 1)..=i64::MAX, i64::MIN..0i64]) {
        let env = vec![("NETGPT__NRF__HEARTBEAT_TIMER".to_string(), n.to_string())];
        match TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, env) {
            Err(ConfigError::Key { key, .. }) => prop_assert_eq!(key, "nrf.heartbeat_timer"),
            other => prop_assert!(false, "{}: {:?}", n, other.map(|_| ())),
        }
    }
}

/// The default serialised back to TOML loads to the same configuration.
#[test]
fn default_round_trips_through_toml() {
    let cfg = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, no_env()).unwrap();
    let text = toml::to_string(&cfg).expect("serialise");
    let again = TestbedConfig::from_toml_str(&text, no_env()).unwrap();
    assert_eq!(again, cfg);
}

/// Deeply nested arrays and inline tables are a syntax or key error, not a stack overflow.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for depth in [10usize, 100, 1_000, 10_000, 100_000] {
        let arrays = format!("x = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let tables = format!("x = {}1{}\n", "{a = ".repeat(depth), "}".repeat(depth));
        let dotted = format!("{} = 1\n", vec!["a"; depth].join("."));
        let headers = format!("[{}]\n", vec!["a"; depth].join("."));
        for text in [arrays, tables, dotted, headers] {
            let e = TestbedConfig::from_toml_str(&text, no_env()).unwrap_err();
            check_error(&e);
        }
    }
}

/// Regression: a deep override path (`NETGPT__A__A__...`, 50 000 parts) built tables nested
/// as deep, and dropping them overflowed the stack (an abort); now a key error.
#[test]
fn deep_override_path_is_a_key_error() {
    for depth in [10usize, 1_000, 50_000] {
        let key = format!("NETGPT__{}", vec!["A"; depth].join("__"));
        let e = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, vec![(key, "1".into())])
            .unwrap_err();
        assert!(check_error(&e).is_some(), "{e}");
    }
}

/// A huge string value (1 MB) does not break the error message (one line, names the key).
#[test]
fn huge_values_name_the_key() {
    let big = "9".repeat(1_000_000);
    let e = TestbedConfig::from_toml_str(
        DEFAULT_TESTBED_TOML,
        vec![("NETGPT__NRF__HEARTBEAT_TIMER".into(), big.clone())],
    )
    .unwrap_err();
    assert_eq!(check_error(&e).as_deref(), Some("nrf.heartbeat_timer"));
    let text =
        DEFAULT_TESTBED_TOML.replace("heartbeat_timer = 10", &format!("heartbeat_timer = {big}"));
    let e = TestbedConfig::from_toml_str(&text, no_env()).unwrap_err();
    check_error(&e);
}

/// Regression (found by `random_env_overrides_never_panic`): `NETGPT__=` set the key '' and
/// the error named an empty key; an empty part of the path is now a key error naming the
/// variable.
#[test]
fn empty_override_key_names_the_variable() {
    for var in [
        "NETGPT__",
        "NETGPT__NRF____URI",
        "NETGPT____NRF",
        "NETGPT__NRF__",
    ] {
        match TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, vec![(var.into(), "1".into())]) {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, var),
            other => panic!("{var}: {:?}", other.map(|_| ())),
        }
    }
}
