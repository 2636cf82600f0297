//! `token create` / `token list`: bearer tokens for the admin API.

use serde_json::json;

use super::table::render;
use super::{Context, Outcome};
use crate::api::auth::new_token;

/// Creates a token; the only time it is ever shown.
pub fn create(ctx: &Context, role: &str, name: Option<String>) -> anyhow::Result<Outcome> {
    let (token, hash) = new_token()?;
    let name = name.unwrap_or_else(|| format!("{role}-{}", &hash[..8]));
    crate::names::check_name("token", &name).map_err(anyhow::Error::msg)?;
    ctx.catalog.add_token(&name, role, &hash)?;
    Ok(Outcome::ok(
        json!({ "name": name, "role": role, "token": token }),
        format!("token {name} ({role}); shown once, keep it safe:\n{token}"),
    ))
}

/// Lists tokens without secrets.
pub fn list(ctx: &Context) -> anyhow::Result<Outcome> {
    let tokens = ctx.catalog.tokens()?;
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.role.clone(),
                crate::catalog::format_time(t.created_at),
            ]
        })
        .collect();
    Ok(Outcome::ok(
        serde_json::to_value(&tokens)?,
        render(&["TOKEN", "ROLE", "CREATED"], &rows),
    ))
}
