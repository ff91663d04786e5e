//! Logging and OpenTelemetry traces for every NF: one `tracing` subscriber that writes
//! logs to stderr and, when an OTLP endpoint is configured, exports spans over OTLP/gRPC
//! (a Jaeger or an OpenTelemetry Collector listens on port 4317).
//!
//! Configured with the standard variables ([`TelemetryConfig::from_env`]):
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (`http://jaeger:4317`): unset or empty = no export (logs only);
//! - `OTEL_SERVICE_NAME`: the resource `service.name` (default: the caller's, e.g. `netgpt`
//!   for `netgpt up`, the NF name for `netgpt nf run amf`); `OTEL_RESOURCE_ATTRIBUTES` adds
//!   resource attributes;
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: `grpc` (the only
//!   transport built in; anything else is refused with a one-line error);
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: no export.
//!
//! The spans: every inbound SBI request is a server span named after its 3GPP operation
//! (`server.rs`), every [`crate::SbiClient`] call a client span that injects W3C
//! `traceparent` into the request (`client.rs`), so one user request is one trace across
//! the NFs it touches. Spans carry `nf.name` (and `nf.type` on the server side): several
//! NFs share one process (and one `service.name`) under `netgpt up`.
//!
//! Only spans at level INFO or above are exported, whatever `RUST_LOG` says about logs.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How long the OTLP exporter waits for one export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's tracer provider, kept so [`flush`] can reach it from anywhere.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Where and as what this process exports its traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint (`http://127.0.0.1:4317`); `None` = no export.
    pub endpoint: Option<String>,
    /// Resource `service.name`.
    pub service_name: String,
    /// The log filter for stderr when `RUST_LOG` is unset (`info`, `warn`).
    pub log_filter: String,
}

/// A telemetry setting that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a transport this build lacks.
    #[error("{var}={value}: only 'grpc' is supported")]
    Protocol {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl TelemetryConfig {
    /// No export; logs at `log_filter` unless `RUST_LOG` says otherwise.
    pub fn logs_only(service_name: impl Into<String>, log_filter: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            service_name: service_name.into(),
            log_filter: log_filter.into(),
        }
    }

    /// From the standard `OTEL_*` variables (see the module documentation);
    /// `service_name_default` when `OTEL_SERVICE_NAME` is unset.
    pub fn from_env(service_name_default: &str, log_filter: &str) -> Result<Self, TelemetryError> {
        let disabled = env_nonempty("OTEL_SDK_DISABLED").is_some_and(|v| v == "true")
            || env_nonempty("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none");
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = env_nonempty(var) {
                if value != "grpc" && !disabled {
                    return Err(TelemetryError::Protocol { var, value });
                }
                break;
            }
        }
        let endpoint = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|_| !disabled);
        Ok(Self {
            endpoint,
            service_name: env_nonempty("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| service_name_default.to_owned()),
            log_filter: log_filter.to_owned(),
        })
    }
}

/// Keeps the exporter alive; dropping it exports the spans still buffered (up to 5 s).
/// Drop it while the tokio runtime still runs (the gRPC channel lives on it).
#[must_use = "dropping the guard stops the trace export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("telemetry: flushing the last spans failed: {e}");
            }
        }
    }
}

/// Installs the process-wide subscriber from the `OTEL_*` variables (see
/// [`TelemetryConfig::from_env`]). Call once, inside the tokio runtime.
pub fn init(
    service_name_default: &str,
    log_filter: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    init_with(TelemetryConfig::from_env(service_name_default, log_filter)?)
}

/// Installs the process-wide subscriber: stderr logs (`RUST_LOG`, else `cfg.log_filter`)
/// and, when `cfg.endpoint` is set, OTLP/gRPC span export with a batch processor. Sets
/// the W3C trace-context propagator. If a subscriber is already installed, it stays (and
/// this one's spans are not exported). Call inside the tokio runtime.
pub fn init_with(cfg: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = match &cfg.endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(cfg.service_name.clone())
                        .build(),
                )
                .build();
            Some(provider)
        }
        None => None,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_filter));
    // Plain text when stderr is a file or a container log, colours on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(filter);
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("netgpt-sbi"))
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if let (true, Some(p)) = (installed, &provider) {
        let _ = PROVIDER.set(p.clone());
        tracing::info!(
            endpoint = cfg.endpoint.as_deref().unwrap_or_default(),
            service = %cfg.service_name,
            "exporting traces over OTLP/gRPC"
        );
    }
    Ok(TelemetryGuard { provider })
}

/// Exports the spans buffered so far (blocking, up to the export timeout); a no-op when
/// nothing is exported. From async code call it through `tokio::task::spawn_blocking`:
/// the export itself needs the runtime.
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        if let Err(e) = p.force_flush() {
            tracing::warn!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// Reads W3C trace-context headers from an HTTP header map.
pub(crate) struct HeaderExtractor<'a>(pub &'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes W3C trace-context headers into an HTTP header map.
pub(crate) struct HeaderInjector<'a>(pub &'a mut axum::http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The OpenTelemetry context of the caller, from the `traceparent`/`tracestate` headers.
pub(crate) fn extract(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Adds `traceparent`/`tracestate` for `span` to `headers` (nothing when it is not exported).
pub(crate) fn inject(span: &tracing::Span, headers: &mut axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this binary that touches the `OTEL_*` variables (one test, so no race).
    #[test]
    fn config_from_the_standard_variables() {
        let vars = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_SERVICE_NAME",
            "OTEL_SDK_DISABLED",
            "OTEL_TRACES_EXPORTER",
        ];
        let clear = || vars.iter().for_each(|v| std::env::remove_var(v));
        clear();
        let c = TelemetryConfig::from_env("amf", "info").unwrap();
        assert_eq!((c.endpoint, c.service_name.as_str()), (None, "amf"));

        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317");
        std::env::set_var("OTEL_SERVICE_NAME", "testbed");
        let c = TelemetryConfig::from_env("amf", "info").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://jaeger:4317"));
        assert_eq!(c.service_name, "testbed");
        std::env::set_var(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4317",
        );
        let c = TelemetryConfig::from_env("amf", "info").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://collector:4317"));

        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        let e = TelemetryConfig::from_env("amf", "info").unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: only 'grpc' is supported"
        );
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        assert!(TelemetryConfig::from_env("amf", "info").is_ok());

        std::env::set_var("OTEL_TRACES_EXPORTER", "none");
        let c = TelemetryConfig::from_env("amf", "info").unwrap();
        assert_eq!(c.endpoint, None);
        clear();
    }

    #[test]
    fn logs_only_has_no_endpoint() {
        let c = TelemetryConfig::logs_only("amf", "info");
        assert_eq!(c.endpoint, None);
        assert_eq!(c.service_name, "amf");
    }
}
