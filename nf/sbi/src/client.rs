//! The SBI client: HTTP/2 with prior knowledge (h2c) to `http://` peers, a deadline per
//! call, bounded retries with backoff, outbound metrics, an access-token hook, and error
//! responses decoded into [`ProblemDetails`].
//!
//! ```ignore
//! let client = SbiClient::new("amf");
//! let result: SearchResult = client
//!     .get(format!("{nrf}/nnrf-disc/v1/nf-instances"))
//!     .service("nnrf-disc")
//!     .operation("nf_discover")
//!     .query(&[("target-nf-type", "NRF"), ("requester-nf-type", "AMF")])
//!     .send_json()
//!     .await?;
//! ```
//!
//! Retry policy: a call has one deadline ([`ClientConfig::deadline`] or
//! [`SbiRequest::deadline`]) covering every attempt. Connection failures (the request
//! never reached the peer) are retried for every method; timeouts of an attempt and
//! `429/502/503/504` answers are retried only for idempotent methods (GET, HEAD, PUT,
//! DELETE, OPTIONS). Backoff doubles from [`ClientConfig::backoff`], honours
//! `Retry-After` when it fits the deadline, and stops after [`ClientConfig::max_retries`].
//!
//! Tracing: a call is one span of kind client named after its operation (all attempts
//! inside it), with `nf.name`, `sbi.service`, `http.request.method`, `url.full`,
//! `http.response.status_code`; it injects W3C `traceparent` into the request so the
//! peer's server span is its child (see [`crate::telemetry`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, StatusCode, Version};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::metrics;
use crate::problem::ProblemDetails;

/// Future returned by a [`TokenProvider`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, ClientError>> + Send + 'a>>;

/// What a token is requested for (TS 29.510 OAuth2: the scope is the service name).
#[derive(Debug, Clone, Copy)]
pub struct TokenScope<'a> {
    /// Target service name (`namf-loc`), the OAuth2 scope.
    pub service: &'a str,
    /// Target NF type, when the caller knows it (`AMF`).
    pub target_nf_type: Option<&'a str>,
}

/// Supplies access tokens for outbound calls (implemented by the security work: token
/// fetch from the NRF and caching). `Ok(None)` sends no `Authorization` header.
pub trait TokenProvider: Send + Sync + 'static {
    /// A bearer token for `scope`, or `None`.
    fn access_token<'a>(&'a self, scope: TokenScope<'a>) -> TokenFuture<'a>;

    /// The peer answered 401 to the token given for `scope` (expired, or the NRF's key
    /// changed): forget it, the call asks once more.
    fn token_rejected(&self, _scope: TokenScope<'_>) {}
}

/// Errors of an SBI call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer answered with an error status; `problem` is its ProblemDetails body, or one
    /// synthesised from the status and body text when it sent none.
    #[error("{method} {url}: {problem}")]
    Status {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// The decoded (or synthesised) problem.
        problem: ProblemDetails,
    },
    /// The call's deadline passed (after `attempts` attempts).
    #[error("{method} {url}: no answer within {deadline:?} ({attempts} attempts)")]
    Timeout {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// The deadline of the call.
        deadline: Duration,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The peer could not be reached (after `attempts` attempts).
    #[error("{method} {url}: cannot connect ({attempts} attempts): {reason}")]
    Connect {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// Root cause of the last failure (`Connection refused (os error 111)`).
        reason: String,
    },
    /// Any other transport error (protocol error, reset stream, ...).
    #[error("{method} {url}: {reason}")]
    Transport {
        /// Request method.
        method: Method,
        /// Request URL.
        url: String,
        /// Root cause of the failure.
        reason: String,
    },
    /// A success body did not decode as the expected type.
    #[error("{url}: unexpected response body: {error}")]
    Decode {
        /// Request URL.
        url: String,
        /// The JSON error.
        error: serde_json::Error,
    },
    /// The request could not be built (bad URL, body not serialisable, bad header).
    #[error("invalid request: {0}")]
    Request(String),
    /// The token provider failed.
    #[error("access token: {0}")]
    Token(String),
    /// NF discovery found no producer.
    #[error("no {target} instance offers {service}")]
    NoProducer {
        /// Target NF type.
        target: String,
        /// Requested service.
        service: String,
    },
}

impl ClientError {
    /// The ProblemDetails of an error response.
    pub fn problem(&self) -> Option<&ProblemDetails> {
        match self {
            ClientError::Status { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The HTTP status of an error response.
    pub fn status(&self) -> Option<StatusCode> {
        self.problem()
            .and_then(|p| StatusCode::from_u16(p.status).ok())
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The calling NF instance (`amf`): the `nf` metrics label and the User-Agent.
    pub nf: String,
    /// Deadline of one call, all attempts included.
    pub deadline: Duration,
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// First backoff; doubles per retry.
    pub backoff: Duration,
    /// Speak HTTP/2 with prior knowledge (h2c) to `http://` peers; `false` = HTTP/1.1.
    /// `https://` peers are always offered HTTP/2 by ALPN.
    pub http2_prior_knowledge: bool,
    /// Extra trusted CA certificates (PEM) for `https://` peers, e.g. the testbed's own CA.
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// Client certificate chain and private key (PEM, concatenated) presented to
    /// `https://` peers that ask for one (mutual TLS).
    pub identity_pem: Option<Vec<u8>>,
}

impl ClientConfig {
    /// Defaults: 5 s deadline, 2 retries, 50 ms first backoff, h2c.
    pub fn new(nf: impl Into<String>) -> Self {
        Self {
            nf: nf.into(),
            deadline: Duration::from_secs(5),
            max_retries: 2,
            backoff: Duration::from_millis(50),
            http2_prior_knowledge: true,
            root_certificates_pem: Vec::new(),
            identity_pem: None,
        }
    }
}

/// The SBI client. Cheap to clone (one connection pool shared by clones).
#[derive(Clone)]
pub struct SbiClient {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    tokens: Option<Arc<dyn TokenProvider>>,
}

impl std::fmt::Debug for SbiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SbiClient")
            .field("cfg", &self.cfg)
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

impl SbiClient {
    /// A client for NF `nf` with the default [`ClientConfig`].
    pub fn new(nf: impl Into<String>) -> Self {
        Self::with_config(ClientConfig::new(nf))
    }

    /// A client with explicit settings.
    ///
    /// # Panics
    /// When a PEM in `root_certificates_pem` is not a certificate (use [`SbiClient::try_with_config`]).
    pub fn with_config(cfg: ClientConfig) -> Self {
        Self::try_with_config(cfg).expect("SBI client configuration")
    }

    /// A client with explicit settings; fails on an unusable CA certificate.
    #[allow(clippy::result_large_err)] // ClientError carries ProblemDetails by design.
    pub fn try_with_config(cfg: ClientConfig) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .user_agent(cfg.nf.clone())
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        if cfg.http2_prior_knowledge {
            b = b.http2_prior_knowledge();
        }
        for pem in &cfg.root_certificates_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Request(format!("CA certificate: {}", root_cause(&e))))?;
            b = b.add_root_certificate(cert);
        }
        if let Some(pem) = &cfg.identity_pem {
            let id = reqwest::Identity::from_pem(pem).map_err(|e| {
                ClientError::Request(format!("client certificate: {}", root_cause(&e)))
            })?;
            b = b.identity(id);
        }
        let http = b
            .build()
            .map_err(|e| ClientError::Request(root_cause(&e)))?;
        Ok(Self {
            http,
            cfg: Arc::new(cfg),
            tokens: None,
        })
    }

    /// The same client (same pool) without an access-token provider.
    pub fn without_tokens(&self) -> Self {
        Self {
            tokens: None,
            ..self.clone()
        }
    }

    /// Attaches an access-token provider; every call asks it for a token.
    pub fn with_token_provider(mut self, provider: Arc<dyn TokenProvider>) -> Self {
        self.tokens = Some(provider);
        self
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The underlying reqwest client (same pool), for calls outside the SBI conventions.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: impl Into<String>) -> SbiRequest {
        SbiRequest {
            client: self.clone(),
            method,
            url: url.into(),
            service: None,
            operation: None,
            target_nf_type: None,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            deadline: None,
            max_retries: None,
            error: None,
        }
    }

    /// `GET url`.
    pub fn get(&self, url: impl Into<String>) -> SbiRequest {
        self.request(Method::GET, url)
    }
    /// `PUT url`.
    pub fn put(&self, url: impl Into<String>) -> SbiRequest {
        self.request(Method::PUT, url)
    }
    /// `POST url`.
    pub fn post(&self, url: impl Into<String>) -> SbiRequest {
        self.request(Method::POST, url)
    }
    /// `PATCH url`.
    pub fn patch(&self, url: impl Into<String>) -> SbiRequest {
        self.request(Method::PATCH, url)
    }
    /// `DELETE url`.
    pub fn delete(&self, url: impl Into<String>) -> SbiRequest {
        self.request(Method::DELETE, url)
    }
}

/// One call being built; finish with [`SbiRequest::send`] or [`SbiRequest::send_json`].
#[must_use = "a request does nothing until sent"]
pub struct SbiRequest {
    client: SbiClient,
    method: Method,
    url: String,
    service: Option<String>,
    operation: Option<String>,
    target_nf_type: Option<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<(Bytes, &'static str)>,
    deadline: Option<Duration>,
    max_retries: Option<u32>,
    error: Option<ClientError>,
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct SbiResponse {
    /// Status code.
    pub status: StatusCode,
    /// HTTP version the exchange used.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl SbiResponse {
    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
}

/// Whether a method may be repeated without changing the outcome (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

/// The service name of an SBI URL: the first path segment (`/nnrf-disc/v1/...` -> `nnrf-disc`).
pub fn service_of_url(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
    path.split(['/', '?'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

impl SbiRequest {
    /// The target service name (metrics label, token scope); default: the URL's first path segment.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The 3GPP operation name (metrics label), e.g. `nf_discover`; default: the method.
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// The target NF type, passed to the token provider.
    pub fn target_nf_type(mut self, nf_type: impl Into<String>) -> Self {
        self.target_nf_type = Some(nf_type.into());
        self
    }

    /// Appends query parameters.
    pub fn query<K: ToString, V: ToString>(mut self, pairs: &[(K, V)]) -> Self {
        self.query
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.error = Some(ClientError::Request(format!("bad header {name}: {value}"))),
        }
        self
    }

    /// A JSON body (`application/json`).
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        self.json_as(body, "application/json")
    }

    /// A JSON Patch body (`application/json-patch+json`, RFC 6902).
    pub fn json_patch<T: Serialize + ?Sized>(self, patch: &T) -> Self {
        self.json_as(patch, "application/json-patch+json")
    }

    fn json_as<T: Serialize + ?Sized>(mut self, body: &T, content_type: &'static str) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = Some((Bytes::from(bytes), content_type)),
            Err(e) => self.error = Some(ClientError::Request(format!("body: {e}"))),
        }
        self
    }

    /// A raw body with its content type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &'static str) -> Self {
        self.body = Some((body.into(), content_type));
        self
    }

    /// The deadline of this call (all attempts), instead of the client's.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries after the first attempt, instead of the client's.
    pub fn retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Sends the call; a non-2xx answer is [`ClientError::Status`] with its ProblemDetails.
    pub async fn send(mut self) -> Result<SbiResponse, ClientError> {
        let operation = self
            .operation
            .clone()
            .unwrap_or_else(|| self.method.as_str().to_ascii_lowercase());
        let service = self
            .service
            .clone()
            .unwrap_or_else(|| service_of_url(&self.url));
        let span = tracing::info_span!(
            "sbi_client",
            otel.name = %operation,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            nf.name = %self.client.cfg.nf,
            sbi.service = %service,
            http.request.method = %self.method,
            url.full = %self.url,
            http.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        crate::telemetry::inject(&span, &mut self.headers);
        let result = self.send_attempts().instrument(span.clone()).await;
        match &result {
            Ok(resp) => {
                span.record("http.response.status_code", resp.status.as_u16());
            }
            Err(e) => {
                if let Some(status) = e.status() {
                    span.record("http.response.status_code", status.as_u16());
                }
                span.record("otel.status_code", "error");
                span.record("error.type", error_type(e));
            }
        }
        result
    }

    async fn send_attempts(self) -> Result<SbiResponse, ClientError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let cfg = self.client.cfg.clone();
        let service = self
            .service
            .clone()
            .unwrap_or_else(|| service_of_url(&self.url));
        let operation = self
            .operation
            .clone()
            .unwrap_or_else(|| self.method.as_str().to_ascii_lowercase());
        let deadline = self.deadline.unwrap_or(cfg.deadline);
        let max_retries = self.max_retries.unwrap_or(cfg.max_retries);
        let idempotent = is_idempotent(&self.method);
        let scope = TokenScope {
            service: &service,
            target_nf_type: self.target_nf_type.as_deref(),
        };
        let mut token = match &self.client.tokens {
            Some(p) => p.access_token(scope).await?,
            None => None,
        };
        let mut token_renewed = false;
        let mut target = reqwest::Url::parse(&self.url)
            .map_err(|e| ClientError::Request(format!("{}: {e}", self.url)))?;
        if !self.query.is_empty() {
            target.query_pairs_mut().extend_pairs(self.query.iter());
        }
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut backoff = cfg.backoff;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(ClientError::Timeout {
                    method: self.method,
                    url: self.url,
                    deadline,
                    attempts: attempt - 1,
                });
            }
            let mut rb = self
                .client
                .http
                .request(self.method.clone(), target.clone())
                .timeout(remaining);
            rb = rb.headers(self.headers.clone());
            if let Some(t) = &token {
                rb = rb.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            if let Some((body, ct)) = &self.body {
                rb = rb.header(CONTENT_TYPE, *ct).body(body.clone());
            }
            let sent = Instant::now();
            let outcome = rb.send().await;
            let retry_after;
            let retry_reason: ClientError = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let version = resp.version();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await;
                    metrics::record_outbound(
                        &cfg.nf,
                        &service,
                        &operation,
                        self.method.as_str(),
                        Some(status.as_u16()),
                        sent.elapsed(),
                    );
                    let body = match body {
                        Ok(b) => b,
                        Err(source) => {
                            return Err(ClientError::Transport {
                                method: self.method,
                                url: self.url,
                                reason: root_cause(&source),
                            })
                        }
                    };
                    if status.is_success() {
                        return Ok(SbiResponse {
                            status,
                            version,
                            headers,
                            body,
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED && token.is_some() && !token_renewed {
                        // A 401 was not acted on: resending is safe for every method.
                        if let Some(p) = &self.client.tokens {
                            p.token_rejected(scope);
                            token = p.access_token(scope).await?;
                            token_renewed = true;
                            continue;
                        }
                    }
                    let problem = decode_problem(status, &headers, &body);
                    let retryable = idempotent
                        && matches!(
                            status,
                            StatusCode::TOO_MANY_REQUESTS
                                | StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                    let err = ClientError::Status {
                        method: self.method.clone(),
                        url: self.url.clone(),
                        problem,
                    };
                    if !retryable {
                        return Err(err);
                    }
                    retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    err
                }
                Err(source) => {
                    metrics::record_outbound(
                        &cfg.nf,
                        &service,
                        &operation,
                        self.method.as_str(),
                        None,
                        sent.elapsed(),
                    );
                    retry_after = None;
                    if source.is_connect() {
                        ClientError::Connect {
                            method: self.method.clone(),
                            url: self.url.clone(),
                            attempts: attempt,
                            reason: root_cause(&source),
                        }
                    } else if source.is_timeout() {
                        if !idempotent || started.elapsed() >= deadline {
                            return Err(ClientError::Timeout {
                                method: self.method,
                                url: self.url,
                                deadline,
                                attempts: attempt,
                            });
                        }
                        ClientError::Timeout {
                            method: self.method.clone(),
                            url: self.url.clone(),
                            deadline,
                            attempts: attempt,
                        }
                    } else {
                        return Err(ClientError::Transport {
                            method: self.method,
                            url: self.url,
                            reason: root_cause(&source),
                        });
                    }
                }
            };
            let wait = retry_after.unwrap_or(backoff);
            if attempt > max_retries || started.elapsed() + wait >= deadline {
                tracing::debug!(url = %self.url, attempt, "giving up: {retry_reason}");
                return Err(match retry_reason {
                    ClientError::Connect {
                        method,
                        url,
                        reason,
                        ..
                    } => ClientError::Connect {
                        method,
                        url,
                        attempts: attempt,
                        reason,
                    },
                    other => other,
                });
            }
            tracing::debug!(url = %self.url, attempt, ?wait, "retrying: {retry_reason}");
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    /// Sends the call and decodes a 2xx JSON body as `T`.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let url = self.url.clone();
        let resp = self.send().await?;
        resp.json()
            .map_err(|error| ClientError::Decode { url, error })
    }
}

/// The `error.type` span attribute of a failed call.
fn error_type(e: &ClientError) -> &'static str {
    match e {
        ClientError::Status { .. } => "status",
        ClientError::Timeout { .. } => "timeout",
        ClientError::Connect { .. } => "connect",
        ClientError::Transport { .. } => "transport",
        ClientError::Decode { .. } => "decode",
        ClientError::Request(_) => "request",
        ClientError::Token(_) => "token",
        ClientError::NoProducer { .. } => "no_producer",
    }
}

/// The innermost error of a chain (`Connection refused (os error 111)`), which is the
/// part of reqwest's nested messages worth reading.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The ProblemDetails of an error answer, or one made from its status and text.
fn decode_problem(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProblemDetails {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::extract::is_json_content_type);
    // `Retry-After` travels in a header; keep it with the problem (429/503 shedding).
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if is_json {
        if let Ok(mut p) = serde_json::from_slice::<ProblemDetails>(body) {
            if p.status == 0 {
                p.status = status.as_u16();
            }
            p.retry_after = p.retry_after.or(retry_after);
            return p;
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let mut p = ProblemDetails::new(status, "UNSPECIFIED", text);
    p.cause = None;
    p.retry_after = retry_after;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let p = decode_problem(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"status":429,"cause":"NF_CONGESTION_RISK"}"#,
        );
        assert_eq!((p.status, p.retry_after), (429, Some(3)));
        h.remove(CONTENT_TYPE);
        let p = decode_problem(StatusCode::SERVICE_UNAVAILABLE, &h, b"busy");
        assert_eq!(p.retry_after, Some(3));
    }

    #[test]
    fn service_is_the_first_path_segment() {
        assert_eq!(
            service_of_url("http://127.0.0.1:8000/nnrf-disc/v1/nf-instances?x=1"),
            "nnrf-disc"
        );
        assert_eq!(service_of_url("http://h:1"), "unknown");
        assert_eq!(service_of_url("http://h:1/namf-loc?x"), "namf-loc");
    }

    #[test]
    fn idempotent_methods() {
        assert!(
            is_idempotent(&Method::GET)
                && is_idempotent(&Method::PUT)
                && is_idempotent(&Method::DELETE)
        );
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }

    #[test]
    fn error_bodies_become_problem_details() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let p = decode_problem(
            StatusCode::NOT_FOUND,
            &h,
            br#"{"status":404,"cause":"CONTEXT_NOT_FOUND","detail":"no UE"}"#,
        );
        assert_eq!(p.cause.as_deref(), Some("CONTEXT_NOT_FOUND"));
        let p = decode_problem(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"upstream down");
        assert_eq!(
            (p.status, p.detail.as_deref()),
            (502, Some("upstream down"))
        );
    }
}
