//! The `/v1` routes: VMs, recovery points, jobs (start with an idempotency key, list with
//! filters and pagination, detail), endpoints, adapters, tokens, audit; health and
//! readiness.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::auth::Principal;
use super::cache::json_bytes;
use super::error::ApiError;
use crate::catalog::JobState;
use crate::engine::JobRequest;
use axum::body::Bytes;

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(
        Json(serde_json::to_value(value).map_err(|e| ApiError::internal(e.into()))?)
            .into_response(),
    )
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> ApiResult {
    ok(json!({ "status": "ok" }))
}

/// `GET /readyz`: unfinished jobs were resumed at start; 503 until then.
pub async fn readyz(State(state): State<Arc<ApiState>>) -> ApiResult {
    if state.ready.load(Ordering::SeqCst) {
        ok(json!({ "status": "ready" }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "resuming unfinished jobs",
        ))
    }
}

/// `GET /v1/vms` (kept serialized until the catalog is written again).
pub async fn vms(State(state): State<Arc<ApiState>>) -> ApiResult {
    let generation = state.catalog.generation();
    if let Some(bytes) = state.cache.vms(generation) {
        return Ok(json_bytes(bytes));
    }
    let vms = state.catalog.vms().map_err(ApiError::internal)?;
    let bytes = Bytes::from(serde_json::to_vec(&vms).map_err(|e| ApiError::internal(e.into()))?);
    state.cache.keep_vms(generation, bytes.clone());
    Ok(json_bytes(bytes))
}

/// `GET /v1/vms/{name}`.
pub async fn vm(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(name) = name?;
    match state.catalog.vm(&name).map_err(ApiError::internal)? {
        Some(vm) => ok(vm),
        None => Err(ApiError::not_found(format!("unknown VM '{name}'"))),
    }
}

/// `GET /v1/vms/{name}/points`: recovery points with snapshot and copy refs.
pub async fn vm_points(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(name) = name?;
    if state
        .catalog
        .vm(&name)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("unknown VM '{name}'")));
    }
    ok(state.catalog.points(&name).map_err(ApiError::internal)?)
}

/// `GET /v1/points/{id}`.
pub async fn point(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    match state.catalog.point(&id).map_err(ApiError::internal)? {
        Some(point) => ok(point),
        None => Err(ApiError::not_found(format!(
            "unknown recovery point '{id}'"
        ))),
    }
}

/// Filters and page of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    state: Option<String>,
    kind: Option<String>,
    vm: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

fn default_limit() -> usize {
    50
}

/// `GET /v1/jobs?state=&kind=&vm=&limit=&offset=`: newest first.
pub async fn jobs(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<JobFilter>, QueryRejection>,
) -> ApiResult {
    let Query(filter) = filter?;
    if filter.limit == 0 || filter.limit > 500 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "limit must be 1 to 500",
        ));
    }
    if let Some(s) = &filter.state {
        s.parse::<JobState>()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e))?;
    }
    let mut matching = Vec::new();
    for id in state.catalog.job_ids(false).map_err(ApiError::internal)? {
        let Some(job) = state.catalog.job(&id).map_err(ApiError::internal)? else {
            continue;
        };
        let keep = filter
            .state
            .as_deref()
            .is_none_or(|s| job.state.as_str() == s)
            && filter.kind.as_deref().is_none_or(|k| job.kind == k)
            && filter
                .vm
                .as_deref()
                .is_none_or(|v| job.vm_name.as_deref() == Some(v));
        if keep {
            matching.push(json!({
                "id": job.id, "kind": job.kind, "state": job.state, "vm": job.vm_name,
                "error": job.error, "created_at": crate::catalog::format_time(job.created_at),
            }));
        }
    }
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(filter.offset)
        .take(filter.limit)
        .collect();
    ok(json!({ "total": total, "offset": filter.offset, "limit": filter.limit, "jobs": page }))
}

/// `GET /v1/jobs/{id}`: the job with its steps.
pub async fn job(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    if let Some(bytes) = state.cache.job(&id) {
        return Ok(json_bytes(bytes));
    }
    let Some(job) = state.catalog.job(&id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    };
    let bytes = Bytes::from(serde_json::to_vec(&job).map_err(|e| ApiError::internal(e.into()))?);
    // A finished job never changes again.
    if !job.state.is_unfinished() {
        state.cache.keep_job(&id, bytes.clone());
    }
    Ok(json_bytes(bytes))
}

/// `POST /v1/jobs`: starts a workflow in the background; 202 with the job id. With an
/// `Idempotency-Key` header, the same key and request give the same job (200), never two;
/// the same key with another request is a 409.
pub async fn start_job(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> ApiResult {
    let Json(request) = body?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed",
                        "Idempotency-Key must be 1-200 visible ASCII characters",
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let request_text = serde_json::to_string(&request).map_err(|e| ApiError::internal(e.into()))?;
    // Copies need the copy store: the first copy makes it, restores need an existing one.
    match &request {
        JobRequest::Copy { .. } => {
            super::copies::copy_store(&state, true)?;
        }
        JobRequest::Restore { .. } | JobRequest::RestoreDevice { .. } => {
            super::copies::copy_store(&state, false)?;
        }
        JobRequest::Snapshot { .. } | JobRequest::Revert { .. } => {}
    }
    // One submission at a time, so two requests with one key cannot both miss the lookup.
    let _one_at_a_time = state.submit_lock.lock().await;
    if let Some(key) = &key
        && let Some((_, earlier, job)) = state
            .catalog
            .idempotent_job(key)
            .map_err(ApiError::internal)?
    {
        if earlier != request_text {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("Idempotency-Key {key} was used for a different request (job {job})"),
            ));
        }
        return Ok((
            StatusCode::OK,
            Json(json!({ "job": job, "replayed": true })),
        )
            .into_response());
    }
    let engine = state.engine.clone();
    let (job_id, planned) = engine.submit(&request).map_err(ApiError::refused)?;
    if let Some(key) = &key {
        state
            .catalog
            .remember_idempotency(key, &who.name, &request_text, &job_id)
            .map_err(ApiError::internal)?;
    }
    let id = job_id.clone();
    tokio::spawn(async move {
        if let Err(e) = engine.run_job(&id, planned).await {
            tracing::error!(job = %id, "job could not run: {e:#}");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": job_id, "state": "running", "replayed": false })),
    )
        .into_response())
}

/// `POST /v1/jobs/{id}/cancel`: the job stops before its next step and compensates.
pub async fn cancel_job(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    let Some(job) = state.catalog.job(&id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    };
    if !state
        .catalog
        .request_cancel(&id)
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "job {id} is {}; only a running job can be cancelled",
                job.state
            ),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": id, "cancel_requested": true })),
    )
        .into_response())
}

/// `GET /metrics`: Prometheus text: jobs by state, step durations, adapter calls, errors
/// and latency per endpoint and call.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tidemark_jobs Jobs in the catalog by state.\n# TYPE tidemark_jobs gauge"
    );
    for (job_state, count) in state.catalog.job_counts().map_err(ApiError::internal)? {
        let _ = writeln!(out, "tidemark_jobs{{state=\"{job_state}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP tidemark_step_duration_seconds Time spent in finished job steps.\n# TYPE tidemark_step_duration_seconds summary"
    );
    for (name, count, seconds) in state.catalog.step_durations().map_err(ApiError::internal)? {
        let name = label(&name);
        let _ = writeln!(
            out,
            "tidemark_step_duration_seconds_sum{{step=\"{name}\"}} {seconds}"
        );
        let _ = writeln!(
            out,
            "tidemark_step_duration_seconds_count{{step=\"{name}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tidemark_adapter_calls_total Adapter calls made by this process.\n# TYPE tidemark_adapter_calls_total counter"
    );
    let calls = crate::runtime::metrics::snapshot();
    for (endpoint, call, s) in &calls {
        let _ = writeln!(
            out,
            "tidemark_adapter_calls_total{{endpoint=\"{}\",call=\"{call}\"}} {}",
            label(endpoint),
            s.calls
        );
    }
    let _ = writeln!(
        out,
        "# HELP tidemark_adapter_errors_total Adapter calls that failed.\n# TYPE tidemark_adapter_errors_total counter"
    );
    for (endpoint, call, s) in &calls {
        let _ = writeln!(
            out,
            "tidemark_adapter_errors_total{{endpoint=\"{}\",call=\"{call}\"}} {}",
            label(endpoint),
            s.errors
        );
    }
    let _ = writeln!(
        out,
        "# HELP tidemark_adapter_call_seconds Adapter call latency.\n# TYPE tidemark_adapter_call_seconds summary"
    );
    for (endpoint, call, s) in &calls {
        let endpoint = label(endpoint);
        let _ = writeln!(
            out,
            "tidemark_adapter_call_seconds_sum{{endpoint=\"{endpoint}\",call=\"{call}\"}} {}",
            s.seconds
        );
        let _ = writeln!(
            out,
            "tidemark_adapter_call_seconds_count{{endpoint=\"{endpoint}\",call=\"{call}\"}} {}",
            s.calls
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}

/// A Prometheus label value with `\` and `"` escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /v1/endpoints`: configured endpoints with their adapter's kind; settings that look
/// like credentials are redacted.
pub async fn endpoints(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(super::endpoints::endpoint_docs(&state.data).map_err(ApiError::internal)?)
}

/// `GET /v1/inventory[?endpoint=NAME]`: what the adapters report now (hosts, VMs, LUNs,
/// snapshots), asked fresh from every endpoint.
pub async fn inventory(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<super::inventory::EndpointFilter>, QueryRejection>,
) -> ApiResult {
    let Query(filter) = filter?;
    ok(super::inventory::report(&state, filter.endpoint.as_deref()).await?)
}

/// `GET /v1/adapters`: loaded adapters with their contract version and capabilities.
pub async fn adapters(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(super::endpoints::adapter_docs(&state.data))
}

/// `GET /v1/tokens` (admin): names and roles, never the tokens.
pub async fn tokens(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(state.catalog.tokens().map_err(ApiError::internal)?)
}

/// `GET /v1/audit` (admin): the newest 200 state-changing requests.
pub async fn audit(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(state.catalog.audit_log(200).map_err(ApiError::internal)?)
}

/// Any other path.
pub async fn fallback() -> ApiError {
    ApiError::not_found("no such route (see the README's API section)")
}
