//! Adapters while the server runs: `GET /v1/adapters` (every loaded version with the
//! endpoints that use it, and the files refused at start), `POST /v1/adapters?name=NAME`
//! (a component as the body, `application/wasm`, up to `adapter_body_limit`) and
//! `DELETE /v1/adapters/{name}[?version=V]`. Adding and removing need `admin`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::engine::services::adapters;

/// `GET /v1/adapters`: loaded adapter versions, then the refused files with why.
#[utoipa::path(get, path = "/v1/adapters", operation_id = "list_adapters", responses(
        (status = 200, description = "Each loaded version (name, version, contract, kind, sha256, capabilities, source, and the endpoints that use it), then each refused file (`name`, `rejected`)", body = Vec<Object>)))]
pub async fn list_adapters(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let (listings, rejected) =
        adapters::list(&state.data.catalog, state.data.admin()).map_err(ApiError::internal)?;
    let mut docs: Vec<serde_json::Value> = listings
        .iter()
        .map(|l| serde_json::to_value(l).unwrap_or_default())
        .collect();
    for r in rejected {
        docs.push(json!({ "name": r.name, "rejected": r.reason }));
    }
    Ok(Json(docs).into_response())
}

/// Query of `POST /v1/adapters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdapterName {
    /// The name endpoints will use (`--adapter NAME` or `NAME@VERSION`).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: String,
}

/// `POST /v1/adapters?name=NAME` (admin): checks the component as at start (a supported
/// contract, one world, an `info` answer) and makes it usable at once: 201 for a new
/// version, 200 when the same bytes were loaded already.
#[utoipa::path(post, path = "/v1/adapters", operation_id = "add_adapter", params(AdapterName),
    request_body(
        description = "The adapter component (at most `adapter_body_limit`, default 64 MiB); `application/octet-stream` is taken too",
        content(
            (Vec<u8> = "application/wasm"),
            (Vec<u8> = "application/octet-stream"),
        )),
    responses(
        (status = 201, description = "Added; usable by new sessions at once", body = Object),
        (status = 200, description = "The same bytes were loaded already", body = Object),
        (status = 400, description = "Malformed query or body", body = ErrorBody),
        (status = 409, description = "That version is loaded with other bytes, or the name is an embedded adapter's", body = ErrorBody),
        (status = 413, description = "Larger than `adapter_body_limit`", body = ErrorBody),
        (status = 415, description = "The body is not `application/wasm`", body = ErrorBody),
        (status = 422, description = "Not a component of a supported contract (the message says why)", body = ErrorBody),
    ))]
pub async fn add_adapter(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<AdapterName>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(AdapterName { name }) = query?;
    let wasm_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let media = v.split(';').next().unwrap_or("").trim();
            media == "application/wasm" || media == "application/octet-stream"
        });
    if !wasm_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "an adapter is sent as `Content-Type: application/wasm` (or application/octet-stream)",
        ));
    }
    let limit = state.adapter_body_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an adapter may have at most {limit} bytes (adapter_body_limit)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limit as u64) {
        return Err(too_large());
    }
    let mut wasm = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("reading the body: {e}"),
            )
        })?;
        if wasm.len() + frame.len() > limit {
            return Err(too_large());
        }
        wasm.extend_from_slice(&frame);
    }
    let (adapter, new) = state
        .data
        .admin()
        .install(&name, &wasm)
        .await
        .map_err(ApiError::refused)?;
    tracing::info!(adapter = %adapter.name, version = %adapter.version, sha256 = %adapter.sha256, new, "adapter added");
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(adapter)).into_response())
}

/// Query of `DELETE /v1/adapters/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdapterVersion {
    /// Only this version; every version without it.
    version: Option<String>,
}

/// `DELETE /v1/adapters/{name}[?version=V]` (admin): removes the adapter (every version,
/// or one) and its files, unless an endpoint uses a version that would go (409 naming them).
#[utoipa::path(delete, path = "/v1/adapters/{name}", operation_id = "remove_adapter",
    params(("name" = String, Path, description = "Adapter name"), AdapterVersion),
    responses(
        (status = 200, description = "`removed`: the versions taken out", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such adapter or version", body = ErrorBody),
        (status = 409, description = "An endpoint uses it, or it ships with Tidemark", body = ErrorBody),
    ))]
pub async fn remove_adapter(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<AdapterVersion>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let Query(AdapterVersion { version }) = query?;
    let removed = adapters::remove(
        &state.data.catalog,
        state.data.admin(),
        &name,
        version.as_deref(),
    )
    .map_err(ApiError::refused)?;
    Ok(Json(json!({ "removed": removed })).into_response())
}
