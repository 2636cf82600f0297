//! Opens endpoints by name for the engine: a fresh session per request.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, bail};
use async_trait::async_trait;

use super::{AdapterKind, EndpointSpec, Runtime};
use crate::engine::ports::{Dns, Endpoints, Hypervisor, Machine, StorageArray};

/// The configured endpoints over a runtime. Endpoints can be added and removed while the
/// server runs; a session already open keeps the spec it was opened with.
pub struct Connector {
    runtime: Arc<Runtime>,
    endpoints: RwLock<BTreeMap<String, Arc<EndpointSpec>>>,
}

impl Connector {
    /// Connects the runtime with the endpoints configured in the catalog.
    pub fn new(runtime: Arc<Runtime>, endpoints: Vec<EndpointSpec>) -> Self {
        let endpoints = endpoints
            .into_iter()
            .map(|e| (e.name.clone(), Arc::new(e)))
            .collect();
        Self {
            runtime,
            endpoints: RwLock::new(endpoints),
        }
    }

    /// The endpoint map (a poisoned lock still holds a consistent map: writers only insert
    /// or remove whole entries).
    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<EndpointSpec>>> {
        self.endpoints.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a newly configured endpoint usable (or replaces one of the same name).
    pub fn add(&self, spec: EndpointSpec) {
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.name.clone(), Arc::new(spec));
    }

    /// Forgets a removed endpoint; whether it was known.
    pub fn remove(&self, name: &str) -> bool {
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
    }

    /// The kind of an endpoint's adapter, if the endpoint and its adapter are known.
    pub fn kind_of(&self, name: &str) -> Option<AdapterKind> {
        let adapter = self.map().get(name)?.adapter.clone();
        self.runtime.adapter(&adapter).ok().map(|a| a.kind)
    }

    /// Opens a session on the endpoint and asks its adapter who it is.
    pub async fn probe(&self, name: &str) -> anyhow::Result<crate::model::AdapterInfo> {
        let spec = self
            .map()
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("unknown endpoint '{name}'"))?;
        self.runtime.probe(spec).await
    }

    fn spec(&self, name: &str, kind: AdapterKind) -> anyhow::Result<Arc<EndpointSpec>> {
        let endpoints = self.map();
        let spec = endpoints.get(name).cloned().ok_or_else(|| {
            anyhow!(
                "unknown endpoint '{name}' (configured: {})",
                endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let adapter = self.runtime.adapter(&spec.adapter)?;
        if adapter.kind != kind {
            bail!(
                "endpoint {name} is a {} endpoint, not a {kind} endpoint",
                adapter.kind
            );
        }
        Ok(spec)
    }

    /// Names of endpoints of a kind.
    pub fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        self.map()
            .values()
            .filter(|e| {
                self.runtime
                    .adapter(&e.adapter)
                    .is_ok_and(|a| a.kind == kind)
            })
            .map(|e| e.name.clone())
            .collect()
    }
}

#[async_trait]
impl Endpoints for Connector {
    async fn hypervisor(&self, endpoint: &str) -> anyhow::Result<Box<dyn Hypervisor>> {
        let spec = self.spec(endpoint, AdapterKind::Hypervisor)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }

    async fn storage_array(&self, endpoint: &str) -> anyhow::Result<Box<dyn StorageArray>> {
        let spec = self.spec(endpoint, AdapterKind::StorageArray)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }

    fn storage_array_names(&self) -> Vec<String> {
        self.names_of(AdapterKind::StorageArray)
    }

    async fn dns(&self, endpoint: &str) -> anyhow::Result<Box<dyn Dns>> {
        let spec = self.spec(endpoint, AdapterKind::Dns)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }

    async fn machine(&self, endpoint: &str) -> anyhow::Result<Box<dyn Machine>> {
        let spec = self.spec(endpoint, AdapterKind::Machine)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }

    fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        Connector::names_of(self, kind)
    }

    fn adapter_of(&self, endpoint: &str, as_of_ms: i64) -> Option<String> {
        let reference = self.map().get(endpoint)?.adapter.clone();
        let adapter = self.runtime.adapter_as_of(&reference, as_of_ms).ok()?;
        Some(format!("{}@{}", adapter.name, adapter.info.version))
    }

    async fn hypervisor_on(
        &self,
        endpoint: &str,
        adapter: &str,
    ) -> anyhow::Result<Box<dyn Hypervisor>> {
        let spec = self.spec_on(endpoint, AdapterKind::Hypervisor, adapter)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }

    async fn storage_array_on(
        &self,
        endpoint: &str,
        adapter: &str,
    ) -> anyhow::Result<Box<dyn StorageArray>> {
        let spec = self.spec_on(endpoint, AdapterKind::StorageArray, adapter)?;
        Ok(Box::new(self.runtime.open(spec).await?))
    }
}

impl Connector {
    /// The endpoint's spec running `adapter` (`NAME@VERSION`, a version a job started on)
    /// instead of what its reference resolves to now.
    fn spec_on(
        &self,
        endpoint: &str,
        kind: AdapterKind,
        adapter: &str,
    ) -> anyhow::Result<Arc<EndpointSpec>> {
        let spec = self.spec(endpoint, kind)?;
        let pinned = self.runtime.adapter(adapter).map_err(|e| {
            anyhow!("endpoint {endpoint}: the adapter this job started on is gone: {e:#}")
        })?;
        if pinned.kind != kind {
            bail!(
                "endpoint {endpoint}: adapter {adapter} is a {} adapter, not a {kind}",
                pinned.kind
            );
        }
        let mut spec = (*spec).clone();
        spec.adapter = adapter.to_string();
        Ok(Arc::new(spec))
    }
}
