//! `endpoint add|list|remove|test` and `adapters`.

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
        } => {
            let settings: serde_json::Map<String, Value> =
                settings.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let record = conn
                .api
                .post(
                    "/v1/endpoints",
                    json!({ "name": name, "adapter": adapter, "settings": settings }),
                )
                .await?;
            Ok(Outcome::ok(
                record,
                format!("endpoint {name} added (adapter {adapter})"),
            ))
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
                    vec![
                        text_of(&e["name"]),
                        text_of(&e["adapter"]),
                        text_of(&e["kind"]),
                        settings.join(" "),
                    ]
                })
                .collect();
            Ok(Outcome::ok(
                endpoints,
                render(&["ENDPOINT", "ADAPTER", "KIND", "SETTINGS"], &rows),
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

pub async fn adapters(conn: &Connection) -> anyhow::Result<Outcome> {
    let docs = conn.api.get("/v1/adapters").await?;
    let rows: Vec<Vec<String>> = list(&docs)
        .filter(|a| a["rejected"].is_null())
        .map(|a| {
            ["name", "kind", "contract", "vendor", "version", "source"]
                .iter()
                .map(|k| text_of(&a[*k]))
                .collect()
        })
        .collect();
    let mut text = render(
        &["ADAPTER", "KIND", "CONTRACT", "VENDOR", "VERSION", "SOURCE"],
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
