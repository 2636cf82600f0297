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
use crate::catalog::EndpointRecord;
use crate::data_dir::DataDir;
use crate::engine::services;
use crate::model::AdapterKind;
use crate::model::capabilities::{self, Grants};

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

/// One endpoint as the API and CLI show it: name, adapter, kind, settings (redacted), its
/// grants, the names of its secrets (never their values), and `access`: what its sandbox
/// allows, what its adapter asks for but was not granted, what was granted but not asked for.
pub fn endpoint_doc(data: &DataDir, e: &EndpointRecord, secrets: &[String]) -> Value {
    let kind = data
        .admin()
        .adapter_kind(&e.adapter)
        .map(|kind| kind.to_string())
        .unwrap_or_else(|_| "adapter missing".into());
    let access = services::endpoints::report(data.admin(), e, secrets)
        .map(|r| json!(r))
        .unwrap_or(Value::Null);
    json!({
        "name": e.name, "adapter": e.adapter, "kind": kind,
        "settings": redacted(&e.settings),
        "grants": e.grants,
        "secrets": secrets,
        "access": access,
        "created_at": crate::catalog::format_time(e.created_at),
    })
}

/// Every configured endpoint.
pub fn endpoint_docs(data: &DataDir) -> anyhow::Result<Vec<Value>> {
    let mut secrets = data.catalog.secret_names()?;
    Ok(data
        .catalog
        .endpoints()?
        .iter()
        .map(|e| endpoint_doc(data, e, &secrets.remove(&e.name).unwrap_or_default()))
        .collect())
}

/// An endpoint as just configured.
fn configured_doc(data: &DataDir, c: &services::endpoints::Configured) -> Value {
    endpoint_doc(data, &c.record, &c.secrets)
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
    /// What its sandbox may reach: `http=HOST[:PORT]`, `tcp=HOST:PORT`, `data-dir`.
    /// Nothing is granted unless listed; its adapter gets only what it also asks for.
    #[serde(default)]
    grants: Grants,
    /// Secret values by name, read by its adapter through `host.secret`: stored
    /// encrypted, never shown again (answers list their names only).
    #[serde(default)]
    #[schema(schema_with = secret_values_schema)]
    secrets: BTreeMap<String, String>,
}

/// Checks and records a new endpoint and makes it usable at once.
pub fn add(data: &DataDir, new: NewEndpoint) -> anyhow::Result<services::endpoints::Configured> {
    services::endpoints::add(
        &data.catalog,
        data.admin(),
        data.vault(),
        services::endpoints::NewEndpoint {
            name: new.name,
            adapter: new.adapter,
            settings: new.settings,
            grants: new.grants,
            secrets: new.secrets,
        },
    )
}

/// `POST /v1/endpoints` (admin): 201 with the endpoint.
#[utoipa::path(post, path = "/v1/endpoints", operation_id = "add_endpoint", request_body = NewEndpoint, responses(
        (status = 201, description = "The endpoint, usable at once (credential-like settings redacted; secrets by name only; `access` says what is requested but not granted and granted but not requested)", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is larger than `body_limit`", body = ErrorBody),
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
    let configured = add(&state.data, new).map_err(ApiError::refused)?;
    Ok((
        StatusCode::CREATED,
        Json(configured_doc(&state.data, &configured)),
    )
        .into_response())
}

/// A secret name in the document, so generated clients and fuzzers send only names the
/// server takes.
fn secret_name_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(capabilities::SECRET_NAME_PATTERN))
        .build()
}

/// Secret values by name: names as [`secret_name_schema`], values not empty (at most
/// 64 KiB, which the request body limit, also 64 KiB by default, bounds first).
fn secret_values_schema() -> utoipa::openapi::schema::Object {
    let value = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1));
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .property_names(Some(secret_name_schema()))
        .additional_properties(Some(value))
        .build()
}

/// A list of secret names.
fn secret_names_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(secret_name_schema())
        .build()
}

/// Body of `PUT /v1/endpoints/{name}/secrets`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretChanges {
    /// Secrets to add or replace, by name.
    #[serde(default)]
    #[schema(schema_with = secret_values_schema)]
    set: BTreeMap<String, String>,
    /// Names of secrets to remove (removing one the endpoint does not have changes nothing).
    #[serde(default)]
    #[schema(schema_with = secret_names_schema)]
    remove: Vec<String>,
}

/// `PUT /v1/endpoints/{name}/secrets` (admin): sets and removes secrets of an endpoint;
/// sessions opened afterwards read the new values (no restart). Answers with the endpoint,
/// its secrets by name only.
#[utoipa::path(put, path = "/v1/endpoints/{name}/secrets", operation_id = "write_endpoint_secrets",
    params(("name" = String, Path, description = "Endpoint name")),
    request_body = SecretChanges,
    responses(
        (status = 200, description = "The endpoint with the names of its secrets", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
        (status = 413, description = "The body is larger than `body_limit`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A bad secret name or an empty value", body = ErrorBody),
    ))]
pub async fn update_secrets(
    State(state): State<Arc<ApiState>>,
    name: Result<Path<String>, PathRejection>,
    body: ObjectJson<SecretChanges>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let ObjectJson(changes) = body;
    let data = &state.data;
    let configured = services::endpoints::update_secrets(
        &data.catalog,
        data.admin(),
        data.vault(),
        &name,
        changes.set,
        changes.remove,
    )
    .map_err(ApiError::refused)?;
    Ok(Json(configured_doc(data, &configured)).into_response())
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
    let removed = services::endpoints::remove(&state.data.catalog, state.data.admin(), &name)
        .map_err(ApiError::refused)?;
    if !removed {
        return Err(ApiError::not_found(format!("unknown endpoint '{name}'")));
    }
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
    let Some(kind) = state.data.admin().endpoint_kind(&name) else {
        return Err(ApiError::not_found(format!(
            "unknown endpoint '{name}' (or its adapter is not loaded)"
        )));
    };
    let started = Instant::now();
    // Hypervisors and arrays answer what they hold; other kinds say who they are.
    let data = &state.data;
    let inventory = |hypervisors: Vec<String>, arrays: Vec<String>| async move {
        let report =
            crate::engine::inventory::inventory(data.endpoints(), &hypervisors, &arrays).await;
        report.first().and_then(|r| r.error.clone())
    };
    let error = match kind {
        AdapterKind::Hypervisor => inventory(vec![name.clone()], vec![]).await,
        AdapterKind::StorageArray => inventory(vec![], vec![name.clone()]).await,
        AdapterKind::Cloud | AdapterKind::Dns | AdapterKind::Machine => data
            .admin()
            .probe(&name)
            .await
            .err()
            .map(|e| format!("{e:#}")),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({
        "endpoint": name,
        "kind": kind.to_string(),
        "ok": error.is_none(),
        "latency_ms": (elapsed_ms * 10.0).round() / 10.0,
        "error": error,
    }))
    .into_response())
}
