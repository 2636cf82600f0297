//! `GET /v1/jobs/{id}/events`: Server-Sent Events of a job. Step events are derived from
//! its journal, so the stream is the same after a server restart and a client resumes with
//! `Last-Event-ID` where it left off: `step` when a step starts and when it ends (id
//! `<seq>.started` / `<seq>.ended`), `undo` when compensation settles a step (id
//! `<seq>.undone`), then one `end` with the job's final state.
//!
//! While a step moves bytes (copy-device, restore-device), `progress` events come between
//! its `started` and `ended`, at most ~5 per second, the last of a piece with
//! `done == total`: data `{"seq","step","label","done","total","rate"}`, id
//! `<seq>.progress.<n>`. Progress is live only (not journalled): resuming after a progress
//! id continues with the step events after `<seq>.started`, so no step event is skipped or
//! repeated, and with progress published from then on.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::ApiState;
use super::error::ApiError;
use crate::catalog::{Catalog, JobRecord, StepState};
use crate::engine::progress_hub::ProgressUpdate;

/// How often the journal is looked at for news (and progress drained) at the latest: a
/// progress update, or the end of the job (the engine then closes its progress channel),
/// wakes the stream at once, so a client following a short job (an incremental copy takes
/// a few hundred ms) is not kept waiting up to this long for its `end`.
const POLL: Duration = Duration::from_millis(100);

/// One event as sent.
#[derive(Debug, Clone, PartialEq)]
struct JobEvent {
    id: String,
    kind: &'static str,
    /// The data line: JSON.
    data: String,
    /// For a step's `ended` event: the step (its progress must come before).
    ends: Option<u32>,
}

impl JobEvent {
    fn new(id: String, kind: &'static str, data: serde_json::Value) -> Self {
        Self {
            id,
            kind,
            data: data.to_string(),
            ends: None,
        }
    }

    fn progress(update: &ProgressUpdate) -> Self {
        Self {
            id: format!("{}.progress.{}", update.seq, update.n),
            kind: "progress",
            // Serialized from the struct so the keys keep their documented order.
            data: serde_json::to_string(update).unwrap_or_default(),
            ends: None,
        }
    }
}

/// Every event the journal implies so far, in order.
fn events_of(job: &JobRecord) -> Vec<JobEvent> {
    let mut out = Vec::new();
    for s in &job.steps {
        out.push(JobEvent::new(
            format!("{}.started", s.seq),
            "step",
            json!({ "seq": s.seq, "name": s.name, "state": "running" }),
        ));
        if s.state != StepState::Running {
            let mut ended = JobEvent::new(
                format!("{}.ended", s.seq),
                "step",
                json!({ "seq": s.seq, "name": s.name, "state": s.state, "detail": s.detail }),
            );
            ended.ends = Some(s.seq);
            out.push(ended);
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
        out.push(JobEvent::new(
            format!("{}.undone", s.seq),
            "undo",
            json!({ "seq": s.seq, "name": s.name, "state": s.state, "detail": s.detail }),
        ));
    }
    if !job.state.is_unfinished() {
        out.push(JobEvent::new(
            "end".to_string(),
            "end",
            json!({ "job": job.id, "state": job.state, "error": job.error, "result": job.result }),
        ));
    }
    out
}

/// Where a stream resumed after `last_seen` starts in the journal's events: after that
/// event, after `<seq>.started` for a progress id, else from the beginning.
fn resume_index(events: &[JobEvent], last_seen: Option<&str>) -> usize {
    let Some(last) = last_seen else { return 0 };
    let target = match last.split_once(".progress.") {
        Some((seq, n)) if n.parse::<u32>().is_ok() => format!("{seq}.started"),
        _ => last.to_string(),
    };
    events
        .iter()
        .position(|e| e.id == target)
        .map_or(0, |p| p + 1)
}

/// The journal's events from `from` with the progress `updates` merged in: each step's
/// updates just before its `ended` event; those of a still-running step at the end; those
/// of a step whose `ended` was sent already (before `from`) dropped.
///
/// Correct because the engine journals a step's start before its progress and publishes
/// progress before journalling the step's end, and updates are drained *after* the
/// journal was read: every update of a step ended in `events` is among `updates`.
fn merge(events: &[JobEvent], from: usize, updates: Vec<ProgressUpdate>) -> Vec<JobEvent> {
    let mut updates: VecDeque<ProgressUpdate> = updates.into();
    let mut out = Vec::new();
    for event in &events[from.min(events.len())..] {
        if let Some(seq) = event.ends {
            updates.retain(|u| {
                if u.seq == seq {
                    out.push(JobEvent::progress(u));
                }
                u.seq != seq
            });
        }
        out.push(event.clone());
    }
    let ended_before = |seq: u32| events[..from].iter().any(|e| e.ends == Some(seq));
    out.extend(
        updates
            .iter()
            .filter(|u| !ended_before(u.seq))
            .map(JobEvent::progress),
    );
    out
}

/// Takes every progress update received so far.
fn drain(progress: &mut Option<broadcast::Receiver<ProgressUpdate>>) -> Vec<ProgressUpdate> {
    let mut out = Vec::new();
    let Some(rx) = progress else { return out };
    loop {
        match rx.try_recv() {
            Ok(update) => out.push(update),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    out
}

/// A stream's position: journal events sent, events ready to send, live progress.
struct Cursor {
    catalog: Arc<Catalog>,
    id: String,
    last_seen: Option<String>,
    /// Journal events sent (or queued); `None` until the resume point is found.
    sent: Option<usize>,
    queue: VecDeque<JobEvent>,
    progress: Option<broadcast::Receiver<ProgressUpdate>>,
    /// Progress received while waiting, not yet merged into the queue.
    early: Vec<ProgressUpdate>,
    done: bool,
}

impl Cursor {
    /// The next event, waiting for the journal or progress to have one; `None` after `end`.
    async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.done = event.kind == "end";
                return Some(event);
            }
            if self.done {
                return None;
            }
            let job = match self.catalog.job(&self.id) {
                Ok(Some(job)) => job,
                _ => return None,
            };
            let all = events_of(&job);
            let from = self
                .sent
                .unwrap_or_else(|| resume_index(&all, self.last_seen.as_deref()));
            self.sent = Some(all.len().max(from));
            let mut updates = std::mem::take(&mut self.early);
            updates.extend(drain(&mut self.progress));
            self.queue.extend(merge(&all, from, updates));
            if self.queue.is_empty() {
                self.wait().await;
            }
        }
    }

    /// Waits for news: [`POLL`], or sooner a progress update or the job's end.
    async fn wait(&mut self) {
        let Some(rx) = self.progress.as_mut() else {
            return tokio::time::sleep(POLL).await;
        };
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            received = rx.recv() => match received {
                Ok(update) => self.early.push(update),
                Err(RecvError::Lagged(_)) => {}
                // The job ended: its final state is in the journal now.
                Err(RecvError::Closed) => self.progress = None,
            },
        }
    }
}

/// The stream of a job's events, from after `Last-Event-ID` if given.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", operation_id = "stream_job_events",
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
    let Some(job) = state.data.catalog.job(&id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Subscribed before the journal is first read, so no update between the two is lost.
    let progress = job
        .state
        .is_unfinished()
        .then(|| state.data.engine.subscribe_progress(&id));
    let cursor = Cursor {
        catalog: state.data.catalog.clone(),
        id,
        last_seen,
        sent: None,
        queue: VecDeque::new(),
        progress,
        early: Vec::new(),
        done: false,
    };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        let sse = Event::default()
            .id(event.id)
            .event(event.kind)
            .data(event.data);
        Some((Ok::<_, Infallible>(sse), cursor))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(seq: u32, ended: bool) -> Vec<JobEvent> {
        let started = JobEvent::new(format!("{seq}.started"), "step", json!({}));
        let mut end = JobEvent::new(format!("{seq}.ended"), "step", json!({}));
        end.ends = Some(seq);
        if ended {
            vec![started, end]
        } else {
            vec![started]
        }
    }

    fn update(seq: u32, n: u32) -> ProgressUpdate {
        ProgressUpdate {
            seq,
            step: format!("copy-device {seq}"),
            label: "copy".into(),
            done: u64::from(n),
            total: 10,
            rate: 1,
            n,
        }
    }

    fn ids(events: &[JobEvent]) -> Vec<&str> {
        events.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn progress_goes_before_its_step_end_and_stale_progress_is_dropped() {
        let journal: Vec<JobEvent> = [step(1, true), step(2, true), step(3, false)].concat();
        // Step 1 was sent fully before; 2 ended since; 3 runs.
        let merged = merge(
            &journal,
            2,
            vec![update(1, 9), update(2, 1), update(2, 2), update(3, 1)],
        );
        assert_eq!(
            ids(&merged),
            vec![
                "2.started",
                "2.progress.1",
                "2.progress.2",
                "2.ended",
                "3.started",
                "3.progress.1"
            ]
        );
        let data: serde_json::Value = serde_json::from_str(&merged[1].data).unwrap();
        assert_eq!(
            data,
            json!({"seq": 2, "step": "copy-device 2", "label": "copy", "done": 1, "total": 10, "rate": 1})
        );
        assert!(merged[1].data.starts_with(r#"{"seq":2,"step":"#));
    }

    #[test]
    fn resuming_after_a_progress_id_continues_after_its_step_start() {
        let journal: Vec<JobEvent> = [step(1, true), step(2, true)].concat();
        assert_eq!(resume_index(&journal, Some("2.progress.7")), 3);
        assert_eq!(resume_index(&journal, Some("1.ended")), 2);
        assert_eq!(resume_index(&journal, Some("2.progress.x")), 0);
        assert_eq!(resume_index(&journal, None), 0);
    }
}
