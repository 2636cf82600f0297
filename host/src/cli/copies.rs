//! Copies and what they are for: `copy`, `copies`, `restore`, `verify`, `expire`, `gc`.

use anyhow::{anyhow, bail};
use serde_json::json;

use super::jobs::job_outcome;
use super::table::render;
use super::{Context, Outcome};
use crate::catalog::{JobState, format_time};
use crate::engine::retention::{self, Policy};
use crate::units::format_size;

/// `copy VM [POINT]`: without a point, snapshots first, then copies that point.
pub async fn copy(
    ctx: &Context,
    vm: &str,
    point: Option<&str>,
    proxy_host: &str,
) -> anyhow::Result<Outcome> {
    let mut snapshot_job = None;
    let point = match point {
        Some(p) => p.to_string(),
        None => {
            let job = ctx.engine.snapshot(vm).await?;
            if job.state != JobState::Succeeded {
                let mut outcome = job_outcome(&job, json!({}));
                outcome.text = format!("the snapshot before the copy failed: {}", outcome.text);
                return Ok(outcome);
            }
            let id = job
                .result
                .as_ref()
                .and_then(|r| r["recovery_point"].as_str())
                .ok_or_else(|| anyhow!("snapshot job {} recorded no recovery point", job.id))?
                .to_string();
            snapshot_job = Some(job.id);
            id
        }
    };
    let job = ctx.engine.copy(vm, &point, proxy_host).await?;
    let mut outcome = job_outcome(
        &job,
        json!({ "recovery_point": point, "snapshot_job": snapshot_job }),
    );
    if outcome.ok {
        let result = job.result.clone().unwrap_or_default();
        let mut lines = vec![format!(
            "{} — point {point}: read {}, stored {} new",
            outcome.text,
            format_size(result["bytes_read"].as_u64().unwrap_or(0)),
            format_size(result["bytes_stored"].as_u64().unwrap_or(0)),
        )];
        for d in result["devices"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  {:<10} {:<11} read {:>10} of {:>10}, stored {:>10}",
                d["mount_point"].as_str().unwrap_or("?"),
                d["how"].as_str().unwrap_or("?"),
                format_size(d["bytes_read"].as_u64().unwrap_or(0)),
                format_size(d["size"].as_u64().unwrap_or(0)),
                format_size(d["bytes_stored"].as_u64().unwrap_or(0)),
            ));
        }
        outcome.text = lines.join("\n");
    }
    Ok(outcome)
}

/// `copies VM`: points with copies, their sizes and what they cost in the store.
pub fn copies(ctx: &Context, vm: &str) -> anyhow::Result<Outcome> {
    if ctx.catalog.vm(vm)?.is_none() {
        bail!("unknown VM '{vm}' (see `tidemark vm list`)");
    }
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for point in ctx
        .catalog
        .points(vm)?
        .into_iter()
        .filter(|p| !p.copies.is_empty())
    {
        let size: u64 = point.copies.iter().map(|c| c.size).sum();
        let stored: u64 = point.copies.iter().map(|c| c.bytes_stored).sum();
        let footprint: u64 = point.copies.iter().map(|c| c.stored_total).sum();
        rows.push(vec![
            point.id.clone(),
            format_time(point.created_at),
            point.copies.len().to_string(),
            format_size(size),
            format_size(stored),
            format_size(footprint),
            if point.snapshots_present() {
                "yes"
            } else {
                "expired"
            }
            .to_string(),
        ]);
        docs.push(json!({
            "recovery_point": point.id,
            "created_at": format_time(point.created_at),
            "size": size,
            "bytes_stored": stored,
            "stored_total": footprint,
            "snapshots_present": point.snapshots_present(),
            "copies": point.copies,
        }));
    }
    Ok(Outcome::ok(
        json!(docs),
        render(
            &[
                "POINT",
                "CREATED",
                "DEVICES",
                "SIZE",
                "STORED NEW",
                "FOOTPRINT",
                "SNAPSHOTS",
            ],
            &rows,
        ),
    ))
}

/// `restore VM POINT --host HOST [--as NAME] [--array A]`.
pub async fn restore(
    ctx: &Context,
    vm: &str,
    point: &str,
    host: &str,
    as_name: Option<&str>,
    array: Option<&str>,
) -> anyhow::Result<Outcome> {
    let name = as_name.map_or_else(|| format!("{vm}-restored"), str::to_string);
    let job = ctx.engine.restore(vm, point, host, &name, array).await?;
    let mut outcome = job_outcome(&job, json!({}));
    if outcome.ok {
        let result = job.result.clone().unwrap_or_default();
        outcome.text = format!(
            "{} — VM {} on {}, {} written",
            outcome.text,
            result["vm"].as_str().unwrap_or("?"),
            result["host"].as_str().unwrap_or("?"),
            format_size(result["bytes_written"].as_u64().unwrap_or(0))
        );
    }
    Ok(outcome)
}

/// `restore VM POINT --device MOUNT`: one device in place.
pub async fn restore_device(
    ctx: &Context,
    vm: &str,
    point: &str,
    mount: &str,
) -> anyhow::Result<Outcome> {
    let job = ctx.engine.restore_in_place(vm, point, mount).await?;
    Ok(job_outcome(&job, json!({})))
}

/// `verify [POINT | --all]`.
pub fn verify(ctx: &Context, point: Option<&str>, all: bool) -> anyhow::Result<Outcome> {
    let store = ctx
        .engine
        .copies
        .clone()
        .ok_or_else(|| anyhow!("the copy store is not open"))?;
    let refs: Vec<(String, crate::catalog::CopyRefRecord)> = match (point, all) {
        (Some(id), _) => {
            let p = ctx
                .catalog
                .point(id)?
                .ok_or_else(|| anyhow!("unknown recovery point '{id}'"))?;
            if p.copies.is_empty() {
                bail!("recovery point {id} has no copies to verify");
            }
            p.copies.into_iter().map(|c| (p.id.clone(), c)).collect()
        }
        (None, true) => ctx.catalog.all_copy_refs()?,
        (None, false) => bail!("say which copies to verify: a recovery point, or --all"),
    };
    let ids: Vec<String> = refs.iter().map(|(_, c)| c.copy.clone()).collect();
    let report = store.verify(&ids);
    let mut damaged = Vec::new();
    let mut lines = Vec::new();
    for m in &report.manifests {
        let (point_id, copy) = refs
            .iter()
            .find(|(_, c)| c.copy == m.id)
            .map(|(p, c)| (p.clone(), c.device_ref.clone()))
            .unwrap_or_default();
        if m.ok {
            lines.push(format!("ok       {} ({point_id} {copy})", m.id));
        } else {
            let mut what = Vec::new();
            if let Some(e) = &m.error {
                what.push(e.clone());
            }
            for c in &m.damaged_chunks {
                what.push(format!("chunk {} (#{}) {}", c.chunk, c.index, c.reason));
            }
            lines.push(format!(
                "DAMAGED  {} ({point_id} {copy}): {}",
                m.id,
                what.join("; ")
            ));
            damaged.push(json!({
                "copy": m.id,
                "recovery_point": point_id,
                "device_ref": copy,
                "error": m.error,
                "damaged_chunks": m.damaged_chunks.iter().map(|c| json!({
                    "index": c.index, "chunk": c.chunk, "reason": c.reason,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    let ok = damaged.is_empty();
    lines.push(format!(
        "{} copies verified, {} chunks checked, {} damaged",
        report.manifests.len(),
        report.chunks_checked,
        damaged.len()
    ));
    Ok(Outcome {
        json: json!({
            "ok": ok,
            "copies": report.manifests.len(),
            "chunks_checked": report.chunks_checked,
            "damaged": damaged,
        }),
        text: lines.join("\n"),
        ok,
    })
}

/// `expire`.
pub async fn expire(ctx: &Context, policy: Policy, dry_run: bool) -> anyhow::Result<Outcome> {
    if policy.keep_snapshots.is_none() && policy.keep_copies.is_none() && policy.keep_days.is_none()
    {
        bail!("say what to keep: --keep-snapshots N, --keep-copies N and/or --keep-days D");
    }
    let report = retention::expire(
        &ctx.catalog,
        ctx.endpoints(),
        ctx.engine.copies.as_deref(),
        policy,
        dry_run,
    )
    .await?;
    let rows: Vec<Vec<String>> = report
        .expired
        .iter()
        .map(|e| {
            vec![
                e.vm.clone(),
                e.point.clone(),
                e.what.clone(),
                e.mount_point.clone(),
                e.id.clone(),
            ]
        })
        .collect();
    let mut text = format!(
        "{}{} item(s) {}\n{}",
        if dry_run { "dry run: " } else { "" },
        report.expired.len(),
        if dry_run {
            "would be deleted"
        } else {
            "deleted"
        },
        render(&["VM", "POINT", "WHAT", "MOUNT", "ID"], &rows)
    );
    for s in &report.skipped {
        text.push_str(&format!("\nskipped {s}"));
    }
    Ok(Outcome::ok(serde_json::to_value(&report)?, text))
}

/// `gc`.
pub fn gc(ctx: &Context) -> anyhow::Result<Outcome> {
    let store = ctx
        .engine
        .copies
        .clone()
        .ok_or_else(|| anyhow!("the copy store is not open"))?;
    let report = retention::gc(&ctx.catalog, &store)?;
    let text = format!(
        "freed {} chunk(s), {}; removed {} unreferenced copy manifest(s); {} chunk(s) remain",
        report.chunks_freed,
        format_size(report.bytes_freed),
        report.manifests_removed,
        report.chunks_total - report.chunks_freed,
    );
    Ok(Outcome::ok(serde_json::to_value(report)?, text))
}
