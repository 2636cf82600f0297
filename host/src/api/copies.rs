//! Copies and their upkeep: `GET /v1/vms/{name}/copies`, `POST /v1/copies/verify`,
//! `POST /v1/copies/expire`, `POST /v1/copies/gc`, `POST /v1/copies/upgrade` and
//! `POST /v1/copies/rebuild-index`, and `POST /v1/catalog/recover` (the catalog rebuilt from
//! the copies).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ErrorBody, ObjectJson, whole_number};
use crate::catalog::{CopyRefRecord, format_time};
use crate::copies::{CopyStore, CopyStoreError, LocalDir, LockWait};
use crate::data_dir::{COPIES_DIR, PASSPHRASE_ENV};
use crate::engine::retention::{self, Policy};
use crate::engine::services::recover::RecoverReport;
use crate::refusal::Refusal;

type ApiResult = Result<Response, ApiError>;

fn json_ok(value: impl serde::Serialize) -> ApiResult {
    Ok(
        Json(serde_json::to_value(value).map_err(|e| ApiError::internal(e.into()))?)
            .into_response(),
    )
}

/// The copy store, opened (or, with `create`, made) on first use.
pub fn copy_store(state: &ApiState, create: bool) -> Result<Arc<CopyStore>, ApiError> {
    state
        .data
        .attach_copy_store(create)
        .map_err(ApiError::refused)
}

/// `GET /v1/vms/{name}/copies`: points that have copies, with sizes and stored bytes.
#[utoipa::path(get, path = "/v1/vms/{name}/copies", operation_id = "list_vm_copies", params(("name" = String, Path, description = "Tidemark's name of the VM")), responses(
        (status = 200, description = "Points with copies: sizes, stored bytes, copy refs", body = Vec<Object>),
        (status = 404, description = "No VM of that name", body = ErrorBody),
    ))]
pub async fn vm_copies(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(vm) = name?;
    if state
        .data
        .catalog
        .vm(&vm)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "unknown VM '{vm}' (see `tidemark vm list`)"
        )));
    }
    let points = state.data.catalog.points(&vm).map_err(ApiError::internal)?;
    let docs: Vec<Value> = points
        .into_iter()
        .filter(|p| !p.copies.is_empty())
        .map(|point| {
            json!({
                "recovery_point": point.id,
                "created_at": format_time(point.created_at),
                "size": point.copies.iter().map(|c| c.size).sum::<u64>(),
                "bytes_stored": point.copies.iter().map(|c| c.bytes_stored).sum::<u64>(),
                "stored_total": point.copies.iter().map(|c| c.stored_total).sum::<u64>(),
                "snapshots_present": point.snapshots_present(),
                "copies": point.copies,
            })
        })
        .collect();
    json_ok(docs)
}

/// Body of `POST /v1/copies/verify`: the copies of one recovery point, or (with `all`, or
/// without a point) every copy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    point: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `POST /v1/copies/verify`: re-reads, decrypts and re-hashes every chunk of the copies.
/// 200 with `ok: false` and each damaged copy and chunk named when something is damaged.
#[utoipa::path(post, path = "/v1/copies/verify", operation_id = "verify_copies", request_body = VerifyRequest, responses(
        (status = 200, description = "`ok`, what was checked, and each damaged copy and chunk", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
        (status = 404, description = "No recovery point with that id", body = ErrorBody),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<VerifyRequest>,
) -> ApiResult {
    let ObjectJson(request) = body;
    let refs: Vec<(String, CopyRefRecord)> = match (&request.point, request.all) {
        (Some(id), false) => {
            let p = state
                .data
                .catalog
                .point(id)
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found(format!("unknown recovery point '{id}'")))?;
            if p.copies.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    format!("recovery point {id} has no copies to verify"),
                ));
            }
            p.copies.into_iter().map(|c| (p.id.clone(), c)).collect()
        }
        _ => state
            .data
            .catalog
            .all_copy_refs()
            .map_err(ApiError::internal)?,
    };
    let store = copy_store(&state, false)?;
    let ids: Vec<String> = refs.iter().map(|(_, c)| c.copy.clone()).collect();
    let report = tokio::task::spawn_blocking(move || store.verify(&ids))
        .await
        .map_err(|e| ApiError::internal(e.into()))?;
    let mut checked = Vec::new();
    let mut damaged = Vec::new();
    for m in &report.manifests {
        let (point_id, device_ref) = refs
            .iter()
            .find(|(_, c)| c.copy == m.id)
            .map(|(p, c)| (p.clone(), c.device_ref.clone()))
            .unwrap_or_default();
        checked.push(json!({
            "copy": m.id, "recovery_point": point_id, "device_ref": device_ref, "ok": m.ok,
        }));
        if !m.ok {
            damaged.push(json!({
                "copy": m.id,
                "recovery_point": point_id,
                "device_ref": device_ref,
                "error": m.error,
                "damaged_chunks": m.damaged_chunks.iter().map(|c| json!({
                    "index": c.index, "chunk": c.chunk, "pack": c.pack, "reason": c.reason,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    json_ok(json!({
        "ok": damaged.is_empty(),
        "copies": report.manifests.len(),
        "chunks_checked": report.chunks_checked,
        "checked": checked,
        "damaged": damaged,
    }))
}

/// Body of `POST /v1/copies/expire`: what to keep (a rule left out keeps everything of its
/// kind), and whether to only say.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireRequest {
    /// Keep the snapshots of the newest N points per VM.
    #[serde(default, deserialize_with = "whole_number")]
    keep_snapshots: Option<usize>,
    /// Keep the copies of the newest N points per VM.
    #[serde(default, deserialize_with = "whole_number")]
    keep_copies: Option<usize>,
    /// Delete copies older than this many days.
    #[serde(default, deserialize_with = "whole_number")]
    keep_days: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /v1/copies/expire`: deletes snapshots and copies beyond what the policy keeps.
#[utoipa::path(post, path = "/v1/copies/expire", operation_id = "expire_copies", request_body = ExpireRequest, responses(
        (status = 200, description = "What was (or, in a dry run, would be) deleted, and VMs skipped", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
    ))]
pub async fn expire(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<ExpireRequest>,
) -> ApiResult {
    let ObjectJson(request) = body;
    let policy = Policy {
        keep_snapshots: request.keep_snapshots,
        keep_copies: request.keep_copies,
        keep_days: request.keep_days,
    };
    let store = if policy.keep_copies.is_some() || policy.keep_days.is_some() {
        Some(copy_store(&state, false)?)
    } else {
        None
    };
    let report = retention::expire(
        &state.data.catalog,
        state.data.endpoints(),
        store.as_deref(),
        policy,
        request.dry_run,
    )
    .await
    .map_err(ApiError::refused)?;
    json_ok(report)
}

/// Body of `POST /v1/copies/gc`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Rewrite packs whose live share is below this percentage (0-100; default the
    /// server's `gc_repack_below`, 50 unless configured).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 100)]
    repack_below: Option<u8>,
}

/// `POST /v1/copies/gc`: frees chunks no copy references (safe while copies run) and
/// repacks packs that are mostly dead.
#[utoipa::path(post, path = "/v1/copies/gc", operation_id = "collect_copy_garbage", request_body = GcRequest, responses(
        (status = 200, description = "Chunks, packs and bytes freed, packs rewritten, manifests removed", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
    ))]
pub async fn gc(State(state): State<Arc<ApiState>>, body: ObjectJson<GcRequest>) -> ApiResult {
    let ObjectJson(request) = body;
    let repack_below = request.repack_below.unwrap_or(state.gc_repack_below);
    if repack_below > 100 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("repack_below is a percentage from 0 to 100, not {repack_below}"),
        ));
    }
    let store = copy_store(&state, false)?;
    let catalog = state.data.catalog.clone();
    let report = tokio::task::spawn_blocking(move || retention::gc(&catalog, &store, repack_below))
        .await
        .map_err(|e| ApiError::internal(e.into()))?
        .map_err(ApiError::internal)?;
    json_ok(report)
}

/// `POST /v1/copies/upgrade`: migrates a copy store of an older format in place (safe to
/// run again after a crash; a current store only has leftovers of an upgrade removed).
#[utoipa::path(post, path = "/v1/copies/upgrade", operation_id = "upgrade_copy_store", responses(
        (status = 200, description = "Versions before and after, chunks packed, packs written", body = Object),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
    ))]
pub async fn upgrade(State(state): State<Arc<ApiState>>) -> ApiResult {
    let dir =
        state.data.root.open_dir(COPIES_DIR).map_err(|_| {
            ApiError::refused(Refusal::conflict("there is no copy store to upgrade"))
        })?;
    let passphrase = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
    let report = tokio::task::spawn_blocking(move || {
        CopyStore::upgrade_local(LocalDir::new(dir), passphrase.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))?
    .map_err(|e| match e {
        e @ (CopyStoreError::NotInitialised { .. }
        | CopyStoreError::PassphraseRequired { .. }
        | CopyStoreError::PassphraseNotUsed { .. }) => {
            ApiError::refused(Refusal::conflict(e.to_string()))
        }
        e => ApiError::internal(e.into()),
    })?;
    json_ok(report)
}

/// `POST /v1/copies/rebuild-index`: rebuilds the copy store's chunk index from the pack
/// headers (after index objects were lost or damaged); waits for running copies.
#[utoipa::path(post, path = "/v1/copies/rebuild-index", operation_id = "rebuild_copy_index", responses(
        (status = 200, description = "Packs read, chunks indexed, index objects replaced, unreadable packs", body = Object),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
    ))]
pub async fn rebuild_index(State(state): State<Arc<ApiState>>) -> ApiResult {
    let store = copy_store(&state, false)?;
    let report = tokio::task::spawn_blocking(move || store.rebuild_index(LockWait::Forever))
        .await
        .map_err(|e| ApiError::internal(e.into()))?
        .map_err(|e| ApiError::internal(e.into()))?;
    json_ok(report)
}

/// Where `POST /v1/catalog/recover` rebuilds the catalog from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecoverSource {
    /// The manifests of the copy store (each names its VM, point, device and job).
    Copies,
}

/// Body of `POST /v1/catalog/recover`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    from: RecoverSource,
}

/// `POST /v1/catalog/recover`: records the VMs, recovery points and copy refs the copy
/// store's manifests describe and the catalog lacks (after `catalog.sqlite` was lost); what the
/// catalog has is kept. A snapshot no endpoint still reports is recorded as expired.
#[utoipa::path(post, path = "/v1/catalog/recover", operation_id = "recover_catalog", request_body = RecoverRequest, responses(
        (status = 200, description = "What was recorded, what was known, and each copy that could not be placed with why", body = RecoverReport),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "There is no copy store (or its passphrase is missing)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
    ))]
pub async fn recover(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<RecoverRequest>,
) -> ApiResult {
    let ObjectJson(RecoverRequest {
        from: RecoverSource::Copies,
    }) = body;
    let store = copy_store(&state, false)?;
    let report = crate::engine::services::recover::from_copies(
        &state.data.catalog,
        &store,
        state.data.endpoints(),
    )
    .await
    .map_err(ApiError::internal)?;
    json_ok(report)
}
