//! The SBI server: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port,
//! ProblemDetails for every error axum would otherwise answer in plain text,
//! graceful shutdown by a cancellation token.

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::problem::ProblemDetails;

/// Default maximum request body (bytes); larger bodies get 413 ProblemDetails.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Wraps an NF's service routes with the behaviour every SBI server shares:
/// 404/405 as ProblemDetails and a request body limit.
pub fn sbi_app(services: Router, body_limit: usize) -> Router {
    services
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn unknown_route(method: Method, uri: Uri) -> ProblemDetails {
    ProblemDetails::not_found("RESOURCE_URI_STRUCTURE_NOT_FOUND", format!("no resource at {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ProblemDetails {
    ProblemDetails::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Serves `app` on `listener` (HTTP/1.1 and h2c prior knowledge) until `shutdown` is cancelled,
/// then finishes in-flight requests.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
