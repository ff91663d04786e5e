//! Hostile input for the NRF: NFUpdate's RFC 6902 JSON Patch (`procedures::nf_update`, with
//! the body parsed as the API parses it), NFRegister's profile body and NFDiscover's query
//! (`procedures::parse_discover_query`).
//!
//! Properties: no patch, body or query panics or answers 5xx; a refused patch leaves the
//! stored profile exactly as it was; an accepted one stores a profile that is still valid,
//! of the same instance; discovery query errors name the parameter.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use netgpt_nrf::context::{NrfContext, NrfOptions};
use netgpt_nrf::procedures::{
    check_profile, nf_profile_retrieval, nf_register, nf_update, parse_discover_query,
};
use netgpt_nrf::store::SqlNfStore;
use netgpt_sbi::extract::parse_json;
use netgpt_sbi::models::nnrf::{NfProfile, NfService, NfType, PatchItem, PatchOperation};
use netgpt_sbi::problem::ProblemDetails;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Value};
use uuid::Uuid;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

struct Nrf {
    rt: tokio::runtime::Runtime,
    ctx: NrfContext,
    _dir: tempfile::TempDir,
}

/// One NRF (SQLite store) per test thread, for every case of that test.
fn nrf() -> &'static Nrf {
    thread_local! {
        static NRF: OnceLock<&'static Nrf> = const { OnceLock::new() };
    }
    NRF.with(|n| *n.get_or_init(|| Box::leak(Box::new(new_nrf()))))
}

fn new_nrf() -> Nrf {
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("nrf.db").display());
        let ctx = rt.block_on(async {
            let store = SqlNfStore::open(netgpt_sbi::db::connect(&url).await.unwrap())
                .await
                .unwrap();
            NrfContext::new(
                Arc::new(store),
                NrfOptions::default(),
                "http://nrf.test:8000",
            )
        });
        Nrf { rt, ctx, _dir: dir }
    }
}

fn amf() -> NfProfile {
    let mut p = NfProfile::new(Uuid::new_v4(), NfType::AMF);
    p.ipv4_addresses = Some(vec![Ipv4Addr::LOCALHOST]);
    p.locality = Some("core".into());
    let svc = NfService::http("loc", "namf-loc", Ipv4Addr::LOCALHOST, 8001);
    let evts = NfService::http("evts", "namf-evts", Ipv4Addr::LOCALHOST, 8001);
    p.nf_service_list = Some(BTreeMap::from([("loc".into(), svc), ("evts".into(), evts)]));
    p
}

/// Registers a fresh AMF and returns it as stored.
fn registered() -> NfProfile {
    let n = nrf();
    let p = amf();
    n.rt.block_on(nf_register(&n.ctx, &p.nf_instance_id.to_string(), p))
        .unwrap()
        .profile
}

fn stored(id: Uuid) -> NfProfile {
    let n = nrf();
    n.rt.block_on(nf_profile_retrieval(&n.ctx, &id.to_string()))
        .unwrap()
}

fn check_problem(p: &ProblemDetails) -> Result<(), TestCaseError> {
    prop_assert!(
        (400..500).contains(&p.status),
        "status {} ({:?}: {:?})",
        p.status,
        p.cause,
        p.detail
    );
    prop_assert!(p.cause.is_some(), "{:?}", p);
    for ip in &p.invalid_params {
        prop_assert!(!ip.param.is_empty(), "{:?}", p);
    }
    Ok(())
}

/// Applies `patch` to a freshly registered profile; checks the outcome.
fn update_checked(patch: Vec<PatchItem>) -> Result<(), TestCaseError> {
    let n = nrf();
    let before = registered();
    let id = before.nf_instance_id;
    match n
        .rt
        .block_on(nf_update(&n.ctx, &id.to_string(), patch.clone()))
    {
        Ok(done) => {
            let now = stored(id);
            prop_assert_eq!(floats_rounded(&now), floats_rounded(&done.profile));
            prop_assert_eq!(now.nf_instance_id, id);
            prop_assert!(
                check_profile(&now).is_empty(),
                "{:?} stored an invalid profile",
                patch
            );
        }
        Err(p) => {
            check_problem(&p)?;
            prop_assert_eq!(
                stored(id),
                before,
                "{:?} refused ({:?}) but changed the profile",
                patch,
                p.detail
            );
        }
    }
    Ok(())
}

/// JSON values: scalars of every kind (huge numbers included), strings of any Unicode,
/// arrays and objects nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(1e308)),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(vec![
            "REGISTERED",
            "SUSPENDED",
            "UNDISCOVERABLE",
            "AMF",
            "SMF",
            "127.0.0.1",
            "::1",
            "core",
            "http",
            "HTTP"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers: real profile paths, array indices and `-`, escapes, nonsense.
fn pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "/",
            "/nfStatus",
            "/nfType",
            "/nfInstanceId",
            "/load",
            "/priority",
            "/capacity",
            "/locality",
            "/heartBeatTimer",
            "/fqdn",
            "/ipv4Addresses",
            "/ipv4Addresses/0",
            "/ipv4Addresses/-",
            "/ipv4Addresses/1",
            "/ipv6Addresses",
            "/nfServiceList",
            "/nfServiceList/loc",
            "/nfServiceList/loc/nfServiceStatus",
            "/nfServiceList/loc/ipEndPoints/0/port",
            "/nfServiceList/evts/serviceName",
            "/nfServices",
            "/nfServices/0",
            "/allowedNfTypes",
            "/allowedNfTypes/-",
            "/~0",
            "/~1",
            "/~2",
            "/a~",
            "//",
            "/nfStatus/x",
            "/load/0",
            "/ipv4Addresses/99999999999999999999",
            "/ipv4Addresses/-1",
            "/ipv4Addresses/01",
            "nfStatus",
            "#/nfStatus",
        ])
        .prop_map(str::to_string),
        "(/[a-zA-Z0-9~\\-]{0,8}){1,5}",
        "\\PC{0,12}",
    ]
}

fn op() -> impl Strategy<Value = PatchOperation> {
    prop::sample::select(vec![
        PatchOperation::Add,
        PatchOperation::Copy,
        PatchOperation::Move,
        PatchOperation::Remove,
        PatchOperation::Replace,
        PatchOperation::Test,
    ])
}

fn patch_item() -> impl Strategy<Value = PatchItem> {
    (
        op(),
        pointer(),
        prop::option::of(pointer()),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, from, value)| PatchItem {
            op,
            path,
            from,
            value,
        })
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Arbitrary patches: 4xx or a valid stored profile; a refusal changes nothing.
    #[test]
    fn arbitrary_patches_never_fail_the_server(patch in proptest::collection::vec(patch_item(), 0..6)) {
        update_checked(patch)?;
    }

    /// A valid change followed by a hostile operation: the whole patch is refused and the
    /// valid change is not applied either (patches are atomic).
    #[test]
    fn a_patch_is_atomic(locality in "[a-z]{1,10}", bad in patch_item()) {
        let patch = vec![PatchItem::replace("/locality", json!(locality)), bad];
        let n = nrf();
        let before = registered();
        let id = before.nf_instance_id;
        match n.rt.block_on(nf_update(&n.ctx, &id.to_string(), patch)) {
            Ok(done) => prop_assert_eq!(floats_rounded(&stored(id)), floats_rounded(&done.profile)),
            Err(p) => {
                check_problem(&p)?;
                prop_assert_eq!(stored(id).locality, before.locality);
            }
        }
    }

    /// Raw bodies as the API gets them (`application/json-patch+json`): parse errors are 400
    /// naming where, and what parses behaves as above.
    #[test]
    fn raw_patch_bodies(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        proptest::collection::vec(patch_item(), 0..4).prop_map(|p| serde_json::to_vec(&p).unwrap()),
        (proptest::collection::vec(patch_item(), 1..3), any::<prop::sample::Index>()).prop_map(|(p, i)| {
            let mut b = serde_json::to_vec(&p).unwrap();
            b.truncate(i.index(b.len()));
            b
        }),
        (proptest::collection::vec(patch_item(), 1..3), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(p, i, x)| {
            let mut b = serde_json::to_vec(&p).unwrap();
            let at = i.index(b.len());
            b[at] ^= x | 1;
            b
        }),
    ]) {
        match parse_json::<Vec<PatchItem>>(&body) {
            Err(p) => {
                check_problem(&p)?;
                prop_assert_eq!(p.status, 400);
            }
            Ok(patch) => update_checked(patch)?,
        }
    }

    /// Arbitrary profile bodies for NFRegister: 4xx (nothing stored) or a valid profile stored.
    #[test]
    fn arbitrary_profiles(mutation in prop_oneof![
        json_value(),
        (pointer(), json_value()).prop_map(|(path, v)| json!({"path": path, "value": v})),
    ]) {
        let n = nrf();
        let base = amf();
        let id = base.nf_instance_id;
        // Either a whole random body or the valid profile with one member replaced.
        let body = match &mutation {
            Value::Object(m) if m.contains_key("path") && m.len() == 2 => {
                let mut doc = serde_json::to_value(&base).unwrap();
                let key = m["path"].as_str().unwrap_or("").trim_start_matches('/').split('/').next().unwrap_or("").to_string();
                doc[key] = m["value"].clone();
                serde_json::to_vec(&doc).unwrap()
            }
            v => serde_json::to_vec(v).unwrap(),
        };
        match parse_json::<NfProfile>(&body) {
            Err(p) => {
                check_problem(&p)?;
                prop_assert_eq!(p.status, 400);
            }
            Ok(profile) => {
                match n.rt.block_on(nf_register(&n.ctx, &id.to_string(), profile)) {
                    Ok(r) => {
                        prop_assert!(check_profile(&r.profile).is_empty());
                        prop_assert_eq!(floats_rounded(&stored(id)), floats_rounded(&r.profile));
                    }
                    Err(p) => {
                        check_problem(&p)?;
                        let none = n.rt.block_on(nf_profile_retrieval(&n.ctx, &id.to_string()));
                        prop_assert!(none.is_err(), "refused but stored");
                    }
                }
            }
        }
    }

    /// Discovery queries: any pairs parse or give a 400 whose invalid params are among the
    /// query's keys (or the two mandatory ones when missing).
    #[test]
    fn discover_queries(pairs in proptest::collection::vec((
        prop_oneof![
            prop::sample::select(vec!["target-nf-type", "requester-nf-type", "service-names", "target-nf-instance-id", "preferred-locality", "limit"]).prop_map(str::to_string),
            "\\PC{0,10}",
        ],
        prop_oneof![
            "\\PC{0,20}",
            Just("AMF".to_string()),
            Just("0".to_string()),
            Just("4294967296".to_string()),
            Just("-1".to_string()),
            Just(",,,".to_string()),
            Just(Uuid::nil().to_string()),
        ],
    ), 0..8)) {
        let pairs: Vec<(String, String)> = pairs;
        match parse_discover_query(&pairs) {
            Ok(q) => {
                prop_assert!(q.target_nf_type.is_well_formed());
                prop_assert!(q.limit.is_none_or(|l| l >= 1));
                prop_assert!(q.service_names.iter().all(|s| !s.is_empty() && !s.contains(',')));
            }
            Err(p) => {
                check_problem(&p)?;
                prop_assert_eq!(p.status, 400);
                for ip in &p.invalid_params {
                    let known = pairs.iter().any(|(k, _)| k == &ip.param)
                        || ip.param == "target-nf-type"
                        || ip.param == "requester-nf-type";
                    prop_assert!(known, "invalid param {:?} not in {:?}", ip.param, pairs);
                }
            }
        }
    }
}

/// The profile as JSON with every non-integer number cut to 12 significant digits: serde_json
/// (without its `float_roundtrip` feature) may read a float back one ulp off what it wrote,
/// so a float in an unknown attribute (`allowedNfTypes: [[-1.718959234687654e-155]]`) comes
/// back from the store in its last digit changed.
fn floats_rounded(p: &NfProfile) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                *v = Value::String(format!("{:.11e}", n.as_f64().unwrap()));
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(p).unwrap();
    walk(&mut v);
    v
}

/// A patch body nested deeper than the JSON parser allows is a 400, not a stack overflow.
#[test]
fn deeply_nested_patch_value_is_a_400() {
    for depth in [100usize, 1_000, 100_000] {
        let body = format!(
            r#"[{{"op":"add","path":"/x","value":{}1{}}}]"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        if let Ok(patch) = parse_json::<Vec<PatchItem>>(body.as_bytes()) {
            update_checked(patch).unwrap();
        } else {
            assert_eq!(
                parse_json::<Vec<PatchItem>>(body.as_bytes())
                    .unwrap_err()
                    .status,
                400
            );
        }
    }
}

/// A large patch (10 000 operations) is answered, and an unknown instance is a 404.
#[test]
fn large_patch_and_unknown_instance() {
    let patch: Vec<PatchItem> = (0..10_000)
        .map(|i| PatchItem::replace("/load", json!(i % 100)))
        .collect();
    update_checked(patch).unwrap();
    let n = nrf();
    let err =
        n.rt.block_on(nf_update(
            &n.ctx,
            &Uuid::new_v4().to_string(),
            vec![PatchItem::replace("/load", json!(1))],
        ))
        .unwrap_err();
    assert_eq!(err.status, 404);
    let err =
        n.rt.block_on(nf_update(
            &n.ctx,
            "not-a-uuid",
            vec![PatchItem::replace("/load", json!(1))],
        ))
        .unwrap_err();
    assert_eq!(err.status, 400);
}

/// Concurrent registrations and updates from several threads on one store all succeed
/// (what several NFs starting at once do).
#[test]
fn concurrent_updates_are_not_store_failures() {
    let n = new_nrf();
    let ctx = n.ctx.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let failures = rt.block_on(async move {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                let mut bad = Vec::new();
                for i in 0..20 {
                    let p = amf();
                    let id = p.nf_instance_id.to_string();
                    if let Err(e) = nf_register(&ctx, &id, p).await {
                        bad.push(format!("register {t}/{i}: {} {:?}", e.status, e.detail));
                        continue;
                    }
                    let patch = vec![PatchItem::replace("/locality", json!(format!("l{i}")))];
                    if let Err(e) = nf_update(&ctx, &id, patch).await {
                        bad.push(format!("update {t}/{i}: {} {:?}", e.status, e.detail));
                    }
                }
                bad
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
