//! `token create` / `token list`: bearer tokens for the admin API.

use serde_json::json;

use super::connect::Connection;
use super::jobs::list;
use super::table::render;
use super::{Outcome, text_of};

/// Creates a token; the only time it is ever shown.
pub async fn create(
    conn: &Connection,
    role: &str,
    name: Option<String>,
) -> anyhow::Result<Outcome> {
    let answer = conn
        .api
        .post("/v1/tokens", json!({ "role": role, "name": name }))
        .await?;
    let text = format!(
        "token {} ({role}); shown once, keep it safe:\n{}",
        text_of(&answer["name"]),
        text_of(&answer["token"])
    );
    Ok(Outcome::ok(answer, text))
}

/// Lists tokens without secrets.
pub async fn list_tokens(conn: &Connection) -> anyhow::Result<Outcome> {
    let tokens = conn.api.get("/v1/tokens").await?;
    let rows: Vec<Vec<String>> = list(&tokens)
        .map(|t| {
            vec![
                text_of(&t["name"]),
                text_of(&t["role"]),
                text_of(&t["created_at"]),
            ]
        })
        .collect();
    Ok(Outcome::ok(
        tokens,
        render(&["TOKEN", "ROLE", "CREATED"], &rows),
    ))
}
