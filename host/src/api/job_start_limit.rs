//! `POST /v1/jobs` past the engine's bound on running jobs: 429 with `Retry-After`, no job.

use std::sync::Arc;

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
    let data = crate::data_dir::DataDir::open(dir.path())
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

    let held = state
        .data
        .engine
        .slots()
        .try_start(1)
        .expect("the only slot");
    let (status, retry_after, body) = start(&mut app, &token).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too-many-requests");
    assert!(body["message"].is_string() && body.get("details").is_some());
    assert_eq!(
        retry_after.expect("Retry-After").to_str().ok(),
        Some(super::error::RETRY_AFTER_SECONDS.to_string().as_str())
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
    assert_eq!(state.data.engine.running_jobs(), 0);
}
