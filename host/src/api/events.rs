//! `GET /v1/jobs/{id}/events`: Server-Sent Events of a job's steps, derived from its
//! journal, so the stream is the same after a server restart and a client resumes with
//! `Last-Event-ID` where it left off. Events: `step` when a step starts and when it ends
//! (id `<seq>.started` / `<seq>.ended`), `undo` when compensation settles a step (id
//! `<seq>.undone`), then one `end` with the job's final state.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use crate::catalog::{JobRecord, StepState};

/// How often the journal is looked at for news.
const POLL: Duration = Duration::from_millis(100);

/// One event: (id, kind, data).
type JobEvent = (String, &'static str, serde_json::Value);

/// Every event the journal implies so far, in order.
fn events_of(job: &JobRecord) -> Vec<JobEvent> {
    let mut out = Vec::new();
    for s in &job.steps {
        out.push((
            format!("{}.started", s.seq),
            "step",
            json!({ "seq": s.seq, "name": s.name, "state": "running" }),
        ));
        if s.state != StepState::Running {
            out.push((
                format!("{}.ended", s.seq),
                "step",
                json!({ "seq": s.seq, "name": s.name, "state": s.state, "detail": s.detail }),
            ));
        }
    }
    let mut undone: Vec<_> = job
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                StepState::Compensated | StepState::CompensationFailed
            )
        })
        .collect();
    undone.sort_by_key(|s| std::cmp::Reverse(s.seq));
    for s in undone {
        out.push((
            format!("{}.undone", s.seq),
            "undo",
            json!({ "seq": s.seq, "name": s.name, "state": s.state, "detail": s.detail }),
        ));
    }
    if !job.state.is_unfinished() {
        out.push((
            "end".to_string(),
            "end",
            json!({ "job": job.id, "state": job.state, "error": job.error, "result": job.result }),
        ));
    }
    out
}

/// The stream of a job's events, from after `Last-Event-ID` if given.
#[utoipa::path(get, path = "/v1/jobs/{id}/events",
    params(
        ("id" = String, Path, description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `step`, `undo`, then one `end`", body = super::bodies::JobEventSchema, content_type = "text/event-stream"),
        (status = 404, description = "No job with that id", body = super::error::ErrorBody),
    ))]
pub async fn job_events(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    if state
        .catalog
        .job(&id)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    }
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let catalog = state.catalog.clone();
    // State: how many events were sent; `None` until the resume point is found.
    let start = (catalog, id, last_seen, None::<usize>, false);
    let stream =
        futures::stream::unfold(start, |(catalog, id, last_seen, sent, done)| async move {
            if done {
                return None;
            }
            let mut sent = sent;
            loop {
                let job = match catalog.job(&id) {
                    Ok(Some(job)) => job,
                    _ => return None,
                };
                let all = events_of(&job);
                let from = match sent {
                    Some(n) => n,
                    None => last_seen
                        .as_deref()
                        .and_then(|l| all.iter().position(|(eid, _, _)| eid == l))
                        .map_or(0, |p| p + 1),
                };
                if let Some((eid, kind, data)) = all.get(from).cloned() {
                    let finished = kind == "end";
                    let event = Event::default().id(eid).event(kind).data(data.to_string());
                    return Some((
                        Ok::<_, Infallible>(event),
                        (catalog, id, last_seen, Some(from + 1), finished),
                    ));
                }
                sent = Some(from);
                tokio::time::sleep(POLL).await;
            }
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
