//! The API's one error shape: `{ "error": CODE, "message": TEXT, "details": ... }` with the
//! status that fits.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    /// An error with a status, a machine-readable code and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// 404 naming what was not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// An engine refusal, sorted by what it says: unknown things are 404, things in the
    /// way are 409, anything else is semantically invalid input (422).
    pub fn refused(error: anyhow::Error) -> Self {
        let message = format!("{error:#}");
        let (status, code) = if message.starts_with("unknown ") {
            (StatusCode::NOT_FOUND, "not-found")
        } else if [
            "unfinished job",
            "exists already",
            "copied already",
            "still in use",
        ]
        .iter()
        .any(|m| message.contains(m))
        {
            (StatusCode::CONFLICT, "conflict")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
        };
        Self::new(status, code, message)
    }

    /// A failure of the host itself (500); the message is logged, not hidden.
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!("API request failed: {error:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{error:#}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "message": self.message, "details": self.details });
        (self.status, Json(body)).into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        let (status, code) = match &rejection {
            R::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            R::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "malformed"),
            R::BytesRejection(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            _ => (StatusCode::BAD_REQUEST, "malformed"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", rejection.body_text())
    }
}
