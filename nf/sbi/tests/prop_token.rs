//! Property tests of the access-token parser and checks (`netgpt_sbi::oauth`): whatever an
//! `Authorization` header holds — random bytes, mutated genuine tokens, other algorithms,
//! huge inputs — the check never panics and never admits a token the NRF did not sign
//! for this NF and service; genuine tokens always pass.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use netgpt_sbi::oauth::{
    AccessControl, AccessTokenClaims, Audience, JwkSet, SigningKey, TokenVerifier, UnverifiedToken,
};
use proptest::prelude::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Fixture {
    key: SigningKey,
    access: AccessControl,
    genuine: String,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::generate().unwrap();
        let verifier = TokenVerifier::local(&JwkSet {
            keys: vec![key.jwk()],
        })
        .unwrap();
        let access = AccessControl::new(Arc::new(verifier), "AMF", "amf-1");
        let genuine = key
            .sign(&AccessTokenClaims {
                iss: "nrf".into(),
                sub: "consumer".into(),
                aud: Audience::NfType("AMF".into()),
                scope: "namf-loc".into(),
                exp: now() + 3600,
                iat: now(),
                consumer_nf_type: Some("AF".into()),
            })
            .unwrap();
        Fixture {
            key,
            access,
            genuine,
        }
    })
}

fn headers(value: &str) -> Option<HeaderMap> {
    let v = HeaderValue::from_str(value).ok()?;
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, v);
    Some(h)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn check(value: &str) -> Option<Result<(), StatusCode>> {
    let h = headers(value)?;
    Some(
        runtime()
            .block_on(fixture().access.check(&h, "namf-loc"))
            .map(|_| ())
            .map_err(|r| r.status()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_headers_are_refused_without_panic(s in "\\PC{0,300}") {
        if let Some(r) = check(&s) {
            prop_assert!(r.is_err());
        }
        if let Some(r) = check(&format!("Bearer {s}")) {
            prop_assert!(r.is_err());
        }
        let _ = UnverifiedToken::parse(&s);
    }

    #[test]
    fn any_change_to_a_genuine_token_is_refused(pos in 0usize..2000, byte in 0u8..128) {
        let t = &fixture().genuine;
        let mut bytes = t.clone().into_bytes();
        let i = pos % bytes.len();
        prop_assume!(bytes[i] != byte && byte.is_ascii_graphic());
        bytes[i] = byte;
        let mutated = String::from_utf8(bytes).unwrap();
        // A change that decodes to the same bytes (base64 padding bits) is the same token.
        let same = mutated.split('.').zip(t.split('.')).all(|(a, b)| {
            URL_SAFE_NO_PAD.decode(a).ok() == URL_SAFE_NO_PAD.decode(b).ok()
        }) && mutated.split('.').count() == 3;
        if let Some(r) = check(&format!("Bearer {mutated}")) {
            prop_assert_eq!(r.is_ok(), same, "{}", mutated);
        }
    }

    #[test]
    fn truncated_tokens_are_refused(cut in 0usize..2000) {
        let t = &fixture().genuine;
        let cut = cut % t.len();
        if let Some(r) = check(&format!("Bearer {}", &t[..cut])) {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn claims_signed_for_another_audience_scope_or_time_are_refused(
        aud in prop_oneof![
            Just("AMF".to_owned()),
            Just("NRF".to_owned()),
            Just("EDGEAI".to_owned()),
            "[A-Z]{1,8}"
        ],
        scope in prop_oneof![
            Just("namf-loc".to_owned()),
            Just("namf-evts".to_owned()),
            Just("namf-loc namf-evts".to_owned()),
            "[a-z -]{0,30}"
        ],
        ttl in -100i64..100,
    ) {
        let f = fixture();
        let exp = (now() as i64 + ttl).max(0) as u64;
        let claims = AccessTokenClaims {
            iss: "nrf".into(),
            sub: "consumer".into(),
            aud: Audience::NfType(aud.to_string()),
            scope: scope.to_string(),
            exp,
            iat: now(),
            consumer_nf_type: None,
        };
        let t = f.key.sign(&claims).unwrap();
        let r = check(&format!("Bearer {t}")).unwrap();
        let should_pass = aud.as_str() == "AMF" && claims.has_scope("namf-loc") && exp > now();
        // A token expiring during the check may flip; only the clear cases are asserted.
        if ttl.abs() > 2 {
            prop_assert_eq!(r.is_ok(), should_pass, "aud {} scope {:?} ttl {}", aud, scope, ttl);
        }
    }

    #[test]
    fn other_algorithms_and_huge_parts_are_refused(
        alg in prop_oneof![
            Just("none".to_owned()),
            Just("HS256".to_owned()),
            Just("RS256".to_owned()),
            Just("es256".to_owned()),
            "[A-Za-z0-9]{0,10}"
        ],
        size in 0usize..20_000,
    ) {
        let f = fixture();
        let parts: Vec<&str> = f.genuine.split('.').collect();
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, f.key.kid()));
        let forged = format!("Bearer {header}.{}.{}", parts[1], parts[2]);
        let refused = check(&forged).unwrap().is_err();
        prop_assert!(refused || alg == "ES256");
        let huge = format!("Bearer {}.{}.{}", parts[0], "A".repeat(size), parts[2]);
        let refused = check(&huge).unwrap().is_err();
        prop_assert!(refused);
    }
}

#[test]
fn the_genuine_token_passes() {
    assert_eq!(
        check(&format!("Bearer {}", fixture().genuine)),
        Some(Ok(()))
    );
    assert_eq!(
        check(&format!("bearer {}", fixture().genuine)),
        Some(Ok(()))
    );
}
