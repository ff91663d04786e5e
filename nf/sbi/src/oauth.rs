//! OAuth2 between NFs (TS 29.510 `Nnrf_AccessToken`, TS 33.501 §13.4.1, client
//! credentials grant): the NRF issues signed access tokens; every NF checks one on every
//! service operation.
//!
//! - **Tokens** are compact JWS (RFC 7515) signed with ES256 (P-256) by the NRF's key,
//!   carrying TS 29.510 `AccessTokenClaims`: `iss` (the NRF's instance id), `sub` (the
//!   consumer's instance id), `aud` (the target NF type, or the target instance ids),
//!   `scope` (space-separated service names), `exp` and `iat`. Only `ES256` is accepted:
//!   `alg: none` and HMAC algorithms are refused before any key is looked at.
//! - **The NRF** signs ([`SigningKey`]) and publishes its public keys as a JWK set at
//!   [`JWKS_PATH`]; its token endpoint is [`TOKEN_PATH`] (`nnrf-oauth2`, in the NRF crate).
//! - **Every NF** verifies with [`TokenVerifier`] (keys fetched from the NRF's JWK set
//!   and cached by `kid`), then authorises with [`AccessControl`]: the audience must be the
//!   NF's type or instance and the scope must name the service being called. A token for
//!   one NF type or service opens nothing else (free5gc's NRF once issued tokens whose
//!   scope did not match `targetNfType`; our NRF refuses such requests and the NFs check
//!   both claims regardless).
//! - **Consumers** attach tokens through [`NrfTokenProvider`], an SBI client
//!   [`TokenProvider`] that requests a token per (target NF type, service) and caches it
//!   until shortly before expiry. [`consumer_client`] builds such a client for tools.
//!
//! Refusals are ProblemDetails: 401 with `WWW-Authenticate: Bearer ...` (no token, bad
//! signature, expired) and 403 with cause `INSUFFICIENT_SCOPE` or `INVALID_AUDIENCE`.
//! Tokens are never logged: errors name what was wrong, never the token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::client::{ClientError, SbiClient, TokenFuture, TokenProvider, TokenScope};
use crate::config::TestbedConfig;
use crate::problem::ProblemDetails;

/// The NRF's token endpoint (TS 29.510 `Nnrf_AccessToken`, under the NRF's API root).
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The NRF's public signing keys as a JWK set (RFC 7517).
pub const JWKS_PATH: &str = "/oauth2/jwks";
/// Name of the NRF's token service (not itself protected by tokens).
pub const TOKEN_SERVICE: &str = "nnrf-oauth2";
/// The only signature algorithm issued and accepted.
pub const ALG: &str = "ES256";
/// Longest token accepted (bytes); longer ones are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// A cached token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Unknown `kid`s trigger at most one JWK-set fetch per this interval.
const JWKS_REFETCH: Duration = Duration::from_secs(2);

/// The NRF's token endpoint under its API root `nrf_uri`.
pub fn token_url(nrf_uri: &str) -> String {
    format!("{}{TOKEN_PATH}", nrf_uri.trim_end_matches('/'))
}

/// The NRF's JWK set under its API root `nrf_uri`.
pub fn jwks_url(nrf_uri: &str) -> String {
    format!("{}{JWKS_PATH}", nrf_uri.trim_end_matches('/'))
}

/// Seconds since the Unix epoch (what `exp` and `iat` count).
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// APIs for clients outside the SBI that an NF serves beside its services (not in its
/// NFProfile), with the NF type: they take tokens like any service.
pub const CLIENT_APIS: &[(&str, &str)] = &[("openai", "CLOUDAI")];

/// The NF type a service belongs to, by the 3GPP naming convention `n<nftype>-<name>`
/// (`namf-loc` -> `AMF`, `nedgeai-prompt` -> `EDGEAI`), plus the cloud AI function's
/// OpenAI-compatible API (`openai` -> `CLOUDAI`). `None` for names that follow neither.
pub fn nf_type_of_service(service: &str) -> Option<String> {
    if let Some((_, t)) = CLIENT_APIS.iter().find(|(s, _)| *s == service) {
        return Some((*t).to_owned());
    }
    let rest = service.strip_prefix('n')?;
    let (ty, name) = rest.split_once('-')?;
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    (ok(ty) && ok(&name.replace('-', ""))).then(|| ty.to_ascii_uppercase())
}

/// The instance id a tool or test acting as consumer `name` presents (stable per name).
pub fn consumer_instance_id(name: &str) -> Uuid {
    let digest = Sha256::digest(format!("netgpt-consumer:{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// TS 29.510 `Audience`: the target NF type, or the target NF instance ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// Any instance of this NF type (`AMF`).
    NfType(String),
    /// Only these NF instances.
    Instances(Vec<String>),
}

/// TS 29.510 `AccessTokenClaims` (the JWT payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The NRF's NF instance id.
    pub iss: String,
    /// The consumer's NF instance id.
    pub sub: String,
    /// Who may accept the token.
    pub aud: Audience,
    /// Space-separated service names the token opens.
    pub scope: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
    /// The consumer's NF type (`consumerNfType` is not in the 3GPP claims; kept for
    /// per-type decisions and logs).
    #[serde(
        default,
        rename = "consumerNfType",
        skip_serializing_if = "Option::is_none"
    )]
    pub consumer_nf_type: Option<String>,
}

impl AccessTokenClaims {
    /// Whether the scope names `service`.
    pub fn has_scope(&self, service: &str) -> bool {
        self.scope.split(' ').any(|s| s == service)
    }

    /// Whether an NF of type `nf_type` and instance `instance_id` is in the audience.
    pub fn admits(&self, nf_type: &str, instance_id: &str) -> bool {
        match &self.aud {
            Audience::NfType(t) => t.eq_ignore_ascii_case(nf_type),
            Audience::Instances(ids) => ids.iter().any(|i| i.eq_ignore_ascii_case(instance_id)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// One public key of a JWK set (EC P-256 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// Key id.
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// X coordinate, base64url.
    pub x: String,
    /// Y coordinate, base64url.
    pub y: String,
}

impl Jwk {
    /// The uncompressed SEC1 point (`04 || x || y`), checked for length.
    pub fn public_point(&self) -> Result<Vec<u8>, TokenError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(TokenError::Keys(format!(
                "key {} is {} {}, not EC P-256",
                self.kid, self.kty, self.crv
            )));
        }
        let x = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| TokenError::Keys(format!("key {}: x is not base64url", self.kid)))?;
        let y = URL_SAFE_NO_PAD
            .decode(&self.y)
            .map_err(|_| TokenError::Keys(format!("key {}: y is not base64url", self.kid)))?;
        if x.len() != 32 || y.len() != 32 {
            return Err(TokenError::Keys(format!(
                "key {}: coordinates must be 32 bytes",
                self.kid
            )));
        }
        let mut p = Vec::with_capacity(65);
        p.push(4);
        p.extend_from_slice(&x);
        p.extend_from_slice(&y);
        Ok(p)
    }
}

/// A JWK set (RFC 7517), what the NRF serves at [`JWKS_PATH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// Why a token was refused or could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not a well-formed ES256 JWS with the expected claims.
    #[error("malformed access token: {0}")]
    Malformed(String),
    /// The signature does not verify with the NRF's key.
    #[error("access token signature does not verify")]
    BadSignature,
    /// No key of the NRF has the token's `kid`.
    #[error("access token signed with an unknown key")]
    UnknownKey,
    /// `exp` has passed.
    #[error("access token expired")]
    Expired,
    /// The NRF's keys could not be read.
    #[error("NRF signing keys unavailable: {0}")]
    Keys(String),
}

/// The NRF's ES256 signing key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate() -> Result<Self, TokenError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| TokenError::Keys("cannot generate a P-256 key".into()))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, TokenError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| TokenError::Keys(format!("not a PKCS#8 P-256 key: {e}")))?;
        let kid = hex_prefix(&Sha256::digest(pair.public_key().as_ref()), 8);
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
            kid,
        })
    }

    /// From a PEM file (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub fn from_pem_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TokenError::Keys(format!("{}: {e}", path.display())))?;
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|_| TokenError::Keys(format!("{}: no PKCS#8 PEM block", path.display())))?;
        Self::from_pkcs8_der(&der)
    }

    /// PKCS#8 DER (to persist the key).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key id (`kid`): the first 8 bytes of SHA-256 of the public point, in hex.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let p = self.pair.public_key().as_ref();
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            kid: self.kid.clone(),
            alg: ALG.into(),
            use_: "sig".into(),
            x: URL_SAFE_NO_PAD.encode(&p[1..33]),
            y: URL_SAFE_NO_PAD.encode(&p[33..65]),
        }
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, TokenError> {
        let header = JwsHeader {
            alg: ALG.into(),
            kid: Some(self.kid.clone()),
            typ: Some("JWT".into()),
        };
        let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let json = |e: serde_json::Error| TokenError::Malformed(e.to_string());
        let input = format!(
            "{}.{}",
            enc(&serde_json::to_vec(&header).map_err(json)?),
            enc(&serde_json::to_vec(claims).map_err(json)?)
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| TokenError::Keys("signing failed".into()))?;
        Ok(format!("{input}.{}", enc(sig.as_ref())))
    }
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// A token split into its parts, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken {
    kid: Option<String>,
    claims: AccessTokenClaims,
    signing_input: String,
    signature: Vec<u8>,
}

impl UnverifiedToken {
    /// Parses a compact JWS: three base64url parts, an `ES256` header, the claims.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "not three dot-separated parts".into(),
            ));
        };
        let dec = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))
        };
        let header: JwsHeader = serde_json::from_slice(&dec(h, "header")?)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if header.alg != ALG {
            return Err(TokenError::Malformed(format!(
                "algorithm {:?} is not accepted (only {ALG})",
                header.alg.chars().take(16).collect::<String>()
            )));
        }
        let claims: AccessTokenClaims = serde_json::from_slice(&dec(c, "claims")?)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        let signature = dec(s, "signature")?;
        if signature.len() != 64 {
            return Err(TokenError::Malformed(
                "ES256 signature must be 64 bytes".into(),
            ));
        }
        Ok(Self {
            kid: header.kid,
            claims,
            signing_input: format!("{h}.{c}"),
            signature,
        })
    }

    /// The claims, unchecked.
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }
}

enum KeySource {
    /// The NRF's own keys.
    Local(HashMap<String, Vec<u8>>),
    /// Fetched from the NRF's JWK set.
    Remote {
        client: SbiClient,
        url: String,
        keys: std::sync::RwLock<HashMap<String, Vec<u8>>>,
        last_fetch: tokio::sync::Mutex<Option<Instant>>,
    },
}

/// Checks signature and expiry of access tokens against the NRF's keys.
pub struct TokenVerifier {
    keys: KeySource,
    /// Tokens whose signature verified, by the whole token text: a consumer sends the same
    /// token for up to its lifetime, and an ES256 verification costs far more than the
    /// request it guards. Bounded; expiry is still checked on every use.
    verified: Mutex<HashMap<String, Arc<AccessTokenClaims>>>,
}

/// Verified tokens remembered at most (the map is emptied of expired ones, or cleared,
/// when full).
const VERIFIED_CACHE: usize = 8192;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Verifies with known keys (the NRF itself).
    pub fn local(keys: &JwkSet) -> Result<Self, TokenError> {
        let mut map = HashMap::new();
        for k in &keys.keys {
            map.insert(k.kid.clone(), k.public_point()?);
        }
        Ok(Self {
            keys: KeySource::Local(map),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies with the keys of the NRF at `nrf_uri`, fetched on first use and again when
    /// a token names an unknown `kid` (at most every 2 s).
    pub fn remote(client: SbiClient, nrf_uri: &str) -> Self {
        Self {
            verified: Mutex::new(HashMap::new()),
            keys: KeySource::Remote {
                client,
                url: jwks_url(nrf_uri),
                keys: Default::default(),
                last_fetch: Default::default(),
            },
        }
    }

    async fn key(&self, kid: &str) -> Result<Vec<u8>, TokenError> {
        match &self.keys {
            KeySource::Local(map) => map.get(kid).cloned().ok_or(TokenError::UnknownKey),
            KeySource::Remote {
                client,
                url,
                keys,
                last_fetch,
            } => {
                if let Some(k) = keys.read().ok().and_then(|m| m.get(kid).cloned()) {
                    return Ok(k);
                }
                let mut last = last_fetch.lock().await;
                // Another request may have fetched while this one waited.
                if let Some(k) = keys.read().ok().and_then(|m| m.get(kid).cloned()) {
                    return Ok(k);
                }
                if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH) {
                    return Err(TokenError::UnknownKey);
                }
                *last = Some(Instant::now());
                let set: JwkSet = client
                    .get(url.clone())
                    .service(TOKEN_SERVICE)
                    .operation("jwks")
                    .send_json()
                    .await
                    .map_err(|e| TokenError::Keys(e.to_string()))?;
                let mut fresh = HashMap::new();
                for k in &set.keys {
                    fresh.insert(k.kid.clone(), k.public_point()?);
                }
                let found = fresh.get(kid).cloned();
                if let Ok(mut m) = keys.write() {
                    m.extend(fresh);
                }
                found.ok_or(TokenError::UnknownKey)
            }
        }
    }

    /// The token's claims when its signature verifies and it has not expired.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, TokenError> {
        let t = UnverifiedToken::parse(token)?;
        let kid = t.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.key(kid).await?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
            .verify(t.signing_input.as_bytes(), &t.signature)
            .map_err(|_| TokenError::BadSignature)?;
        let now = now_s();
        if t.claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE {
                cache.retain(|_, c| c.exp > now);
                if cache.len() >= VERIFIED_CACHE {
                    cache.clear();
                }
            }
            cache.insert(token.to_owned(), Arc::new(t.claims.clone()));
        }
        Ok(t.claims)
    }

    /// [`TokenVerifier::verify`], answered from the tokens already verified when `token`
    /// is one of them (the same text, byte for byte) and has not expired.
    pub async fn verify_cached(&self, token: &str) -> Result<AccessTokenClaims, TokenError> {
        let hit = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned());
        match hit {
            Some(c) if c.exp > now_s() => Ok((*c).clone()),
            Some(_) => Err(TokenError::Expired),
            None => self.verify(token).await,
        }
    }
}

/// What an NF's server checks on every service operation: a valid token whose audience is
/// this NF (type or instance) and whose scope names the service.
#[derive(Clone)]
pub struct AccessControl {
    verifier: Arc<TokenVerifier>,
    nf_type: String,
    instance_id: String,
    token_url: Option<String>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("nf_type", &self.nf_type)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

/// Why a request was refused: what [`AccessControl::check`] returns.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    cause: &'static str,
    detail: String,
    challenge: String,
}

impl Refusal {
    fn unauthorized(
        cause: &'static str,
        detail: String,
        service: &str,
        error: Option<&str>,
    ) -> Self {
        let challenge = match error {
            None => format!("Bearer realm=\"netgpt\", scope=\"{service}\""),
            Some(e) => format!(
                "Bearer realm=\"netgpt\", error=\"{e}\", error_description=\"{}\"",
                detail.replace('"', "'")
            ),
        };
        Self {
            status: StatusCode::UNAUTHORIZED,
            cause,
            detail,
            challenge,
        }
    }

    fn forbidden(cause: &'static str, detail: String, service: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            cause,
            challenge: format!(
                "Bearer realm=\"netgpt\", error=\"insufficient_scope\", scope=\"{service}\""
            ),
            detail,
        }
    }

    /// The HTTP status (401, 403 or 503).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The ProblemDetails cause.
    pub fn cause(&self) -> &'static str {
        self.cause
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = ProblemDetails::new(self.status, self.cause, self.detail).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

impl AccessControl {
    /// Checks tokens for the NF `instance_id` of type `nf_type` with `verifier`.
    pub fn new(verifier: Arc<TokenVerifier>, nf_type: &str, instance_id: &str) -> Self {
        Self {
            verifier,
            nf_type: nf_type.to_owned(),
            instance_id: instance_id.to_owned(),
            token_url: None,
        }
    }

    /// Names the NRF's token endpoint in the NF's served OpenAPI document (an OAuth2
    /// client-credentials security scheme on every protected operation).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// The token endpoint given to [`AccessControl::with_token_url`].
    pub fn token_url(&self) -> Option<&str> {
        self.token_url.as_deref()
    }

    /// The claims of the request's bearer token when it may call `service`.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        service: &str,
    ) -> Result<AccessTokenClaims, Refusal> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::unauthorized(
                "MISSING_ACCESS_TOKEN",
                format!("{service} requires an OAuth2 access token (Authorization: Bearer)"),
                service,
                None,
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                Refusal::unauthorized(
                    "INVALID_ACCESS_TOKEN",
                    "the Authorization header is not a Bearer token".into(),
                    service,
                    Some("invalid_request"),
                )
            })?;
        let claims = match self.verifier.verify_cached(token).await {
            Ok(c) => c,
            Err(e @ TokenError::Keys(_)) => {
                return Err(Refusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    cause: "NRF_KEYS_UNAVAILABLE",
                    detail: e.to_string(),
                    challenge: "Bearer realm=\"netgpt\"".into(),
                })
            }
            Err(e) => {
                return Err(Refusal::unauthorized(
                    "INVALID_ACCESS_TOKEN",
                    e.to_string(),
                    service,
                    Some("invalid_token"),
                ))
            }
        };
        if !claims.admits(&self.nf_type, &self.instance_id) {
            return Err(Refusal::forbidden(
                "INVALID_AUDIENCE",
                format!(
                    "the access token is not for this NF ({} {})",
                    self.nf_type, self.instance_id
                ),
                service,
            ));
        }
        if !claims.has_scope(service) {
            return Err(Refusal::forbidden(
                "INSUFFICIENT_SCOPE",
                format!("the access token's scope does not include {service}"),
                service,
            ));
        }
        Ok(claims)
    }
}

/// Name of the security scheme in the NFs' OpenAPI documents (as in TS 29.510's files).
pub const SECURITY_SCHEME: &str = "oAuth2ClientCredentials";

/// Adds to `doc` the OAuth2 client-credentials scheme with `token_url` and requires the
/// scope `service` on every operation (what the NF enforces).
pub fn document_security(doc: &mut utoipa::openapi::OpenApi, service: &str, token_url: &str) {
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::security::{
        ClientCredentials, Flow, OAuth2, Scopes, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Content, Ref};
    let scheme = SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
        ClientCredentials::new(
            token_url,
            Scopes::one(service.to_owned(), format!("Access to {service}")),
        ),
    )]));
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(SECURITY_SCHEME, scheme);
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new(SECURITY_SCHEME, [service])]);
            for (status, what) in [
                (
                    "401",
                    "No, malformed, forged or expired access token (WWW-Authenticate: Bearer)",
                ),
                (
                    "403",
                    "The access token is for another NF or another service",
                ),
            ] {
                op.responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(what)
                            .content(
                                crate::problem::PROBLEM_JSON,
                                Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
    // The ProblemDetails schema the answers above refer to, where the document lacks it.
    let components = doc.components.get_or_insert_with(Default::default);
    if !components.schemas.contains_key("ProblemDetails") {
        use crate::problem::ProblemDetails;
        let mut schemas = vec![(
            "ProblemDetails".to_owned(),
            <ProblemDetails as utoipa::PartialSchema>::schema(),
        )];
        <ProblemDetails as utoipa::ToSchema>::schemas(&mut schemas);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
}

/// TS 29.510 `AccessTokenReq` (form-encoded on the wire), the fields the testbed uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenReq {
    /// `client_credentials`.
    pub grant_type: String,
    /// The consumer's NF instance id.
    #[serde(rename = "nfInstanceId")]
    pub nf_instance_id: String,
    /// The consumer's NF type.
    #[serde(rename = "nfType", default, skip_serializing_if = "Option::is_none")]
    pub nf_type: Option<String>,
    /// The producer's NF type.
    #[serde(
        rename = "targetNfType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_nf_type: Option<String>,
    /// Space-separated service names.
    pub scope: String,
    /// The producer's NF instance id (narrows the audience to it).
    #[serde(
        rename = "targetNfInstanceId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_nf_instance_id: Option<String>,
}

impl AccessTokenReq {
    /// A client-credentials request of the consumer `nf_instance_id` of type `nf_type` for
    /// the services `scope` (space-separated) of NF type `target_nf_type`.
    pub fn client_credentials(
        nf_instance_id: &str,
        nf_type: &str,
        target_nf_type: &str,
        scope: &str,
    ) -> Self {
        Self {
            grant_type: "client_credentials".into(),
            nf_instance_id: nf_instance_id.to_owned(),
            nf_type: Some(nf_type.to_owned()),
            target_nf_type: Some(target_nf_type.to_owned()),
            scope: scope.to_owned(),
            target_nf_instance_id: None,
        }
    }

    /// The `application/x-www-form-urlencoded` body (absent fields left out).
    pub fn to_form(&self) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair("grant_type", &self.grant_type)
            .append_pair("nfInstanceId", &self.nf_instance_id);
        let optional = [
            ("nfType", &self.nf_type),
            ("targetNfType", &self.target_nf_type),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("scope", &self.scope);
        if let Some(v) = &self.target_nf_instance_id {
            ser.append_pair("targetNfInstanceId", v);
        }
        ser.finish()
    }
}

/// TS 29.510 `AccessTokenRsp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRsp {
    /// The token (compact JWS).
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
}

/// TS 29.510 `AccessTokenErr` (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenErr {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type` or `invalid_scope`.
    pub error: String,
    /// What was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// HTTP Basic credentials (`Authorization: Basic base64(id:secret)`).
pub fn basic_auth(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// `(id, secret)` of an HTTP Basic `Authorization` header value.
pub fn parse_basic_auth(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Compares secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

/// Fetches access tokens from the NRF for an NF service consumer and caches them per
/// (target NF type, service) until shortly before they expire.
pub struct NrfTokenProvider {
    http: SbiClient,
    token_url: String,
    instance_id: String,
    nf_type: String,
    secret: String,
    cache: Mutex<HashMap<(String, String), CachedToken>>,
    fetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NrfTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NrfTokenProvider")
            .field("token_url", &self.token_url)
            .field("instance_id", &self.instance_id)
            .field("nf_type", &self.nf_type)
            .finish_non_exhaustive()
    }
}

impl NrfTokenProvider {
    /// A provider for the consumer `instance_id` of type `nf_type`, asking the NRF at
    /// `nrf_uri` with `http` (a client without a token provider) and `secret`.
    pub fn new(
        http: SbiClient,
        nrf_uri: &str,
        instance_id: &str,
        nf_type: &str,
        secret: &str,
    ) -> Self {
        Self {
            http,
            token_url: token_url(nrf_uri),
            instance_id: instance_id.to_owned(),
            nf_type: nf_type.to_owned(),
            secret: secret.to_owned(),
            cache: Mutex::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|c| Instant::now() < c.renew_at)
            .map(|c| c.token.clone())
    }

    /// Forgets every cached token (the next call asks the NRF again).
    pub fn clear(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// A token for `scope` (space-separated services) of `target_nf_type`, from the cache
    /// or the NRF.
    pub async fn token(&self, target_nf_type: &str, scope: &str) -> Result<String, ClientError> {
        let key = (target_nf_type.to_owned(), scope.to_owned());
        if let Some(t) = self.cached(&key) {
            return Ok(t);
        }
        let _one_at_a_time = self.fetch.lock().await;
        if let Some(t) = self.cached(&key) {
            return Ok(t);
        }
        let form = AccessTokenReq::client_credentials(
            &self.instance_id,
            &self.nf_type,
            target_nf_type,
            scope,
        )
        .to_form();
        let resp = self
            .http
            .post(self.token_url.clone())
            .service(TOKEN_SERVICE)
            .operation("AccessTokenRequest")
            .header(
                header::AUTHORIZATION.as_str(),
                &basic_auth(&self.instance_id, &self.secret),
            )
            .body(form, "application/x-www-form-urlencoded")
            .send()
            .await
            .map_err(|e| ClientError::Token(format!("token request for {scope}: {e}")))?;
        let rsp: AccessTokenRsp = resp
            .json()
            .map_err(|e| ClientError::Token(format!("token response for {scope}: {e}")))?;
        let lifetime = Duration::from_secs(rsp.expires_in);
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2));
        if let Ok(mut c) = self.cache.lock() {
            c.insert(
                key,
                CachedToken {
                    token: rsp.access_token.clone(),
                    renew_at,
                },
            );
        }
        Ok(rsp.access_token)
    }
}

impl TokenProvider for NrfTokenProvider {
    fn access_token<'a>(&'a self, scope: TokenScope<'a>) -> TokenFuture<'a> {
        Box::pin(async move {
            // Calls to the token service itself carry no token.
            if scope.service == TOKEN_SERVICE {
                return Ok(None);
            }
            let target = match scope.target_nf_type {
                Some(t) => t.to_owned(),
                None => nf_type_of_service(scope.service).ok_or_else(|| {
                    ClientError::Token(format!(
                        "no NF type known for service {:?}; name it on the request",
                        scope.service
                    ))
                })?,
            };
            self.token(&target, scope.service).await.map(Some)
        })
    }

    fn token_rejected(&self, scope: TokenScope<'_>) {
        let target = scope
            .target_nf_type
            .map(str::to_owned)
            .or_else(|| nf_type_of_service(scope.service));
        if let (Some(t), Ok(mut c)) = (target, self.cache.lock()) {
            c.remove(&(t, scope.service.to_owned()));
        }
    }
}

/// The SBI client of a consumer named `name` of type `nf_type` with instance id
/// `instance_id`: `base` with an [`NrfTokenProvider`] attached when `config.oauth2.enabled`.
pub fn with_tokens(
    base: SbiClient,
    config: &TestbedConfig,
    instance_id: &str,
    nf_type: &str,
) -> SbiClient {
    if !config.oauth2.enabled {
        return base;
    }
    let provider = provider(base.without_tokens(), config, instance_id, nf_type);
    base.with_token_provider(Arc::new(provider))
}

/// The token provider of the consumer `instance_id` of type `nf_type`, asking the NRF of
/// `config` over `http` (a client without a provider).
fn provider(
    http: SbiClient,
    config: &TestbedConfig,
    instance_id: &str,
    nf_type: &str,
) -> NrfTokenProvider {
    NrfTokenProvider::new(
        http,
        &config.nrf.uri,
        instance_id,
        nf_type,
        &config.oauth2.client_secret,
    )
}

/// A client without tokens for the tool `name`, trusting the testbed CA.
#[allow(clippy::result_large_err)] // ClientError carries ProblemDetails by design.
fn tool_client(config: &TestbedConfig, name: &str) -> Result<SbiClient, ClientError> {
    let cfg = crate::nf::client_config(config, name)
        .map_err(|e| ClientError::Request(format!("tls_ca: {e}")))?;
    SbiClient::try_with_config(cfg)
}

/// An SBI client for a tool or test acting as the NF service consumer `name` (type AF)
/// outside any NF: when `config.oauth2.enabled`, every call carries an access token the
/// client fetches from the NRF at `config.nrf.uri` (and caches) for the target service.
#[allow(clippy::result_large_err)] // ClientError carries ProblemDetails by design.
pub fn consumer_client(config: &TestbedConfig, name: &str) -> Result<SbiClient, ClientError> {
    Ok(with_tokens(
        tool_client(config, name)?,
        config,
        &consumer_instance_id(name).to_string(),
        "AF",
    ))
}

/// Asks the NRF at `config.nrf.uri` for an access token as the consumer `requester` (type
/// AF, instance id derived from the name) for the services `scope` (space-separated
/// service names) of NF type `target_nf_type`; returns the token (a compact JWS), or an
/// empty string when `config.oauth2.enabled` is false.
/// For tools that call NFs without an [`SbiClient`] (schemathesis, curl).
pub async fn request_token(
    config: &TestbedConfig,
    requester: &str,
    target_nf_type: &str,
    scope: &str,
) -> Result<String, ClientError> {
    if !config.oauth2.enabled {
        return Ok(String::new());
    }
    let id = consumer_instance_id(requester).to_string();
    provider(tool_client(config, requester)?, config, &id, "AF")
        .token(target_nf_type, scope)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: Audience, scope: &str, exp: u64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: Uuid::nil().to_string(),
            sub: consumer_instance_id("t").to_string(),
            aud,
            scope: scope.into(),
            exp,
            iat: now_s(),
            consumer_nf_type: Some("AF".into()),
        }
    }

    fn verifier(key: &SigningKey) -> Arc<TokenVerifier> {
        Arc::new(
            TokenVerifier::local(&JwkSet {
                keys: vec![key.jwk()],
            })
            .unwrap(),
        )
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn service_names_map_to_nf_types() {
        assert_eq!(nf_type_of_service("namf-loc").as_deref(), Some("AMF"));
        assert_eq!(nf_type_of_service("nnrf-disc").as_deref(), Some("NRF"));
        assert_eq!(
            nf_type_of_service("nedgeai-prompt").as_deref(),
            Some("EDGEAI")
        );
        assert_eq!(nf_type_of_service("openai").as_deref(), Some("CLOUDAI"));
        assert_eq!(nf_type_of_service("amf-loc"), None);
        assert_eq!(nf_type_of_service("n-x"), None);
        assert_eq!(nf_type_of_service("namf-"), None);
    }

    #[tokio::test]
    async fn a_signed_token_verifies_and_opens_only_its_service_at_its_audience() {
        let key = SigningKey::generate().unwrap();
        let token = key
            .sign(&claims(
                Audience::NfType("AMF".into()),
                "namf-loc",
                now_s() + 60,
            ))
            .unwrap();
        let amf = AccessControl::new(verifier(&key), "AMF", "amf-1");
        let c = amf.check(&bearer(&token), "namf-loc").await.unwrap();
        assert_eq!(c.scope, "namf-loc");
        let other_service = amf.check(&bearer(&token), "namf-evts").await.unwrap_err();
        assert_eq!(
            (other_service.status(), other_service.cause()),
            (StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE")
        );
        let nrf = AccessControl::new(verifier(&key), "NRF", "nrf-1");
        let other_nf = nrf.check(&bearer(&token), "namf-loc").await.unwrap_err();
        assert_eq!(other_nf.cause(), "INVALID_AUDIENCE");
    }

    #[tokio::test]
    async fn instance_audience_admits_only_those_instances() {
        let key = SigningKey::generate().unwrap();
        let token = key
            .sign(&claims(
                Audience::Instances(vec!["amf-1".into()]),
                "namf-loc",
                now_s() + 60,
            ))
            .unwrap();
        let ok = AccessControl::new(verifier(&key), "AMF", "amf-1");
        assert!(ok.check(&bearer(&token), "namf-loc").await.is_ok());
        let other = AccessControl::new(verifier(&key), "AMF", "amf-2");
        assert_eq!(
            other
                .check(&bearer(&token), "namf-loc")
                .await
                .unwrap_err()
                .cause(),
            "INVALID_AUDIENCE"
        );
    }

    #[tokio::test]
    async fn forged_expired_unsigned_and_missing_tokens_are_401() {
        let key = SigningKey::generate().unwrap();
        let other_key = SigningKey::generate().unwrap();
        let ac = AccessControl::new(verifier(&key), "AMF", "amf-1");
        let good = claims(Audience::NfType("AMF".into()), "namf-loc", now_s() + 60);
        // Missing.
        let r = ac.check(&HeaderMap::new(), "namf-loc").await.unwrap_err();
        assert_eq!(
            (r.status(), r.cause()),
            (StatusCode::UNAUTHORIZED, "MISSING_ACCESS_TOKEN")
        );
        let resp = r.into_response();
        assert!(resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        // Expired.
        let expired = key
            .sign(&claims(
                Audience::NfType("AMF".into()),
                "namf-loc",
                now_s() - 1,
            ))
            .unwrap();
        let r = ac.check(&bearer(&expired), "namf-loc").await.unwrap_err();
        assert_eq!(
            (r.status(), r.cause()),
            (StatusCode::UNAUTHORIZED, "INVALID_ACCESS_TOKEN")
        );
        // Signed by another key with the same kid: signature fails.
        let forged = other_key.sign(&good).unwrap();
        let mut parts: Vec<&str> = forged.split('.').collect();
        let genuine = key.sign(&good).unwrap();
        let genuine_header = genuine.split('.').next().unwrap().to_owned();
        parts[0] = &genuine_header;
        let r = ac
            .check(&bearer(&parts.join(".")), "namf-loc")
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // Claims changed after signing (scope widened).
        let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
        let mut widened = good.clone();
        widened.scope = "namf-loc namf-evts".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&widened).unwrap());
        let r = ac
            .check(&bearer(&parts.join(".")), "namf-evts")
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // alg none.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"x"}"#);
        let unsigned = format!(
            "{none_header}.{}.",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap())
        );
        let r = ac.check(&bearer(&unsigned), "namf-loc").await.unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // Basic instead of Bearer.
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&basic_auth("a", "b")).unwrap(),
        );
        assert_eq!(
            ac.check(&h, "namf-loc").await.unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_but_still_expires_and_forgeries_are_not() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key);
        let good = key
            .sign(&claims(
                Audience::NfType("AMF".into()),
                "namf-loc",
                now_s() + 60,
            ))
            .unwrap();
        assert!(v.verify_cached(&good).await.is_ok());
        assert_eq!(v.verified.lock().unwrap().len(), 1);
        assert!(v.verify_cached(&good).await.is_ok());
        // A token differing in one signature character is not a cache hit.
        let mut forged = good.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(v.verify_cached(&forged).await.is_err());
        // An entry past its expiry is refused even though it once verified.
        let short = claims(Audience::NfType("AMF".into()), "namf-loc", now_s() + 60);
        let t = key.sign(&short).unwrap();
        v.verify_cached(&t).await.unwrap();
        v.verified.lock().unwrap().insert(
            t.clone(),
            Arc::new(AccessTokenClaims {
                exp: now_s() - 1,
                ..short
            }),
        );
        assert_eq!(v.verify_cached(&t).await, Err(TokenError::Expired));
    }

    #[test]
    fn keys_round_trip_through_pkcs8_and_jwk() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.jwk(), again.jwk());
        assert_eq!(key.jwk().public_point().unwrap().len(), 65);
        assert!(SigningKey::from_pkcs8_der(b"not a key").is_err());
    }

    #[test]
    fn basic_auth_round_trips_and_secrets_compare() {
        let h = basic_auth("id-1", "s:e:c");
        assert_eq!(
            parse_basic_auth(&h),
            Some(("id-1".to_owned(), "s:e:c".to_owned()))
        );
        assert_eq!(parse_basic_auth("Bearer x"), None);
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
    }

    #[test]
    fn token_request_is_form_encoded_with_3gpp_names() {
        let req = AccessTokenReq::client_credentials("id", "AMF", "NRF", "nnrf-disc nnrf-nfm");
        let f = req.to_form();
        assert!(f.contains("nfType=AMF"));
        assert!(f.contains("grant_type=client_credentials"));
        assert!(f.contains("nfInstanceId=id"));
        assert!(f.contains("targetNfType=NRF"));
        assert!(f.contains("scope=nnrf-disc+nnrf-nfm"));
        assert!(!f.contains("targetNfInstanceId"));
    }
}
