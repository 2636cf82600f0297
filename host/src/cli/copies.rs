//! Copies and what they are for: `copy`, `copies`, `restore`, `verify`, `expire`, `gc`.

use crate::engine::JobRequest;
use crate::engine::workflows::copy::CopyArgs;
use crate::engine::workflows::restore::RestoreArgs;
use crate::engine::workflows::restore_device::RestoreDeviceArgs;
use serde_json::{Value, json};

use super::connect::Connection;
use super::jobs::{job_outcome, list, run_job, segment};
use super::table::render;
use super::{Outcome, text_of};
use crate::units::format_size;

fn size_of(v: &Value) -> String {
    format_size(v.as_u64().unwrap_or(0))
}

/// `copy VM [POINT]`: without a point, snapshots first, then copies that point.
pub async fn copy(
    conn: &Connection,
    vm: &str,
    point: Option<&str>,
    proxy_host: &str,
    dry: bool,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let copy_of = |point: &str| {
        JobRequest::Copy(CopyArgs {
            vm: vm.to_string(),
            point: point.to_string(),
            proxy_host: Some(proxy_host.to_string()),
        })
    };
    if dry {
        return match point {
            Some(point) => super::jobs::dry_run(conn, &copy_of(point)).await,
            None => {
                let mut outcome =
                    super::jobs::dry_run(conn, &super::jobs::snapshot_request(vm)).await?;
                outcome
                    .text
                    .push_str("\nthen a copy job of the new recovery point");
                Ok(outcome)
            }
        };
    }
    let mut snapshot_job = Value::Null;
    let point = match point {
        Some(p) => p.to_string(),
        None => {
            let job = run_job(conn, &super::jobs::snapshot_request(vm), json_output).await?;
            if job["state"] != "succeeded" {
                let mut outcome = job_outcome(&job, json!({}));
                outcome.text = format!("the snapshot before the copy failed: {}", outcome.text);
                return Ok(outcome);
            }
            snapshot_job = job["id"].clone();
            job["result"]["recovery_point"]
                .as_str()
                .ok_or_else(|| {
                    anyhow::anyhow!("snapshot job {} recorded no recovery point", job["id"])
                })?
                .to_string()
        }
    };
    let job = run_job(conn, &copy_of(&point), json_output).await?;
    let mut outcome = job_outcome(
        &job,
        json!({ "recovery_point": point, "snapshot_job": snapshot_job }),
    );
    if outcome.ok {
        let result = &job["result"];
        let mut lines = vec![format!(
            "{} — point {point}: read {}, stored {} new",
            outcome.text,
            size_of(&result["bytes_read"]),
            size_of(&result["bytes_stored"]),
        )];
        for d in list(&result["devices"]) {
            lines.push(format!(
                "  {:<10} {:<11} read {:>10} of {:>10}, stored {:>10}",
                d["mount_point"].as_str().unwrap_or("?"),
                d["how"].as_str().unwrap_or("?"),
                size_of(&d["bytes_read"]),
                size_of(&d["size"]),
                size_of(&d["bytes_stored"]),
            ));
        }
        for warning in list(&result["warnings"]) {
            lines.push(format!("warning: {}", text_of(warning)));
        }
        outcome.text = lines.join("\n");
    }
    Ok(outcome)
}

/// `copies VM`: points with copies, their sizes and what they cost in the store.
pub async fn copies(conn: &Connection, vm: &str) -> anyhow::Result<Outcome> {
    let docs = conn
        .api
        .get(&format!("/v1/vms/{}/copies", segment(vm)))
        .await?;
    let rows: Vec<Vec<String>> = list(&docs)
        .map(|p| {
            vec![
                text_of(&p["recovery_point"]),
                text_of(&p["created_at"]),
                list(&p["copies"]).count().to_string(),
                size_of(&p["size"]),
                size_of(&p["bytes_stored"]),
                size_of(&p["stored_total"]),
                if p["snapshots_present"] == true {
                    "yes"
                } else {
                    "expired"
                }
                .to_string(),
            ]
        })
        .collect();
    let text = render(
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
    );
    Ok(Outcome::ok(docs, text))
}

/// `restore VM POINT --host HOST [--as NAME] [--array A]`.
pub async fn restore(
    conn: &Connection,
    args: RestoreArgs,
    dry: bool,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let request = JobRequest::Restore(args);
    if dry {
        return super::jobs::dry_run(conn, &request).await;
    }
    let job = run_job(conn, &request, json_output).await?;
    let mut outcome = job_outcome(&job, json!({}));
    if outcome.ok {
        let result = &job["result"];
        outcome.text = format!(
            "{} — VM {} on {}, {} written",
            outcome.text,
            result["vm"].as_str().unwrap_or("?"),
            result["host"].as_str().unwrap_or("?"),
            size_of(&result["bytes_written"])
        );
    }
    Ok(outcome)
}

/// `restore VM POINT --device MOUNT`: one device in place.
pub async fn restore_device(
    conn: &Connection,
    vm: &str,
    point: &str,
    mount: &str,
    dry: bool,
    json_output: bool,
) -> anyhow::Result<Outcome> {
    let request = JobRequest::RestoreDevice(RestoreDeviceArgs {
        vm: vm.to_string(),
        point: point.to_string(),
        device: mount.to_string(),
    });
    if dry {
        return super::jobs::dry_run(conn, &request).await;
    }
    let job = run_job(conn, &request, json_output).await?;
    Ok(job_outcome(&job, json!({})))
}

/// `verify [POINT | --all]`: exit 1 if anything is damaged.
pub async fn verify(conn: &Connection, point: Option<&str>, all: bool) -> anyhow::Result<Outcome> {
    let report = conn
        .api
        .post("/v1/copies/verify", json!({ "point": point, "all": all }))
        .await?;
    let mut lines = Vec::new();
    for c in list(&report["checked"]) {
        let (id, point_id, device) = (
            text_of(&c["copy"]),
            text_of(&c["recovery_point"]),
            text_of(&c["device_ref"]),
        );
        if c["ok"] == true {
            lines.push(format!("ok       {id} ({point_id} {device})"));
            continue;
        }
        let damage = list(&report["damaged"]).find(|d| d["copy"] == c["copy"]);
        let mut what = Vec::new();
        if let Some(d) = damage {
            if let Some(e) = d["error"].as_str() {
                what.push(e.to_string());
            }
            for chunk in list(&d["damaged_chunks"]) {
                let pack = chunk["pack"]
                    .as_str()
                    .map(|p| format!(" in pack {p}"))
                    .unwrap_or_default();
                what.push(format!(
                    "chunk {} (#{}){pack} {}",
                    text_of(&chunk["chunk"]),
                    text_of(&chunk["index"]),
                    text_of(&chunk["reason"])
                ));
            }
        }
        lines.push(format!(
            "DAMAGED  {id} ({point_id} {device}): {}",
            what.join("; ")
        ));
    }
    lines.push(format!(
        "{} copies verified, {} chunks checked, {} damaged",
        text_of(&report["copies"]),
        text_of(&report["chunks_checked"]),
        list(&report["damaged"]).count()
    ));
    let ok = report["ok"] == true;
    Ok(Outcome {
        json: report,
        text: lines.join("\n"),
        ok,
    })
}

/// `expire`: what the policy deleted (or, with --dry-run, would delete).
pub async fn expire(conn: &Connection, policy: Value) -> anyhow::Result<Outcome> {
    let report = conn.api.post("/v1/copies/expire", policy).await?;
    let dry_run = report["dry_run"] == true;
    let rows: Vec<Vec<String>> = list(&report["expired"])
        .map(|e| {
            ["vm", "point", "what", "mount_point", "id"]
                .iter()
                .map(|k| text_of(&e[*k]))
                .collect()
        })
        .collect();
    let mut text = format!(
        "{}{} item(s) {}\n{}",
        if dry_run { "dry run: " } else { "" },
        rows.len(),
        if dry_run {
            "would be deleted"
        } else {
            "deleted"
        },
        render(&["VM", "POINT", "WHAT", "MOUNT", "ID"], &rows)
    );
    for s in list(&report["skipped"]) {
        text.push_str(&format!("\nskipped {}", text_of(s)));
    }
    Ok(Outcome::ok(report, text))
}

/// `gc [--repack-below PERCENT]`.
pub async fn gc(conn: &Connection, repack_below: Option<u8>) -> anyhow::Result<Outcome> {
    // Unsaid, the server's `gc_repack_below` applies.
    let body = match repack_below {
        Some(percent) => json!({ "repack_below": percent }),
        None => json!({}),
    };
    let report = conn.api.post("/v1/copies/gc", body).await?;
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    let text = format!(
        "freed {} chunk(s), {}; deleted {} pack(s), rewrote {} into {}; removed {} unreferenced copy manifest(s); {} chunk(s) remain",
        n("chunks_freed"),
        format_size(n("bytes_freed")),
        n("packs_deleted"),
        n("packs_repacked"),
        n("packs_written"),
        n("manifests_removed"),
        n("chunks_total").saturating_sub(n("chunks_freed")),
    );
    Ok(Outcome::ok(report, text))
}

/// `copies upgrade` and `copies rebuild-index`: upkeep of the store itself, reported as
/// the server's JSON.
pub async fn upkeep(conn: &Connection, what: &str) -> anyhow::Result<Outcome> {
    let report = conn
        .api
        .post(&format!("/v1/copies/{what}"), json!({}))
        .await?;
    let text = serde_json::to_string_pretty(&report)?;
    Ok(Outcome::ok(report, text))
}

/// `catalog recover --from-copies`: what the copies' manifests put back into the catalog;
/// exit 1 if any copy could not be placed (each named with why).
pub async fn recover_catalog(conn: &Connection) -> anyhow::Result<Outcome> {
    let report = conn
        .api
        .post("/v1/catalog/recover", json!({ "from": "copies" }))
        .await?;
    let names = |key: &str| {
        list(&report[key])
            .map(text_of)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let count = |key: &str| report[key].as_u64().unwrap_or(0);
    let mut lines = vec![
        format!(
            "read {} manifest(s): recorded {} VM(s) [{}], {} point(s) [{}], {} copy ref(s); {} point(s) were known",
            count("manifests"),
            list(&report["vms_recorded"]).count(),
            names("vms_recorded"),
            list(&report["points_recorded"]).count(),
            names("points_recorded"),
            count("copies_recorded"),
            count("points_known"),
        ),
        format!(
            "snapshots of the recorded points: {} still on their endpoint, {} recorded as expired",
            count("snapshots_present"),
            count("snapshots_expired"),
        ),
    ];
    let skipped: Vec<_> = list(&report["skipped"]).collect();
    for s in &skipped {
        lines.push(format!(
            "skipped copy {}: {}",
            text_of(&s["copy"]),
            text_of(&s["reason"])
        ));
    }
    let ok = skipped.is_empty();
    Ok(Outcome {
        ok,
        ..Outcome::ok(report, lines.join("\n"))
    })
}

/// `copies key export --out FILE`: the key file written to a new 0600 file, then the store
/// marked so copies stop warning. Works on the local data directory only: the key never
/// travels over the API. Made now if no copy was made yet, so it can be kept before the first.
pub async fn export_key(conn: &Connection, out: &std::path::Path) -> anyhow::Result<Outcome> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let data = conn.local_data().await.map_err(|e| {
        anyhow::anyhow!(
            "{e:#}; the key is exported from the machine that holds it, never over the API"
        )
    })?;
    let store = data.attach_copy_store(true)?;
    let text = store.key_file_text()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create {}: {e} (it must not exist yet)",
                out.display()
            )
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    store.mark_key_exported(&out.display().to_string())?;
    let doc = json!({ "exported": out.display().to_string(), "store": store.location() });
    let text = format!(
        "copy key written to {} (mode 0600): keep it away from this machine; \
         restore it as {}/key to read these copies elsewhere",
        out.display(),
        store.location()
    );
    Ok(Outcome::ok(doc, text))
}
