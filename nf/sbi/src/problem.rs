//! ProblemDetails (TS 29.571 §5.2.4.1): the one error type every SBI operation answers with.
//!
//! Every handler returns `Result<_, ProblemDetails>`; the conversion to an
//! `application/problem+json` response lives here and nowhere else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of ProblemDetails bodies (RFC 9457, TS 29.500 §5.2.3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One offending parameter (TS 29.571 `InvalidParam`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvalidParam {
    /// Attribute name, query parameter or JSON pointer of the offending value.
    pub param: String,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// TS 29.571 `ProblemDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// HTTP status code, repeated in the body as TS 29.571 asks.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Application error cause (TS 29.500 Table 5.2.7.2-1 and the service specs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub invalid_params: Vec<InvalidParam>,
    /// Seconds a client should wait before retrying (sent as `Retry-After`, not in the body).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ProblemDetails {
    /// A problem with the given status, cause and human-readable detail.
    pub fn new(status: StatusCode, cause: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            r#type: None,
            title: status.canonical_reason().map(str::to_owned),
            status: status.as_u16(),
            detail: Some(detail.into()),
            instance: None,
            cause: Some(cause.into()),
            invalid_params: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 with cause `MANDATORY_IE_INCORRECT`/`INVALID_MSG_FORMAT` style causes chosen by the caller.
    pub fn bad_request(cause: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, cause, detail)
    }

    /// 400 `MANDATORY_IE_MISSING` naming the missing parameter.
    pub fn missing_param(param: &str) -> Self {
        Self::bad_request(
            "MANDATORY_IE_MISSING",
            format!("mandatory parameter '{param}' is missing"),
        )
        .with_invalid_param(param, "missing")
    }

    /// 400 `MANDATORY_IE_INCORRECT` naming the bad parameter and why.
    pub fn invalid_param(param: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::bad_request("MANDATORY_IE_INCORRECT", format!("'{param}': {reason}"))
            .with_invalid_param(param, reason)
    }

    /// 404 with the given cause (e.g. `CONTEXT_NOT_FOUND`, `RESOURCE_NOT_FOUND`).
    pub fn not_found(cause: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, cause, detail)
    }

    /// 500 `SYSTEM_FAILURE`; the detail should not leak internals beyond what helps an operator.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "SYSTEM_FAILURE", detail)
    }

    /// Adds one `invalidParams` entry.
    pub fn with_invalid_param(
        mut self,
        param: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        self.invalid_params.push(InvalidParam {
            param: param.into(),
            reason: Some(reason.into()),
        });
        self
    }

    /// Sets `Retry-After` (for 429/503 admission refusals).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The status as a `StatusCode` (500 when the stored number is not a valid status).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ProblemDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            self.cause.as_deref().unwrap_or("-")
        )?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProblemDetails {}

impl IntoResponse for ProblemDetails {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{\"status\":500}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_ts29571_field_names() {
        let p = ProblemDetails::missing_param("target-nf-type");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["cause"], "MANDATORY_IE_MISSING");
        assert_eq!(v["invalidParams"][0]["param"], "target-nf-type");
        assert!(v.get("retryAfter").is_none());
    }

    #[test]
    fn response_has_problem_json_and_retry_after() {
        let resp =
            ProblemDetails::new(StatusCode::TOO_MANY_REQUESTS, "NF_CONGESTION", "queue full")
                .with_retry_after(2)
                .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }
}
