//! Physical machines behind BMC endpoints: `GET /v1/machines[?endpoint=]`, `GET
//! /v1/machines/{endpoint}/{machine}` (inventory), `POST …/power`, `PUT …/boot`, `PUT|DELETE
//! …/media`. Thin: `engine::services::machines` does the work.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::{ApiError, ErrorBody, ObjectJson};
use super::inventory::EndpointFilter;
use crate::engine::services::machines::{self, EndpointMachines, MachineRef, PowerAction};
use crate::model::BootDevice;

type ApiResult = Result<Response, ApiError>;

fn at(path: Result<Path<(String, String)>, PathRejection>) -> Result<MachineRef, ApiError> {
    let Path((endpoint, machine)) = path?;
    Ok(MachineRef { endpoint, machine })
}

/// `GET /v1/machines[?endpoint=]`: the machines of every machine endpoint.
#[utoipa::path(get, path = "/v1/machines", operation_id = "list_machines", params(EndpointFilter), responses(
    (status = 200, description = "Each machine endpoint's machine ids (or its error)", body = Vec<EndpointMachines>),
    (status = 400, description = "Malformed query", body = ErrorBody),
    (status = 404, description = "No machine endpoint of that name", body = ErrorBody),
))]
pub async fn list_machines(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<EndpointFilter>, QueryRejection>,
) -> ApiResult {
    let Query(filter) = filter?;
    let listing = machines::list(state.data.endpoints(), filter.endpoint.as_deref())
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(listing).into_response())
}

/// `GET /v1/machines/{endpoint}/{machine}`: what the BMC reports of the machine (fields it
/// does not report are null).
#[utoipa::path(get, path = "/v1/machines/{endpoint}/{machine}", operation_id = "get_machine",
    params(("endpoint" = String, Path, description = "Machine endpoint"), ("machine" = String, Path, description = "Machine (system) id")),
    responses(
        (status = 200, description = "`endpoint`, `machine` and the `inventory`", body = Object),
        (status = 404, description = "No such endpoint or machine", body = ErrorBody),
        (status = 502, description = "The BMC refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The BMC is down or busy; try again", body = ErrorBody),
    ))]
pub async fn get_machine(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let at = at(path)?;
    let inventory = machines::show(state.data.endpoints(), &at)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(
        Json(json!({ "endpoint": at.endpoint, "machine": at.machine, "inventory": inventory }))
            .into_response(),
    )
}

/// Body of `POST /v1/machines/{endpoint}/{machine}/power`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    pub action: PowerAction,
    /// For `off`: cut power at once instead of asking the OS to shut down.
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/machines/{endpoint}/{machine}/power` with `{"action": "on"|"off"|"reset"}`:
/// answers once the BMC reports the state reached, with the inventory then.
#[utoipa::path(post, path = "/v1/machines/{endpoint}/{machine}/power", operation_id = "power_machine",
    params(("endpoint" = String, Path, description = "Machine endpoint"), ("machine" = String, Path, description = "Machine (system) id")),
    request_body = PowerRequest,
    responses(
        (status = 200, description = "`endpoint`, `machine`, `power` and the `inventory` afterwards", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such endpoint or machine", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid request", body = ErrorBody),
        (status = 501, description = "The BMC cannot do this", body = ErrorBody),
        (status = 502, description = "The BMC refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The state was not reached in time, or the BMC is down", body = ErrorBody),
    ))]
pub async fn power_machine(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: ObjectJson<PowerRequest>,
) -> ApiResult {
    let at = at(path)?;
    let ObjectJson(request) = body;
    let inventory = machines::power(state.data.endpoints(), &at, request.action, request.force)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(json!({
        "endpoint": at.endpoint, "machine": at.machine,
        "power": inventory.power, "inventory": inventory,
    }))
    .into_response())
}

/// Body of `PUT /v1/machines/{endpoint}/{machine}/boot`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootRequest {
    /// `none`, `pxe`, `cd`, `hdd`, `usb` or `bios-setup`.
    pub device: BootDevice,
    /// Only the next boot (default); `false` until changed.
    #[serde(default = "yes")]
    pub once: bool,
}

fn yes() -> bool {
    true
}

/// `PUT /v1/machines/{endpoint}/{machine}/boot` with `{"device": "cd", "once": true}`.
#[utoipa::path(put, path = "/v1/machines/{endpoint}/{machine}/boot", operation_id = "set_machine_boot",
    params(("endpoint" = String, Path, description = "Machine endpoint"), ("machine" = String, Path, description = "Machine (system) id")),
    request_body = BootRequest,
    responses(
        (status = 200, description = "`endpoint`, `machine`, `device`, `once`", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such endpoint or machine", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A device the BMC does not offer", body = ErrorBody),
        (status = 501, description = "The BMC cannot do this", body = ErrorBody),
        (status = 502, description = "The BMC refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The BMC is down or busy", body = ErrorBody),
    ))]
pub async fn set_machine_boot(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: ObjectJson<BootRequest>,
) -> ApiResult {
    let at = at(path)?;
    let ObjectJson(request) = body;
    machines::boot(state.data.endpoints(), &at, request.device, request.once)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(json!({
        "endpoint": at.endpoint, "machine": at.machine,
        "device": request.device.to_string(), "once": request.once,
    }))
    .into_response())
}

/// Body of `PUT /v1/machines/{endpoint}/{machine}/media`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// The image, at a URL the BMC can fetch (`http://` or `https://`).
    pub url: String,
}

/// `PUT /v1/machines/{endpoint}/{machine}/media` with `{"url": URL}`: inserts the image as
/// virtual media (the BMC fetches it).
#[utoipa::path(put, path = "/v1/machines/{endpoint}/{machine}/media", operation_id = "insert_machine_media",
    params(("endpoint" = String, Path, description = "Machine endpoint"), ("machine" = String, Path, description = "Machine (system) id")),
    request_body = MediaRequest,
    responses(
        (status = 200, description = "`endpoint`, `machine`, `url`", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such endpoint or machine", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a URL the BMC can fetch", body = ErrorBody),
        (status = 501, description = "The BMC has no virtual media", body = ErrorBody),
        (status = 502, description = "The BMC refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The BMC is down, busy, or could not fetch the image", body = ErrorBody),
    ))]
pub async fn insert_machine_media(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: ObjectJson<MediaRequest>,
) -> ApiResult {
    let at = at(path)?;
    let ObjectJson(request) = body;
    machines::media(state.data.endpoints(), &at, Some(&request.url))
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(
        Json(json!({ "endpoint": at.endpoint, "machine": at.machine, "url": request.url }))
            .into_response(),
    )
}

/// `DELETE /v1/machines/{endpoint}/{machine}/media`: ejects virtual media (nothing inserted
/// is ejected already).
#[utoipa::path(delete, path = "/v1/machines/{endpoint}/{machine}/media", operation_id = "eject_machine_media",
    params(("endpoint" = String, Path, description = "Machine endpoint"), ("machine" = String, Path, description = "Machine (system) id")),
    responses(
        (status = 200, description = "`endpoint`, `machine`", body = Object),
        (status = 404, description = "No such endpoint or machine", body = ErrorBody),
        (status = 501, description = "The BMC has no virtual media", body = ErrorBody),
        (status = 502, description = "The BMC refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The BMC is down or busy", body = ErrorBody),
    ))]
pub async fn eject_machine_media(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let at = at(path)?;
    machines::media(state.data.endpoints(), &at, None)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(json!({ "endpoint": at.endpoint, "machine": at.machine })).into_response())
}
