//! The SBI server: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port,
//! ProblemDetails for every error axum would otherwise answer in plain text,
//! graceful shutdown by a cancellation token.
//!
//! An NF composes its services with [`NfApp`]:
//!
//! ```ignore
//! let app = NfApp::new("nrf")
//!     .service("nnrf-nfm", nfm_router, nfm_openapi)   // axum Router + its utoipa OpenApi
//!     .service("nnrf-disc", disc_router, disc_openapi)
//!     .build();
//! serve(listener, app, shutdown).await?;
//! ```
//!
//! The app answers the services' routes and, beside them:
//! - `GET /metrics`: Prometheus text exposition of this NF's series ([`crate::metrics::render_for`]);
//! - `GET /openapi.json`: the merged OpenAPI document of the NF's services;
//! - `GET /docs`: a browsable Swagger UI page (embedded, works offline);
//! - `GET /healthz`: `200 {"status":"UP"}` once the server answers.
//!
//! Every service request is counted in `sbi_inbound_requests_total` and timed in
//! `sbi_inbound_request_duration_seconds` with labels `nf`, `service` (the name given
//! to [`NfApp::service`], e.g. `nnrf-disc`), `operation` (an [`SbiOperation`] the handler
//! put in the response, else the `operationId` of the route in the service's OpenAPI
//! document, else the route template), `method` and `status`.
//! Unknown routes are counted with service `unknown`, operation `unmatched`.
//!
//! Every service request is also a tracing span of kind server named after the same
//! operation (`NFDiscover`, `ProvideLocationInfo`), a child of the caller's span when the
//! request carries W3C `traceparent` (see [`crate::telemetry`]); attributes `nf.name`,
//! `nf.type`, `sbi.service`, `http.request.method`, `http.route`,
//! `http.response.status_code`; status error for 5xx.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::{Info, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::limits::Admission;
use crate::metrics;
use crate::oauth::{AccessControl, AccessTokenClaims};
use crate::problem::ProblemDetails;

/// Default maximum request body (bytes); larger bodies get 413 ProblemDetails.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Path of the merged OpenAPI document every NF serves.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Path of the browsable API page every NF serves.
pub const DOCS_PATH: &str = "/docs";
/// Path of the Prometheus exposition every NF serves.
pub const METRICS_PATH: &str = "/metrics";

/// Wraps an NF's service routes with the behaviour every SBI server shares:
/// 404/405 as ProblemDetails and a request body limit (no metrics, no docs; see [`NfApp`]).
pub fn sbi_app(services: Router, body_limit: usize) -> Router {
    services
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn unknown_route(method: Method, uri: Uri) -> ProblemDetails {
    ProblemDetails::not_found(
        "RESOURCE_URI_STRUCTURE_NOT_FOUND",
        format!("no resource at {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ProblemDetails {
    ProblemDetails::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Names the 3GPP operation a response belongs to, for the `operation` metrics label,
/// when the route has no `operationId` in the service's OpenAPI document. A handler adds
/// it with `(SbiOperation("nf_register"), body).into_response()` or
/// `response.extensions_mut().insert(SbiOperation("nf_register"))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbiOperation(pub &'static str);

impl axum::response::IntoResponseParts for SbiOperation {
    type Error = std::convert::Infallible;
    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// One SBI service of an NF: its API name (`nnrf-disc`), routes and OpenAPI document.
#[derive(Clone)]
pub struct SbiService {
    /// Service name as used in the API root (`nnrf-disc`, `namf-loc`).
    pub name: String,
    /// The service's routes (state already applied).
    pub router: Router,
    /// The service's OpenAPI document.
    pub doc: OpenApi,
}

/// Builder of one NF's SBI application: its services plus `/metrics`, `/openapi.json`,
/// `/docs` and `/healthz`, ProblemDetails for 404/405/413, inbound metrics.
#[derive(Clone)]
pub struct NfApp {
    nf: String,
    services: Vec<SbiService>,
    body_limit: usize,
    version: String,
    metric_prefixes: Vec<String>,
    nf_type: Option<String>,
    access: Option<AccessControl>,
    public: Vec<String>,
    admission: Option<Admission>,
}

/// What every service request passes before its handler: the NF's request bound, the
/// access token check (services not marked public) and the consumer's rate.
#[derive(Clone)]
struct Guard {
    service: Arc<str>,
    access: Option<AccessControl>,
    admission: Option<Admission>,
}

#[derive(Clone)]
struct Meter {
    nf: Arc<str>,
    /// NF type (`AMF`) for the server spans; empty when unknown.
    nf_type: Arc<str>,
    service: Arc<str>,
    /// (METHOD, route template) -> operationId from the service's OpenAPI document.
    ops: Arc<HashMap<(String, String), String>>,
    body_limit: usize,
}

impl NfApp {
    /// A new app for the NF instance `nf` (`nrf`, `amf`, ...: the `nf` metrics label).
    pub fn new(nf: impl Into<String>) -> Self {
        let nf = nf.into();
        let prefix = format!("{}_", nf.replace('-', "_"));
        Self {
            nf,
            services: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            version: "1.0.0".into(),
            metric_prefixes: vec![prefix],
            nf_type: None,
            access: None,
            public: Vec::new(),
            admission: None,
        }
    }

    /// Requires an OAuth2 access token on every service operation (except services marked
    /// [`NfApp::public_service`]): audience this NF, scope the service. Handlers find the
    /// token's claims as a request extension ([`AccessTokenClaims`]).
    pub fn access_control(mut self, access: AccessControl) -> Self {
        self.access = Some(access);
        self
    }

    /// Whether [`NfApp::access_control`] was set.
    pub fn has_access_control(&self) -> bool {
        self.access.is_some()
    }

    /// Marks a service as open without a token (the NRF's token endpoint).
    pub fn public_service(mut self, name: impl Into<String>) -> Self {
        self.public.push(name.into());
        self
    }

    /// Bounds the requests served at once and each consumer's rate (the consumer is the
    /// token's subject, else the caller's User-Agent).
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Sets the NF type (`AMF`) the server spans carry as `nf.type`
    /// ([`crate::NfContext::launch`] sets it).
    pub fn nf_type(mut self, nf_type: impl Into<String>) -> Self {
        self.nf_type = Some(nf_type.into());
        self
    }

    /// Also shows, on this NF's `/metrics`, series without an `nf` label whose name starts
    /// with `prefix` (by default `<nf name>_`, e.g. `nrf_`; series labelled with this NF's
    /// `nf` are always shown). See [`metrics::render_for`].
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metric_prefixes.push(prefix.into());
        self
    }

    /// Adds a service: its name (`nnrf-nfm`), its routes and its OpenAPI document.
    pub fn service(mut self, name: impl Into<String>, router: Router, doc: OpenApi) -> Self {
        self.services.push(SbiService {
            name: name.into(),
            router,
            doc,
        });
        self
    }

    /// Adds a service built with `utoipa_axum::router::OpenApiRouter` (routes and document together).
    pub fn openapi_service(
        self,
        name: impl Into<String>,
        router: utoipa_axum::router::OpenApiRouter,
    ) -> Self {
        let (router, doc) = router.split_for_parts();
        self.service(name, router, doc)
    }

    /// Sets the maximum request body in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the `info.version` of the merged document (default `1.0.0`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The NF name given to [`NfApp::new`].
    pub fn nf(&self) -> &str {
        &self.nf
    }

    /// The services added so far.
    pub fn services(&self) -> &[SbiService] {
        &self.services
    }

    /// Each service's OpenAPI document, by service name (what `sbi-specs/<service>.yaml` holds).
    pub fn service_docs(&self) -> Vec<(String, OpenApi)> {
        self.services
            .iter()
            .map(|s| (s.name.clone(), s.doc.clone()))
            .collect()
    }

    /// The merged OpenAPI document of all services (served at `/openapi.json`).
    pub fn openapi(&self) -> OpenApi {
        let mut merged = OpenApi::new(
            Info::new(
                format!("NetGPT {} SBI", self.nf.to_uppercase()),
                self.version.clone(),
            ),
            utoipa::openapi::Paths::new(),
        );
        for s in &self.services {
            let mut doc = s.doc.clone();
            if let Some(url) = self
                .access
                .as_ref()
                .and_then(AccessControl::token_url)
                .filter(|_| !self.public.contains(&s.name))
            {
                crate::oauth::document_security(&mut doc, &s.name, url);
            }
            merged.merge(doc);
        }
        merged
    }

    /// Builds the axum app.
    pub fn build(self) -> Router {
        let merged = self.openapi();
        let nf: Arc<str> = Arc::from(self.nf.as_str());
        let nf_type: Arc<str> = Arc::from(self.nf_type.as_deref().unwrap_or_default());
        let mut app = Router::new();
        for s in self.services {
            let meter = Meter {
                nf: nf.clone(),
                nf_type: nf_type.clone(),
                service: Arc::from(s.name.as_str()),
                ops: Arc::new(operation_ids(&s.doc)),
                body_limit: self.body_limit,
            };
            let guard = Guard {
                service: Arc::from(s.name.as_str()),
                access: self
                    .access
                    .clone()
                    .filter(|_| !self.public.contains(&s.name)),
                admission: self.admission.clone(),
            };
            // 405 is set per service before the metering layer so it is counted too;
            // the guard runs inside the meter so refusals are counted and traced.
            let svc = s
                .router
                .method_not_allowed_fallback(method_not_allowed)
                .layer(middleware::from_fn_with_state(guard, guard_inbound))
                .layer(middleware::from_fn_with_state(meter, meter_inbound));
            app = app.merge(svc);
        }
        let fallback_nf = nf.clone();
        let metrics_nf = nf.clone();
        let prefixes = Arc::new(self.metric_prefixes);
        let admin = Router::new()
            .route(
                METRICS_PATH,
                get(move || async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics::render_for(&metrics_nf, &prefixes),
                    )
                }),
            )
            .route(
                "/healthz",
                get(|| async { axum::Json(serde_json::json!({ "status": "UP" })) }),
            )
            .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, merged));
        app.merge(admin)
            .fallback(move |method: Method, uri: Uri| {
                let nf = fallback_nf.clone();
                async move {
                    let started = Instant::now();
                    let resp = unknown_route(method.clone(), uri).await;
                    metrics::record_inbound(
                        &nf,
                        "unknown",
                        "unmatched",
                        method.as_str(),
                        resp.status,
                        started.elapsed(),
                    );
                    resp
                }
            })
            .layer(DefaultBodyLimit::max(self.body_limit))
    }
}

/// (METHOD, path template) -> operationId for every operation of `doc` that has one.
fn operation_ids(doc: &OpenApi) -> HashMap<(String, String), String> {
    let mut ops = HashMap::new();
    for (path, item) in doc.paths.paths.iter() {
        let PathItem {
            get,
            put,
            post,
            delete,
            options,
            head,
            patch,
            trace,
            ..
        } = item;
        let by_method = [
            ("GET", get),
            ("PUT", put),
            ("POST", post),
            ("DELETE", delete),
            ("OPTIONS", options),
            ("HEAD", head),
            ("PATCH", patch),
            ("TRACE", trace),
        ];
        for (method, op) in by_method {
            if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                ops.insert((method.to_owned(), path.clone()), id);
            }
        }
    }
    ops
}

async fn meter_inbound(State(m): State<Meter>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared_op = template
        .as_ref()
        .and_then(|t| m.ops.get(&(method.as_str().to_owned(), t.clone())))
        .cloned();
    // Named after the OpenAPI operationId now; renamed below if the handler names another.
    let span = tracing::info_span!(
        "sbi_server",
        otel.name = declared_op.as_deref().unwrap_or("unmatched"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        nf.name = %m.nf,
        "nf.type" = %m.nf_type,
        sbi.service = %m.service,
        http.request.method = %method,
        http.route = template.as_deref().unwrap_or("unmatched"),
        http.response.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(crate::telemetry::extract(req.headers()));
    let resp = match declared {
        // Refuse before reading: handlers that never read the body would otherwise accept it.
        Some(len) if len > m.body_limit as u64 => ProblemDetails::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!(
                "request body of {len} bytes exceeds the limit of {} bytes",
                m.body_limit
            ),
        )
        .into_response(),
        _ => next.run(req).instrument(span.clone()).await,
    };
    let template = template.unwrap_or_else(|| "unmatched".to_owned());
    let operation = resp
        .extensions()
        .get::<SbiOperation>()
        .map(|o| o.0.to_owned())
        .or_else(|| declared_op.clone())
        .unwrap_or(template);
    let status = resp.status().as_u16();
    if declared_op.as_deref() != Some(operation.as_str()) {
        // The span has started: rename it through OpenTelemetry (`otel.name` no longer applies).
        use opentelemetry::trace::TraceContextExt;
        span.context().span().update_name(operation.clone());
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    metrics::record_inbound(
        &m.nf,
        &m.service,
        &operation,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn guard_inbound(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let _slot = match g.admission.as_ref().map(Admission::enter) {
        Some(Err(p)) => return p.into_response(),
        Some(Ok(permit)) => Some(permit),
        None => None,
    };
    let consumer = match &g.access {
        Some(access) => match access.check(req.headers(), &g.service).await {
            Ok(claims) => {
                let sub = claims.sub.clone();
                req.extensions_mut().insert::<AccessTokenClaims>(claims);
                sub
            }
            Err(refusal) => {
                tracing::debug!(service = %g.service, cause = refusal.cause(), "request refused");
                return refusal.into_response();
            }
        },
        None => req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_owned(),
    };
    if let Some(a) = &g.admission {
        if let Err(p) = a.per_consumer.admit(&consumer, "consumer") {
            return p.into_response();
        }
    }
    next.run(req).await
}

/// Serves `app` on `listener` (HTTP/1.1 and h2c prior knowledge) until `shutdown` is cancelled,
/// then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers written in more than one segment (a large NFDiscover result) must not wait
    // for the peer's delayed ACK: Nagle off, as on the client side.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
