//! `endpoint add|list|remove|test` and `adapters`.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::args::EndpointCommand;
use super::connect::Connection;
use super::jobs::{list, segment};
use super::table::render;
use super::{Outcome, text_of};

pub async fn run(conn: &Connection, command: EndpointCommand) -> anyhow::Result<Outcome> {
    match command {
        EndpointCommand::Add {
            name,
            adapter,
            settings,
            grants,
            secrets,
        } => {
            let settings: serde_json::Map<String, Value> =
                settings.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let secrets: serde_json::Map<String, Value> =
                secrets.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let record = conn
                .api
                .post(
                    "/v1/endpoints",
                    json!({ "name": name, "adapter": adapter, "settings": settings,
                            "grants": grants, "secrets": secrets }),
                )
                .await?;
            let text = format!(
                "endpoint {name} added (adapter {adapter}){}",
                grant_notes(&record)
            );
            Ok(Outcome::ok(record, text))
        }
        EndpointCommand::Secret {
            name,
            secrets,
            remove,
        } => {
            let set: serde_json::Map<String, Value> =
                secrets.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let answer = conn
                .api
                .put(
                    &format!("/v1/endpoints/{}/secrets", segment(&name)),
                    json!({ "set": set, "remove": remove }),
                )
                .await?;
            let names: Vec<String> = list(&answer["secrets"]).map(text_of).collect();
            let text = format!(
                "endpoint {name}: secrets now {}; new sessions use them{}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                grant_notes(&answer)
            );
            Ok(Outcome::ok(answer, text))
        }
        EndpointCommand::List => {
            let endpoints = conn.api.get("/v1/endpoints").await?;
            let rows: Vec<Vec<String>> = list(&endpoints)
                .map(|e| {
                    let settings: Vec<String> = e["settings"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", text_of(v)))
                        .collect();
                    let access: Vec<String> =
                        list(&e["access"]["effective"]).map(text_of).collect();
                    vec![
                        text_of(&e["name"]),
                        text_of(&e["adapter"]),
                        text_of(&e["kind"]),
                        settings.join(" "),
                        access.join(" "),
                    ]
                })
                .collect();
            Ok(Outcome::ok(
                endpoints,
                render(
                    &["ENDPOINT", "ADAPTER", "KIND", "SETTINGS", "ACCESS"],
                    &rows,
                ),
            ))
        }
        EndpointCommand::Remove { name } => {
            let answer = conn
                .api
                .delete(&format!("/v1/endpoints/{}", segment(&name)))
                .await?;
            let text = format!(
                "endpoint {name} removed (its data is kept in {})",
                text_of(&answer["data_kept"])
            );
            Ok(Outcome::ok(answer, text))
        }
        EndpointCommand::Test { name } => {
            let answer = conn
                .api
                .post(&format!("/v1/endpoints/{}/test", segment(&name)), json!({}))
                .await?;
            let ok = answer["ok"] == true;
            let text = if ok {
                format!(
                    "endpoint {name} answered in {} ms",
                    text_of(&answer["latency_ms"])
                )
            } else {
                format!("endpoint {name} failed: {}", text_of(&answer["error"]))
            };
            Ok(Outcome {
                json: answer,
                text,
                ok,
            })
        }
    }
}

/// What an endpoint's adapter asks for but was not granted, and what was granted but not
/// asked for (and so not given), as lines after the first.
fn grant_notes(doc: &Value) -> String {
    let mut out = String::new();
    for (key, what) in [
        (
            "not_granted",
            "requested by the adapter but not granted (calls needing it will be denied)",
        ),
        (
            "not_requested",
            "granted but not requested by the adapter (not given to it)",
        ),
    ] {
        let items: Vec<String> = list(&doc["access"][key]).map(text_of).collect();
        if !items.is_empty() {
            out.push_str(&format!("\n{what}: {}", items.join(" ")));
        }
    }
    out
}

pub async fn adapters(conn: &Connection) -> anyhow::Result<Outcome> {
    let docs = conn.api.get("/v1/adapters").await?;
    let rows: Vec<Vec<String>> = list(&docs)
        .filter(|a| a["rejected"].is_null())
        .map(|a| {
            let mut row: Vec<String> = ["name", "version", "kind", "contract", "vendor"]
                .iter()
                .map(|k| text_of(&a[*k]))
                .collect();
            row.push(text_of(&a["sha256"]).chars().take(12).collect());
            let users: Vec<String> = list(&a["endpoints"]).map(text_of).collect();
            row.push(users.join(","));
            row.push(text_of(&a["source"]));
            row
        })
        .collect();
    let mut text = render(
        &[
            "ADAPTER",
            "VERSION",
            "KIND",
            "CONTRACT",
            "VENDOR",
            "SHA256",
            "ENDPOINTS",
            "SOURCE",
        ],
        &rows,
    );
    for a in list(&docs).filter(|a| !a["rejected"].is_null()) {
        text.push_str(&format!(
            "\nrejected {}: {}",
            text_of(&a["name"]),
            text_of(&a["rejected"])
        ));
    }
    Ok(Outcome::ok(docs, text))
}

/// `adapter add FILE [--name NAME]`: sends the component to the API.
pub async fn add_adapter(
    conn: &Connection,
    file: &std::path::Path,
    name: Option<&str>,
) -> anyhow::Result<Outcome> {
    let name = match name {
        Some(name) => name.to_string(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .with_context(|| format!("{} has no file name; give --name", file.display()))?,
    };
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let length = wasm.len() as u64;
    let path = format!("/v1/adapters?name={}", segment(&name));
    let doc = conn
        .api
        .send_bytes(
            reqwest::Method::POST,
            &path,
            "application/wasm",
            wasm.into(),
            length,
        )
        .await
        .with_context(|| format!("adding adapter {name} from {}", file.display()))?;
    let text = format!(
        "adapter {} version {} (contract {}, sha256 {})",
        text_of(&doc["name"]),
        text_of(&doc["version"]),
        text_of(&doc["contract"]),
        text_of(&doc["sha256"])
    );
    Ok(Outcome::ok(doc, text))
}

/// `adapter remove NAME[@VERSION]`.
pub async fn remove_adapter(conn: &Connection, adapter: &str) -> anyhow::Result<Outcome> {
    let (name, version) = match adapter.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (adapter, None),
    };
    let mut path = format!("/v1/adapters/{}", segment(name));
    if let Some(version) = version {
        path.push_str(&format!("?version={}", segment(version)));
    }
    let doc = conn.api.delete(&path).await?;
    let removed: Vec<String> = list(&doc["removed"])
        .map(|a| format!("{}@{}", text_of(&a["name"]), text_of(&a["version"])))
        .collect();
    let text = format!("removed {}", removed.join(", "));
    Ok(Outcome::ok(doc, text))
}
