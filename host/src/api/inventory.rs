//! What the adapters report, asked fresh: `GET /v1/inventory[?endpoint=]` and its flat lists
//! (`/hosts`, `/vms`, `/luns`), `POST /v1/inventory/refresh` (records the hypervisors' VMs in
//! the catalog, which is how Tidemark learns of VMs), and `GET /v1/reconcile`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ErrorBody, ObjectJson};
use crate::engine::PROXY_PREFIX;
use crate::engine::discover::{validate_vm, vm_record};
use crate::engine::inventory::{EndpointInventory, inventory};

/// Which endpoint an inventory request asks (all when absent).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointFilter {
    /// Ask only this endpoint.
    pub endpoint: Option<String>,
}

/// The inventory of every endpoint, or of the one named (404 if unknown).
pub async fn report(
    state: &ApiState,
    only: Option<&str>,
) -> Result<Vec<EndpointInventory>, ApiError> {
    let keep = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| only.is_none_or(|o| o == n))
            .collect()
    };
    let (hypervisors, arrays) = (keep(state.data.hypervisors()), keep(state.data.arrays()));
    if let Some(name) = only
        && hypervisors.is_empty()
        && arrays.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "unknown endpoint '{name}' (see `tidemark endpoint list`)"
        )));
    }
    Ok(inventory(state.data.endpoints(), &hypervisors, &arrays).await)
}

/// One flat list out of every endpoint's report, each item tagged with its endpoint.
fn flatten<T: serde::Serialize>(
    reports: &[EndpointInventory],
    pick: impl Fn(&EndpointInventory) -> Option<&Vec<T>>,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for r in reports {
        for item in pick(r).into_iter().flatten() {
            let mut doc = serde_json::to_value(item).map_err(|e| ApiError::internal(e.into()))?;
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("endpoint".into(), json!(r.endpoint));
            }
            out.push(doc);
        }
    }
    let errors: Vec<Value> = reports
        .iter()
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| json!({ "endpoint": r.endpoint, "error": e }))
        })
        .collect();
    Ok(Json(json!({ "items": out, "errors": errors })).into_response())
}

async fn filtered(
    state: &ApiState,
    filter: Result<Query<EndpointFilter>, QueryRejection>,
) -> Result<Vec<EndpointInventory>, ApiError> {
    let Query(filter) = filter?;
    report(state, filter.endpoint.as_deref()).await
}

/// `GET /v1/inventory/hosts[?endpoint=]`: hypervisor hosts.
#[utoipa::path(get, path = "/v1/inventory/hosts", operation_id = "list_inventory_hosts", params(EndpointFilter), responses(
        (status = 200, description = "`items` (hypervisor hosts, each with its `endpoint`) and `errors`", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
    ))]
pub async fn hosts(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<EndpointFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    flatten(&filtered(&state, filter).await?, |r| r.hosts.as_ref())
}

/// `GET /v1/inventory/vms[?endpoint=]`: VMs as the hypervisors describe them.
#[utoipa::path(get, path = "/v1/inventory/vms", operation_id = "list_inventory_vms", params(EndpointFilter), responses(
        (status = 200, description = "`items` (VMs as the hypervisors describe them, each with its `endpoint`) and `errors`", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
    ))]
pub async fn vms(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<EndpointFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    flatten(&filtered(&state, filter).await?, |r| r.vms.as_ref())
}

/// `GET /v1/inventory/luns[?endpoint=]`: LUNs as the arrays describe them.
#[utoipa::path(get, path = "/v1/inventory/luns", operation_id = "list_inventory_luns", params(EndpointFilter), responses(
        (status = 200, description = "`items` (LUNs as the arrays describe them, each with its `endpoint`) and `errors`", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
    ))]
pub async fn luns(
    State(state): State<Arc<ApiState>>,
    filter: Result<Query<EndpointFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    flatten(&filtered(&state, filter).await?, |r| r.luns.as_ref())
}

/// Body of `POST /v1/inventory/refresh`: which endpoint, and which VM (all when absent).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Only this hypervisor endpoint.
    pub endpoint: Option<String>,
    /// Only the VM of this name.
    pub vm: Option<String>,
}

/// `POST /v1/inventory/refresh` with `{}`, `{"endpoint": NAME}` and/or `{"vm": NAME}`: every VM the hypervisors
/// report is recorded (new) or updated in the catalog. A name already recorded for another
/// VM is a conflict and left alone; a VM the adapter describes badly is reported, not
/// recorded; Tidemark's proxy VMs are skipped; a VM of the catalog its hypervisor no longer reports is listed as missing.
#[utoipa::path(post, path = "/v1/inventory/refresh", operation_id = "refresh_inventory", request_body = RefreshRequest, responses(
        (status = 200, description = "`recorded`, `updated`, `missing`, `conflicts`, `invalid`, `errors`", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let ObjectJson(filter) = body;
    let reports = report(&state, filter.endpoint.as_deref()).await?;
    let wanted = |name: &str| filter.vm.as_deref().is_none_or(|v| v == name);
    let known = state.data.catalog.vms().map_err(ApiError::internal)?;
    let (mut recorded, mut updated, mut conflicts, mut invalid, mut missing, mut errors) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &reports {
        if let Some(e) = &r.error {
            errors.push(json!({ "endpoint": r.endpoint, "error": e }));
            continue;
        }
        let Some(found) = &r.vms else { continue };
        // Tidemark's own proxy VMs are working space, not machines to protect.
        for info in found
            .iter()
            .filter(|v| !v.name.starts_with(PROXY_PREFIX) && wanted(&v.name))
        {
            if let Err(e) = validate_vm(&r.endpoint, info) {
                invalid.push(
                    json!({ "endpoint": r.endpoint, "vm": info.name, "error": format!("{e:#}") }),
                );
                continue;
            }
            let same_name = known.iter().find(|k| k.name == info.name);
            if let Some(k) = same_name
                && (k.endpoint != r.endpoint || k.vm_ref != info.id)
            {
                conflicts.push(json!({
                    "endpoint": r.endpoint, "vm": info.name,
                    "detail": format!("the name is recorded for {} on {}", k.vm_ref, k.endpoint),
                }));
                continue;
            }
            state
                .data
                .catalog
                .upsert_vm(&vm_record(&info.name, &r.endpoint, info))
                .map_err(ApiError::internal)?;
            match same_name {
                Some(_) => updated.push(info.name.clone()),
                None => recorded.push(info.name.clone()),
            }
        }
        for k in known
            .iter()
            .filter(|k| k.endpoint == r.endpoint && wanted(&k.name))
        {
            if !found.iter().any(|v| v.id == k.vm_ref) {
                missing.push(k.name.clone());
            }
        }
    }
    Ok(Json(json!({
        "recorded": recorded, "updated": updated, "missing": missing,
        "conflicts": conflicts, "invalid": invalid, "errors": errors,
    }))
    .into_response())
}

/// `GET /v1/reconcile`: differences between the catalog and the adapters.
#[utoipa::path(get, path = "/v1/reconcile", operation_id = "reconcile_catalog", responses(
        (status = 200, description = "`clean` and the `findings`", body = Object),
    ))]
pub async fn reconcile(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let findings = crate::engine::inventory::reconcile(
        &state.data.catalog,
        state.data.endpoints(),
        &state.data.hypervisors(),
        &state.data.arrays(),
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(json!({ "clean": findings.is_empty(), "findings": findings })).into_response())
}
