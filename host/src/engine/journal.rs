//! The step journal: each step's outcome is recorded in the catalog before the next begins;
//! on resume the workflow runs again from the start and recorded steps return their
//! recorded output instead of running (so workflow code must be deterministic given its
//! parameters and step outputs). Transient adapter errors are retried with backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::hooks::TestHooks;
use super::ports::{CallError, Endpoints};
use super::progress_hub::{JobProgress, ProgressHub};
use super::undo::Undo;
use crate::catalog::{Catalog, StepRecord, StepState};
use crate::copies::CopyStore;

/// Attempts of a step whose adapter call keeps failing with `transient`.
const MAX_ATTEMPTS: u32 = 4;
/// First backoff; doubles each attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// What a step produced: its value (recorded for replay), a line for people, and how to
/// undo it.
pub struct Done<T> {
    pub value: T,
    pub detail: String,
    pub undo: Vec<Undo>,
}

impl<T> Done<T> {
    /// A step result with nothing to undo.
    pub fn new(value: T, detail: impl Into<String>) -> Self {
        Self {
            value,
            detail: detail.into(),
            undo: Vec::new(),
        }
    }

    /// Adds what undoes the step.
    pub fn undo(mut self, undo: Vec<Undo>) -> Self {
        self.undo = undo;
        self
    }
}

/// A job being run (or resumed): its journal and what its steps need.
pub struct JobCtx {
    pub catalog: Arc<Catalog>,
    pub endpoints: Arc<dyn Endpoints>,
    pub job_id: String,
    /// Where long steps report progress (it knows which step is running).
    pub progress: Arc<JobProgress>,
    copies: Option<Arc<CopyStore>>,
    recorded: Vec<StepRecord>,
    seq: u32,
    hooks: TestHooks,
}

impl JobCtx {
    /// A context for `job_id`, loading whatever its journal already holds.
    pub fn new(
        catalog: Arc<Catalog>,
        endpoints: Arc<dyn Endpoints>,
        job_id: &str,
        hooks: TestHooks,
    ) -> anyhow::Result<Self> {
        let recorded = catalog
            .job(job_id)?
            .ok_or_else(|| anyhow!("job {job_id} is not in the catalog"))?
            .steps;
        Ok(Self {
            catalog,
            endpoints,
            job_id: job_id.to_string(),
            progress: Arc::new(JobProgress::new(job_id, Arc::new(ProgressHub::default()))),
            copies: None,
            recorded,
            seq: 0,
            hooks,
        })
    }

    /// Gives the job the copy store and a progress sink.
    pub fn with_copies(
        mut self,
        copies: Option<Arc<CopyStore>>,
        progress: Arc<JobProgress>,
    ) -> Self {
        self.copies = copies;
        self.progress = progress;
        self
    }

    /// The copy store, which copy and restore jobs need.
    pub fn copy_store(&self) -> anyhow::Result<Arc<CopyStore>> {
        self.copies
            .clone()
            .ok_or_else(|| anyhow!("job {}: the copy store is not open", self.job_id))
    }

    /// Runs (or replays) the next step. `run` gets the step's idempotency token and may be
    /// called again when it fails with a transient adapter error.
    pub async fn step<T, F, Fut>(&mut self, name: &str, mut run: F) -> anyhow::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = anyhow::Result<Done<T>>>,
    {
        self.seq += 1;
        let seq = self.seq;
        if let Some(record) = self.recorded.iter().find(|r| r.seq == seq) {
            if record.name != name {
                bail!(
                    "job {}: journal step {seq} is '{}' but the workflow expects '{name}'; the job cannot be resumed",
                    self.job_id,
                    record.name
                );
            }
            if record.state == StepState::Succeeded {
                let output = record.output.clone().unwrap_or(serde_json::Value::Null);
                return serde_json::from_value(output).map_err(|e| {
                    anyhow!(
                        "job {} step {seq} ({name}): recorded output unreadable: {e}",
                        self.job_id
                    )
                });
            }
        }
        if let Some(delay) = self.hooks.step_delay {
            tokio::time::sleep(delay).await;
        }
        if self.catalog.cancel_requested(&self.job_id)? {
            bail!(
                "job {} was cancelled before step {seq} ({name})",
                self.job_id
            );
        }
        self.catalog.begin_step(&self.job_id, seq, name)?;
        self.progress.enter_step(seq, name);
        if self.hooks.fail_step == Some(seq) {
            let error = anyhow!("injected failure at step {seq} ({name}) by TIDEMARK_FAIL_STEP");
            self.catalog.end_step(
                &self.job_id,
                seq,
                StepState::Failed,
                &format!("{error}"),
                None,
                None,
            )?;
            return Err(error);
        }
        let token = format!("{}:{seq}", self.job_id);
        let mut attempt = 1;
        let done = loop {
            match run(token.clone()).await {
                Ok(done) => break done,
                Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                    let wait = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(job = %self.job_id, step = seq, "transient failure, retry {attempt} in {wait:?}: {e:#}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => {
                    let detail = format!("{e:#}");
                    self.catalog.end_step(
                        &self.job_id,
                        seq,
                        StepState::Failed,
                        &detail,
                        None,
                        None,
                    )?;
                    return Err(e);
                }
            }
        };
        let output = serde_json::to_value(&done.value)?;
        let undo = serde_json::to_value(&done.undo)?;
        self.catalog.end_step(
            &self.job_id,
            seq,
            StepState::Succeeded,
            &done.detail,
            Some(&output),
            Some(&undo),
        )?;
        if self.hooks.crash_after_step == Some(seq) {
            eprintln!(
                "TIDEMARK_CRASH_AFTER_STEP={seq}: aborting after step {seq} ({name}) of job {}",
                self.job_id
            );
            std::process::abort();
        }
        Ok(done.value)
    }
}

fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<CallError>()
            .is_some_and(CallError::is_transient)
    })
}
