//! The step journal: each step's outcome is recorded in the catalog before the next begins;
//! on resume the workflow runs again from the start and recorded steps return their
//! recorded output instead of running (so workflow code must be deterministic given its
//! parameters and step outputs). Transient adapter errors are retried with backoff.
//!
//! A step body receives a [`Step`]: its idempotency token and the place where it records,
//! as it goes, what undoes each thing it made (Temporal's `Saga.addCompensation`). If the body
//! fails, what it recorded is rolled back at once; if it succeeds, the same list is stored with
//! its outcome, so compensation of the whole job later undoes it from the journal alone.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::hooks::TestHooks;
use super::progress_hub::JobProgress;
use super::undo::{self, Undo};
use crate::catalog::{Catalog, StepRecord, StepState};
use crate::copies::CopyStore;
use crate::engine::ports::{CallError, Endpoints};

/// Attempts of a step whose adapter call keeps failing with `transient`.
const MAX_ATTEMPTS: u32 = 4;
/// First backoff; doubles each attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// What a step produced: its value (recorded for replay) and a line for people. What undoes
/// it is recorded through [`Step::made`] as the body goes, or added here at the end.
pub struct Done<T> {
    pub value: T,
    pub detail: String,
    pub undo: Vec<Undo>,
}

impl<T> Done<T> {
    /// A step result; its undo is whatever the body recorded with [`Step::made`].
    pub fn new(value: T, detail: impl Into<String>) -> Self {
        Self {
            value,
            detail: detail.into(),
            undo: Vec::new(),
        }
    }

    /// Adds what undoes the step, for bodies that learn it only at the end.
    pub fn undo(mut self, undo: Vec<Undo>) -> Self {
        self.undo = undo;
        self
    }
}

/// What a running step body holds: its idempotency token and its compensation log.
#[derive(Clone)]
pub struct Step {
    token: String,
    made: Arc<Mutex<Vec<Undo>>>,
}

impl Step {
    /// The step's idempotency token: the same on every attempt and after a restart, so an
    /// adapter asked twice answers with what it made the first time.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A token for one of several creating calls of this step (e.g. one per device).
    pub fn token_for(&self, part: &str) -> String {
        format!("{}/{part}", self.token)
    }

    /// Records what undoes something this step just made. Call it right after the adapter
    /// returned, before anything else can fail; an action recorded twice (a retried
    /// attempt made the same thing again) is kept once.
    pub fn made(&self, undo: Undo) {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if !made.contains(&undo) {
            made.push(undo);
        }
    }

    fn take(&self) -> Vec<Undo> {
        std::mem::take(&mut *self.made.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// How far a run goes: to the end, or only until the step the journal shows in flight has
/// been settled (a job that must be compensated first learns what that step made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Run every step.
    Run,
    /// Replay recorded steps, settle the in-flight one, then stop with [`Settled`].
    Settle,
}

/// The error a [`RunMode::Settle`] run stops with once the in-flight step is recorded.
#[derive(Debug, thiserror::Error)]
#[error("the step in flight when the job stopped was settled; the job is compensated next")]
pub struct Settled;

/// A job being run (or resumed): its journal and what its steps need.
pub struct StepCtx {
    pub catalog: Arc<Catalog>,
    pub endpoints: Arc<dyn Endpoints>,
    pub job_id: String,
    /// Where long steps report progress (it knows which step is running).
    pub progress: Arc<JobProgress>,
    copies: Option<Arc<CopyStore>>,
    recorded: Vec<StepRecord>,
    seq: u32,
    hooks: TestHooks,
    mode: RunMode,
}

impl StepCtx {
    /// A context for `job_id`, loading whatever its journal already holds.
    pub fn new(
        catalog: Arc<Catalog>,
        endpoints: Arc<dyn Endpoints>,
        job_id: &str,
        hooks: TestHooks,
        copies: Option<Arc<CopyStore>>,
        progress: Arc<JobProgress>,
        mode: RunMode,
    ) -> anyhow::Result<Self> {
        let recorded = catalog
            .job(job_id)?
            .ok_or_else(|| anyhow!("job {job_id} is not in the catalog"))?
            .steps;
        Ok(Self {
            catalog,
            endpoints,
            job_id: job_id.to_string(),
            progress,
            copies,
            recorded,
            seq: 0,
            hooks,
            mode,
        })
    }

    /// The copy store, which copy and restore jobs need.
    pub fn copy_store(&self) -> anyhow::Result<Arc<CopyStore>> {
        self.copies
            .clone()
            .ok_or_else(|| anyhow!("job {}: the copy store is not open", self.job_id))
    }

    /// Runs (or replays) the next step. `run` gets the step's [`Step`] and may be called
    /// again when it fails with a transient adapter error.
    pub async fn step<T, F, Fut>(&mut self, name: &str, mut run: F) -> anyhow::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Step) -> Fut,
        Fut: Future<Output = anyhow::Result<Done<T>>>,
    {
        self.seq += 1;
        let seq = self.seq;
        let mut in_flight = false;
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
            in_flight = record.state == StepState::Running;
        }
        if self.mode == RunMode::Settle && !in_flight {
            return Err(Settled.into());
        }
        if !in_flight {
            if let Some(delay) = self.hooks.step_delay {
                tokio::time::sleep(delay).await;
            }
            if self.catalog.cancel_requested(&self.job_id)? {
                bail!(
                    "job {} was cancelled before step {seq} ({name})",
                    self.job_id
                );
            }
        }
        self.catalog.begin_step(&self.job_id, seq, name)?;
        self.progress.enter_step(seq, name);
        if self.hooks.fail_step == Some(seq) {
            let error = anyhow!("injected failure at step {seq} ({name}) by TIDEMARK_FAIL_STEP");
            self.fail(seq, &error)?;
            return Err(error);
        }
        let step = Step {
            token: format!("{}:{seq}", self.job_id),
            made: Arc::default(),
        };
        let mut attempt = 1;
        let done = loop {
            match run(step.clone()).await {
                Ok(done) => break done,
                // A retry makes the same things again under the same tokens: keep the log.
                Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                    let wait = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(job = %self.job_id, step = seq, "transient failure, retry {attempt} in {wait:?}: {e:#}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => {
                    undo::roll_back(
                        &self.catalog,
                        self.endpoints.as_ref(),
                        self.copies.as_deref(),
                        &step.take(),
                    )
                    .await;
                    self.fail(seq, &e)?;
                    return Err(e);
                }
            }
        };
        if self.hooks.crash_in_step == Some(seq) {
            eprintln!(
                "TIDEMARK_CRASH_IN_STEP={seq}: aborting inside step {seq} ({name}) of job {}, before its outcome is recorded",
                self.job_id
            );
            std::process::abort();
        }
        let mut undo = step.take();
        undo.extend(done.undo);
        let output = serde_json::to_value(&done.value)?;
        let undo = serde_json::to_value(&undo)?;
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
        if self.mode == RunMode::Settle {
            return Err(Settled.into());
        }
        Ok(done.value)
    }

    fn fail(&self, seq: u32, error: &anyhow::Error) -> anyhow::Result<()> {
        self.catalog.end_step(
            &self.job_id,
            seq,
            StepState::Failed,
            &format!("{error:#}"),
            None,
            None,
        )
    }
}

fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<CallError>()
            .is_some_and(CallError::is_transient)
    })
}
