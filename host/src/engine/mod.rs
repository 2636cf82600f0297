//! Durable jobs: the step journal, retries, compensation; one file per workflow.
//!
//! A job is a persisted journal of steps. Inputs are checked before a job exists (bad input
//! changes nothing); each step's outcome is recorded before the next begins; a failed job is
//! compensated in reverse; `resume` continues every unfinished job after a crash.

pub mod copy;
pub mod device_io;
pub mod discover;
pub mod hooks;
pub mod inventory;
pub mod journal;
pub mod ports;
pub mod progress;
pub mod progress_hub;
pub mod restore;
pub mod retention;
pub mod revert;
pub mod snapshot;
pub mod steps;
pub mod transfer;
pub mod undo;

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use crate::catalog::{Catalog, JobRecord, JobState, PointRecord, VmRecord};
use crate::copies::CopyStore;
use crate::refusal::Refusal;
use hooks::TestHooks;
use journal::JobCtx;
use ports::Endpoints;
use progress_hub::{JobProgress, ProgressHub, ProgressUpdate};
use restore::RestoreTarget;

/// The proxy hypervisor host copies use unless told otherwise.
pub const DEFAULT_PROXY_HOST: &str = "proxy-1";

/// Runs workflows as durable jobs.
pub struct Engine {
    pub catalog: Arc<Catalog>,
    pub endpoints: Arc<dyn Endpoints>,
    /// The copy store, once opened (copy and restore jobs need it; it is made on first use,
    /// so it can be set after the engine is shared).
    pub copies: std::sync::OnceLock<Arc<CopyStore>>,
    /// Running jobs' progress, by job id, for whoever watches (the API's event streams).
    progress_hub: Arc<ProgressHub>,
    hooks: TestHooks,
}

/// A workflow and its parameters, as stored with the job.
#[derive(Debug, Clone)]
enum Workflow {
    Snapshot {
        vm: VmRecord,
    },
    Revert {
        vm: VmRecord,
        point: PointRecord,
    },
    Copy {
        vm: VmRecord,
        point: PointRecord,
        proxy_host: String,
    },
    Restore {
        point: PointRecord,
        target: RestoreTarget,
    },
    RestoreInPlace {
        vm: VmRecord,
        point: PointRecord,
        mount: String,
    },
}

/// A job to start, as the API receives it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobRequest {
    /// Snapshot every device of `vm`.
    Snapshot { vm: String },
    /// Revert `vm` to `point`.
    Revert { vm: String, point: String },
    /// Copy `point` of `vm` through a proxy VM.
    Copy {
        vm: String,
        point: String,
        #[serde(default)]
        proxy_host: Option<String>,
    },
    /// Restore `point` of `vm` as a new VM on `host`.
    Restore {
        vm: String,
        point: String,
        host: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        array: Option<String>,
    },
    /// Restore one device of `vm` in place.
    RestoreDevice {
        vm: String,
        point: String,
        device: String,
    },
}

/// A checked, recorded job waiting to run.
pub struct PlannedJob(Workflow);

impl Engine {
    /// An engine over a catalog and endpoints, with the test hooks from the environment.
    pub fn new(catalog: Arc<Catalog>, endpoints: Arc<dyn Endpoints>) -> anyhow::Result<Self> {
        Ok(Self {
            catalog,
            endpoints,
            copies: std::sync::OnceLock::new(),
            progress_hub: Arc::default(),
            hooks: TestHooks::from_env()?,
        })
    }

    /// Gives the engine the copy store (copy and restore jobs need it); the first one given
    /// stays.
    pub fn set_copy_store(&self, store: Arc<CopyStore>) {
        let _ = self.copies.set(store);
    }

    /// Receives the progress updates job `job_id` publishes from now on (throttled; see
    /// [`progress_hub`]). Works before the job runs and ends with nothing if it never does.
    pub fn subscribe_progress(
        &self,
        job_id: &str,
    ) -> tokio::sync::broadcast::Receiver<ProgressUpdate> {
        self.progress_hub.subscribe(job_id)
    }

    fn copy_store(&self) -> anyhow::Result<&Arc<CopyStore>> {
        self.copies
            .get()
            .ok_or_else(|| Refusal::conflict("the copy store is not open"))
    }

    fn point_of(&self, vm_name: &str, point_id: &str) -> anyhow::Result<PointRecord> {
        let point = self.catalog.point(point_id)?.ok_or_else(|| {
            Refusal::not_found(format!(
                "unknown recovery point '{point_id}' (see `tidemark points {vm_name}`)"
            ))
        })?;
        if point.vm_name != vm_name {
            return Err(Refusal::invalid(format!(
                "recovery point {point_id} belongs to VM {}, not {vm_name}",
                point.vm_name
            )));
        }
        Ok(point)
    }

    fn known_vm(&self, name: &str) -> anyhow::Result<VmRecord> {
        self.catalog.vm(name)?.ok_or_else(|| {
            Refusal::not_found(format!("unknown VM '{name}' (see `tidemark vm list`)"))
        })
    }

    fn check_idle(&self, vm: &str) -> anyhow::Result<()> {
        if let Some(job) = self.catalog.unfinished_job_on(vm)? {
            return Err(Refusal::conflict(format!(
                "VM {vm} has an unfinished job {job}; run `tidemark resume` first"
            )));
        }
        Ok(())
    }

    /// Snapshots every device of a VM into one recovery point.
    fn plan_snapshot(&self, vm_name: &str) -> anyhow::Result<Workflow> {
        let vm = self.known_vm(vm_name)?;
        self.check_idle(vm_name)?;
        Ok(Workflow::Snapshot { vm })
    }

    /// Reverts a VM in place to one of its recovery points.
    fn plan_revert(&self, vm_name: &str, point_id: &str) -> anyhow::Result<Workflow> {
        let vm = self.known_vm(vm_name)?;
        let point = self.point_of(vm_name, point_id)?;
        if !point.snapshots_present() {
            return Err(Refusal::invalid(format!(
                "recovery point {point_id} cannot be reverted: its snapshots were deleted by expiry; {}",
                if point.copies.is_empty() {
                    "it has no copies either".to_string()
                } else {
                    format!(
                        "restore it from its copies instead (`tidemark restore {vm_name} {point_id} --host HOST`)"
                    )
                }
            )));
        }
        self.check_idle(vm_name)?;
        Ok(Workflow::Revert { vm, point })
    }

    /// Copies a recovery point's snapshots into the copy store through a proxy VM.
    fn plan_copy(
        &self,
        vm_name: &str,
        point_id: &str,
        proxy_host: &str,
    ) -> anyhow::Result<Workflow> {
        let vm = self.known_vm(vm_name)?;
        let point = self.point_of(vm_name, point_id)?;
        self.copy_store()?;
        if !point.snapshots_present() {
            return Err(Refusal::invalid(format!(
                "recovery point {point_id} cannot be copied: its snapshots were deleted by expiry"
            )));
        }
        if point
            .snapshots
            .iter()
            .all(|s| point.copy_of(&s.device_ref).is_some())
        {
            return Err(Refusal::conflict(format!(
                "recovery point {point_id} is copied already (see `tidemark copies {vm_name}`)"
            )));
        }
        crate::names::check_name("proxy host", proxy_host).map_err(Refusal::invalid)?;
        self.check_idle(vm_name)?;
        Ok(Workflow::Copy {
            vm,
            point,
            proxy_host: proxy_host.to_string(),
        })
    }

    /// Restores a recovery point from its copies as a new VM.
    fn plan_restore(
        &self,
        vm_name: &str,
        point_id: &str,
        host: &str,
        new_name: &str,
        array: Option<&str>,
    ) -> anyhow::Result<Workflow> {
        let source = self.known_vm(vm_name)?;
        let target = RestoreTarget {
            endpoint: source.endpoint,
            host: host.to_string(),
            name: new_name.to_string(),
            array: array.map(str::to_string),
        };
        let point = self.point_of(vm_name, point_id)?;
        self.copy_store()?;
        restore::check_restorable(&point)?;
        crate::names::check_name("VM name", &target.name).map_err(Refusal::invalid)?;
        crate::names::check_name("host", &target.host).map_err(Refusal::invalid)?;
        if self.catalog.vm(&target.name)?.is_some() {
            return Err(Refusal::conflict(format!(
                "a VM named {} exists already; choose another name with --as",
                target.name
            )));
        }
        if let Some(array) = &target.array
            && !self.endpoints.storage_array_names().contains(array)
        {
            return Err(Refusal::invalid(format!(
                "unknown array endpoint '{array}' (see `tidemark endpoint list`)"
            )));
        }
        self.check_idle(&target.name)?;
        Ok(Workflow::Restore { point, target })
    }

    /// Restores one device of a VM in place from a point's copy.
    fn plan_restore_in_place(
        &self,
        vm_name: &str,
        point_id: &str,
        mount: &str,
    ) -> anyhow::Result<Workflow> {
        let vm = self.known_vm(vm_name)?;
        let point = self.point_of(vm_name, point_id)?;
        self.copy_store()?;
        let device = point
            .snapshots
            .iter()
            .find(|s| s.mount_point == mount)
            .ok_or_else(|| {
                Refusal::invalid(format!(
                    "recovery point {point_id} has no device at {mount}"
                ))
            })?;
        if point.copy_of(&device.device_ref).is_none() {
            return Err(Refusal::invalid(format!(
                "recovery point {point_id} has no copy of the device at {mount}; run `tidemark copy {vm_name} {point_id}` first"
            )));
        }
        self.check_idle(vm_name)?;
        Ok(Workflow::RestoreInPlace {
            vm,
            point,
            mount: mount.to_string(),
        })
    }

    /// Checks a request and records its job without running it: the caller runs it with
    /// [`Engine::run_job`] (the API does so in the background). Bad input fails here, before
    /// any job exists.
    pub fn submit(&self, request: &JobRequest) -> anyhow::Result<(String, PlannedJob)> {
        let workflow = match request {
            JobRequest::Snapshot { vm } => self.plan_snapshot(vm)?,
            JobRequest::Revert { vm, point } => self.plan_revert(vm, point)?,
            JobRequest::Copy {
                vm,
                point,
                proxy_host,
            } => self.plan_copy(
                vm,
                point,
                proxy_host.as_deref().unwrap_or(DEFAULT_PROXY_HOST),
            )?,
            JobRequest::Restore {
                vm,
                point,
                host,
                name,
                array,
            } => {
                let name = name.clone().unwrap_or_else(|| format!("{vm}-restored"));
                self.plan_restore(vm, point, host, &name, array.as_deref())?
            }
            JobRequest::RestoreDevice { vm, point, device } => {
                self.plan_restore_in_place(vm, point, device)?
            }
        };
        let id = self.record(&workflow)?;
        Ok((id, PlannedJob(workflow)))
    }

    /// Runs a job recorded by [`Engine::submit`] to its end.
    pub async fn run_job(&self, job_id: &str, planned: PlannedJob) -> anyhow::Result<JobRecord> {
        self.drive(job_id, planned.0).await
    }

    /// Checks, records and runs a job to its end in this task (the demo and benchmarks; the
    /// API submits and runs in the background instead).
    pub async fn run(&self, request: &JobRequest) -> anyhow::Result<JobRecord> {
        let (id, planned) = self.submit(request)?;
        self.run_job(&id, planned).await
    }

    /// Creates the job row of a planned workflow; returns its id.
    fn record(&self, workflow: &Workflow) -> anyhow::Result<String> {
        let id = format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (kind, vm, params) = match &workflow {
            Workflow::Snapshot { vm } => ("snapshot", vm.name.as_str(), json!({ "vm": vm.name })),
            Workflow::Revert { vm, point } => (
                "revert",
                vm.name.as_str(),
                json!({ "vm": vm.name, "point": point.id }),
            ),
            Workflow::Copy {
                vm,
                point,
                proxy_host,
            } => (
                "copy",
                vm.name.as_str(),
                json!({ "vm": vm.name, "point": point.id, "proxy_host": proxy_host }),
            ),
            Workflow::Restore { point, target } => (
                "restore",
                target.name.as_str(),
                json!({
                    "vm": point.vm_name,
                    "point": point.id,
                    "endpoint": target.endpoint,
                    "host": target.host,
                    "as": target.name,
                    "array": target.array,
                }),
            ),
            Workflow::RestoreInPlace { vm, point, mount } => (
                "restore-device",
                vm.name.as_str(),
                json!({ "vm": vm.name, "point": point.id, "mount": mount }),
            ),
        };
        self.catalog.create_job(&id, kind, Some(vm), &params)?;
        Ok(id)
    }

    /// Runs a job's workflow to its end (replaying recorded steps), compensating on failure.
    async fn drive(&self, job_id: &str, workflow: Workflow) -> anyhow::Result<JobRecord> {
        let progress = Arc::new(JobProgress::new(job_id, self.progress_hub.clone()));
        let mut ctx = JobCtx::new(
            self.catalog.clone(),
            self.endpoints.clone(),
            job_id,
            self.hooks,
        )?
        .with_copies(self.copies.get().cloned(), progress);
        let outcome = match &workflow {
            Workflow::Snapshot { vm } => snapshot::run(&mut ctx, vm).await,
            Workflow::Revert { vm, point } => revert::run(&mut ctx, vm, point).await,
            Workflow::Copy {
                vm,
                point,
                proxy_host,
            } => copy::run(&mut ctx, vm, point, proxy_host).await,
            Workflow::Restore { point, target } => restore::run(&mut ctx, point, target).await,
            Workflow::RestoreInPlace { vm, point, mount } => {
                restore::run_in_place(&mut ctx, vm, point, mount).await
            }
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
                return self.compensate(job_id).await;
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
        for id in self.catalog.unfinished_job_ids()? {
            let job = self.job(&id)?;
            tracing::info!(job = %id, state = %job.state, "resuming");
            let record = match job.state {
                JobState::Compensating => {
                    self.check_store_for(&job)?;
                    self.compensate(&id).await?
                }
                _ => {
                    self.check_store_for(&job)?;
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
                            self.compensate(&id).await?
                        }
                    }
                }
            };
            done.push(record);
        }
        Ok(done)
    }

    /// Undoes what a job did, newest step first; returns the job as it ends.
    async fn compensate(&self, id: &str) -> anyhow::Result<JobRecord> {
        undo::compensate(
            &self.catalog,
            &self.endpoints,
            self.copies.get().map(Arc::as_ref),
            id,
        )
        .await?;
        self.job(id)
    }

    /// A copy or restore job cannot be continued or undone without its copy store: refuse
    /// rather than fail it halfway.
    fn check_store_for(&self, job: &JobRecord) -> anyhow::Result<()> {
        if matches!(job.kind.as_str(), "copy" | "restore" | "restore-device")
            && self.copies.get().is_none()
        {
            bail!(
                "cannot resume {} job {}: the copy store could not be opened (set TIDEMARK_COPY_PASSPHRASE if it uses one)",
                job.kind,
                job.id
            );
        }
        Ok(())
    }

    fn workflow_of(&self, job: &JobRecord) -> anyhow::Result<Workflow> {
        let param = |key: &str| {
            job.params
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("job {} has no parameter '{key}'", job.id))
        };
        let point = || {
            let point_id = param("point")?;
            self.catalog
                .point(&point_id)?
                .ok_or_else(|| anyhow!("recovery point {point_id} is gone"))
        };
        if job.kind == "restore" {
            return Ok(Workflow::Restore {
                point: point()?,
                target: RestoreTarget {
                    endpoint: param("endpoint")?,
                    host: param("host")?,
                    name: param("as")?,
                    array: param("array").ok(),
                },
            });
        }
        let vm = self.known_vm(&param("vm")?)?;
        match job.kind.as_str() {
            "snapshot" => Ok(Workflow::Snapshot { vm }),
            "revert" => Ok(Workflow::Revert {
                vm,
                point: point()?,
            }),
            "restore-device" => Ok(Workflow::RestoreInPlace {
                vm,
                point: point()?,
                mount: param("mount")?,
            }),
            "copy" => Ok(Workflow::Copy {
                vm,
                point: point()?,
                proxy_host: param("proxy_host")?,
            }),
            other => bail!("job {} has unknown kind '{other}'", job.id),
        }
    }
}
