//! Durable jobs: the step journal, retries, compensation; one file per workflow.
//!
//! A job is a persisted journal of steps. Inputs are checked before a job exists (bad input
//! changes nothing); each step's outcome is recorded before the next begins; a failed job is
//! compensated in reverse; `resume` continues every unfinished job after a crash.

pub mod device_io;
pub mod discover;
pub mod hooks;
pub mod inventory;
pub mod journal;
pub mod ports;
pub mod revert;
pub mod snapshot;
pub mod steps;
pub mod undo;

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use crate::catalog::{Catalog, JobRecord, JobState, PointRecord, VmRecord};
use hooks::TestHooks;
use journal::JobCtx;
use ports::Endpoints;

/// Runs workflows as durable jobs.
pub struct Engine {
    pub catalog: Arc<Catalog>,
    pub endpoints: Arc<dyn Endpoints>,
    hooks: TestHooks,
}

/// A workflow and its parameters, as stored with the job.
#[derive(Debug, Clone)]
enum Workflow {
    Snapshot { vm: VmRecord },
    Revert { vm: VmRecord, point: PointRecord },
}

impl Engine {
    /// An engine over a catalog and endpoints, with the test hooks from the environment.
    pub fn new(catalog: Arc<Catalog>, endpoints: Arc<dyn Endpoints>) -> anyhow::Result<Self> {
        Ok(Self {
            catalog,
            endpoints,
            hooks: TestHooks::from_env()?,
        })
    }

    fn known_vm(&self, name: &str) -> anyhow::Result<VmRecord> {
        self.catalog
            .vm(name)?
            .ok_or_else(|| anyhow!("unknown VM '{name}' (see `tidemark vm list`)"))
    }

    fn check_idle(&self, vm: &str) -> anyhow::Result<()> {
        if let Some(job) = self.catalog.unfinished_job_on(vm)? {
            bail!("VM {vm} has an unfinished job {job}; run `tidemark resume` first");
        }
        Ok(())
    }

    /// Snapshots every device of a VM into one recovery point.
    pub async fn snapshot(&self, vm_name: &str) -> anyhow::Result<JobRecord> {
        let vm = self.known_vm(vm_name)?;
        self.check_idle(vm_name)?;
        self.start(Workflow::Snapshot { vm }).await
    }

    /// Reverts a VM in place to one of its recovery points.
    pub async fn revert(&self, vm_name: &str, point_id: &str) -> anyhow::Result<JobRecord> {
        let vm = self.known_vm(vm_name)?;
        let point = self.catalog.point(point_id)?.ok_or_else(|| {
            anyhow!("unknown recovery point '{point_id}' (see `tidemark points {vm_name}`)")
        })?;
        if point.vm_name != vm.name {
            bail!(
                "recovery point {point_id} belongs to VM {}, not {vm_name}",
                point.vm_name
            );
        }
        self.check_idle(vm_name)?;
        self.start(Workflow::Revert { vm, point }).await
    }

    async fn start(&self, workflow: Workflow) -> anyhow::Result<JobRecord> {
        let id = format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (kind, vm, params) = match &workflow {
            Workflow::Snapshot { vm } => ("snapshot", vm, json!({ "vm": vm.name })),
            Workflow::Revert { vm, point } => {
                ("revert", vm, json!({ "vm": vm.name, "point": point.id }))
            }
        };
        self.catalog
            .create_job(&id, kind, Some(&vm.name), &params)?;
        self.drive(&id, workflow).await
    }

    /// Runs a job's workflow to its end (replaying recorded steps), compensating on failure.
    async fn drive(&self, job_id: &str, workflow: Workflow) -> anyhow::Result<JobRecord> {
        let mut ctx = JobCtx::new(
            self.catalog.clone(),
            self.endpoints.clone(),
            job_id,
            self.hooks,
        )?;
        let outcome = match &workflow {
            Workflow::Snapshot { vm } => snapshot::run(&mut ctx, vm).await,
            Workflow::Revert { vm, point } => revert::run(&mut ctx, vm, point).await,
        };
        match outcome {
            Ok(result) => {
                self.catalog
                    .set_job_state(job_id, JobState::Succeeded, Some(&result), None)?
            }
            Err(error) => {
                let message = format!("{error:#}");
                tracing::warn!(job = job_id, "job failed, compensating: {message}");
                self.catalog
                    .set_job_state(job_id, JobState::Compensating, None, Some(&message))?;
                undo::compensate(&self.catalog, &self.endpoints, job_id).await?;
            }
        }
        self.job(job_id)
    }

    /// A job with its steps.
    pub fn job(&self, job_id: &str) -> anyhow::Result<JobRecord> {
        self.catalog
            .job(job_id)?
            .ok_or_else(|| anyhow!("unknown job '{job_id}'"))
    }

    /// Continues every unfinished job from its last recorded step, or finishes compensating it.
    pub async fn resume(&self) -> anyhow::Result<Vec<JobRecord>> {
        let mut done = Vec::new();
        for id in self.catalog.job_ids(true)? {
            let job = self.job(&id)?;
            tracing::info!(job = %id, state = %job.state, "resuming");
            let record = match job.state {
                JobState::Compensating => {
                    undo::compensate(&self.catalog, &self.endpoints, &id).await?;
                    self.job(&id)?
                }
                _ => {
                    let workflow = self
                        .workflow_of(&job)
                        .with_context(|| format!("resuming job {id}"));
                    match workflow {
                        Ok(workflow) => self.drive(&id, workflow).await?,
                        Err(e) => {
                            // Its inputs are gone (e.g. the point was deleted): undo what it did.
                            self.catalog.set_job_state(
                                &id,
                                JobState::Compensating,
                                None,
                                Some(&format!("{e:#}")),
                            )?;
                            undo::compensate(&self.catalog, &self.endpoints, &id).await?;
                            self.job(&id)?
                        }
                    }
                }
            };
            done.push(record);
        }
        Ok(done)
    }

    fn workflow_of(&self, job: &JobRecord) -> anyhow::Result<Workflow> {
        let param = |key: &str| {
            job.params
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("job {} has no parameter '{key}'", job.id))
        };
        let vm = self.known_vm(&param("vm")?)?;
        match job.kind.as_str() {
            "snapshot" => Ok(Workflow::Snapshot { vm }),
            "revert" => {
                let point_id = param("point")?;
                let point = self
                    .catalog
                    .point(&point_id)?
                    .ok_or_else(|| anyhow!("recovery point {point_id} is gone"))?;
                Ok(Workflow::Revert { vm, point })
            }
            other => bail!("job {} has unknown kind '{other}'", job.id),
        }
    }
}
