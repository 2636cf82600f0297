//! Retention: `expire` deletes snapshots beyond the newest N per VM (on the adapters) and
//! copies beyond the newest N or older than D days; `gc` then frees chunks no copy uses.
//!
//! A point whose snapshots are gone stays restorable from its copies; a point with neither
//! is forgotten. Work on a VM with an unfinished job is skipped, so nothing is pulled from
//! under a running copy.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog::{Catalog, MAPPED_LUN, PointRecord, now_ms};
use crate::copies::{CopyStore, GcReport, LockWait};
use crate::engine::ports::Endpoints;

/// What to keep. `None` keeps everything of that kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Newest points per VM whose snapshots stay.
    pub keep_snapshots: Option<usize>,
    /// Newest points per VM whose copies stay.
    pub keep_copies: Option<usize>,
    /// Copies older than this many days go (whatever `keep_copies` says).
    pub keep_days: Option<u64>,
}

/// One thing expiry removed (or would remove, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct Expired {
    pub vm: String,
    pub point: String,
    /// `snapshot` or `copy`.
    pub what: String,
    pub mount_point: String,
    /// Snapshot id or copy (manifest) id.
    pub id: String,
}

/// Everything one `expire` run did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ExpireReport {
    pub dry_run: bool,
    pub expired: Vec<Expired>,
    /// VMs left alone, with why.
    pub skipped: Vec<String>,
}

/// Applies `policy` to every VM in the catalog.
pub async fn expire(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    store: Option<&CopyStore>,
    policy: Policy,
    dry_run: bool,
) -> anyhow::Result<ExpireReport> {
    let mut report = ExpireReport {
        dry_run,
        ..Default::default()
    };
    let cutoff = policy
        .keep_days
        // Saturating all the way: an absurd number of days keeps everything, never wraps
        // into a cutoff in the future (which would delete every copy).
        .map(|d| {
            now_ms().saturating_sub(
                i64::try_from(d)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(86_400_000),
            )
        });
    for vm in catalog.vms()? {
        if let Some(job) = catalog.unfinished_job_on(&vm.name)? {
            report
                .skipped
                .push(format!("{}: unfinished job {job}", vm.name));
            continue;
        }
        let points = catalog.points(&vm.name)?; // oldest first
        let with_snapshots: Vec<&PointRecord> = points
            .iter()
            .filter(|p| p.snapshots.iter().any(|s| s.expired_at.is_none()))
            .collect();
        if let Some(keep) = policy.keep_snapshots {
            let drop = with_snapshots.len().saturating_sub(keep);
            for point in &with_snapshots[..drop] {
                for s in point.snapshots.iter().filter(|s| s.expired_at.is_none()) {
                    if !dry_run {
                        let deleted = if s.device_kind == MAPPED_LUN {
                            let mut sa = endpoints.storage_array(&s.endpoint).await?;
                            sa.delete_snapshot(&s.snapshot).await
                        } else {
                            let mut hv = endpoints.hypervisor(&s.endpoint).await?;
                            hv.delete_snapshot(&vm.vm_ref, &s.snapshot).await
                        };
                        match deleted {
                            Ok(()) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e.into()),
                        }
                        catalog.mark_snapshot_expired(&point.id, &s.device_ref, now_ms())?;
                    }
                    report.expired.push(Expired {
                        vm: vm.name.clone(),
                        point: point.id.clone(),
                        what: "snapshot".into(),
                        mount_point: s.mount_point.clone(),
                        id: s.snapshot.clone(),
                    });
                }
            }
        }
        let with_copies: Vec<&PointRecord> =
            points.iter().filter(|p| !p.copies.is_empty()).collect();
        let by_count = policy
            .keep_copies
            .map_or(0, |keep| with_copies.len().saturating_sub(keep));
        for (n, point) in with_copies.iter().enumerate() {
            let too_old = cutoff.is_some_and(|c| point.created_at < c);
            if n >= by_count && !too_old {
                continue;
            }
            if !dry_run {
                let store = store.ok_or_else(|| {
                    anyhow::anyhow!("expiring copies needs the copy store, which is not open")
                })?;
                let devices: Vec<String> =
                    point.copies.iter().map(|c| c.device_ref.clone()).collect();
                // Catalog first: a crash in between leaves an unreferenced manifest, which
                // gc removes; never a ref to a missing copy.
                catalog.delete_copy_refs(&point.id, &devices)?;
                for c in &point.copies {
                    store.delete_manifest(&c.copy)?;
                }
            }
            for c in &point.copies {
                let mount = point
                    .snapshots
                    .iter()
                    .find(|s| s.device_ref == c.device_ref)
                    .map_or_else(String::new, |s| s.mount_point.clone());
                report.expired.push(Expired {
                    vm: vm.name.clone(),
                    point: point.id.clone(),
                    what: "copy".into(),
                    mount_point: mount,
                    id: c.copy.clone(),
                });
            }
        }
    }
    Ok(report)
}

/// Copies that must survive gc: every copy the catalog references, plus every copy an
/// unfinished copy job may have written (a job's copies are named `<point>.<device>`, so
/// its point id covers them even before its steps record them).
#[derive(Debug, Default)]
pub struct LiveCopies {
    ids: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl LiveCopies {
    /// Whether `copy` must be kept.
    pub fn contains(&self, copy: &str) -> bool {
        self.ids.contains(copy) || self.prefixes.iter().any(|p| copy.starts_with(p.as_str()))
    }
}

/// Reads the live set from the catalog.
pub fn live_copies(catalog: &Catalog) -> anyhow::Result<LiveCopies> {
    let mut live = LiveCopies {
        ids: catalog
            .all_copy_refs()?
            .into_iter()
            .map(|(_, c)| c.copy)
            .collect(),
        prefixes: Vec::new(),
    };
    for id in catalog.unfinished_job_ids()? {
        if let Some(job) = catalog.job(&id)?
            && job.kind == "copy"
            && let Some(point) = job.params.get("point").and_then(|p| p.as_str())
        {
            live.prefixes.push(format!("{point}."));
        }
    }
    Ok(live)
}

/// Frees unreferenced chunks and manifests and rewrites packs whose live share is below
/// `repack_below` percent. Safe while a copy runs: the store makes gc wait for running
/// writers, and the live set is read after that wait.
pub fn gc(catalog: &Catalog, store: &CopyStore, repack_below: u8) -> anyhow::Result<GcReport> {
    Ok(store.gc_repacking(
        LockWait::Forever,
        || {
            let live = live_copies(catalog).map_err(|e| format!("{e:#}"))?;
            Ok(move |copy: &str| live.contains(copy))
        },
        repack_below,
    )?)
}
