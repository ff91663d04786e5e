//! Request extractors whose rejections are ProblemDetails, never axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::problem::ProblemDetails;

/// JSON body (`application/json` or any `+json` type) that rejects with ProblemDetails:
/// 415 on a wrong content type, 413 past the body limit, 400 `INVALID_MSG_FORMAT` on a syntax
/// error and 400 `MANDATORY_IE_INCORRECT`/`MANDATORY_IE_MISSING` naming the offending field.
#[derive(Debug, Clone, Copy, Default)]
pub struct SbiJson<T>(pub T);

/// Whether a content type is JSON (`application/json`, `application/problem+json`, ...).
pub fn is_json_content_type(value: &str) -> bool {
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Maps a body-reading failure to ProblemDetails (413 when the body limit was hit).
pub fn body_rejection(rej: BytesRejection) -> ProblemDetails {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ProblemDetails::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            rej.body_text(),
        )
    } else {
        ProblemDetails::bad_request("INVALID_MSG_FORMAT", rej.body_text())
    }
}

/// Parses a JSON body, naming the JSON path of the first offending value in `invalidParams`.
#[allow(clippy::result_large_err)] // ProblemDetails is the SBI error by design.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProblemDetails> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => ProblemDetails::bad_request(
                "INVALID_MSG_FORMAT",
                format!("malformed JSON: {inner}"),
            ),
            Category::Data => {
                let msg = inner.to_string();
                // serde reports a missing field at the enclosing object; name the field itself.
                if let Some(field) = msg
                    .strip_prefix("missing field `")
                    .and_then(|s| s.split('`').next())
                {
                    let param = if path == "." {
                        field.to_owned()
                    } else {
                        format!("{path}.{field}")
                    };
                    ProblemDetails::bad_request(
                        "MANDATORY_IE_MISSING",
                        format!("missing mandatory field '{param}'"),
                    )
                    .with_invalid_param(param, "missing")
                } else {
                    // An unknown member named "" has the path "": name the body instead.
                    let param = if path == "." || path.is_empty() {
                        "body".to_owned()
                    } else {
                        path
                    };
                    ProblemDetails::bad_request(
                        "MANDATORY_IE_INCORRECT",
                        format!("'{param}': {msg}"),
                    )
                    .with_invalid_param(param, msg)
                }
            }
        }
    })
}

impl<T, S> FromRequest<S> for SbiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ProblemDetails;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json_content_type(ct) {
            return Err(ProblemDetails::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!("expected Content-Type application/json, got '{ct}'"),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(SbiJson)
    }
}

impl<T: Serialize> IntoResponse for SbiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query-string extractor that rejects with a 400 ProblemDetails naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SbiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for SbiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ProblemDetails;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| SbiQuery(q.0))
            .map_err(|rej: QueryRejection| {
                let text = rej.body_text();
                // "Failed to deserialize query string: missing field `target-nf-type`"
                if let Some(field) = text
                    .split("missing field `")
                    .nth(1)
                    .and_then(|s| s.split('`').next())
                {
                    ProblemDetails::missing_param(field)
                } else {
                    ProblemDetails::bad_request("INVALID_QUERY_PARAM", text.clone())
                        .with_invalid_param("query", text)
                }
            })
    }
}

/// Path-parameter extractor that rejects with a 400 ProblemDetails naming the parameter
/// (`MANDATORY_IE_INCORRECT`), never axum's plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct SbiPath<T>(pub T);

/// Maps an axum path rejection to ProblemDetails.
pub fn path_rejection(rej: PathRejection) -> ProblemDetails {
    match rej {
        PathRejection::FailedToDeserializePathParams(err) => {
            let text = err.body_text();
            match err.into_kind() {
                ErrorKind::ParseErrorAtKey {
                    key,
                    value,
                    expected_type,
                } => ProblemDetails::invalid_param(
                    &key,
                    format!("'{value}' is not a valid {expected_type}"),
                ),
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ProblemDetails::invalid_param(&key, "not valid UTF-8")
                }
                ErrorKind::DeserializeError {
                    key,
                    value,
                    message,
                } => ProblemDetails::invalid_param(&key, format!("'{value}': {message}")),
                ErrorKind::ParseErrorAtIndex {
                    index,
                    value,
                    expected_type,
                } => ProblemDetails::invalid_param(
                    &format!("path[{index}]"),
                    format!("'{value}' is not a valid {expected_type}"),
                ),
                _ => ProblemDetails::bad_request("INVALID_MSG_FORMAT", text),
            }
        }
        other => ProblemDetails::internal(other.body_text()),
    }
}

impl<T, S> FromRequestParts<S> for SbiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ProblemDetails;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(SbiPath(p.0)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                // A single-value `Path<u32>` reports no key: find it by its value.
                if let ErrorKind::ParseError {
                    value,
                    expected_type,
                } = err.kind()
                {
                    if let Ok(raw) =
                        axum::extract::RawPathParams::from_request_parts(parts, state).await
                    {
                        if let Some((key, _)) = raw.iter().find(|(_, v)| *v == value.as_str()) {
                            return Err(ProblemDetails::invalid_param(
                                key,
                                format!("'{value}' is not a valid {expected_type}"),
                            ));
                        }
                    }
                }
                Err(path_rejection(
                    PathRejection::FailedToDeserializePathParams(err),
                ))
            }
            Err(other) => Err(path_rejection(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        lat: f64,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        nf_type: String,
        pos: Option<Inner>,
    }

    #[test]
    fn missing_field_names_the_field() {
        let p = parse_json::<Body>(br#"{"pos":{"lat":1}}"#).unwrap_err();
        assert_eq!(p.cause.as_deref(), Some("MANDATORY_IE_MISSING"));
        assert_eq!(p.invalid_params[0].param, "nfType");
        let p = parse_json::<Body>(br#"{"nfType":"AMF","pos":{}}"#).unwrap_err();
        assert_eq!(p.invalid_params[0].param, "pos.lat");
    }

    #[test]
    fn wrong_type_names_the_path_and_syntax_is_invalid_format() {
        let p = parse_json::<Body>(br#"{"nfType":"AMF","pos":{"lat":"north"}}"#).unwrap_err();
        assert_eq!(p.cause.as_deref(), Some("MANDATORY_IE_INCORRECT"));
        assert_eq!(p.invalid_params[0].param, "pos.lat");
        let p = parse_json::<Body>(b"{\"nfType\":").unwrap_err();
        assert_eq!(p.cause.as_deref(), Some("INVALID_MSG_FORMAT"));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/json-patch+json"));
        assert!(!is_json_content_type("text/plain"));
    }
}
