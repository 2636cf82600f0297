//! `tidemark demo`: the whole point in one command. A VM with a virtual disk and a LUN
//! mapped in physical mode is written, snapshotted (the LUN through the array), overwritten,
//! reverted, and read back; then the point is copied through a proxy VM, its snapshots are
//! expired, and it is restored to a new VM on another host and read back again. Any
//! difference fails the demo.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;

use super::args::CreateVm;
use super::table::tracking;
use super::{Api, Outcome, lab};
use crate::catalog::JobState;
use crate::data_dir::DataDir;
use crate::data_dir::ownership::{self, Access};
use crate::engine::workflows::copy::CopyArgs;
use crate::engine::workflows::restore::RestoreArgs;
use crate::engine::workflows::revert::RevertArgs;
use crate::engine::workflows::snapshot::SnapshotArgs;
use crate::engine::{CopyStoreOpener, JobRequest};
use crate::model::MappingMode;

/// Regions written in each device: unaligned, crossing 4 KiB blocks, and at the very end.
const REGIONS: &[(u64, usize)] = &[(4093, 3 << 20), (300 << 20, 5000), (1 << 30, 1 << 20)];

/// Deterministic, incompressible bytes for a seed: what the demo and the end-to-end tests
/// write and later expect back (a seed per region and phase, so overwrites differ).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn regions(capacity: u64) -> Vec<(u64, usize)> {
    REGIONS
        .iter()
        .map(|&(offset, len)| {
            if offset + len as u64 > capacity {
                (capacity - len as u64, len)
            } else {
                (offset, len)
            }
        })
        .collect()
}

/// Writes every region of every device with the patterns of `generation`.
async fn fill(api: &Api, devices: &[(String, u64)], generation: u64) -> anyhow::Result<()> {
    for (seed, (mount, capacity)) in devices.iter().enumerate() {
        for (i, (offset, len)) in regions(*capacity).into_iter().enumerate() {
            let data = pattern(generation + seed as u64 * 10 + i as u64, len);
            lab::write(api, "app01", mount, offset, data).await?;
        }
    }
    Ok(())
}

pub async fn run(given: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let temp;
    let data_dir = match given {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new()
                .prefix("tidemark-demo-")
                .tempdir()
                .context("creating a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let _claim = match ownership::access(&data_dir)? {
        Access::Embedded(claim) => claim,
        Access::Served { server, .. } => anyhow::bail!(
            "the demo needs a data directory of its own; {} is served at {}",
            data_dir.display(),
            server.url
        ),
    };
    let ctx = std::sync::Arc::new(DataDir::open(&data_dir).await?);
    let (url, token) = crate::api::serve_private(ctx.clone()).await?;
    let api = Api::new(&url, &token, None)?;
    let mut log = vec![format!("data directory: {}", data_dir.display())];
    lab::init(&ctx, &api).await?;
    let vm = lab::create_vm(
        &ctx,
        &api,
        &CreateVm {
            name: "app01".into(),
            host: "esx-a".into(),
            disks: vec![("C:".into(), 1 << 30)],
            luns: vec![("D:".into(), 2 << 30, MappingMode::Physical)],
            hypervisor: lab::LAB_HYPERVISOR.into(),
            array: lab::LAB_ARRAY.into(),
            cpus: Some(2),
            memory: Some(4 << 30),
            nics: vec![crate::model::Nic {
                mac: "52:54:00:00:a0:01".into(),
                network: "prod".into(),
                model: None,
            }],
            firmware: Some(crate::model::Firmware::Uefi),
        },
    )
    .await?;
    log.push(format!(
        "created VM app01 on esx-a: C: 1 GiB virtual disk, D: 2 GiB LUN {} mapped physical",
        vm.devices
            .iter()
            .find_map(|d| d.wwn.clone())
            .unwrap_or_default()
    ));

    let devices: Vec<(String, u64)> = vm
        .devices
        .iter()
        .map(|d| (d.mount_point.clone(), d.capacity))
        .collect();
    fill(&api, &devices, 0).await?;
    log.push("wrote known data to C: and D:".into());

    let job = ctx
        .engine
        .run(&JobRequest::Snapshot(SnapshotArgs { vm: "app01".into() }))
        .await?;
    let point = succeeded(&job, "snapshot")?["recovery_point"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    log.push(format!("snapshot job {} → recovery point {point} (C: through the hypervisor, D: through the array)", job.id));

    fill(&api, &devices, 1000).await?;
    log.push("overwrote C: and D:".into());

    let job = ctx
        .engine
        .run(&JobRequest::Revert(RevertArgs {
            vm: "app01".into(),
            point: point.clone(),
        }))
        .await?;
    succeeded(&job, "revert")?;
    log.push(format!("revert job {} → app01 back at {point}", job.id));

    let (reverted_equal, reverted) = compare(&api, "app01", &devices, &mut log).await?;

    // The second branch: a copy through the proxy, the snapshots expired, the point
    // rebuilt as a new machine on another host from the copies alone.
    ctx.attach_copy_store(true)?;
    let job = ctx
        .engine
        .run(&JobRequest::Copy(CopyArgs {
            vm: "app01".into(),
            point: point.clone(),
            proxy_host: None,
        }))
        .await?;
    let result = succeeded(&job, "copy")?;
    log.push(format!(
        "copy job {} → point {point} copied through proxy VM {} on {}: read {}, stored {}",
        job.id,
        result["proxy_vm"].as_str().unwrap_or("?"),
        crate::engine::DEFAULT_PROXY_HOST,
        crate::units::format_size(result["bytes_read"].as_u64().unwrap_or(0)),
        crate::units::format_size(result["bytes_stored"].as_u64().unwrap_or(0)),
    ));
    let policy = crate::engine::retention::Policy {
        keep_snapshots: Some(0),
        ..Default::default()
    };
    let expired = crate::engine::retention::expire(
        &ctx.catalog,
        ctx.endpoints(),
        ctx.copies.opened().as_deref(),
        policy,
        false,
    )
    .await?;
    log.push(format!(
        "expired {} snapshot(s): point {point} can no longer be reverted, only restored",
        expired.expired.len()
    ));
    let job = ctx
        .engine
        .run(&JobRequest::Restore(RestoreArgs {
            vm: "app01".into(),
            point: point.clone(),
            host: "esx-b".into(),
            name: Some("app01-restored".into()),
            array: None,
        }))
        .await?;
    succeeded(&job, "restore")?;
    log.push(format!(
        "restore job {} → new VM app01-restored on esx-b, D: a new LUN mapped virtual",
        job.id
    ));
    let (restored_equal, restored) = compare(&api, "app01-restored", &devices, &mut log).await?;

    let all_equal = reverted_equal && restored_equal;
    log.push(String::new());
    log.push(tracking(
        "app01",
        &serde_json::to_value(ctx.catalog.points("app01")?)?,
    ));
    log.push(String::new());
    log.push(if all_equal {
        "demo passed".into()
    } else {
        "demo FAILED: data differs".into()
    });
    Ok(Outcome {
        json: json!({ "data_dir": data_dir, "recovery_point": point, "compared": reverted,
                      "restored": restored, "passed": all_equal,
                      "points": ctx.catalog.points("app01")? }),
        text: log.join("\n"),
        ok: all_equal,
    })
}

/// A job's result, or an error saying how it ended.
fn succeeded(job: &crate::catalog::JobRecord, what: &str) -> anyhow::Result<serde_json::Value> {
    if job.state != JobState::Succeeded {
        anyhow::bail!(
            "{what} job {} {}: {}",
            job.id,
            job.state,
            job.error.clone().unwrap_or_default()
        );
    }
    Ok(job.result.clone().unwrap_or_default())
}

/// Reads every region of `vm`'s devices back and compares with the snapshot's data.
async fn compare(
    api: &Api,
    vm: &str,
    devices: &[(String, u64)],
    log: &mut Vec<String>,
) -> anyhow::Result<(bool, Vec<serde_json::Value>)> {
    let mut all_equal = true;
    let mut compared = Vec::new();
    for (seed, (mount, capacity)) in devices.iter().enumerate() {
        let mut bytes = 0;
        let mut equal = true;
        for (i, (offset, len)) in regions(*capacity).into_iter().enumerate() {
            let read = lab::read_bytes(api, vm, mount, offset, len as u64).await?;
            equal &= read == pattern(seed as u64 * 10 + i as u64, len);
            bytes += len;
        }
        all_equal &= equal;
        log.push(format!(
            "{vm} {mount} {bytes} bytes read back: {}",
            if equal {
                "identical to the snapshot"
            } else {
                "DIFFERENT"
            }
        ));
        compared.push(json!({ "vm": vm, "mount_point": mount, "bytes": bytes, "equal": equal }));
    }
    Ok((all_equal, compared))
}
