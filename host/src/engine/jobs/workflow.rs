//! What a workflow is to the engine: a kind, typed arguments stored with its job, the checks
//! made before a job exists, the steps it plans, and the run itself. Each workflow is one file
//! under `engine/workflows/` implementing [`Workflow`], plus one line in the registry
//! (`engine/workflows/mod.rs`); nothing else in the engine knows it by name.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::journal::StepCtx;
use crate::catalog::{Catalog, PointRecord, VmRecord};
use crate::engine::ports::Endpoints;
use crate::refusal::Refusal;

/// Whether a workflow needs the copy store, and whether its first use may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUse {
    /// The workflow never touches copies.
    None,
    /// It writes copies: the first such job creates the store.
    Create,
    /// It reads copies: the store must exist.
    Existing,
}

/// What a workflow's checks may consult before a job exists.
pub struct Services<'a> {
    pub catalog: &'a Catalog,
    pub endpoints: &'a dyn Endpoints,
}

impl Services<'_> {
    /// A VM the catalog knows, or a not-found refusal pointing at `vm list`.
    pub fn known_vm(&self, name: &str) -> anyhow::Result<VmRecord> {
        self.catalog.vm(name)?.ok_or_else(|| {
            Refusal::not_found(format!("unknown VM '{name}' (see `tidemark vm list`)"))
        })
    }

    /// A recovery point of `vm_name`, or a refusal saying why not.
    pub fn point_of(&self, vm_name: &str, point_id: &str) -> anyhow::Result<PointRecord> {
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

    /// The array endpoint that owns `wwn`, for a plan: the catalog's memory, else the answer
    /// of the arrays themselves (asked, not recorded: a plan records nothing).
    pub async fn lun_owner(&self, wwn: &str) -> anyhow::Result<String> {
        match self.catalog.lun_owner(wwn)? {
            Some(owner) => Ok(owner),
            None => crate::engine::discover::find_lun_owner(self.endpoints, wwn).await,
        }
    }

    /// A known VM and one of its recovery points: what most workflows run on.
    pub fn vm_and_point(&self, vm: &str, point: &str) -> anyhow::Result<(VmRecord, PointRecord)> {
        Ok((self.known_vm(vm)?, self.point_of(vm, point)?))
    }

    /// Refuses a job on a VM that has an unfinished one (they would fight over devices).
    pub fn check_idle(&self, vm: &str) -> anyhow::Result<()> {
        if let Some(job) = self.catalog.unfinished_job_on(vm)? {
            return Err(Refusal::conflict(format!(
                "VM {vm} has an unfinished job {job}; run `tidemark resume` first"
            )));
        }
        Ok(())
    }
}

/// One workflow. `Args` is what a caller sends (the fields of its `JobRequest` variant) and
/// what the job stores; `Inputs` is what the run needs, loaded from the catalog the same way
/// at submit and at resume.
#[async_trait]
pub trait Workflow: Send + Sync + 'static {
    /// The job kind: the `kind` of its request and of its job record.
    const KIND: &'static str;
    /// Whether it needs the copy store.
    const STORE: StoreUse = StoreUse::None;
    /// The request's fields; stored with the job (after [`Workflow::settle`]).
    type Args: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync;
    /// What the run works on, loaded from the catalog.
    type Inputs: Send + Sync;

    /// Fills every default into the arguments, so that the stored job alone decides what a
    /// resumed run does (a default changed by an upgrade cannot change a running job).
    fn settle(args: Self::Args, _services: &Services<'_>) -> anyhow::Result<Self::Args> {
        Ok(args)
    }

    /// The VM the job is on: at most one unfinished job per VM.
    fn subject(args: &Self::Args) -> &str;

    /// Loads what the run needs; an error names what is missing (typed refusals at submit).
    fn load(args: &Self::Args, services: &Services<'_>) -> anyhow::Result<Self::Inputs>;

    /// Refusals before any job exists; bad input changes nothing. Not called on resume.
    fn check(
        _args: &Self::Args,
        _inputs: &Self::Inputs,
        _services: &Services<'_>,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// The names of the steps a run will take, as far as the catalog and read-only questions
    /// to the endpoints tell (`--dry-run`).
    async fn planned_steps(
        args: &Self::Args,
        inputs: &Self::Inputs,
        services: &Services<'_>,
    ) -> anyhow::Result<Vec<String>>;

    /// Runs (or resumes) the job; returns its result document.
    async fn run(
        ctx: &mut StepCtx,
        args: &Self::Args,
        inputs: &Self::Inputs,
    ) -> anyhow::Result<serde_json::Value>;
}

/// A workflow with its arguments checked and loaded: what the engine records and runs,
/// without knowing which workflow it is.
#[async_trait]
pub trait Planned: Send + Sync {
    /// The job kind.
    fn kind(&self) -> &'static str;
    /// Whether it needs the copy store.
    fn store(&self) -> StoreUse;
    /// The VM the job is on.
    fn subject(&self) -> &str;
    /// The stored arguments.
    fn params(&self) -> anyhow::Result<serde_json::Value>;
    /// The steps a run will take.
    async fn planned_steps(&self, services: &Services<'_>) -> anyhow::Result<Vec<String>>;
    /// Runs it.
    async fn run(&self, ctx: &mut StepCtx) -> anyhow::Result<serde_json::Value>;
}

/// A workflow's arguments and inputs, ready to run.
pub struct PlannedRun<W: Workflow> {
    args: W::Args,
    inputs: W::Inputs,
}

impl<W: Workflow> PlannedRun<W> {
    /// Settles, loads and (for a new job) checks `args`.
    pub fn plan(args: W::Args, services: &Services<'_>, new_job: bool) -> anyhow::Result<Self> {
        let args = if new_job {
            W::settle(args, services)?
        } else {
            args
        };
        let inputs = W::load(&args, services)?;
        if new_job {
            W::check(&args, &inputs, services)?;
        }
        Ok(Self { args, inputs })
    }

    /// Plans a job from its stored arguments (resume).
    pub fn from_params(
        params: &serde_json::Value,
        services: &Services<'_>,
    ) -> anyhow::Result<Arc<dyn Planned>> {
        let args: W::Args = serde_json::from_value(params.clone()).map_err(|e| {
            anyhow::anyhow!("stored arguments of a {} job are unreadable: {e}", W::KIND)
        })?;
        Ok(Arc::new(Self::plan(args, services, false)?))
    }
}

#[async_trait]
impl<W: Workflow> Planned for PlannedRun<W> {
    fn kind(&self) -> &'static str {
        W::KIND
    }
    fn store(&self) -> StoreUse {
        W::STORE
    }
    fn subject(&self) -> &str {
        W::subject(&self.args)
    }
    fn params(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.args)?)
    }
    async fn planned_steps(&self, services: &Services<'_>) -> anyhow::Result<Vec<String>> {
        W::planned_steps(&self.args, &self.inputs, services).await
    }
    async fn run(&self, ctx: &mut StepCtx) -> anyhow::Result<serde_json::Value> {
        W::run(ctx, &self.args, &self.inputs).await
    }
}
