//! DNS records of DNS endpoints: `GET /v1/dns/{endpoint}/zones` and `GET|PUT|DELETE
//! /v1/dns/{endpoint}/records/{name}/{kind}[?zone=]`. Thin: `engine::services::dns` does the
//! work. Without `zone` the adapter picks the longest zone of its server holding the name.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::{ApiError, ErrorBody, ObjectJson, whole_number};
use crate::engine::services::dns;
use crate::model::{DnsRecord, RecordKind};

type ApiResult = Result<Response, ApiError>;

/// Which zone a record is in (the adapter picks when absent).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ZoneFilter {
    /// The zone, fully qualified (`example.com.`).
    pub zone: Option<String>,
}

/// The endpoint, the record's name and its kind from the path; an unknown kind is a 422.
fn record_at(
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<(String, String, RecordKind), ApiError> {
    let Path((endpoint, name, kind)) = path?;
    let kind = kind
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e))?;
    Ok((endpoint, name, kind))
}

/// The TTL of a record set without one: five minutes, short enough for a cut-over to take
/// effect soon, long enough not to load the server.
const DEFAULT_TTL: u32 = 300;

/// A record as the API answers it; `zone` is null when the caller left the choice to the
/// adapter (the contract does not report which zone it chose).
fn record_doc(endpoint: &str, zone: &str, record: &DnsRecord) -> Response {
    Json(json!({
        "endpoint": endpoint, "zone": (!zone.is_empty()).then_some(zone), "name": record.name,
        "kind": record.kind.to_string(), "values": record.values, "ttl": record.ttl,
    }))
    .into_response()
}

/// `GET /v1/dns/{endpoint}/zones`: the zones the endpoint may change.
#[utoipa::path(get, path = "/v1/dns/{endpoint}/zones", operation_id = "list_dns_zones",
    params(("endpoint" = String, Path, description = "DNS endpoint")),
    responses(
        (status = 200, description = "`endpoint` and its `zones`", body = Object),
        (status = 404, description = "No DNS endpoint of that name", body = ErrorBody),
        (status = 502, description = "The server refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The server is down or busy", body = ErrorBody),
    ))]
pub async fn list_dns_zones(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(endpoint) = path?;
    let zones = dns::zones(state.data.endpoints(), &endpoint)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(json!({ "endpoint": endpoint, "zones": zones })).into_response())
}

/// `GET /v1/dns/{endpoint}/records/{name}/{kind}[?zone=]`: the record as the server holds it.
#[utoipa::path(get, path = "/v1/dns/{endpoint}/records/{name}/{kind}", operation_id = "get_dns_record",
    params(
        ("endpoint" = String, Path, description = "DNS endpoint"),
        ("name" = String, Path, description = "Record name (the final dot optional)"),
        ("kind" = RecordKind, Path, description = "`A`, `AAAA` or `CNAME` (lower case accepted)"),
        ZoneFilter,
    ),
    responses(
        (status = 200, description = "`endpoint`, `zone`, `name`, `kind`, `values`, `ttl`", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such endpoint, zone or record", body = ErrorBody),
        (status = 422, description = "Unknown record kind, or a name outside the zone", body = ErrorBody),
        (status = 502, description = "The server refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The server is down or busy", body = ErrorBody),
    ))]
pub async fn get_dns_record(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    filter: Result<Query<ZoneFilter>, QueryRejection>,
) -> ApiResult {
    let (endpoint, name, kind) = record_at(path)?;
    let Query(filter) = filter?;
    let zone = filter.zone.unwrap_or_default();
    let record = dns::get(state.data.endpoints(), &endpoint, &zone, &name, kind)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(record_doc(&endpoint, &zone, &record))
}

/// Body of `PUT /v1/dns/{endpoint}/records/{name}/{kind}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// Addresses (A, AAAA) or the one target name (CNAME).
    #[schema(min_items = 1)]
    pub values: Vec<String>,
    /// Seconds (`300` when absent); `60` and `60.0` alike, as JSON Schema has both integers.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 2147483647, default = 300, value_type = u32)]
    pub ttl: Option<u32>,
    /// The zone (the adapter picks when absent).
    pub zone: Option<String>,
}

/// `PUT /v1/dns/{endpoint}/records/{name}/{kind}` with `{"values": [...], "ttl": N}`: makes
/// the record exactly this and answers it as the server then holds it.
#[utoipa::path(put, path = "/v1/dns/{endpoint}/records/{name}/{kind}", operation_id = "set_dns_record",
    params(
        ("endpoint" = String, Path, description = "DNS endpoint"),
        ("name" = String, Path, description = "Record name (the final dot optional)"),
        ("kind" = RecordKind, Path, description = "`A`, `AAAA` or `CNAME` (lower case accepted)"),
    ),
    request_body = RecordRequest,
    responses(
        (status = 200, description = "`endpoint`, `zone`, `name`, `kind`, `values`, `ttl` as the server holds them", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such endpoint or zone", body = ErrorBody),
        (status = 409, description = "A record of another kind is in the way (A beside a CNAME)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Values not of the kind, no value, TTL 0, or a name outside the zone", body = ErrorBody),
        (status = 502, description = "The server refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The server is down or busy", body = ErrorBody),
    ))]
pub async fn set_dns_record(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: ObjectJson<RecordRequest>,
) -> ApiResult {
    let (endpoint, name, kind) = record_at(path)?;
    let ObjectJson(request) = body;
    let zone = request.zone.unwrap_or_default();
    let record = DnsRecord {
        name,
        kind,
        values: request.values,
        ttl: request.ttl.unwrap_or(DEFAULT_TTL),
    };
    let held = dns::set(state.data.endpoints(), &endpoint, &zone, record)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(record_doc(&endpoint, &zone, &held))
}

/// `DELETE /v1/dns/{endpoint}/records/{name}/{kind}[?zone=]`: removes the record (one that is
/// not there is removed already).
#[utoipa::path(delete, path = "/v1/dns/{endpoint}/records/{name}/{kind}", operation_id = "delete_dns_record",
    params(
        ("endpoint" = String, Path, description = "DNS endpoint"),
        ("name" = String, Path, description = "Record name (the final dot optional)"),
        ("kind" = RecordKind, Path, description = "`A`, `AAAA` or `CNAME` (lower case accepted)"),
        ZoneFilter,
    ),
    responses(
        (status = 200, description = "`endpoint`, `name`, `kind`, `deleted: true`", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such endpoint or zone", body = ErrorBody),
        (status = 422, description = "Unknown record kind, or a name outside the zone", body = ErrorBody),
        (status = 502, description = "The server refused Tidemark's credentials, or its adapter failed", body = ErrorBody),
        (status = 503, description = "The server is down or busy", body = ErrorBody),
    ))]
pub async fn delete_dns_record(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    filter: Result<Query<ZoneFilter>, QueryRejection>,
) -> ApiResult {
    let (endpoint, name, kind) = record_at(path)?;
    let Query(filter) = filter?;
    let zone = filter.zone.unwrap_or_default();
    dns::delete(state.data.endpoints(), &endpoint, &zone, &name, kind)
        .await
        .map_err(ApiError::from_adapter)?;
    Ok(Json(json!({
        "endpoint": endpoint, "name": crate::model::fqdn(&name), "kind": kind.to_string(), "deleted": true,
    }))
    .into_response())
}
