//! API errors as JSON bodies `{"error": {"code", "field", "rule", "message"}}`, and extractors whose rejections use that shape.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

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
            AdmitError::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
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

/// `axum::Json` whose rejections are [`ApiError`]s: syntax and type errors are 400,
/// a missing JSON content type 415, a body over the limit 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request("body", format!("wrong JSON shape: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("body", format!("not valid JSON: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "content-type",
            "must be application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body", "exceeds the request body limit")
        }
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
