//! `inventory [--endpoint E] [--refresh]` and `reconcile`.

use serde_json::json;

use super::connect::Connection;
use super::jobs::{list, segment};
use super::table::render;
use super::{Outcome, text_of};

pub async fn inventory(conn: &Connection, only: Option<&str>) -> anyhow::Result<Outcome> {
    let path = match only {
        Some(name) => format!("/v1/inventory?endpoint={}", segment(name)),
        None => "/v1/inventory".to_string(),
    };
    let report = conn.api.get(&path).await?;
    let mut text = Vec::new();
    for e in list(&report) {
        text.push(format!(
            "== {} ({})",
            text_of(&e["endpoint"]),
            text_of(&e["kind"])
        ));
        if let Some(error) = e["error"].as_str() {
            text.push(format!("   error: {error}"));
        }
        if let Some(hosts) = e["hosts"].as_array() {
            let ids: Vec<String> = hosts.iter().map(|h| text_of(&h["id"])).collect();
            text.push(format!("   hosts: {}", ids.join(", ")));
        }
        for vm in list(&e["vms"]) {
            text.push(format!(
                "   vm {} ({}) on {}, {} device(s), powered {}",
                text_of(&vm["name"]),
                text_of(&vm["id"]),
                text_of(&vm["host_id"]),
                list(&vm["devices"]).count(),
                text_of(&vm["power"])
            ));
        }
        for lun in list(&e["luns"]) {
            let exposed: Vec<String> = list(&lun["exposed_to"]).map(text_of).collect();
            text.push(format!(
                "   lun {} {} {} exposed to [{}]",
                text_of(&lun["wwn"]),
                text_of(&lun["name"]),
                crate::units::format_size(lun["capacity"].as_u64().unwrap_or(0)),
                exposed.join(", ")
            ));
        }
        text.push(format!("   snapshots: {}", list(&e["snapshots"]).count()));
    }
    let ok = list(&report).all(|e| e["error"].is_null());
    Ok(Outcome {
        json: report,
        text: text.join("\n"),
        ok,
    })
}

/// `inventory --refresh`: records the VMs the hypervisors report in the catalog.
pub async fn refresh(conn: &Connection, only: Option<&str>) -> anyhow::Result<Outcome> {
    let answer = conn
        .api
        .post("/v1/inventory/refresh", json!({ "endpoint": only }))
        .await?;
    let names = |k: &str| list(&answer[k]).map(text_of).collect::<Vec<_>>().join(", ");
    let mut text = vec![
        format!("recorded: {}", names("recorded")),
        format!("updated: {}", names("updated")),
    ];
    for k in ["missing"] {
        if list(&answer[k]).count() > 0 {
            text.push(format!("{k}: {}", names(k)));
        }
    }
    for k in ["conflicts", "invalid", "errors"] {
        for item in list(&answer[k]) {
            text.push(format!("{k}: {item}"));
        }
    }
    let ok = list(&answer["errors"]).count() == 0;
    Ok(Outcome {
        json: answer,
        text: text.join("\n"),
        ok,
    })
}

pub async fn reconcile(conn: &Connection) -> anyhow::Result<Outcome> {
    let answer = conn.api.get("/v1/reconcile").await?;
    let rows: Vec<Vec<String>> = list(&answer["findings"])
        .map(|f| {
            vec![
                text_of(&f["kind"]),
                text_of(&f["endpoint"]),
                text_of(&f["detail"]),
            ]
        })
        .collect();
    let clean = answer["clean"] == true;
    let text = if clean {
        "catalog and adapters agree".to_string()
    } else {
        render(&["FINDING", "ENDPOINT", "DETAIL"], &rows)
    };
    Ok(Outcome {
        json: answer,
        text,
        ok: clean,
    })
}
