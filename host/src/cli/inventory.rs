//! `inventory` and `reconcile`.

use serde_json::json;

use super::table::render;
use super::{Context, Outcome, endpoints::known};
use crate::engine::inventory;

pub async fn inventory(ctx: &Context, only: Option<&str>) -> anyhow::Result<Outcome> {
    if let Some(name) = only {
        known(ctx, name)?;
    }
    let keep = |names: Vec<String>| {
        names
            .into_iter()
            .filter(|n| only.is_none_or(|o| o == n))
            .collect::<Vec<_>>()
    };
    let report = inventory::inventory(
        ctx.endpoints(),
        &keep(ctx.hypervisors()),
        &keep(ctx.arrays()),
    )
    .await;
    let mut text = Vec::new();
    for e in &report {
        text.push(format!("== {} ({})", e.endpoint, e.kind));
        if let Some(error) = &e.error {
            text.push(format!("   error: {error}"));
        }
        if let Some(hosts) = &e.hosts {
            text.push(format!(
                "   hosts: {}",
                hosts
                    .iter()
                    .map(|h| h.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for vm in e.vms.iter().flatten() {
            text.push(format!(
                "   vm {} ({}) on {}, {} device(s), powered {}",
                vm.name,
                vm.id,
                vm.host_id,
                vm.devices.len(),
                vm.power
            ));
        }
        for lun in e.luns.iter().flatten() {
            text.push(format!(
                "   lun {} {} {} exposed to [{}]",
                lun.wwn,
                lun.name,
                crate::units::format_size(lun.capacity),
                lun.exposed_to.join(", ")
            ));
        }
        text.push(format!("   snapshots: {}", e.snapshots.len()));
    }
    let ok = report.iter().all(|e| e.error.is_none());
    Ok(Outcome {
        json: serde_json::to_value(&report)?,
        text: text.join("\n"),
        ok,
    })
}

pub async fn reconcile(ctx: &Context) -> anyhow::Result<Outcome> {
    let findings = inventory::reconcile(
        &ctx.catalog,
        ctx.endpoints(),
        &ctx.hypervisors(),
        &ctx.arrays(),
    )
    .await?;
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| vec![f.kind.clone(), f.endpoint.clone(), f.detail.clone()])
        .collect();
    let text = if findings.is_empty() {
        "catalog and adapters agree".to_string()
    } else {
        render(&["FINDING", "ENDPOINT", "DETAIL"], &rows)
    };
    Ok(Outcome {
        json: json!({ "clean": findings.is_empty(), "findings": findings }),
        text,
        ok: findings.is_empty(),
    })
}
