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
use utoipa::IntoParams;

use super::ApiState;
use super::auth::Principal;
use super::bodies::{CancelRequested, JobPage, JobStarted, JobSummary, Status};
use super::cache::json_bytes;
use super::error::{ApiError, ErrorBody};
use crate::catalog::{AuditRecord, JobRecord, JobState, PointRecord, TokenRecord, VmRecord};
use crate::engine::{DryRun, JobRequest};

/// What `POST /v1/jobs` answers with 200: a dry run's plan, or the job an earlier request
/// with the same `Idempotency-Key` started.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DryRunOrStarted {
    /// `dry_run=true`: the checked plan.
    DryRun(DryRun),
    /// A replayed `Idempotency-Key`.
    Started(JobStarted),
}
use crate::engine::inventory::EndpointInventory;
use axum::body::Bytes;

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(
        Json(serde_json::to_value(value).map_err(|e| ApiError::internal(e.into()))?)
            .into_response(),
    )
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "check_health", responses((status = 200, description = "The process answers", body = Status)))]
pub async fn healthz() -> ApiResult {
    ok(Status { status: "ok" })
}

/// `GET /readyz`: unfinished jobs were resumed at start; 503 until then.
#[utoipa::path(get, path = "/readyz", operation_id = "check_readiness", responses(
    (status = 200, description = "Unfinished jobs were resumed", body = Status),
    (status = 503, description = "Still resuming unfinished jobs", body = ErrorBody),
))]
pub async fn readyz(State(state): State<Arc<ApiState>>) -> ApiResult {
    if state.ready.load(Ordering::SeqCst) {
        ok(Status { status: "ready" })
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "resuming unfinished jobs",
        ))
    }
}

/// `GET /v1/vms` (kept serialized until the catalog is written again).
#[utoipa::path(get, path = "/v1/vms", operation_id = "list_vms", responses((status = 200, description = "VMs under protection", body = Vec<VmRecord>)))]
pub async fn vms(State(state): State<Arc<ApiState>>) -> ApiResult {
    let generation = state.data.catalog.generation();
    if let Some(bytes) = state.cache.vms(generation) {
        return Ok(json_bytes(bytes));
    }
    let vms = state.data.catalog.vms().map_err(ApiError::internal)?;
    let bytes = Bytes::from(serde_json::to_vec(&vms).map_err(|e| ApiError::internal(e.into()))?);
    state.cache.keep_vms(generation, bytes.clone());
    Ok(json_bytes(bytes))
}

/// `GET /v1/vms/{name}`.
#[utoipa::path(get, path = "/v1/vms/{name}", operation_id = "get_vm", params(("name" = String, Path, description = "Tidemark's name of the VM", example = "app")), responses(
    (status = 200, description = "The VM with its devices", body = VmRecord),
    (status = 404, description = "No VM of that name", body = ErrorBody),
))]
pub async fn vm(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(name) = name?;
    match state.data.catalog.vm(&name).map_err(ApiError::internal)? {
        Some(vm) => ok(vm),
        None => Err(ApiError::not_found(format!("unknown VM '{name}'"))),
    }
}

/// `GET /v1/vms/{name}/points`: recovery points with snapshot and copy refs.
#[utoipa::path(get, path = "/v1/vms/{name}/points", operation_id = "list_vm_points", params(("name" = String, Path, description = "Tidemark's name of the VM", example = "app")), responses(
    (status = 200, description = "The VM's recovery points", body = Vec<PointRecord>),
    (status = 404, description = "No VM of that name", body = ErrorBody),
))]
pub async fn vm_points(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(name) = name?;
    if state
        .data
        .catalog
        .vm(&name)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("unknown VM '{name}'")));
    }
    ok(state
        .data
        .catalog
        .points(&name)
        .map_err(ApiError::internal)?)
}

/// `GET /v1/points/{id}`.
#[utoipa::path(get, path = "/v1/points/{id}", operation_id = "get_point", params(("id" = String, Path, description = "Recovery point id")), responses(
    (status = 200, description = "The recovery point", body = PointRecord),
    (status = 404, description = "No recovery point with that id", body = ErrorBody),
))]
pub async fn point(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    match state.data.catalog.point(&id).map_err(ApiError::internal)? {
        Some(point) => ok(point),
        None => Err(ApiError::not_found(format!(
            "unknown recovery point '{id}'"
        ))),
    }
}

/// Filters and page of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only jobs of this kind (`snapshot`, `revert`, ...).
    kind: Option<String>,
    /// Only jobs on this VM.
    vm: Option<String>,
    /// Page size, 1 to 500.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: usize,
    /// Jobs to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 4294967295_u64)]
    offset: usize,
}

/// The largest `offset` of `GET /v1/jobs` (as documented).
const MAX_OFFSET: usize = u32::MAX as usize;

fn default_limit() -> usize {
    50
}

/// `GET /v1/jobs?state=&kind=&vm=&limit=&offset=`: newest first.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", params(JobFilter), responses(
    (status = 200, description = "A page of jobs, newest first", body = JobPage),
    (status = 400, description = "A filter or the page is malformed", body = ErrorBody),
))]
pub async fn jobs(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<JobFilter>, QueryRejection>,
) -> ApiResult {
    let Query(filter) = filter?;
    if filter.offset > MAX_OFFSET {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("offset must be 0 to {MAX_OFFSET}"),
        ));
    }
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
    for job in state
        .data
        .catalog
        .jobs_newest_first()
        .map_err(ApiError::internal)?
    {
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
            matching.push(JobSummary {
                created_at: crate::catalog::format_time(job.created_at),
                id: job.id,
                kind: job.kind,
                state: job.state,
                vm: job.vm_name,
                error: job.error,
            });
        }
    }
    let total = matching.len();
    let jobs = matching
        .into_iter()
        .skip(filter.offset)
        .take(filter.limit)
        .collect();
    ok(JobPage {
        total,
        offset: filter.offset,
        limit: filter.limit,
        jobs,
    })
}

/// `GET /v1/jobs/{id}`: the job with its steps.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", params(("id" = String, Path, description = "Job id")), responses(
    (status = 200, description = "The job with its steps", body = JobRecord),
    (status = 404, description = "No job with that id", body = ErrorBody),
))]
pub async fn job(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    if let Some(bytes) = state.cache.job(&id) {
        return Ok(json_bytes(bytes));
    }
    let Some(job) = state.data.catalog.job(&id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    };
    let bytes = Bytes::from(serde_json::to_vec(&job).map_err(|e| ApiError::internal(e.into()))?);
    // A finished job never changes again.
    if !job.state.is_unfinished() {
        state.cache.keep_job(&id, bytes.clone());
    }
    Ok(json_bytes(bytes))
}

/// `POST /v1/jobs?dry_run=`: with `dry_run=true`, only the checked plan.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartJobQuery {
    /// Check the request and answer with its plan and steps, recording nothing.
    dry_run: Option<bool>,
}

/// `POST /v1/jobs`: starts a workflow in the background; 202 with the job id. With an
/// `Idempotency-Key` header, the same key and request give the same job (200), never two;
/// the same key with another request is a 409. Past `max_running_jobs` running jobs, 429.
/// With `?dry_run=true`, 200 with the checked plan and its steps; nothing is recorded.
#[utoipa::path(post, path = "/v1/jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and request, same job (1-200 visible ASCII characters)",
        min_length = 1, max_length = 200, pattern = "^[!-~]{1,200}$"), StartJobQuery),
    request_body = JobRequest,
    responses(
        (status = 202, description = "The job was started", body = JobStarted),
        (status = 200, description = "With `dry_run=true`: the plan, nothing recorded; or the Idempotency-Key named an earlier job with this request", body = DryRunOrStarted),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 404, description = "The VM or recovery point is unknown", body = ErrorBody),
        (status = 409, description = "The VM has an unfinished job, or the key was used for another request", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
        (status = 429, description = "The server runs as many jobs as it may; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn start_job(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<StartJobQuery>, QueryRejection>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let Json(request) = body?;
    if query.dry_run == Some(true) {
        let plan = state
            .data
            .engine
            .dry_run(&request)
            .await
            .map_err(ApiError::refused)?;
        return ok(plan);
    }
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
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
    let started = state
        .data
        .engine
        .start(&request, key.as_deref(), &who.name, state.max_running_jobs)
        .map_err(ApiError::refused)?;
    let (status, job_state) = if started.replayed {
        (StatusCode::OK, None)
    } else {
        (StatusCode::ACCEPTED, Some(JobState::Running))
    };
    Ok((
        status,
        Json(JobStarted {
            job: started.job,
            state: job_state,
            replayed: started.replayed,
        }),
    )
        .into_response())
}

/// `POST /v1/jobs/resume`: continues every unfinished job, or finishes compensating it.
/// A serving process did that when it started, so there it is a conflict.
#[utoipa::path(post, path = "/v1/jobs/resume", operation_id = "resume_jobs", responses(
        (status = 200, description = "The jobs continued or compensated", body = Object),
        (status = 409, description = "A serving process resumed them when it started", body = ErrorBody),
    ))]
pub async fn resume(State(state): State<Arc<ApiState>>) -> ApiResult {
    if state.resumes_at_start {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this server resumed every unfinished job when it started (see GET /v1/jobs?state=running)",
        ));
    }
    let jobs = state
        .data
        .engine
        .resume()
        .await
        .map_err(ApiError::internal)?;
    let docs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| serde_json::json!({ "id": j.id, "kind": j.kind, "state": j.state, "error": j.error }))
        .collect();
    ok(serde_json::json!({ "resumed": docs }))
}

/// `POST /v1/jobs/{id}/cancel`: the job stops before its next step and compensates.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", operation_id = "cancel_job", params(("id" = String, Path, description = "Job id")), responses(
    (status = 202, description = "Cancellation recorded; the job compensates", body = CancelRequested),
    (status = 404, description = "No job with that id", body = ErrorBody),
    (status = 409, description = "The job is not running", body = ErrorBody),
))]
pub async fn cancel_job(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    let Some(job) = state.data.catalog.job(&id).map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("unknown job '{id}'")));
    };
    if !state
        .data
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
        Json(CancelRequested {
            job: id,
            cancel_requested: true,
        }),
    )
        .into_response())
}

/// `GET /metrics`: Prometheus text: jobs by state, step durations, adapter calls, errors
/// and latency per endpoint and call.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", responses(
    (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
))]
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tidemark_jobs Jobs in the catalog by state.\n# TYPE tidemark_jobs gauge"
    );
    for (job_state, count) in state
        .data
        .catalog
        .job_counts()
        .map_err(ApiError::internal)?
    {
        let _ = writeln!(out, "tidemark_jobs{{state=\"{job_state}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP tidemark_step_duration_seconds Time spent in finished job steps.\n# TYPE tidemark_step_duration_seconds summary"
    );
    for (name, count, seconds) in state
        .data
        .catalog
        .step_durations()
        .map_err(ApiError::internal)?
    {
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
    let calls = state.data.admin().call_stats();
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
        "# HELP tidemark_adapter_denied_total What adapters' sandboxes refused them (not granted), by kind: http, tcp, tcp-bind, udp.\n# TYPE tidemark_adapter_denied_total counter"
    );
    for (endpoint, kind, count) in state.data.admin().denied_stats() {
        let _ = writeln!(
            out,
            "tidemark_adapter_denied_total{{endpoint=\"{}\",kind=\"{kind}\"}} {count}",
            label(&endpoint)
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
#[utoipa::path(get, path = "/v1/endpoints", operation_id = "list_endpoints", responses((status = 200, description = "Configured endpoints (credential-like settings redacted)", body = Vec<Object>)))]
pub async fn endpoints(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(super::endpoints::endpoint_docs(&state.data).map_err(ApiError::internal)?)
}

/// `GET /v1/inventory[?endpoint=NAME]`: what the adapters report now (hosts, VMs, LUNs,
/// snapshots), asked fresh from every endpoint.
#[utoipa::path(get, path = "/v1/inventory", operation_id = "get_inventory", params(super::inventory::EndpointFilter), responses(
    (status = 200, description = "Each endpoint's report (or its error)", body = Vec<EndpointInventory>),
    (status = 400, description = "Malformed query", body = ErrorBody),
    (status = 404, description = "No endpoint of that name", body = ErrorBody),
))]
pub async fn inventory(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<super::inventory::EndpointFilter>, QueryRejection>,
) -> ApiResult {
    let Query(filter) = filter?;
    ok(super::inventory::report(&state, filter.endpoint.as_deref()).await?)
}

/// `GET /v1/tokens` (admin): names and roles, never the tokens.
#[utoipa::path(get, path = "/v1/tokens", operation_id = "list_tokens", responses((status = 200, description = "Tokens by name and role", body = Vec<TokenRecord>)))]
pub async fn tokens(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(state.data.catalog.tokens().map_err(ApiError::internal)?)
}

/// `GET /v1/audit` (admin): the newest 200 state-changing requests.
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit_log", responses((status = 200, description = "Newest state-changing requests first", body = Vec<AuditRecord>)))]
pub async fn audit(State(state): State<Arc<ApiState>>) -> ApiResult {
    ok(state
        .data
        .catalog
        .audit_log(200)
        .map_err(ApiError::internal)?)
}

/// Any other path.
pub async fn fallback() -> ApiError {
    ApiError::not_found("no such route (see the README's API section)")
}
