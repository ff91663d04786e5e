//! Hostile workflow specifications for the CmP (`workflows::parse_and_validate`, i.e.
//! `wf::spec::parse_workflow` + `wf::spec::validate` against the NetGPT catalogue):
//! arbitrary and mutated YAML/JSON never panics and is a 400 naming fields; cycles, unknown
//! operations, dangling references, duplicate ids and huge budgets are refused naming the
//! step field; generated valid DAGs are accepted and round-trip through YAML and JSON.

use std::collections::BTreeMap;

use netgpt_cmp::ops::Catalog;
use netgpt_cmp::wf::spec::{
    parse_condition, parse_input, parse_workflow, RetryPolicy, StepSpec, WorkflowSpec,
    MAX_BUDGET_MS,
};
use netgpt_cmp::workflows::{parse_and_validate, SHIPPED};
use netgpt_sbi::ProblemDetails;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn catalog() -> Catalog {
    Catalog::netgpt()
}

/// A refusal is a 400 whose invalid params each name a field.
fn check_problem(p: &ProblemDetails) -> Result<(), TestCaseError> {
    prop_assert_eq!(p.status, 400, "{:?}", p);
    prop_assert!(!p.invalid_params.is_empty(), "{:?}", p);
    for ip in &p.invalid_params {
        prop_assert!(!ip.param.is_empty(), "{:?}", p);
        prop_assert!(
            ip.reason.as_deref().is_some_and(|r| !r.is_empty()),
            "{:?}",
            p
        );
    }
    Ok(())
}

fn params(p: &ProblemDetails) -> Vec<(String, String)> {
    p.invalid_params
        .iter()
        .map(|i| (i.param.clone(), i.reason.clone().unwrap_or_default()))
        .collect()
}

fn parse_checked(text: &str) -> Result<Option<WorkflowSpec>, TestCaseError> {
    match parse_and_validate(text, &catalog()) {
        Ok(spec) => Ok(Some(spec)),
        Err(p) => {
            check_problem(&p)?;
            Ok(None)
        }
    }
}

/// Operations with the inputs they need.
const OPS: &[(&str, &str)] = &[
    ("noop", ""),
    ("cloud.generate", "prompt"),
    ("edge.complete", "prompt"),
    ("edge.desensitize", "prompt"),
    ("amf.location", "supi"),
];

fn step(id: String, op: usize, deps: &[usize], via_after: bool) -> StepSpec {
    let (operation, need) = OPS[op % OPS.len()];
    let mut inputs = BTreeMap::new();
    if !need.is_empty() {
        inputs.insert(need.to_string(), format!("$input.{need}"));
    }
    let mut after = Vec::new();
    for (k, d) in deps.iter().enumerate() {
        if via_after {
            after.push(format!("s{d}"));
        } else {
            inputs.insert(format!("in{k}"), format!("$steps.s{d}.output"));
        }
    }
    StepSpec {
        id,
        operation: operation.to_string(),
        inputs,
        params: serde_json::Map::new(),
        demand: Default::default(),
        cost_ms: BTreeMap::new(),
        timeout_ms: Some(1000),
        retry: RetryPolicy::default(),
        idempotent: true,
        when: None,
        after,
        output_bytes: None,
    }
}

/// A valid DAG: step `i` depends only on steps before it; the steps listed in a random
/// order (the order of the file does not matter).
fn valid_spec() -> impl Strategy<Value = WorkflowSpec> {
    (1usize..9)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(
                    (
                        0usize..OPS.len(),
                        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                        any::<bool>(),
                    ),
                    n,
                ),
                Just(n),
                any::<prop::sample::Index>(),
                prop::option::of(1u64..=MAX_BUDGET_MS),
            )
        })
        .prop_map(|(steps, n, rot, budget)| {
            let mut out: Vec<StepSpec> = steps
                .into_iter()
                .enumerate()
                .map(|(i, (op, deps, via_after))| {
                    let mut d: Vec<usize> = if i == 0 {
                        vec![]
                    } else {
                        deps.iter().map(|x| x.index(i)).collect()
                    };
                    d.sort();
                    d.dedup();
                    step(format!("s{i}"), op, &d, via_after)
                })
                .collect();
            out.rotate_left(rot.index(n));
            WorkflowSpec {
                name: "prop-wf".into(),
                description: None,
                budget_ms: budget,
                inputs: vec!["prompt".into(), "supi".into()],
                output: BTreeMap::new(),
                steps: out,
            }
        })
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Arbitrary text: no panic; a refusal is a 400 naming fields.
    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![
        "(?s).{0,300}",
        "\\PC{0,300}",
        "\\{[\\[\\]{}:,\"a-z0-9 ]{0,200}",
        "(name: [a-z]{1,5}\n|steps:\n|  - id: [a-z0-9]{1,4}\n|    operation: [a-z.]{1,14}\n|    after: \\[[a-z0-9, ]{0,10}\\]\n|budgetMs: [0-9]{1,25}\n|    inputs: \\{[a-z]{1,5}: \"?\\$[a-z.0-9]{0,20}\"?\\}\n|    when: [^\n]{0,20}\n){0,12}",
    ]) {
        parse_checked(&text)?;
    }

    /// Generated valid DAGs are accepted, and round-trip through YAML and JSON.
    #[test]
    fn valid_dags_are_accepted(spec in valid_spec()) {
        let yaml = serde_yaml_ng::to_string(&spec).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        for text in [&yaml, &json] {
            match parse_and_validate(text, &catalog()) {
                Ok(got) => prop_assert_eq!(&got, &spec),
                Err(p) => prop_assert!(false, "valid DAG refused: {:?}\n{}", params(&p), text),
            }
        }
    }

    /// A back edge makes a cycle: refused, naming a step of it and saying "cycle".
    #[test]
    fn cycles_are_refused(spec in valid_spec(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let n = spec.steps.len();
        prop_assume!(n >= 2);
        // Find a path s_lo -> ... -> s_hi exists only if hi depends on lo; make it certain:
        // hi waits for lo, and lo waits for hi.
        let (mut lo, mut hi) = (a.index(n), b.index(n));
        if lo == hi { hi = (lo + 1) % n; }
        if lo > hi { std::mem::swap(&mut lo, &mut hi); }
        let mut spec = spec;
        let pos = |spec: &WorkflowSpec, id: &str| spec.steps.iter().position(|s| s.id == id).unwrap();
        let (lo_id, hi_id) = (format!("s{lo}"), format!("s{hi}"));
        let hp = pos(&spec, &hi_id);
        spec.steps[hp].after.push(lo_id.clone());
        let lp = pos(&spec, &lo_id);
        spec.steps[lp].after.push(hi_id.clone());
        let p = parse_and_validate(&serde_yaml_ng::to_string(&spec).unwrap(), &catalog()).unwrap_err();
        check_problem(&p)?;
        prop_assert!(params(&p).iter().any(|(f, r)| f.starts_with("steps[") && r.contains("cycle")), "{:?}", params(&p));
    }

    /// Unknown operations, dangling references, duplicate ids, self references, bad
    /// conditions and huge numbers: refused, each naming the field concerned.
    #[test]
    fn broken_specs_name_the_field(spec in valid_spec(), at in any::<prop::sample::Index>(), how in 0usize..9, junk in "[a-z]{1,8}", huge in (MAX_BUDGET_MS + 1)..=u64::MAX) {
        let mut spec = spec;
        let i = at.index(spec.steps.len());
        let id = spec.steps[i].id.clone();
        let want: String = match how {
            0 => { spec.steps[i].operation = format!("{junk}.nothing"); format!("steps[{i}].operation") }
            1 => { spec.steps[i].after.push(format!("zz{junk}")); format!("steps[{i}].after[{}]", spec.steps[i].after.len() - 1) }
            2 => { spec.steps[i].inputs.insert("x".into(), format!("$steps.zz{junk}.output")); format!("steps[{i}].inputs.x") }
            3 => { spec.steps[i].inputs.insert("x".into(), format!("$steps.{id}.output")); format!("steps[{i}].inputs.x") }
            4 => { spec.budget_ms = Some(huge); "budgetMs".into() }
            5 => { spec.steps[i].when = Some(format!("$steps.{id} ==")); format!("steps[{i}].when") }
            6 => { spec.steps[i].retry.factor = 0.5; format!("steps[{i}].retry.factor") }
            7 => { spec.steps[i].inputs.insert("x".into(), format!("$input.{junk}x")); format!("steps[{i}].inputs.x") }
            _ => {
                let mut dup = spec.steps[i].clone();
                dup.after.clear();
                dup.inputs.retain(|_, v| !v.starts_with("$steps"));
                spec.steps.push(dup);
                format!("steps[{}].id", spec.steps.len() - 1)
            }
        };
        for text in [serde_yaml_ng::to_string(&spec).unwrap(), serde_json::to_string(&spec).unwrap()] {
            let p = parse_and_validate(&text, &catalog()).unwrap_err();
            check_problem(&p)?;
            prop_assert!(params(&p).iter().any(|(f, _)| f == &want), "want {} in {:?}", want, params(&p));
        }
    }

    /// Shipped workflows truncated, with bytes flipped or lines dropped: no panic, a 400
    /// naming fields when refused.
    #[test]
    fn mutated_shipped_workflows(which in any::<prop::sample::Index>(), how in 0usize..3, at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let text = SHIPPED[which.index(SHIPPED.len())].1;
        let mutated = match how {
            0 => {
                let mut cut = at.index(text.len());
                while !text.is_char_boundary(cut) { cut -= 1; }
                text[..cut].to_string()
            }
            1 => {
                let mut b = text.as_bytes().to_vec();
                let i = at.index(b.len());
                b[i] ^= x;
                String::from_utf8_lossy(&b).into_owned()
            }
            _ => {
                let lines: Vec<&str> = text.lines().collect();
                let drop = at.index(lines.len());
                lines.iter().enumerate().filter(|(k, _)| *k != drop).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
            }
        };
        parse_checked(&mutated)?;
    }

    /// References and conditions on their own: any string parses or is an error.
    #[test]
    fn refs_and_conditions_never_panic(s in prop_oneof![
        "\\PC{0,40}",
        "\\$(input|steps)[.a-z0-9\\[\\]]{0,30}",
        "(not |exists |\\$steps\\.a\\.output|==|!=| and | or |true|null|'x'|\"y\"|[0-9.e+-]{1,8}|\\(|\\)){0,12}",
    ]) {
        let _ = parse_input(&s);
        let _ = parse_condition(&s);
    }
}

/// The shipped workflows are accepted (the checks added do not refuse them).
#[test]
fn shipped_workflows_are_accepted() {
    for (name, text) in SHIPPED {
        if let Err(p) = parse_and_validate(text, &catalog()) {
            panic!("{name}: {:?}", params(&p));
        }
    }
}

/// Regression: `budgetMs: 18446744073709551615` passed validation. The engine computes
/// `Instant::now() + Duration::from_millis(budget)`: no overflow on Linux (an i64 of
/// seconds), a panic where `Instant` is a u64 of nanoseconds (macOS); now refused.
#[test]
fn huge_budget_is_refused() {
    for b in [u64::MAX, u64::MAX / 1000, MAX_BUDGET_MS + 1] {
        let text = format!("name: big\nbudgetMs: {b}\nsteps:\n  - id: a\n    operation: noop\n");
        let p = parse_and_validate(&text, &catalog()).unwrap_err();
        assert!(
            params(&p).iter().any(|(f, _)| f == "budgetMs"),
            "{:?}",
            params(&p)
        );
    }
    let text =
        format!("name: ok\nbudgetMs: {MAX_BUDGET_MS}\nsteps:\n  - id: a\n    operation: noop\n");
    parse_and_validate(&text, &catalog()).unwrap();
    // Bigger than u64: a parse error naming the field.
    let p = parse_and_validate(
        "name: x\nbudgetMs: 99999999999999999999999\nsteps: []\n",
        &catalog(),
    )
    .unwrap_err();
    assert_eq!(p.status, 400);
}

/// Deep nesting, YAML alias bombs and a 10 000-step chain: errors or answers, no crash.
#[test]
fn pathological_documents() {
    for depth in [100usize, 10_000] {
        let yaml = format!(
            "name: d\nsteps:\n  - id: a\n    operation: noop\n    params:\n      x: {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let _ = parse_workflow(&yaml);
        let json = format!(
            r#"{{"name":"d","steps":[{{"id":"a","operation":"noop","params":{{"x":{}1{}}}}}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let _ = parse_workflow(&json);
    }
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                name: bomb\nsteps:\n  - id: a\n    operation: noop\n    params: {p: *h}\n";
    assert!(parse_workflow(bomb).is_err());
    // A long chain: s_i waits for s_{i-1}; accepted, and a back edge is found.
    let n = 10_000;
    let mut text = String::from("name: chain\nsteps:\n");
    for i in 0..n {
        text.push_str(&format!("  - id: s{i}\n    operation: noop\n"));
        if i > 0 {
            text.push_str(&format!("    after: [s{}]\n", i - 1));
        }
    }
    parse_and_validate(&text, &catalog()).unwrap();
    text = text.replacen(
        "  - id: s0\n    operation: noop\n",
        &format!("  - id: s0\n    operation: noop\n    after: [s{}]\n", n - 1),
        1,
    );
    let p = parse_and_validate(&text, &catalog()).unwrap_err();
    assert!(params(&p).iter().any(|(_, r)| r.contains("cycle")));
}
