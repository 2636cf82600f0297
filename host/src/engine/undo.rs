//! Compensation: what undoes a completed step, stored in the journal with the step so a
//! restarted host can undo it without the workflow code, and running it in reverse.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ports::Endpoints;
use crate::catalog::{Catalog, JobState, StepState};

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
}

impl Undo {
    /// Carries the action out; "already gone" counts as done.
    pub async fn run(&self, catalog: &Catalog, endpoints: &dyn Endpoints) -> anyhow::Result<()> {
        let gone_is_fine = |r: Result<(), super::ports::CallError>| match r {
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
        }
        Ok(())
    }
}

/// Undoes every completed step of a job in reverse order and settles the job as
/// `compensated` (all undone) or `failed` (some undo failed; the steps say which).
pub async fn compensate(
    catalog: &Arc<Catalog>,
    endpoints: &Arc<dyn Endpoints>,
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
            if let Err(e) = action.run(catalog, endpoints.as_ref()).await {
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
