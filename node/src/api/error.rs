//! API errors as JSON bodies `{"error": {"code", "field", "rule", "message"}}`, the bounded reading of JSON request bodies, and extractors whose rejections use that shape.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, Query, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::api::BODY_PREALLOC_BYTES;
use crate::api::views::{ErrorBody, ErrorDetail};
use crate::mempool::AdmitError;

/// A refused request: its status and the JSON error it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code: the ledger's `R0nn`, or a word such as `bad_request`.
    pub code: String,
    /// The request field or path/query parameter at fault.
    pub field: String,
    /// The rule it breaks, in words.
    pub rule: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, field: &str, rule: impl Into<String>) -> ApiError {
        ApiError { status, code: code.to_string(), field: field.to_string(), rule: rule.into() }
    }

    /// 400 for a bad parameter or body field.
    pub fn bad_request(field: &str, rule: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", field, rule)
    }

    pub fn not_found(field: &str, rule: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", field, rule)
    }

    /// 500: the node could not read its own state. The detail is logged, not sent.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %what, "api: internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "node", "the node could not serve this request")
    }

    /// An identifier parser's error: its message starts with the field name.
    pub fn from_id(e: impl std::fmt::Display, field: &str) -> ApiError {
        let text = e.to_string();
        let rule = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text).to_string();
        ApiError::bad_request(field, rule)
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> ApiError {
        let status = match &e {
            AdmitError::Malformed { .. } => StatusCode::BAD_REQUEST,
            AdmitError::Rule(_) | AdmitError::TooFarAhead { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AdmitError::Duplicate(_) | AdmitError::SequenceTaken { .. } => StatusCode::CONFLICT,
            AdmitError::Full { .. } | AdmitError::ShareFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AdmitError::State(detail) => return ApiError::internal(detail),
        };
        ApiError { status, code: e.code(), field: e.field().to_string(), rule: e.rule() }
    }
}

impl ApiError {
    /// The JSON error this refusal answers with (also one item's result in a batch).
    pub fn into_body(self) -> ErrorBody {
        let message = format!("{}: {}", self.field, self.rule);
        ErrorBody { error: ErrorDetail { code: self.code, field: self.field, rule: self.rule, message } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, Json(self.into_body())).into_response()
    }
}

/// Refuses a request whose `Content-Type` is not JSON (415), before its body is read: the
/// same rule as `axum::Json` (`application/json`, or `application/*+json`, parameters allowed).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json_media_type);
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "content-type",
            "must be application/json",
        ))
    }
}

fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else { return false };
    let suffix = subtype.rsplit_once('+').map(|(_, s)| s);
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || suffix.is_some_and(|s| s.eq_ignore_ascii_case("json")))
}

/// Reads a request body in full, before any work is done on it: at most `bytes_max` bytes
/// (413 `payload_too_large`, field `body`; at once, without reading, when `Content-Length`
/// states more) and complete within `deadline` (408 `timeout`, field `body`). The buffer
/// starts at no more than [`BODY_PREALLOC_BYTES`] whatever `Content-Length` states, and grows
/// only with the bytes received, so a slow body costs little memory while it lasts.
pub(crate) async fn read_body(req: Request, bytes_max: usize, deadline: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body",
            format!("exceeds the request body limit of {bytes_max} bytes"),
        )
    };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > bytes_max as u64) {
        return Err(too_large());
    }
    let read = async {
        let reserve = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut buf = Vec::with_capacity(reserve.min(bytes_max).min(BODY_PREALLOC_BYTES));
        let mut chunks = req.into_body().into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request("body", format!("could not be read: {e}")))?;
            if chunk.len() > bytes_max - buf.len() {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(body) => body,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "body",
            format!("not received in full within {} ms", deadline.as_millis()),
        )),
    }
}

/// Parses a JSON body: syntax and type errors are 400 naming the body.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match Json::<T>::from_bytes(body) {
        Ok(Json(v)) => Ok(v),
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

/// A JSON request body: [`require_json`], [`read_body`], [`parse_json`].
pub(crate) async fn read_json<T: DeserializeOwned>(
    req: Request,
    bytes_max: usize,
    deadline: Duration,
) -> Result<T, ApiError> {
    require_json(req.headers())?;
    parse_json(&read_body(req, bytes_max, deadline).await?)
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request("body", format!("wrong JSON shape: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("body", format!("not valid JSON: {}", e.body_text()))
        }
        // Content type and size are checked before parsing (`require_json`, `read_body`).
        other => ApiError::new(other.status(), "bad_request", "body", other.body_text()),
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections (unknown or malformed parameters are 400).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request("query", e.body_text())),
        }
    }
}

/// `axum::extract::Path` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request("path", e.body_text())),
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::convert::Infallible;

    #[test]
    fn json_media_types_are_axums() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            "Application/JSON",
            "application/cloudevents+json",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for no in ["text/json", "application/jsonx", "application/", "json", "", "text/plain", "application/json+xml"] {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    fn request(content_length: Option<u64>, body: Body) -> Request {
        let mut b = Request::builder().method("POST").uri("/");
        if let Some(n) = content_length {
            b = b.header(CONTENT_LENGTH, n);
        }
        b.body(body).expect("request")
    }

    /// A body that sends `chunks` and then never ends.
    fn stalled(chunks: Vec<&'static [u8]>) -> Body {
        let sent = futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, Infallible>(Bytes::from_static(c))));
        Body::from_stream(sent.chain(futures::stream::pending()))
    }

    #[tokio::test]
    async fn a_body_is_read_within_its_limit() {
        let r = read_body(request(Some(4), Body::from("abcd")), 4, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(Bytes::from_static(b"abcd")));
        let r = read_body(request(None, Body::from("abcd")), 4, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(Bytes::from_static(b"abcd")));
    }

    #[tokio::test]
    async fn an_oversized_body_is_413_naming_the_limit() {
        // Stated by Content-Length: refused without reading (the body would never end).
        let e = read_body(request(Some(5), stalled(vec![])), 4, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str(), e.field.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body")
        );
        assert!(e.rule.contains("4 bytes"), "{}", e.rule);
        // Not stated (chunked): refused at the chunk that crosses the limit.
        let e = read_body(request(None, stalled(vec![b"abc", b"de"])), 4, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_not_complete_by_the_deadline_is_408_naming_it() {
        let deadline = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let e = read_body(request(Some(100), stalled(vec![b"{", b"\""])), 4096, deadline).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!((e.status, e.code.as_str(), e.field.as_str()), (StatusCode::REQUEST_TIMEOUT, "timeout", "body"));
        assert!(e.rule.contains("50 ms"), "{}", e.rule);
    }
}
