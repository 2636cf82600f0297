//! Endpoints and adapters: `GET|POST /v1/endpoints`, `DELETE /v1/endpoints/{name}`,
//! `POST /v1/endpoints/{name}/test`, and the documents `GET /v1/endpoints` and
//! `GET /v1/adapters` answer with. Settings that look like credentials are never shown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::catalog::{EndpointRecord, now_ms};
use crate::data_dir::{Context, endpoint_spec};
use crate::runtime::AdapterKind;

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    name: String,
    adapter: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

/// Checks and records a new endpoint and makes it usable at once.
pub fn add(data: &Context, new: NewEndpoint) -> anyhow::Result<EndpointRecord> {
    crate::names::check_name("endpoint", &new.name).map_err(anyhow::Error::msg)?;
    data.runtime.adapter(&new.adapter)?;
    let record = EndpointRecord {
        name: new.name,
        adapter: new.adapter,
        settings: new.settings,
        created_at: now_ms(),
    };
    // Checks the reserved settings (timeout, memory) before anything is stored.
    let spec = endpoint_spec(&data.root, &data.data_dir, &record)?;
    data.catalog.add_endpoint(&record)?;
    data.connector.add(spec);
    Ok(record)
}

/// `POST /v1/endpoints` (admin): 201 with the endpoint.
pub async fn add_endpoint(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<NewEndpoint>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = body?;
    // Everything here names the body's content, so "unknown adapter" is invalid input (422),
    // not a missing resource; only a taken name is a conflict.
    let record = add(&state.data, new).map_err(|e| {
        let refused = ApiError::refused(e);
        if refused.status == StatusCode::NOT_FOUND {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", refused.message)
        } else {
            refused
        }
    })?;
    Ok((
        StatusCode::CREATED,
        Json(endpoint_doc(&state.data, &record)),
    )
        .into_response())
}

/// `DELETE /v1/endpoints/{name}` (admin): only when no VM, live snapshot or unfinished job
/// depends on it (409 naming what does). Its private data directory is kept.
pub async fn remove_endpoint(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let removed = state
        .catalog
        .remove_endpoint(&name)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", format!("{e:#}")))?;
    if !removed {
        return Err(ApiError::not_found(format!("unknown endpoint '{name}'")));
    }
    state.data.connector.remove(&name);
    Ok(Json(json!({ "removed": name, "data_kept": format!("endpoints/{name}") })).into_response())
}

/// `POST /v1/endpoints/{name}/test`: opens a session and asks the adapter what it has;
/// answers with whether that worked and how long it took (200 either way: the test ran).
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
