//! The NRF's access token service (TS 29.510 `Nnrf_AccessToken`, OAuth2 client
//! credentials): `POST /oauth2/token` issues ES256-signed access tokens, `GET /oauth2/jwks`
//! publishes the public keys every NF verifies them with.
//!
//! What the NRF checks before issuing (each refusal an `AccessTokenErr`, RFC 6749 §5.2):
//! - the form is `application/x-www-form-urlencoded` with `grant_type=client_credentials`,
//!   `nfInstanceId` (a UUID) and `scope`, each parameter at most once (`invalid_request`,
//!   `unsupported_grant_type`);
//! - the client authenticates with HTTP Basic `nfInstanceId:client_secret` (401
//!   `invalid_client`), and a registered consumer cannot claim another NF type;
//! - every service in `scope` belongs to `targetNfType` (inferred from the scope when
//!   absent): `nnrf-nfm`/`nnrf-disc` for the NRF, the services registered NFs of that type
//!   offer (or their client APIs, [`CLIENT_APIS`]) for the others (`invalid_scope`). A token asked for the NRF therefore never
//!   names another NF's service (free5gc's targetNfType=NRF scope bypass).
//!
//! The signing key is `[oauth2] signing_key` when configured, else generated once and kept
//! in the NRF's database, so a restarted NRF (or a second NRF on the same PostgreSQL)
//! signs with the same key and tokens already issued stay valid.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use netgpt_sbi::config::OAuth2Config;
use netgpt_sbi::db::{Db, Migration};
use netgpt_sbi::oauth::{
    nf_type_of_service, parse_basic_auth, secrets_equal, AccessTokenClaims, AccessTokenErr,
    AccessTokenReq, AccessTokenRsp, Audience, JwkSet, SigningKey, TokenVerifier, CLIENT_APIS,
};
use sqlx::Row;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::{DISC_SERVICE, NFM_SERVICE};
use crate::context::NrfContext;

/// Metric: access tokens issued and refused, by `outcome` (`issued` or the OAuth2 error).
pub const ACCESS_TOKENS_TOTAL: &str = "nrf_access_token_requests_total";

/// The signing key's table (one row).
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "oauth2 signing key",
    "CREATE TABLE nrf_oauth_keys (
        id INTEGER PRIMARY KEY,
        kid TEXT NOT NULL,
        pkcs8 TEXT NOT NULL
    );",
)];

/// The token issuer: the NRF's key and identity, the client secret, the profile store.
#[derive(Debug)]
pub struct Issuer {
    key: SigningKey,
    nrf_instance_id: String,
    client_secret: String,
    ttl_s: u64,
    nrf: NrfContext,
}

impl Issuer {
    /// The issuer for the NRF `nrf_instance_id` with `key`.
    pub fn new(
        key: SigningKey,
        nrf_instance_id: &str,
        cfg: &OAuth2Config,
        nrf: NrfContext,
    ) -> Self {
        Self {
            key,
            nrf_instance_id: nrf_instance_id.to_owned(),
            client_secret: cfg.client_secret.clone(),
            ttl_s: cfg.token_ttl_s,
            nrf,
        }
    }

    /// The public keys (what `GET /oauth2/jwks` serves).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.key.jwk()],
        }
    }

    /// A verifier of this issuer's tokens (the NRF checks its own services with it).
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::local(&self.jwks()).expect("the NRF's own key is a P-256 key")
    }
}

/// The configured signing key, or the one kept in `db` (generated and stored on first use).
pub async fn signing_key(db: &Db, cfg: &OAuth2Config) -> Result<SigningKey, String> {
    if let Some(path) = &cfg.signing_key {
        return SigningKey::from_pem_file(path).map_err(|e| format!("oauth2.signing_key: {e}"));
    }
    db.migrate("nrf_oauth", MIGRATIONS)
        .await
        .map_err(|e| e.to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let load = || async {
        sqlx::query("SELECT pkcs8 FROM nrf_oauth_keys WHERE id = 1")
            .fetch_optional(db.pool())
            .await
            .map_err(|e| format!("reading the NRF signing key: {e}"))
    };
    if load().await?.is_none() {
        let fresh = SigningKey::generate().map_err(|e| e.to_string())?;
        // Two NRFs starting on one database: the first insert wins, both read it back.
        sqlx::query(
            "INSERT INTO nrf_oauth_keys (id, kid, pkcs8) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh.kid())
        .bind(b64.encode(fresh.pkcs8_der()))
        .execute(db.pool())
        .await
        .map_err(|e| format!("storing the NRF signing key: {e}"))?;
    }
    let row = load()
        .await?
        .ok_or_else(|| "the NRF signing key vanished".to_owned())?;
    let text: String = row.try_get(0).map_err(|e| e.to_string())?;
    let der = b64
        .decode(text)
        .map_err(|e| format!("stored NRF signing key: {e}"))?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| e.to_string())
}

/// The access token document (paths are added by [`routes`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "NRF OAuth2 Authorization",
        version = "1.0.0",
        description = "NetGPT NRF: Nnrf_AccessToken (3GPP TS 29.510 AccessTokenRequest, OAuth2 client credentials) and the JWK set the NFs verify tokens with."
    ),
    tags((name = "Access Token Request"))
)]
pub struct AccessTokenApi;

/// Routes and document of the token service, before the issuer is given.
pub fn routes() -> OpenApiRouter<Arc<Issuer>> {
    OpenApiRouter::with_openapi(AccessTokenApi::openapi())
        .routes(routes!(access_token_request))
        .routes(routes!(jwks))
}

/// Routes and document of the token service over `issuer`.
pub fn router(issuer: Arc<Issuer>) -> OpenApiRouter {
    routes().with_state(issuer)
}

struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl TokenError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        metrics::counter!(ACCESS_TOKENS_TOTAL, "outcome" => self.error).increment(1);
        let body = AccessTokenErr {
            error: self.error.into(),
            error_description: Some(self.description),
        };
        let mut resp = (self.status, Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"netgpt-nrf\"".parse().expect("static"),
            );
        }
        resp
    }
}

/// The form's parameters; a parameter given twice is refused (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<AccessTokenReq, TokenError> {
    let mut fields = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if fields.insert(k.to_string(), v.to_string()).is_some() {
            return Err(TokenError::new(
                "invalid_request",
                format!("parameter {k} is given more than once"),
            ));
        }
    }
    let mut take = |name: &str| fields.remove(name).filter(|v| !v.is_empty());
    let required = |v: Option<String>, name: &str| {
        v.ok_or_else(|| TokenError::new("invalid_request", format!("{name} is missing")))
    };
    Ok(AccessTokenReq {
        grant_type: required(take("grant_type"), "grant_type")?,
        nf_instance_id: required(take("nfInstanceId"), "nfInstanceId")?,
        nf_type: take("nfType"),
        target_nf_type: take("targetNfType"),
        scope: required(take("scope"), "scope")?,
        target_nf_instance_id: take("targetNfInstanceId"),
    })
}

fn uuid_param(value: &str, name: &str) -> Result<Uuid, TokenError> {
    Uuid::parse_str(value)
        .map_err(|_| TokenError::new("invalid_request", format!("{name} is not a UUID")))
}

/// AccessTokenRequest: `POST /oauth2/token`.
#[utoipa::path(
    post,
    path = "/oauth2/token",
    operation_id = "AccessTokenRequest",
    tag = "Access Token Request",
    summary = "Access Token Request (client credentials; HTTP Basic nfInstanceId:client_secret)",
    request_body(content = AccessTokenReqDoc, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Successful Access Token Request", body = AccessTokenRspDoc),
        (status = 400, description = "Error in the Access Token Request", body = AccessTokenErrDoc),
        (status = 401, description = "Client authentication failed", body = AccessTokenErrDoc),
    )
)]
async fn access_token_request(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue(&issuer, &headers, &body).await {
        Ok(rsp) => {
            metrics::counter!(ACCESS_TOKENS_TOTAL, "outcome" => "issued").increment(1);
            let mut resp = Json(rsp).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn issue(
    issuer: &Issuer,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AccessTokenRsp, TokenError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(TokenError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let req = parse_form(body)?;
    if req.grant_type != "client_credentials" {
        return Err(TokenError::new(
            "unsupported_grant_type",
            "only client_credentials is supported",
        ));
    }
    let consumer = uuid_param(&req.nf_instance_id, "nfInstanceId")?;
    // Client authentication: HTTP Basic nfInstanceId:client_secret.
    let (id, secret) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic_auth)
        .ok_or_else(|| {
            TokenError::new(
                "invalid_client",
                "HTTP Basic client authentication is required",
            )
        })?;
    if !id.eq_ignore_ascii_case(&req.nf_instance_id)
        || !secrets_equal(&secret, &issuer.client_secret)
    {
        return Err(TokenError::new(
            "invalid_client",
            "client authentication failed",
        ));
    }
    let registered = issuer
        .nrf
        .store
        .get(consumer)
        .await
        .map_err(|e| TokenError::new("invalid_request", format!("NRF store: {e}")))?
        .map(|s| s.profile.nf_type.as_str().to_owned());
    let consumer_type = match (&req.nf_type, &registered) {
        (Some(claimed), Some(reg)) if !claimed.eq_ignore_ascii_case(reg) => {
            return Err(TokenError::new(
                "invalid_client",
                format!("nfType {claimed} does not match the registered NF type {reg}"),
            ))
        }
        (Some(t), _) | (None, Some(t)) => t.to_ascii_uppercase(),
        (None, None) => {
            return Err(TokenError::new(
                "invalid_request",
                "nfType is missing and the NF is not registered",
            ))
        }
    };
    let services: Vec<&str> = req.scope.split(' ').filter(|s| !s.is_empty()).collect();
    if services.is_empty() {
        return Err(TokenError::new("invalid_scope", "scope names no service"));
    }
    let target = match &req.target_nf_type {
        Some(t) => t.to_ascii_uppercase(),
        None => nf_type_of_service(services[0])
            .ok_or_else(|| TokenError::new("invalid_request", "targetNfType is missing"))?,
    };
    for s in &services {
        if nf_type_of_service(s).as_deref() != Some(target.as_str()) {
            return Err(TokenError::new(
                "invalid_scope",
                format!("service {s} is not a service of NF type {target}"),
            ));
        }
    }
    if target == "NRF" {
        if let Some(s) = services
            .iter()
            .find(|s| **s != NFM_SERVICE && **s != DISC_SERVICE)
        {
            return Err(TokenError::new(
                "invalid_scope",
                format!("the NRF offers no service {s}"),
            ));
        }
    } else {
        let producers = issuer
            .nrf
            .store
            .list(Some(&target))
            .await
            .map_err(|e| TokenError::new("invalid_request", format!("NRF store: {e}")))?;
        // Before any producer registered the naming convention is all there is to check.
        if !producers.is_empty() {
            if let Some(s) = services.iter().find(|s| {
                !CLIENT_APIS.iter().any(|(api, _)| api == *s)
                    && !producers.iter().any(|p| p.service(s).is_some())
            }) {
                return Err(TokenError::new(
                    "invalid_scope",
                    format!("no registered {target} offers service {s}"),
                ));
            }
        }
    }
    let aud = match &req.target_nf_instance_id {
        Some(id) => Audience::Instances(vec![uuid_param(id, "targetNfInstanceId")?.to_string()]),
        None => Audience::NfType(target.clone()),
    };
    let now = netgpt_sbi::oauth::now_s();
    let scope = services.join(" ");
    let claims = AccessTokenClaims {
        iss: issuer.nrf_instance_id.clone(),
        sub: consumer.to_string(),
        aud,
        scope: scope.clone(),
        exp: now + issuer.ttl_s,
        iat: now,
        consumer_nf_type: Some(consumer_type),
    };
    let access_token = issuer
        .key
        .sign(&claims)
        .map_err(|e| TokenError::new("invalid_request", e.to_string()))?;
    tracing::debug!(consumer = %claims.sub, target = %target, scope = %scope, "access token issued");
    Ok(AccessTokenRsp {
        access_token,
        token_type: "Bearer".into(),
        expires_in: issuer.ttl_s,
        scope,
    })
}

/// The NRF's public signing keys: `GET /oauth2/jwks`.
#[utoipa::path(
    get,
    path = "/oauth2/jwks",
    operation_id = "GetJwks",
    tag = "Access Token Request",
    summary = "The public keys (JWK set, RFC 7517) access tokens are signed with",
    responses((status = 200, description = "The JWK set", body = JwkSetDoc))
)]
async fn jwks(State(issuer): State<Arc<Issuer>>) -> Json<JwkSet> {
    Json(issuer.jwks())
}

/// TS 29.510 `AccessTokenReq` as documented (form fields).
#[derive(utoipa::ToSchema)]
#[schema(as = AccessTokenReq)]
#[allow(dead_code, non_snake_case)]
struct AccessTokenReqDoc {
    /// `client_credentials`.
    grant_type: String,
    /// The consumer's NF instance id.
    #[schema(format = Uuid)]
    nfInstanceId: String,
    /// The consumer's NF type (required unless it is registered).
    nfType: Option<String>,
    /// The producer's NF type (default: from the scope).
    targetNfType: Option<String>,
    /// Space-separated service names.
    scope: String,
    /// Narrows the audience to one producer instance.
    #[schema(format = Uuid)]
    targetNfInstanceId: Option<String>,
}

/// TS 29.510 `AccessTokenRsp`.
#[derive(utoipa::ToSchema)]
#[schema(as = AccessTokenRsp)]
#[allow(dead_code)]
struct AccessTokenRspDoc {
    /// The access token (compact JWS, ES256).
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds until expiry.
    expires_in: u64,
    /// The granted scope.
    scope: String,
}

/// TS 29.510 `AccessTokenErr`.
#[derive(utoipa::ToSchema)]
#[schema(as = AccessTokenErr)]
#[allow(dead_code)]
struct AccessTokenErrDoc {
    /// The OAuth2 error code.
    error: String,
    /// What was wrong.
    error_description: Option<String>,
}

/// A JWK set (EC P-256 keys).
#[derive(utoipa::ToSchema)]
#[schema(as = JwkSet)]
#[allow(dead_code)]
struct JwkSetDoc {
    /// The keys: `kty` EC, `crv` P-256, `kid`, `alg` ES256, `use` sig, `x`, `y`.
    keys: Vec<serde_json::Value>,
}
