//! VMs, recovery points, and the jobs that make them: `vm`, `snapshot`, `points`, `revert`,
//! `jobs`, `job`, `resume`. Every command asks the API and renders its JSON.

use crate::engine::JobRequest;
use crate::engine::workflows::revert::RevertArgs;
use crate::engine::workflows::snapshot::SnapshotArgs;
use serde_json::{Value, json};

use super::client::ServerEvent;
use super::connect::Connection;
use super::progress_bar::EventBar;
use super::table::{render, tracking};
use super::{Outcome, text_of};
use crate::units::format_size;

/// A path segment with `/`, `?`, `#`, `%` and spaces escaped.
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn vm_list(conn: &Connection) -> anyhow::Result<Outcome> {
    let vms = conn.api.get("/v1/vms").await?;
    let rows = list(&vms)
        .map(|v| {
            vec![
                text_of(&v["name"]),
                text_of(&v["endpoint"]),
                text_of(&v["host"]),
                text_of(&v["power"]),
                list(&v["devices"]).count().to_string(),
            ]
        })
        .collect::<Vec<_>>();
    let text = render(&["VM", "ENDPOINT", "HOST", "POWER", "DEVICES"], &rows);
    Ok(Outcome::ok(vms, text))
}

pub async fn vm_show(conn: &Connection, name: &str) -> anyhow::Result<Outcome> {
    let vm = conn.api.get(&format!("/v1/vms/{}", segment(name))).await?;
    let rows = list(&vm["devices"])
        .map(|d| {
            let id = if d["wwn"].is_string() {
                &d["wwn"]
            } else {
                &d["disk_ref"]
            };
            vec![
                text_of(&d["mount_point"]),
                text_of(&d["kind"]),
                text_of(id),
                d["mode"].as_str().unwrap_or("-").to_string(),
                format_size(d["capacity"].as_u64().unwrap_or(0)),
            ]
        })
        .collect::<Vec<_>>();
    let text = format!(
        "VM {} ({}) on {} via {}, powered {}\n{}",
        text_of(&vm["name"]),
        text_of(&vm["vm_ref"]),
        text_of(&vm["host"]),
        text_of(&vm["endpoint"]),
        text_of(&vm["power"]),
        render(&["MOUNT", "KIND", "DISK / WWN", "MODE", "CAPACITY"], &rows)
    );
    Ok(Outcome::ok(vm, text))
}

/// The items of a JSON array (none for anything else).
pub fn list(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

async fn points_of(conn: &Connection, vm: &str) -> anyhow::Result<Value> {
    conn.api
        .get(&format!("/v1/vms/{}/points", segment(vm)))
        .await
}

pub async fn points(conn: &Connection, vm: &str) -> anyhow::Result<Outcome> {
    let points = points_of(conn, vm).await?;
    let text = tracking(vm, &points);
    Ok(Outcome::ok(points, text))
}

/// A job's outcome as a command result: ok only if it succeeded. The document has the job
/// id, kind and state, its result's fields, `extra`, and the error if any.
pub fn job_outcome(job: &Value, extra: Value) -> Outcome {
    let mut doc = json!({ "job": job["id"], "kind": job["kind"], "state": job["state"] });
    for source in [&job["result"], &extra] {
        if let (Some(obj), Some(fields)) = (doc.as_object_mut(), source.as_object()) {
            for (k, v) in fields {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(error) = job["error"].as_str() {
        doc["error"] = json!(error);
    }
    let ok = job["state"] == "succeeded";
    let (id, kind, state) = (
        text_of(&job["id"]),
        text_of(&job["kind"]),
        text_of(&job["state"]),
    );
    let text = if ok {
        format!("{kind} job {id} succeeded")
    } else if job["detached"] == true {
        format!("{kind} job {id} is still {state}")
    } else {
        format!(
            "{kind} job {id} {state}: {}",
            job["error"].as_str().unwrap_or("")
        )
    };
    Outcome {
        json: doc,
        text,
        ok,
    }
}

/// Starts a job and follows it to its end, drawing a progress bar on a terminal. Ctrl-C
/// stops following without cancelling the job. Returns the job's final record (with
/// `detached: true` if the user stopped following).
pub async fn run_job(
    conn: &Connection,
    request: &JobRequest,
    json_output: bool,
) -> anyhow::Result<Value> {
    let started = conn
        .api
        .post("/v1/jobs", serde_json::to_value(request)?)
        .await?;
    let id = text_of(&started["job"]);
    let mut bar = EventBar::for_output(json_output);
    let follow = conn.api.follow(&id, |event: &ServerEvent| {
        if let Some(bar) = bar.as_mut() {
            bar.show(event);
        }
    });
    tokio::select! {
        job = follow => job,
        _ = tokio::signal::ctrl_c() => {
            if conn.embedded() {
                eprintln!("\ninterrupted: job {id} stops with this command and is left resumable (`tidemark resume`)");
            } else {
                eprintln!("\ndetached: job {id} keeps running on the server (`tidemark job {id}` shows it, `tidemark job cancel {id}` cancels it)");
            }
            let mut job = conn.api.get(&format!("/v1/jobs/{id}")).await.unwrap_or(json!({ "id": id }));
            job["detached"] = json!(true);
            Ok(job)
        }
    }
}

/// `--dry-run` of a job command: the checked plan and its steps, recording nothing.
pub async fn dry_run(conn: &Connection, request: &JobRequest) -> anyhow::Result<Outcome> {
    let plan = conn
        .api
        .post("/v1/jobs?dry_run=true", serde_json::to_value(request)?)
        .await?;
    let steps: Vec<String> = plan["steps"]
        .as_array()
        .map(|steps| steps.iter().map(text_of).collect())
        .unwrap_or_default();
    let text = format!(
        "{} job on {} would run {} step(s), recording nothing:\n  {}",
        text_of(&plan["kind"]),
        text_of(&plan["vm"]),
        steps.len(),
        steps.join("\n  ")
    );
    Ok(Outcome::ok(plan, text))
}

/// A snapshot request of `vm`.
pub fn snapshot_request(vm: &str) -> JobRequest {
    JobRequest::Snapshot(SnapshotArgs { vm: vm.to_string() })
}

pub async fn snapshot(
    conn: &Connection,
    vm: &str,
    dry: bool,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let request = snapshot_request(vm);
    if dry {
        return dry_run(conn, &request).await;
    }
    let job = run_job(conn, &request, json_output).await?;
    let point = job["result"]["recovery_point"].as_str().map(str::to_string);
    let snapshots = match &point {
        Some(id) => conn.api.get(&format!("/v1/points/{}", segment(id))).await?["snapshots"].take(),
        None => json!([]),
    };
    let mut outcome = job_outcome(&job, json!({ "snapshots": snapshots }));
    if let Some(id) = point {
        let points = points_of(conn, vm).await?;
        outcome.text = format!(
            "{}\nrecovery point {id}\n{}",
            outcome.text,
            tracking(vm, &points)
        );
    }
    Ok(outcome)
}

pub async fn revert(
    conn: &Connection,
    vm: &str,
    point: &str,
    dry: bool,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let request = JobRequest::Revert(RevertArgs {
        vm: vm.to_string(),
        point: point.to_string(),
    });
    if dry {
        return dry_run(conn, &request).await;
    }
    let job = run_job(conn, &request, json_output).await?;
    Ok(job_outcome(&job, json!({})))
}

/// Every job, newest first (all pages).
pub async fn jobs(conn: &Connection) -> anyhow::Result<Outcome> {
    const PAGE: usize = 500;
    let mut all = Vec::new();
    loop {
        let page = conn
            .api
            .get(&format!("/v1/jobs?limit={PAGE}&offset={}", all.len()))
            .await?;
        let got: Vec<Value> = list(&page["jobs"]).cloned().collect();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let empty = got.is_empty();
        all.extend(got);
        if empty || all.len() >= total {
            break;
        }
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|j| {
            vec![
                text_of(&j["id"]),
                text_of(&j["kind"]),
                text_of(&j["state"]),
                j["vm"].as_str().unwrap_or("").to_string(),
                text_of(&j["created_at"]),
            ]
        })
        .collect();
    Ok(Outcome::ok(
        json!(all),
        render(&["JOB", "KIND", "STATE", "VM", "CREATED"], &rows),
    ))
}

pub async fn show(conn: &Connection, id: &str) -> anyhow::Result<Outcome> {
    let job = conn.api.get(&format!("/v1/jobs/{}", segment(id))).await?;
    let rows = list(&job["steps"])
        .map(|s| {
            vec![
                text_of(&s["seq"]),
                text_of(&s["name"]),
                text_of(&s["state"]),
                text_of(&s["detail"]),
            ]
        })
        .collect::<Vec<_>>();
    let text = format!(
        "job {} ({}) {}{}\n{}",
        text_of(&job["id"]),
        text_of(&job["kind"]),
        text_of(&job["state"]),
        job["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
        render(&["#", "STEP", "STATE", "DETAIL"], &rows)
    );
    Ok(Outcome::ok(job, text))
}

/// Asks a running job to stop; it compensates before its next step.
pub async fn cancel(conn: &Connection, id: &str) -> anyhow::Result<Outcome> {
    let answer = conn
        .api
        .post(&format!("/v1/jobs/{}/cancel", segment(id)), json!({}))
        .await?;
    Ok(Outcome::ok(
        answer,
        format!("job {id}: cancel requested; it compensates before its next step"),
    ))
}

pub async fn resume(conn: &Connection) -> anyhow::Result<Outcome> {
    let answer = conn.api.post("/v1/jobs/resume", json!({})).await?;
    let jobs: Vec<&Value> = list(&answer["resumed"]).collect();
    let text = if jobs.is_empty() {
        "no unfinished jobs".to_string()
    } else {
        jobs.iter()
            .map(|j| {
                format!(
                    "{} ({}): {}",
                    text_of(&j["id"]),
                    text_of(&j["kind"]),
                    text_of(&j["state"])
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(answer, text))
}
