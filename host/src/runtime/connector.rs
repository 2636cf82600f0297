//! Opens endpoints by name for the engine: a fresh session per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use async_trait::async_trait;

use super::{AdapterKind, EndpointSpec, Runtime};
use crate::engine::ports::{Endpoints, Hypervisor, StorageArray};

/// The configured endpoints over a runtime.
pub struct Connector {
    runtime: Arc<Runtime>,
    endpoints: BTreeMap<String, Arc<EndpointSpec>>,
}

impl Connector {
    /// Connects the runtime with the endpoints configured in the catalog.
    pub fn new(runtime: Arc<Runtime>, endpoints: Vec<EndpointSpec>) -> Self {
        let endpoints = endpoints
            .into_iter()
            .map(|e| (e.name.clone(), Arc::new(e)))
            .collect();
        Self { runtime, endpoints }
    }

    fn spec(&self, name: &str, kind: AdapterKind) -> anyhow::Result<Arc<EndpointSpec>> {
        let spec = self.endpoints.get(name).ok_or_else(|| {
            anyhow!(
                "unknown endpoint '{name}' (configured: {})",
                self.endpoints
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let adapter = self.runtime.adapter(&spec.adapter)?;
        if adapter.kind != kind {
            bail!(
                "endpoint {name} is a {} endpoint, not a {kind} endpoint",
                adapter.kind
            );
        }
        Ok(spec.clone())
    }

    /// Names of endpoints of a kind.
    pub fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        self.endpoints
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
}
