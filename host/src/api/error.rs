//! The API's one error shape: `{ "error": CODE, "message": TEXT, "details": ... }` with the
//! status that fits.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// How many seconds a client told 429 waits before trying again (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The body of every error answer, as sent and as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: `malformed`, `invalid`, `too-large`, `unauthorized`,
    /// `forbidden`, `not-found`, `conflict`, `too-many-requests`, `unavailable`, `internal`;
    /// from an endpoint's adapter also `unsupported`, `denied` and `adapter-failed`.
    #[schema(example = "not-found")]
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// More about it, when there is more (otherwise null).
    pub details: Value,
}

use crate::refusal::{Refusal, RefusalKind};

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

    /// The answer to a request that failed: a typed [`Refusal`] gives its status (404, 409,
    /// 422) and keeps its message; any other error is not the request's fault but the
    /// host's, so it is a logged 500 ([`ApiError::internal`]), never a 4xx guessed from
    /// its wording.
    pub fn refused(error: anyhow::Error) -> Self {
        let (status, code) = match Refusal::find(&error).map(|r| r.kind) {
            Some(RefusalKind::NotFound) => (StatusCode::NOT_FOUND, "not-found"),
            Some(RefusalKind::Conflict) => (StatusCode::CONFLICT, "conflict"),
            Some(RefusalKind::Busy) => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests"),
            Some(RefusalKind::Invalid) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            None => return Self::internal(error),
        };
        Self::new(status, code, format!("{error:#}"))
    }

    /// The answer to a request an adapter served: a [`Refusal`] as [`ApiError::refused`]
    /// gives it; the adapter's own refusals as the request's fault (not-found 404, conflict
    /// 409, invalid 422); `unsupported` 501; the system behind it refusing Tidemark's
    /// credentials (`denied`) 502; `transient` (down, throttled) 503; a broken adapter (trap,
    /// deadline, garbage) 502. Anything else is the host's failure (500).
    pub fn from_adapter(error: anyhow::Error) -> Self {
        use crate::engine::ports::{CallError, CallErrorKind};
        use crate::model::AdapterError as A;
        if Refusal::find(&error).is_some() {
            return Self::refused(error);
        }
        let Some(call) = error.downcast_ref::<CallError>() else {
            return Self::internal(error);
        };
        let (status, code) = match &call.kind {
            CallErrorKind::Adapter(A::NotFound(_)) => (StatusCode::NOT_FOUND, "not-found"),
            CallErrorKind::Adapter(A::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            CallErrorKind::Adapter(A::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            CallErrorKind::Adapter(A::Unsupported(_)) => {
                (StatusCode::NOT_IMPLEMENTED, "unsupported")
            }
            CallErrorKind::Adapter(A::Transient(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            CallErrorKind::Adapter(A::Denied(_)) => (StatusCode::BAD_GATEWAY, "denied"),
            _ => (StatusCode::BAD_GATEWAY, "adapter-failed"),
        };
        tracing::warn!("API request failed at its endpoint: {error:#}");
        Self::new(status, code, format!("{error:#}"))
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
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
            details: self.details,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
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

/// A JSON object body read into `T`. Serde alone would also take an array for a struct (its
/// fields in order), which no client means; malformed JSON stays a 400, anything else that
/// does not fit is a 422.
pub struct ObjectJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S>
    for ObjectJson<T>
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(ObjectJson)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))
    }
}

/// Reads an optional whole number that JSON may spell `7` or `7.0` (both are integers to
/// JSON Schema, which the API document promises); fractions, negatives and numbers past
/// the documented `int64` range are refused.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    let Some(number) =
        <Option<serde_json::Number> as serde::Deserialize>::deserialize(deserializer)?
    else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .filter(|n| i64::try_from(*n).is_ok())
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn a_refusal_keeps_its_status_and_anything_else_is_a_500() {
        for (refusal, status) in [
            (Refusal::not_found("no VM 'x'"), StatusCode::NOT_FOUND),
            (Refusal::conflict("VM x is busy"), StatusCode::CONFLICT),
            (Refusal::invalid("size 0"), StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            // Context added on the way up keeps the refusal findable.
            let answer = ApiError::refused(Err::<(), _>(refusal).context("starting").unwrap_err());
            assert_eq!(answer.status, status);
            assert!(
                answer.message.starts_with("starting: "),
                "{}",
                answer.message
            );
        }
        let failure = ApiError::refused(anyhow::anyhow!("database is locked"));
        assert_eq!(failure.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failure.code, "internal");
        assert_eq!(failure.message, "database is locked");
    }
}
