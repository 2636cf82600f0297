//! `machine list|show|power|media|boot`: physical machines behind BMC endpoints, through
//! `/v1/machines`.

use serde_json::{Value, json};

use super::args::MachineCommand;
use super::connect::Connection;
use super::jobs::{list, segment};
use super::table::render;
use super::{Outcome, text_of};
use crate::engine::services::machines::{MachineRef, PowerAction};
use crate::model::BootDevice;

pub async fn run(conn: &Connection, command: MachineCommand) -> anyhow::Result<Outcome> {
    match command {
        MachineCommand::List => list_machines(conn).await,
        MachineCommand::Show { machine } => show(conn, &parse(&machine)?).await,
        MachineCommand::Power {
            machine,
            action,
            force,
        } => {
            let at = parse(&machine)?;
            let action: PowerAction = action.parse().map_err(anyhow::Error::msg)?;
            let answer = conn
                .api
                .post(
                    &format!("{}/power", path(&at)),
                    json!({ "action": action, "force": force }),
                )
                .await?;
            let text = format!("{at}: power {}", text_of(&answer["power"]));
            Ok(Outcome::ok(answer, text))
        }
        MachineCommand::Media {
            machine,
            action,
            url,
        } => {
            let at = parse(&machine)?;
            let media = format!("{}/media", path(&at));
            match (action.as_str(), url) {
                ("insert", Some(url)) => {
                    let answer = conn.api.put(&media, json!({ "url": url })).await?;
                    Ok(Outcome::ok(answer, format!("{at}: inserted {url}")))
                }
                ("insert", None) => anyhow::bail!("machine media {at} insert needs the image URL"),
                ("eject", None) => {
                    let answer = conn.api.delete(&media).await?;
                    Ok(Outcome::ok(answer, format!("{at}: ejected")))
                }
                ("eject", Some(_)) => anyhow::bail!("machine media {at} eject takes no URL"),
                (other, _) => anyhow::bail!("media action must be insert or eject, not '{other}'"),
            }
        }
        MachineCommand::Boot {
            machine,
            device,
            continuous,
        } => {
            let at = parse(&machine)?;
            let device: BootDevice = device.parse().map_err(anyhow::Error::msg)?;
            let answer = conn
                .api
                .put(
                    &format!("{}/boot", path(&at)),
                    json!({ "device": device, "once": !continuous }),
                )
                .await?;
            let when = if continuous {
                "until changed"
            } else {
                "next boot"
            };
            Ok(Outcome::ok(
                answer,
                format!("{at}: boots from {device} ({when})"),
            ))
        }
    }
}

fn parse(raw: &str) -> anyhow::Result<MachineRef> {
    raw.parse().map_err(anyhow::Error::msg)
}

fn path(at: &MachineRef) -> String {
    format!(
        "/v1/machines/{}/{}",
        segment(&at.endpoint),
        segment(&at.machine)
    )
}

async fn list_machines(conn: &Connection) -> anyhow::Result<Outcome> {
    let answer = conn.api.get("/v1/machines").await?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for e in list(&answer) {
        let endpoint = text_of(&e["endpoint"]);
        if let Some(error) = e["error"].as_str() {
            errors.push(format!("{endpoint}: {error}"));
        }
        for id in list(&e["machines"]) {
            rows.push(vec![format!("{endpoint}:{}", text_of(id))]);
        }
    }
    let mut text = render(&["MACHINE"], &rows);
    for error in &errors {
        text.push_str(&format!("\nerror: {error}"));
    }
    Ok(Outcome {
        json: answer,
        text,
        ok: errors.is_empty(),
    })
}

async fn show(conn: &Connection, at: &MachineRef) -> anyhow::Result<Outcome> {
    let answer = conn.api.get(&path(at)).await?;
    let text = describe(at, &answer["inventory"]);
    Ok(Outcome::ok(answer, text))
}

/// The inventory for people: every field, `unknown` where the BMC did not say.
fn describe(at: &MachineRef, inv: &Value) -> String {
    let known = |v: &Value| {
        if v.is_null() {
            "unknown".to_string()
        } else {
            text_of(v)
        }
    };
    let mut lines = vec![format!("machine {at}")];
    for (label, key) in [
        ("name", "name"),
        ("manufacturer", "manufacturer"),
        ("model", "model"),
        ("serial", "serial"),
        ("power", "power"),
        ("firmware", "firmware"),
    ] {
        lines.push(format!("  {label}: {}", known(&inv[key])));
    }
    lines.push(format!(
        "  memory: {}",
        inv["memory"]
            .as_u64()
            .map(crate::units::format_size)
            .unwrap_or_else(|| "unknown".into())
    ));
    let listed = |key: &str, item: &dyn Fn(&Value) -> String| -> String {
        match inv[key].as_array() {
            None => "unknown".into(),
            Some(items) if items.is_empty() => "none".into(),
            Some(items) => items.iter().map(item).collect::<Vec<_>>().join("; "),
        }
    };
    lines.push(format!(
        "  cpus: {}",
        listed("cpus", &|c| format!(
            "{} ({} cores, {} threads)",
            known(&c["model"]),
            known(&c["cores"]),
            known(&c["threads"])
        ))
    ));
    lines.push(format!(
        "  nics: {}",
        listed("nics", &|n| format!(
            "{} {}",
            known(&n["id"]),
            known(&n["mac"])
        ))
    ));
    lines.push(format!(
        "  disks: {}",
        listed("disks", &|d| format!(
            "{} {}",
            known(&d["id"]),
            d["capacity"]
                .as_u64()
                .map(crate::units::format_size)
                .unwrap_or_else(|| "unknown size".into())
        ))
    ));
    lines.join("\n")
}
