//! `dns zones|get|set|delete`: records of DNS endpoints, through `/v1/dns`.

use serde_json::{Value, json};

use super::args::DnsCommand;
use super::connect::Connection;
use super::jobs::{list, segment};
use super::{Outcome, text_of};
use crate::model::RecordKind;

pub async fn run(conn: &Connection, command: DnsCommand) -> anyhow::Result<Outcome> {
    match command {
        DnsCommand::Zones { endpoint } => {
            let answer = conn
                .api
                .get(&format!("/v1/dns/{}/zones", segment(&endpoint)))
                .await?;
            let text = list(&answer["zones"])
                .map(text_of)
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Outcome::ok(answer, text))
        }
        DnsCommand::Get {
            endpoint,
            name,
            kind,
            zone,
        } => {
            let at = record_path(&endpoint, &name, &kind)?;
            let answer = conn.api.get(&format!("{at}{}", zone_query(&zone))).await?;
            let text = describe(&answer);
            Ok(Outcome::ok(answer, text))
        }
        DnsCommand::Set {
            endpoint,
            name,
            kind,
            values,
            ttl,
            zone,
        } => {
            let at = record_path(&endpoint, &name, &kind)?;
            let answer = conn
                .api
                .put(&at, json!({ "values": values, "ttl": ttl, "zone": zone }))
                .await?;
            let text = describe(&answer);
            Ok(Outcome::ok(answer, text))
        }
        DnsCommand::Delete {
            endpoint,
            name,
            kind,
            zone,
        } => {
            let at = record_path(&endpoint, &name, &kind)?;
            let answer = conn
                .api
                .delete(&format!("{at}{}", zone_query(&zone)))
                .await?;
            let text = format!(
                "deleted {} {}",
                text_of(&answer["kind"]),
                text_of(&answer["name"])
            );
            Ok(Outcome::ok(answer, text))
        }
    }
}

/// The record's route; an unknown kind is refused before anything is sent.
fn record_path(endpoint: &str, name: &str, kind: &str) -> anyhow::Result<String> {
    let kind: RecordKind = kind.parse().map_err(anyhow::Error::msg)?;
    Ok(format!(
        "/v1/dns/{}/records/{}/{kind}",
        segment(endpoint),
        segment(name)
    ))
}

fn zone_query(zone: &Option<String>) -> String {
    zone.as_deref()
        .map(|z| format!("?zone={}", segment(z)))
        .unwrap_or_default()
}

fn describe(record: &Value) -> String {
    let values: Vec<String> = list(&record["values"]).map(text_of).collect();
    format!(
        "{} {} {} {}",
        text_of(&record["name"]),
        text_of(&record["ttl"]),
        text_of(&record["kind"]),
        values.join(" ")
    )
}
