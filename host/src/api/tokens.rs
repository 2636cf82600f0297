//! `POST /v1/tokens` (admin): makes a bearer token and shows it once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::{Role, new_token};
use super::error::ApiError;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    role: String,
    name: Option<String>,
}

/// Records a token's hash under a name; returns (name, token). The token itself is never
/// stored.
pub fn create(
    catalog: &crate::catalog::Catalog,
    role: &str,
    name: Option<String>,
) -> anyhow::Result<(String, String)> {
    let role = Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("role '{role}' must be admin, operator or viewer"))?;
    let (token, hash) = new_token()?;
    let name = name.unwrap_or_else(|| format!("{}-{}", role.as_str(), &hash[..8]));
    crate::names::check_name("token", &name).map_err(anyhow::Error::msg)?;
    catalog.add_token(&name, role.as_str(), &hash)?;
    Ok((name, token))
}

/// `POST /v1/tokens`: 201 with `{name, role, token}`; the only time the token is shown.
pub async fn create_token(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let (name, token) =
        create(&state.catalog, &request.role, request.name).map_err(ApiError::refused)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "role": request.role, "token": token })),
    )
        .into_response())
}
