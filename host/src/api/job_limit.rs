//! The bound on jobs the server runs at once: past it, `POST /v1/jobs` answers 429 with
//! `Retry-After` instead of starting more work than the machine can carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many jobs started over the API may run at once unless configured otherwise. High
/// enough that a burst of 100 snapshot jobs (the benchmark) is accepted whole; the bound
/// exists so that a runaway client meets 429 rather than exhausting the host.
pub const DEFAULT_MAX_RUNNING_JOBS: usize = 256;

/// Jobs this server is running now; each holds a [`JobSlot`] for the life of its task.
#[derive(Debug, Default, Clone)]
pub struct RunningJobs(Arc<AtomicUsize>);

/// One running job's place under the bound; dropping it frees the place.
#[derive(Debug)]
pub struct JobSlot(Arc<AtomicUsize>);

impl RunningJobs {
    /// A slot if fewer than `max` jobs are running, `None` when the bound is reached.
    pub fn try_start(&self, max: usize) -> Option<JobSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| JobSlot(self.0.clone()))
    }

    /// How many jobs hold a slot now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let running = RunningJobs::default();
        let a = running.try_start(2).expect("first slot");
        let b = running.try_start(2).expect("second slot");
        assert!(
            running.try_start(2).is_none(),
            "a third job passed a bound of 2"
        );
        assert_eq!(running.count(), 2);
        drop(a);
        let c = running.try_start(2).expect("a freed slot is reusable");
        drop((b, c));
        assert_eq!(running.count(), 0);
        assert!(
            running.try_start(0).is_none(),
            "a bound of 0 admits nothing"
        );
    }

    /// `POST /v1/jobs` (a snapshot of VM `app`) through the router: status, Retry-After, body.
    async fn start(
        app: &mut axum::Router,
        token: &str,
    ) -> (
        axum::http::StatusCode,
        Option<axum::http::HeaderValue>,
        serde_json::Value,
    ) {
        use axum::body::Body;
        use axum::http::{Request, header};
        use tower_service::Service;

        let request = Request::post("/v1/jobs")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"kind":"snapshot","vm":"app"}"#))
            .expect("request");
        std::future::poll_fn(|cx| <axum::Router as Service<Request<Body>>>::poll_ready(app, cx))
            .await
            .expect("ready");
        let response = app.call(request).await.expect("infallible");
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body = serde_json::from_slice(&body).expect("JSON");
        (status, retry_after, body)
    }

    #[tokio::test]
    async fn a_server_at_its_bound_answers_429_with_retry_after() {
        use axum::http::StatusCode;

        // A fresh data directory: no endpoints, no VMs, so the request is decided before any
        // adapter is asked.
        let dir = tempfile::tempdir().expect("tempdir");
        let data = crate::data_dir::Context::open(dir.path())
            .await
            .expect("data directory");
        let (token, hash) = crate::api::auth::new_token().expect("token");
        data.catalog
            .add_token("ops", "operator", &hash)
            .expect("add token");
        let config = crate::api::config::ServeConfig {
            max_running_jobs: 1,
            ..Default::default()
        };
        let state = crate::api::ApiState::new(Arc::new(data), false, &config);
        let mut app = crate::api::router(state.clone());

        let held = state.running_jobs.try_start(1).expect("the only slot");
        let (status, retry_after, body) = start(&mut app, &token).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "too-many-requests");
        assert!(body["message"].is_string() && body.get("details").is_some());
        assert_eq!(
            retry_after.expect("Retry-After").to_str().ok(),
            Some(
                super::super::error::RETRY_AFTER_SECONDS
                    .to_string()
                    .as_str()
            )
        );
        assert!(
            state
                .data
                .catalog
                .jobs_newest_first()
                .expect("jobs")
                .is_empty()
        );

        // With the slot free the same request passes the bound and meets the catalog.
        drop(held);
        let (status, retry_after, body) = start(&mut app, &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(retry_after.is_none());
        assert_eq!(state.running_jobs.count(), 0);
    }
}
