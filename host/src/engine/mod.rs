//! Durable jobs: the step journal, retries, compensation; one file per workflow.
//!
//! A job is a persisted journal of steps. Inputs are checked before a job exists (bad input
//! changes nothing); each step's outcome is recorded before the next begins; a failed job is
//! compensated in reverse; `resume` continues every unfinished job after a crash.
//!
//! - [`jobs`]: the machinery every workflow shares (the workflow trait, the journal and
//!   its step context, compensation, progress, test hooks);
//! - [`workflows`]: one file per workflow and the registry that lists them;
//! - [`services`]: what the API asks of the endpoints outside jobs (discovery, inventory,
//!   reconcile, retention);
//! - [`ports`]: what the engine needs from hypervisors and arrays, as traits.

pub mod copy_label;
pub mod device_io;
pub mod jobs;
pub mod ports;
pub mod services;
#[cfg(test)]
pub mod testing;
pub mod transfer;
pub mod workflows;

pub use jobs::{hooks, journal, progress, progress_hub, slots, undo};
pub use services::{discover, inventory, retention};
pub use workflows::JobRequest;
pub use workflows::copy::{DEFAULT_PROXY_HOST, PROXY_PREFIX};

use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use crate::catalog::{Catalog, JobRecord, JobState};
use crate::copies::CopyStore;
use hooks::TestHooks;
use jobs::workflow::{Planned, Services, StoreUse};
use journal::{RunMode, Settled, StepCtx};
use ports::Endpoints;
use progress_hub::{JobProgress, ProgressHub, ProgressUpdate};

/// Opens the copy store for jobs that need it; `create` makes it on first use. The data
/// directory provides it, so the engine never knows where or how the store lives.
pub trait CopyStoreOpener: Send + Sync {
    /// The store, opened once and then shared; a typed refusal says why it cannot be.
    fn open(&self, create: bool) -> anyhow::Result<Arc<CopyStore>>;
    /// The store if it is open already (never creates or opens it).
    fn opened(&self) -> Option<Arc<CopyStore>>;
}

/// Runs workflows as durable jobs.
pub struct Engine {
    pub catalog: Arc<Catalog>,
    pub endpoints: Arc<dyn Endpoints>,
    copies: Arc<dyn CopyStoreOpener>,
    /// Jobs started in the background and still running, each holding a slot.
    running: slots::RunningJobs,
    /// One start at a time, so two requests with one idempotency key cannot both miss it.
    starting: std::sync::Mutex<()>,
    /// Running jobs' progress, by job id, for whoever watches (the API's event streams).
    progress_hub: Arc<ProgressHub>,
    hooks: TestHooks,
    /// Jobs this process is driving now: a job is never driven twice at once (a resume
    /// racing the start of the same job would run its steps twice, concurrently).
    driving: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// This process drives a job while it holds this; dropping it lets the job go.
struct Driving {
    set: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    id: String,
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A checked, recorded job waiting to run.
pub struct PlannedJob(Arc<dyn Planned>);

/// A job started in the background by [`Engine::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Its id.
    pub job: String,
    /// Whether an earlier start with the same idempotency key and request made it.
    pub replayed: bool,
}

/// What a dry run reports: the checked plan, recording nothing.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// The job kind.
    pub kind: String,
    /// The VM the job would be on.
    pub vm: String,
    /// The arguments the job would store, with every default filled in.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The steps the job would take, in order.
    pub steps: Vec<String>,
}

impl Engine {
    /// An engine over a catalog, endpoints and a copy store opener, with the test hooks
    /// from the environment.
    pub fn new(
        catalog: Arc<Catalog>,
        endpoints: Arc<dyn Endpoints>,
        copies: Arc<dyn CopyStoreOpener>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            catalog,
            endpoints,
            copies,
            running: slots::RunningJobs::default(),
            starting: std::sync::Mutex::new(()),
            progress_hub: Arc::default(),
            hooks: TestHooks::from_env()?,
            driving: Arc::default(),
        })
    }

    /// Receives the progress updates job `job_id` publishes from now on (throttled; see
    /// [`progress_hub`]). Works before the job runs and ends with nothing if it never does.
    pub fn subscribe_progress(
        &self,
        job_id: &str,
    ) -> tokio::sync::broadcast::Receiver<ProgressUpdate> {
        self.progress_hub.subscribe(job_id)
    }

    fn services(&self) -> Services<'_> {
        Services {
            catalog: &self.catalog,
            endpoints: self.endpoints.as_ref(),
        }
    }

    /// Checks a request as [`Engine::submit`] would and reports its plan, recording nothing.
    pub async fn dry_run(&self, request: &JobRequest) -> anyhow::Result<DryRun> {
        let planned = self.checked(request)?;
        Ok(DryRun {
            kind: planned.kind().to_string(),
            vm: planned.subject().to_string(),
            params: planned.params()?,
            steps: planned.planned_steps(&self.services()).await?,
        })
    }

    /// The request planned and checked, with the copy store it needs opened (after the
    /// request's own checks: an unknown VM is the better answer than a missing store).
    fn checked(&self, request: &JobRequest) -> anyhow::Result<Arc<dyn Planned>> {
        let planned = request.plan(&self.services())?;
        match planned.store() {
            StoreUse::None => {}
            StoreUse::Create => {
                self.copies.open(true)?;
            }
            StoreUse::Existing => {
                self.copies.open(false)?;
            }
        }
        Ok(planned)
    }

    /// Checks a request and records its job without running it: the caller runs it with
    /// [`Engine::run_job`] (the API does so in the background). Bad input fails here, before
    /// any job exists.
    pub fn submit(&self, request: &JobRequest) -> anyhow::Result<(String, PlannedJob)> {
        let planned = self.checked(request)?;
        let id = format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        self.catalog.create_job(
            &id,
            planned.kind(),
            Some(planned.subject()),
            &planned.params()?,
        )?;
        Ok((id, PlannedJob(planned)))
    }

    /// Starts a job in the background, as the API does for `POST /v1/jobs`. With an
    /// idempotency key, the same key and request give the same job, never two; the same key
    /// with another request is a conflict. Past `max_running` jobs running, a busy refusal
    /// and no job. `who` is remembered with the key.
    pub fn start(
        self: &Arc<Self>,
        request: &JobRequest,
        key: Option<&str>,
        who: &str,
        max_running: usize,
    ) -> anyhow::Result<Started> {
        let request_text = serde_json::to_string(request)?;
        let _one_at_a_time = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = key
            && let Some((_, earlier, job)) = self.catalog.idempotent_job(key)?
        {
            if earlier != request_text {
                return Err(crate::refusal::Refusal::conflict(format!(
                    "Idempotency-Key {key} was used for a different request (job {job})"
                )));
            }
            return Ok(Started {
                job,
                replayed: true,
            });
        }
        let slot = self.running.try_start(max_running).ok_or_else(|| {
            crate::refusal::Refusal::busy(format!(
                "{max_running} jobs are running, the most this server runs at once; try again later"
            ))
        })?;
        let (job, planned) = self.submit(request)?;
        if let Some(key) = key {
            self.catalog
                .remember_idempotency(key, who, &request_text, &job)?;
        }
        let engine = self.clone();
        let id = job.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = engine.run_job(&id, planned).await {
                tracing::error!(job = %id, "job could not run: {e:#}");
            }
        });
        Ok(Started {
            job,
            replayed: false,
        })
    }

    /// The slots of running jobs (a test holds one to reach the bound).
    pub fn slots(&self) -> &slots::RunningJobs {
        &self.running
    }

    /// How many jobs started with [`Engine::start`] are running now.
    pub fn running_jobs(&self) -> usize {
        self.running.count()
    }

    /// Runs a job recorded by [`Engine::submit`] to its end.
    pub async fn run_job(&self, job_id: &str, planned: PlannedJob) -> anyhow::Result<JobRecord> {
        self.drive(job_id, planned.0.as_ref(), RunMode::Run).await
    }

    /// Checks, records and runs a job to its end in this task (the demo and benchmarks; the
    /// API submits and runs in the background instead).
    pub async fn run(&self, request: &JobRequest) -> anyhow::Result<JobRecord> {
        let (id, planned) = self.submit(request)?;
        self.run_job(&id, planned).await
    }

    /// Runs a job's workflow (replaying recorded steps), compensating on failure. In
    /// [`RunMode::Settle`] it only settles the step in flight, then compensates.
    async fn drive(
        &self,
        job_id: &str,
        planned: &dyn Planned,
        mode: RunMode,
    ) -> anyhow::Result<JobRecord> {
        let Some(_driving) = self.claim(job_id) else {
            anyhow::bail!("job {job_id} is already running in this process");
        };
        let progress = Arc::new(JobProgress::new(job_id, self.progress_hub.clone()));
        let mut ctx = StepCtx::new(
            self.catalog.clone(),
            self.job_endpoints(job_id),
            job_id,
            self.hooks,
            self.copies.opened(),
            progress,
            mode,
        )?;
        let ended = match planned.run(&mut ctx).await {
            Ok(result) => self
                .catalog
                .set_job_state(job_id, JobState::Succeeded, Some(&result), None)
                .and_then(|()| self.job(job_id)),
            Err(error) if error.is::<Settled>() => self.compensate(job_id).await,
            Err(error) => {
                let message = format!("{error:#}");
                tracing::warn!(job = job_id, "job failed, compensating: {message}");
                match self.catalog.set_job_state(
                    job_id,
                    JobState::Compensating,
                    None,
                    Some(&message),
                ) {
                    Ok(()) => self.compensate(job_id).await,
                    Err(e) => Err(e),
                }
            }
        };
        // Whatever the outcome, followers of the job learn now that there is news.
        self.progress_hub.close(job_id);
        ended
    }

    /// A job with its steps.
    pub fn job(&self, job_id: &str) -> anyhow::Result<JobRecord> {
        self.catalog
            .job(job_id)?
            .ok_or_else(|| anyhow!("unknown job '{job_id}'"))
    }

    /// The right to drive `job_id` in this process, unless something drives it already.
    fn claim(&self, job_id: &str) -> Option<Driving> {
        let mut set = self.driving.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(job_id.to_string()).then(|| Driving {
            set: self.driving.clone(),
            id: job_id.to_string(),
        })
    }

    /// Continues every unfinished job from its last recorded step, or finishes compensating
    /// it. A step the journal shows in flight (the host died inside it) is settled first: run
    /// again under its token, so what the adapter made is recorded before anything is undone.
    pub async fn resume(&self) -> anyhow::Result<Vec<JobRecord>> {
        self.resume_jobs(self.catalog.unfinished_job_ids()?).await
    }

    /// [`resume`](Self::resume) of the jobs `ids` (a server lists them before it accepts
    /// requests, so a job started through it is never taken for one left by a crash). A job
    /// this process drives already is left to it.
    pub async fn resume_jobs(&self, ids: Vec<String>) -> anyhow::Result<Vec<JobRecord>> {
        let mut done = Vec::new();
        for id in ids {
            if self
                .driving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&id)
            {
                continue;
            }
            let job = self.job(&id)?;
            if !job.state.is_unfinished() {
                continue;
            }
            tracing::info!(job = %id, state = %job.state, "resuming");
            let planned =
                crate::engine::workflows::replan(&job.kind, &job.params, &self.services())
                    .with_context(|| format!("resuming job {id}"));
            let record = match planned {
                Ok(planned) => {
                    self.check_store_for(&job, planned.store())?;
                    let mode = if job.state == JobState::Compensating {
                        RunMode::Settle
                    } else {
                        RunMode::Run
                    };
                    self.drive(&id, planned.as_ref(), mode).await?
                }
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
            };
            done.push(record);
        }
        Ok(done)
    }

    /// Undoes what a job did, newest step first; returns the job as it ends.
    async fn compensate(&self, id: &str) -> anyhow::Result<JobRecord> {
        undo::compensate(
            &self.catalog,
            &self.job_endpoints(id),
            self.copies.opened().as_deref(),
            id,
        )
        .await?;
        self.job(id)
    }

    /// The endpoints as job `id` sees them: on the adapter versions it started on.
    fn job_endpoints(&self, id: &str) -> Arc<dyn Endpoints> {
        jobs::job_endpoints::JobEndpoints::new(self.endpoints.clone(), self.catalog.clone(), id)
    }

    /// A job that needs the copy store cannot be continued or undone without it: refuse
    /// rather than fail it halfway.
    fn check_store_for(&self, job: &JobRecord, store: StoreUse) -> anyhow::Result<()> {
        if store != StoreUse::None && self.copies.open(false).is_err() {
            anyhow::bail!(
                "cannot resume {} job {}: the copy store could not be opened (set TIDEMARK_COPY_PASSPHRASE if it uses one)",
                job.kind,
                job.id
            );
        }
        Ok(())
    }
}
