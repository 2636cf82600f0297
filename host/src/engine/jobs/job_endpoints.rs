//! The endpoints as one job sees them: each endpoint runs the adapter version that was the
//! newest when the job started, fixed in the catalog by the job's first session there, so a
//! job started on version N finishes — and is resumed or compensated — on N while jobs
//! started after an upgrade take the new one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::catalog::Catalog;
use crate::engine::ports::{Dns, Endpoints, Hypervisor, Machine, StorageArray};
use crate::model::AdapterKind;

/// [`Endpoints`] with the job's adapter versions held.
pub struct JobEndpoints {
    inner: Arc<dyn Endpoints>,
    catalog: Arc<Catalog>,
    job_id: String,
    /// Pins read or made so far (one catalog write per endpoint per job).
    pins: Mutex<BTreeMap<String, String>>,
}

impl JobEndpoints {
    /// The endpoints of `job_id` over `inner`.
    pub fn new(inner: Arc<dyn Endpoints>, catalog: Arc<Catalog>, job_id: &str) -> Arc<Self> {
        Arc::new(Self {
            inner,
            catalog,
            job_id: job_id.to_string(),
            pins: Mutex::new(BTreeMap::new()),
        })
    }

    /// The version this job runs `endpoint` on, fixed at its first use; `None` when the
    /// endpoints know no versions.
    fn pin(&self, endpoint: &str) -> anyhow::Result<Option<String>> {
        if let Some(pinned) = self
            .pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            return Ok(Some(pinned.clone()));
        }
        let started = self
            .catalog
            .job_created_at(&self.job_id)?
            .unwrap_or(i64::MAX);
        let Some(current) = self.inner.adapter_of(endpoint, started) else {
            return Ok(None);
        };
        let pinned = self
            .catalog
            .pin_job_adapter(&self.job_id, endpoint, &current)?;
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string(), pinned.clone());
        Ok(Some(pinned))
    }
}

#[async_trait]
impl Endpoints for JobEndpoints {
    async fn hypervisor(&self, endpoint: &str) -> anyhow::Result<Box<dyn Hypervisor>> {
        match self.pin(endpoint)? {
            Some(adapter) => self.inner.hypervisor_on(endpoint, &adapter).await,
            None => self.inner.hypervisor(endpoint).await,
        }
    }

    async fn storage_array(&self, endpoint: &str) -> anyhow::Result<Box<dyn StorageArray>> {
        match self.pin(endpoint)? {
            Some(adapter) => self.inner.storage_array_on(endpoint, &adapter).await,
            None => self.inner.storage_array(endpoint).await,
        }
    }

    fn storage_array_names(&self) -> Vec<String> {
        self.inner.storage_array_names()
    }

    async fn dns(&self, endpoint: &str) -> anyhow::Result<Box<dyn Dns>> {
        self.inner.dns(endpoint).await
    }

    async fn machine(&self, endpoint: &str) -> anyhow::Result<Box<dyn Machine>> {
        self.inner.machine(endpoint).await
    }

    fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        self.inner.names_of(kind)
    }

    fn adapter_of(&self, endpoint: &str, as_of_ms: i64) -> Option<String> {
        self.inner.adapter_of(endpoint, as_of_ms)
    }
}
