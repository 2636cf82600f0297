//! Answers of the API that are not catalog records: typed, so the handlers and the OpenAPI
//! document share one definition of what is sent.

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::JobState;

/// `GET /healthz` and `GET /readyz`: how the process stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (healthz) or `ready` (readyz).
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// One job in a listing (the detail adds params, result and steps).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: String,
    /// `snapshot`, `revert`, ...
    pub kind: String,
    pub state: JobState,
    /// The VM the job works on, if any.
    pub vm: Option<String>,
    pub error: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A page of `GET /v1/jobs`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Jobs matching the filters, over all pages.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub jobs: Vec<JobSummary>,
}

/// `POST /v1/jobs`: the job that runs the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobStarted {
    /// The job id (follow it at `/v1/jobs/{id}` and `/v1/jobs/{id}/events`).
    pub job: String,
    /// `running` for a new job; absent when an Idempotency-Key replayed an earlier one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Whether the Idempotency-Key named an earlier job with the same request.
    pub replayed: bool,
}

/// `POST /v1/jobs/{id}/cancel`: the cancellation was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelRequested {
    pub job: String,
    pub cancel_requested: bool,
}

/// One event of `GET /v1/jobs/{id}/events` as a client parses the stream: `event` is `step`,
/// `undo` or `end`, `data` a JSON object as text, `id` where to resume (`Last-Event-ID`).
/// Described only: axum's `Event` writes the stream.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobEventSchema {
    #[schema(example = "1.started")]
    pub id: String,
    #[schema(example = "step")]
    pub event: String,
    pub data: String,
}
