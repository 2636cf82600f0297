//! `POST /v1/tokens` (admin): makes a bearer token and shows it once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::{Role, new_token};
use super::error::{ApiError, ErrorBody, ObjectJson};
use crate::refusal::Refusal;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `admin`, `operator` or `viewer`.
    #[schema(pattern = "^(admin|operator|viewer)$", example = "operator")]
    role: String,
    /// A unique name (default: the role and a random suffix).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: Option<String>,
}

/// Records a token's hash under a name; returns (name, token). The token itself is never
/// stored. A bad role or name is refused as invalid, a taken name as a conflict.
pub fn create(
    catalog: &crate::catalog::Catalog,
    role: &str,
    name: Option<String>,
) -> anyhow::Result<(String, String)> {
    let role = Role::parse(role).ok_or_else(|| {
        Refusal::invalid(format!("role '{role}' must be admin, operator or viewer"))
    })?;
    let (token, hash) = new_token()?;
    let name = name.unwrap_or_else(|| format!("{}-{}", role.as_str(), &hash[..8]));
    crate::names::check_name("token", &name).map_err(Refusal::invalid)?;
    catalog.add_token(&name, role.as_str(), &hash)?;
    Ok((name, token))
}

/// `POST /v1/tokens`: 201 with `{name, role, token}`; the only time the token is shown.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", request_body = NewToken, responses(
        (status = 201, description = "`name`, `role` and the `token`, shown this once", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Well-formed but invalid request", body = ErrorBody),
        (status = 409, description = "A token of that name exists", body = ErrorBody),
    ))]
pub async fn create_token(
    State(state): State<Arc<ApiState>>,
    body: ObjectJson<NewToken>,
) -> Result<Response, ApiError> {
    let ObjectJson(request) = body;
    let (name, token) =
        create(&state.data.catalog, &request.role, request.name).map_err(ApiError::refused)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "role": request.role, "token": token })),
    )
        .into_response())
}
