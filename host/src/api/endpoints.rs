//! Endpoints and adapters: `GET|POST /v1/endpoints`, `DELETE /v1/endpoints/{name}`,
//! `POST /v1/endpoints/{name}/test`, and the documents `GET /v1/endpoints` and
//! `GET /v1/adapters` answer with. Settings that look like credentials are never shown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ErrorBody, ObjectJson};
use crate::catalog::{EndpointRecord, now_ms};
use crate::data_dir::{Context, endpoint_spec};
use crate::model::AdapterKind;
use crate::refusal::Refusal;

/// What replaces a secret setting's value in every answer.
pub const REDACTED: &str = "********";

/// Whether a setting holds a credential, judged by its key.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "key",
        "auth",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Settings with credentials replaced, for output.
pub fn redacted(settings: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    settings
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret(k) { REDACTED } else { v.as_str() };
            (k.clone(), shown.to_string())
        })
        .collect()
}

/// One endpoint as the API and CLI show it: name, adapter, kind, settings (redacted).
pub fn endpoint_doc(data: &Context, e: &EndpointRecord) -> Value {
    let kind = data
        .runtime
        .adapter(&e.adapter)
        .map(|a| a.kind.to_string())
        .unwrap_or_else(|_| "adapter missing".into());
    json!({
        "name": e.name, "adapter": e.adapter, "kind": kind,
        "settings": redacted(&e.settings),
        "created_at": crate::catalog::format_time(e.created_at),
    })
}

/// Every configured endpoint.
pub fn endpoint_docs(data: &Context) -> anyhow::Result<Vec<Value>> {
    Ok(data
        .catalog
        .endpoints()?
        .iter()
        .map(|e| endpoint_doc(data, e))
        .collect())
}

/// Loaded adapters with contract version and capabilities, then the rejected ones with why.
pub fn adapter_docs(data: &Context) -> Vec<Value> {
    let mut docs: Vec<Value> = data
        .runtime
        .adapters()
        .map(|a| {
            json!({
                "name": a.name, "kind": a.kind, "source": a.source, "contract": a.info.contract,
                "vendor": a.info.vendor, "version": a.info.version,
                "capabilities": a.info.capabilities,
            })
        })
        .collect();
    for (name, reason) in &data.runtime.rejected {
        docs.push(json!({ "name": name, "rejected": reason }));
    }
    docs
}

/// Body of `POST /v1/endpoints`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// A unique name for the endpoint.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: String,
    /// A loaded adapter (see `GET /v1/adapters`); an unknown one is a 404.
    #[schema(min_length = 1)]
    adapter: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

/// Checks and records a new endpoint and makes it usable at once.
pub fn add(data: &Context, new: NewEndpoint) -> anyhow::Result<EndpointRecord> {
    crate::names::check_name("endpoint", &new.name).map_err(Refusal::invalid)?;
    data.runtime
        .adapter(&new.adapter)
        .map_err(|e| Refusal::not_found(format!("{e:#}")))?;
    if new.settings.keys().any(|k| k.is_empty()) {
        return Err(Refusal::invalid("a setting has an empty key"));
    }
    let record = EndpointRecord {
        name: new.name,
        adapter: new.adapter,
        settings: new.settings,
        created_at: now_ms(),
    };
    // Checks the reserved settings (timeout, memory) before anything is stored. Its one
    // failure that is not the request's fault is making the endpoint's directory (I/O).
    let spec = endpoint_spec(&data.root, &data.data_dir, &record).map_err(|e| {
        if e.chain().any(|cause| cause.is::<std::io::Error>()) {
            e
        } else {
            Refusal::invalid(format!("{e:#}"))
        }
    })?;
    data.catalog.add_endpoint(&record)?;
    data.connector.add(spec);
    Ok(record)
}

/// `POST /v1/endpoints` (admin): 201 with the endpoint.
#[utoipa::path(post, path = "/v1/endpoints", operation_id = "add_endpoint", request_body = NewEndpoint, responses(
        (status = 201, description = "The endpoint, usable at once (credential-like settings redacted)", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
        (status = 404, description = "No loaded adapter of that name", body = ErrorBody),
        (status = 409, description = "An endpoint of that name exists", body = ErrorBody),
    ))]
pub async fn add_endpoint(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<NewEndpoint>,
) -> Result<Response, ApiError> {
    let ObjectJson(new) = body;
    // A taken name is a conflict (409); anything else wrong with the body is invalid (422).
    let record = add(&state.data, new).map_err(ApiError::refused)?;
    Ok((
        StatusCode::CREATED,
        Json(endpoint_doc(&state.data, &record)),
    )
        .into_response())
}

/// `DELETE /v1/endpoints/{name}` (admin): only when no VM, live snapshot or unfinished job
/// depends on it (409 naming what does). Its private data directory is kept.
#[utoipa::path(delete, path = "/v1/endpoints/{name}", operation_id = "remove_endpoint", params(("name" = String, Path, description = "Endpoint name")), responses(
        (status = 200, description = "Removed; its data directory is kept", body = Object),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
        (status = 409, description = "VMs, live snapshots or unfinished jobs depend on it", body = ErrorBody),
    ))]
pub async fn remove_endpoint(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let removed = state
        .data
        .catalog
        .remove_endpoint(&name)
        .map_err(ApiError::refused)?;
    if !removed {
        return Err(ApiError::not_found(format!("unknown endpoint '{name}'")));
    }
    state.data.connector.remove(&name);
    Ok(Json(json!({ "removed": name, "data_kept": format!("endpoints/{name}") })).into_response())
}

/// `POST /v1/endpoints/{name}/test`: opens a session and asks the adapter what it has;
/// answers with whether that worked and how long it took (200 either way: the test ran).
#[utoipa::path(post, path = "/v1/endpoints/{name}/test", operation_id = "test_endpoint", params(("name" = String, Path, description = "Endpoint name")), responses(
        (status = 200, description = "`ok`, `latency_ms` and the error if it failed", body = Object),
        (status = 404, description = "No endpoint of that name (or its adapter is not loaded)", body = ErrorBody),
    ))]
pub async fn test_endpoint(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let Some(kind) = state.data.connector.kind_of(&name) else {
        return Err(ApiError::not_found(format!(
            "unknown endpoint '{name}' (or its adapter is not loaded)"
        )));
    };
    let (hypervisors, arrays) = match kind {
        AdapterKind::Hypervisor => (vec![name.clone()], vec![]),
        AdapterKind::StorageArray => (vec![], vec![name.clone()]),
    };
    let started = Instant::now();
    let report =
        crate::engine::inventory::inventory(state.data.connector.as_ref(), &hypervisors, &arrays)
            .await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error = report.first().and_then(|r| r.error.clone());
    Ok(Json(json!({
        "endpoint": name,
        "kind": kind.to_string(),
        "ok": error.is_none(),
        "latency_ms": (elapsed_ms * 10.0).round() / 10.0,
        "error": error,
    }))
    .into_response())
}
