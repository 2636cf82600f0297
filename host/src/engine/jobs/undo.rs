//! Compensation: what undoes a completed step, stored in the journal with the step so a
//! restarted host can undo it without the workflow code, and running it in reverse.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, JobState, StepState};
use crate::copies::CopyStore;
use crate::engine::ports::Endpoints;

/// One action that undoes (part of) a step. Each is idempotent: undoing twice is harmless.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Undo {
    /// Delete a virtual-disk snapshot the step took.
    DeleteDiskSnapshot {
        endpoint: String,
        vm_ref: String,
        snapshot: String,
    },
    /// Delete a LUN snapshot the step took.
    DeleteLunSnapshot { endpoint: String, snapshot: String },
    /// Power a VM back on.
    PowerOn { endpoint: String, vm_ref: String },
    /// Power a VM back off.
    PowerOff { endpoint: String, vm_ref: String },
    /// Let a VM's guest write again (after `quiesce`).
    ReleaseWrites { endpoint: String, vm_ref: String },
    /// Put virtual disks back as they were (to a safety snapshot).
    RevertDisks {
        endpoint: String,
        vm_ref: String,
        snapshots: Vec<String>,
        token: String,
    },
    /// Put a LUN back as it was (to a safety snapshot).
    RevertLun {
        endpoint: String,
        wwn: String,
        snapshot: String,
        token: String,
    },
    /// Forget a recovery point the step recorded.
    DeletePoint { id: String },
    /// Delete a VM the step created (powering it off first).
    DeleteVm { endpoint: String, vm_ref: String },
    /// Detach a snapshot (or delete a disk) the step attached to a VM.
    DetachDisk {
        endpoint: String,
        vm_ref: String,
        device: String,
    },
    /// Unmap a LUN the step mapped to a VM.
    UnmapLun {
        endpoint: String,
        vm_ref: String,
        wwn: String,
    },
    /// Delete a LUN the step created, hiding it from hosts first.
    DeleteLun {
        endpoint: String,
        wwn: String,
        exposed_to: Vec<String>,
    },
    /// Hide a LUN the step exposed to a host.
    Unexpose {
        endpoint: String,
        wwn: String,
        host: String,
    },
    /// Delete a device copy (manifest) the step wrote to the copy store.
    DeleteCopy { copy: String },
    /// Forget copy refs the step recorded.
    ForgetCopies { point: String, devices: Vec<String> },
    /// Forget a VM the step recorded in the catalog.
    ForgetVm { name: String },
}

impl Undo {
    /// Carries the action out; "already gone" counts as done.
    pub async fn run(
        &self,
        catalog: &Catalog,
        endpoints: &dyn Endpoints,
        copies: Option<&CopyStore>,
    ) -> anyhow::Result<()> {
        let gone_is_fine = |r: Result<(), crate::engine::ports::CallError>| match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        match self {
            Undo::DeleteDiskSnapshot {
                endpoint,
                vm_ref,
                snapshot,
            } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                gone_is_fine(hv.delete_snapshot(vm_ref, snapshot).await)?;
            }
            Undo::DeleteLunSnapshot { endpoint, snapshot } => {
                let mut sa = endpoints.storage_array(endpoint).await?;
                gone_is_fine(sa.delete_snapshot(snapshot).await)?;
            }
            Undo::PowerOn { endpoint, vm_ref } => {
                endpoints
                    .hypervisor(endpoint)
                    .await?
                    .power_on(vm_ref)
                    .await?;
            }
            Undo::PowerOff { endpoint, vm_ref } => {
                endpoints
                    .hypervisor(endpoint)
                    .await?
                    .power_off(vm_ref)
                    .await?;
            }
            Undo::ReleaseWrites { endpoint, vm_ref } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                gone_is_fine(hv.unquiesce(vm_ref).await)?;
            }
            Undo::RevertDisks {
                endpoint,
                vm_ref,
                snapshots,
                token,
            } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                hv.power_off(vm_ref).await?;
                hv.revert_disks(vm_ref, snapshots, token).await?;
            }
            Undo::RevertLun {
                endpoint,
                wwn,
                snapshot,
                token,
            } => {
                endpoints
                    .storage_array(endpoint)
                    .await?
                    .revert_lun(wwn, snapshot, token)
                    .await?;
            }
            Undo::DeletePoint { id } => catalog.delete_point(id)?,
            Undo::DeleteVm { endpoint, vm_ref } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                gone_is_fine(hv.power_off(vm_ref).await)?;
                gone_is_fine(hv.delete_vm(vm_ref).await)?;
            }
            Undo::DetachDisk {
                endpoint,
                vm_ref,
                device,
            } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                gone_is_fine(hv.detach_disk(vm_ref, device).await)?;
            }
            Undo::UnmapLun {
                endpoint,
                vm_ref,
                wwn,
            } => {
                let mut hv = endpoints.hypervisor(endpoint).await?;
                gone_is_fine(hv.unmap_lun(vm_ref, wwn).await)?;
            }
            Undo::DeleteLun {
                endpoint,
                wwn,
                exposed_to,
            } => {
                let mut sa = endpoints.storage_array(endpoint).await?;
                for host in exposed_to {
                    gone_is_fine(sa.unexpose(wwn, host).await)?;
                }
                gone_is_fine(sa.delete_lun(wwn).await)?;
            }
            Undo::Unexpose {
                endpoint,
                wwn,
                host,
            } => {
                let mut sa = endpoints.storage_array(endpoint).await?;
                gone_is_fine(sa.unexpose(wwn, host).await)?;
            }
            Undo::DeleteCopy { copy } => {
                let store = copies.ok_or_else(|| {
                    anyhow::anyhow!("cannot delete copy {copy}: the copy store is not open")
                })?;
                store.delete_manifest(copy)?;
            }
            Undo::ForgetCopies { point, devices } => catalog.delete_copy_refs(point, devices)?,
            Undo::ForgetVm { name } => catalog.delete_vm(name)?,
        }
        Ok(())
    }
}

/// Undoes every completed step of a job in reverse order and settles the job as
/// `compensated` (all undone) or `failed` (some undo failed; the steps say which).
pub async fn compensate(
    catalog: &Arc<Catalog>,
    endpoints: &Arc<dyn Endpoints>,
    copies: Option<&CopyStore>,
    job_id: &str,
) -> anyhow::Result<JobState> {
    catalog.set_job_state(job_id, JobState::Compensating, None, None)?;
    let job = catalog
        .job(job_id)?
        .ok_or_else(|| anyhow::anyhow!("job {job_id} vanished from the catalog"))?;
    let mut all_undone = true;
    for step in job
        .steps
        .iter()
        .rev()
        .filter(|s| s.state == StepState::Succeeded)
    {
        let actions: Vec<Undo> = match &step.undo {
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "job {job_id} step {}: stored undo is corrupt: {e}",
                    step.seq
                )
            })?,
            None => Vec::new(),
        };
        let mut failure = None;
        for action in actions.iter().rev() {
            if let Err(e) = action.run(catalog, endpoints.as_ref(), copies).await {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
        match failure {
            None => {
                let detail = if actions.is_empty() {
                    format!("{} (nothing to undo)", step.detail)
                } else {
                    format!("undone: {}", step.detail)
                };
                catalog.end_step(
                    job_id,
                    step.seq,
                    StepState::Compensated,
                    &detail,
                    None,
                    None,
                )?;
            }
            Some(message) => {
                all_undone = false;
                tracing::error!(job = job_id, step = step.seq, "undo failed: {message}");
                catalog.end_step(
                    job_id,
                    step.seq,
                    StepState::CompensationFailed,
                    &format!("undo failed: {message}"),
                    None,
                    None,
                )?;
            }
        }
    }
    let state = if all_undone {
        JobState::Compensated
    } else {
        JobState::Failed
    };
    catalog.set_job_state(job_id, state, None, None)?;
    Ok(state)
}

/// Undoes, newest first, what a step body did before it failed, so a step that fails
/// halfway (one of two clones made, say) leaves nothing behind. Best effort: an undo that
/// fails is logged and shows up in `reconcile`.
pub async fn roll_back(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    copies: Option<&CopyStore>,
    made: &[Undo],
) {
    for action in made.iter().rev() {
        if let Err(e) = action.run(catalog, endpoints, copies).await {
            tracing::error!("rolling back a failed step: {e:#}");
        }
    }
}
