//! VMs, recovery points, and the jobs that make them: `vm`, `snapshot`, `points`, `revert`,
//! `jobs`, `job`, `resume`.

use anyhow::anyhow;
use serde_json::json;

use super::table::{render, tracking};
use super::{Context, Outcome};
use crate::catalog::{JobRecord, JobState, format_time};
use crate::units::format_size;

pub fn vm_list(ctx: &Context) -> anyhow::Result<Outcome> {
    let vms = ctx.catalog.vms()?;
    let rows = vms
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.endpoint.clone(),
                v.host.clone(),
                v.power.clone(),
                v.devices.len().to_string(),
            ]
        })
        .collect::<Vec<_>>();
    Ok(Outcome::ok(
        serde_json::to_value(&vms)?,
        render(&["VM", "ENDPOINT", "HOST", "POWER", "DEVICES"], &rows),
    ))
}

pub fn vm_show(ctx: &Context, name: &str) -> anyhow::Result<Outcome> {
    let vm = ctx
        .catalog
        .vm(name)?
        .ok_or_else(|| anyhow!("unknown VM '{name}' (see `tidemark vm list`)"))?;
    let rows = vm
        .devices
        .iter()
        .map(|d| {
            vec![
                d.mount_point.clone(),
                d.kind.clone(),
                d.wwn
                    .clone()
                    .unwrap_or_else(|| d.disk_ref.clone().unwrap_or_default()),
                d.mode.clone().unwrap_or_else(|| "-".into()),
                format_size(d.capacity),
            ]
        })
        .collect::<Vec<_>>();
    let text = format!(
        "VM {} ({}) on {} via {}, powered {}\n{}",
        vm.name,
        vm.vm_ref,
        vm.host,
        vm.endpoint,
        vm.power,
        render(&["MOUNT", "KIND", "DISK / WWN", "MODE", "CAPACITY"], &rows)
    );
    Ok(Outcome::ok(serde_json::to_value(&vm)?, text))
}

pub fn points(ctx: &Context, vm: &str) -> anyhow::Result<Outcome> {
    if ctx.catalog.vm(vm)?.is_none() {
        return Err(anyhow!("unknown VM '{vm}' (see `tidemark vm list`)"));
    }
    let points = ctx.catalog.points(vm)?;
    Ok(Outcome::ok(
        serde_json::to_value(&points)?,
        tracking(&ctx.catalog, vm)?,
    ))
}

/// A job's outcome as a command result: ok only if it succeeded.
pub(super) fn job_outcome(job: &JobRecord, extra: serde_json::Value) -> Outcome {
    let mut doc = json!({ "job": job.id, "kind": job.kind, "state": job.state });
    if let (Some(obj), Some(result)) = (
        doc.as_object_mut(),
        job.result.as_ref().and_then(|r| r.as_object()),
    ) {
        for (k, v) in result {
            obj.insert(k.clone(), v.clone());
        }
    }
    if let (Some(obj), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    if let Some(error) = &job.error {
        doc["error"] = json!(error);
    }
    let ok = job.state == JobState::Succeeded;
    let text = if ok {
        format!("{} job {} succeeded", job.kind, job.id)
    } else {
        format!(
            "{} job {} {}: {}",
            job.kind,
            job.id,
            job.state,
            job.error.clone().unwrap_or_default()
        )
    };
    Outcome {
        json: doc,
        text,
        ok,
    }
}

pub async fn snapshot(ctx: &Context, vm: &str) -> anyhow::Result<Outcome> {
    let job = ctx.engine.snapshot(vm).await?;
    let point = job
        .result
        .as_ref()
        .and_then(|r| r["recovery_point"].as_str())
        .map(str::to_string);
    let snapshots = match &point {
        Some(id) => ctx
            .catalog
            .point(id)?
            .map(|p| p.snapshots)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut outcome = job_outcome(&job, json!({ "snapshots": snapshots }));
    if let Some(id) = point {
        outcome.text = format!(
            "{}\nrecovery point {id}\n{}",
            outcome.text,
            tracking(&ctx.catalog, vm)?
        );
    }
    Ok(outcome)
}

pub async fn revert(ctx: &Context, vm: &str, point: &str) -> anyhow::Result<Outcome> {
    let job = ctx.engine.revert(vm, point).await?;
    Ok(job_outcome(&job, json!({})))
}

pub fn list(ctx: &Context) -> anyhow::Result<Outcome> {
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for id in ctx.catalog.job_ids(false)? {
        let job = ctx.engine.job(&id)?;
        docs.push(json!({
            "id": job.id, "kind": job.kind, "state": job.state, "vm": job.vm_name,
            "created_at": format_time(job.created_at), "error": job.error,
        }));
        rows.push(vec![
            job.id,
            job.kind,
            job.state.to_string(),
            job.vm_name.unwrap_or_default(),
            format_time(job.created_at),
        ]);
    }
    Ok(Outcome::ok(
        json!(docs),
        render(&["JOB", "KIND", "STATE", "VM", "CREATED"], &rows),
    ))
}

pub fn show(ctx: &Context, id: &str) -> anyhow::Result<Outcome> {
    let job = ctx.engine.job(id)?;
    let rows = job
        .steps
        .iter()
        .map(|s| {
            vec![
                s.seq.to_string(),
                s.name.clone(),
                s.state.to_string(),
                s.detail.clone(),
            ]
        })
        .collect::<Vec<_>>();
    let text = format!(
        "job {} ({}) {}{}\n{}",
        job.id,
        job.kind,
        job.state,
        job.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
        render(&["#", "STEP", "STATE", "DETAIL"], &rows)
    );
    Ok(Outcome::ok(serde_json::to_value(&job)?, text))
}

/// Asks a running job to stop; it compensates before its next step.
pub fn cancel(ctx: &Context, id: &str) -> anyhow::Result<Outcome> {
    let job = ctx.engine.job(id)?;
    if !ctx.catalog.request_cancel(id)? {
        return Err(anyhow!(
            "job {id} is {}; only a running job can be cancelled",
            job.state
        ));
    }
    Ok(Outcome::ok(
        json!({ "job": id, "cancel_requested": true }),
        format!("job {id}: cancel requested; it compensates before its next step"),
    ))
}

pub async fn resume(ctx: &Context) -> anyhow::Result<Outcome> {
    let jobs = ctx.engine.resume().await?;
    let docs: Vec<_> = jobs
        .iter()
        .map(|j| json!({ "id": j.id, "kind": j.kind, "state": j.state, "error": j.error }))
        .collect();
    let text = if jobs.is_empty() {
        "no unfinished jobs".to_string()
    } else {
        jobs.iter()
            .map(|j| format!("{} ({}): {}", j.id, j.kind, j.state))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(json!({ "resumed": docs }), text))
}
