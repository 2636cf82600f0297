//! The adapters and endpoints of one data directory behind the engine's [`AdapterAdmin`]
//! port: the runtime and its connector stay in this room, so the API manages adapters and
//! endpoints without knowing how they are loaded or sandboxed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cap_std::fs::Dir;

use crate::catalog::EndpointRecord;
use crate::engine::ports::{AdapterAdmin, Endpoints};
use crate::model::{AdapterInfo, AdapterKind, AdapterSummary, CallStats, RejectedAdapter};
use crate::refusal::Refusal;
use crate::runtime::endpoint::BadSetting;
use crate::runtime::{
    Connector, EndpointSpec, Inserted, InstallError, LoadedAdapter, RegistryError, Runtime,
};

/// The loaded adapters and the configured endpoints over them.
pub struct Adapters {
    root: Dir,
    data_dir: PathBuf,
    runtime: Arc<Runtime>,
    connector: Arc<Connector>,
}

impl Adapters {
    /// Loads the adapters (embedded and `adapters/*.wasm`) and connects the endpoints the
    /// catalog holds.
    pub(super) async fn open(
        root: &Dir,
        data_dir: &Path,
        endpoints: &[EndpointRecord],
        mut secrets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ) -> anyhow::Result<Self> {
        let runtime = Arc::new(
            Runtime::new(
                Some(&data_dir.join("adapters")),
                Some(&data_dir.join("cache")),
            )
            .await?,
        );
        for (name, reason) in &runtime.rejected() {
            tracing::warn!("adapter {name} not loaded: {reason}");
        }
        let specs = endpoints
            .iter()
            .map(|e| {
                endpoint_spec(
                    root,
                    data_dir,
                    e,
                    secrets.remove(&e.name).unwrap_or_default(),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let connector = Arc::new(Connector::new(runtime.clone(), specs));
        Ok(Self {
            root: root
                .try_clone()
                .context("sharing the data directory handle")?,
            data_dir: data_dir.to_path_buf(),
            runtime,
            connector,
        })
    }

    /// The endpoints as the engine opens sessions on them.
    pub fn endpoints(&self) -> Arc<dyn Endpoints> {
        self.connector.clone()
    }

    /// The same, borrowed, for calls outside jobs.
    pub fn sessions(&self) -> &dyn Endpoints {
        self.connector.as_ref()
    }

    /// Names of the configured endpoints of a kind.
    pub fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        self.connector.names_of(kind)
    }
}

#[async_trait::async_trait]
impl AdapterAdmin for Adapters {
    fn adapters(&self) -> Vec<AdapterSummary> {
        self.runtime.adapters().iter().map(|a| summary(a)).collect()
    }

    fn rejected(&self) -> Vec<RejectedAdapter> {
        self.runtime
            .rejected()
            .into_iter()
            .map(|(name, reason)| RejectedAdapter { name, reason })
            .collect()
    }

    fn resolve(&self, reference: &str) -> anyhow::Result<AdapterSummary> {
        self.runtime
            .adapter(reference)
            .map(|a| summary(&a))
            .map_err(|e| Refusal::not_found(format!("{e:#}")))
    }

    fn resolve_as_of(&self, reference: &str, as_of_ms: i64) -> anyhow::Result<AdapterSummary> {
        self.runtime
            .adapter_as_of(reference, as_of_ms)
            .map(|a| summary(&a))
            .map_err(|e| Refusal::not_found(format!("{e:#}")))
    }

    async fn install(&self, name: &str, wasm: &[u8]) -> anyhow::Result<(AdapterSummary, bool)> {
        match self.runtime.install(name, wasm).await {
            Ok((adapter, inserted)) => Ok((summary(&adapter), inserted == Inserted::New)),
            Err(InstallError::Invalid(why)) => Err(Refusal::invalid(why)),
            Err(InstallError::Registry(e)) => Err(Refusal::conflict(e.to_string())),
            Err(e @ InstallError::Io(_)) => Err(anyhow::Error::new(e)),
        }
    }

    fn uninstall(&self, name: &str, version: Option<&str>) -> anyhow::Result<Vec<AdapterSummary>> {
        match self.runtime.uninstall(name, version) {
            Ok(taken) => Ok(taken.iter().map(|a| summary(a)).collect()),
            Err(e @ RegistryError::Unknown { .. }) => Err(Refusal::not_found(e.to_string())),
            Err(e) => Err(Refusal::conflict(e.to_string())),
        }
    }

    fn adapter_kind(&self, adapter: &str) -> anyhow::Result<AdapterKind> {
        self.runtime
            .adapter(adapter)
            .map(|a| a.kind)
            .map_err(|e| Refusal::not_found(format!("{e:#}")))
    }

    fn endpoint_kind(&self, endpoint: &str) -> Option<AdapterKind> {
        self.connector.kind_of(endpoint)
    }

    fn check(&self, endpoint: &EndpointRecord) -> anyhow::Result<()> {
        crate::names::check_name("endpoint", &endpoint.name).map_err(Refusal::invalid)?;
        self.adapter_kind(&endpoint.adapter)?;
        EndpointSpec::new(
            &endpoint.name,
            &endpoint.adapter,
            endpoint.settings.clone(),
            PathBuf::new(),
        )
        .map_err(|e| Refusal::invalid(e.to_string()))?;
        Ok(())
    }

    fn configure(
        &self,
        endpoint: &EndpointRecord,
        secrets: std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        // endpoint_spec checks the name and the reserved settings itself.
        self.adapter_kind(&endpoint.adapter)?;
        let spec = endpoint_spec(&self.root, &self.data_dir, endpoint, secrets)?;
        self.connector.add(spec);
        Ok(())
    }

    fn unconfigure(&self, endpoint: &str) {
        self.connector.remove(endpoint);
    }

    async fn probe(&self, endpoint: &str) -> anyhow::Result<AdapterInfo> {
        self.connector.probe(endpoint).await
    }

    fn call_stats(&self) -> Vec<(String, &'static str, CallStats)> {
        crate::runtime::metrics::snapshot()
    }

    fn denied_stats(&self) -> Vec<(String, &'static str, u64)> {
        crate::runtime::metrics::denied()
    }
}

/// A loaded adapter as operators see it.
fn summary(adapter: &LoadedAdapter) -> AdapterSummary {
    AdapterSummary {
        name: adapter.name.clone(),
        source: adapter.source.clone(),
        kind: adapter.kind,
        contract: adapter.version().to_string(),
        vendor: adapter.info.vendor.clone(),
        version: adapter.info.version.clone(),
        capabilities: adapter.info.capabilities.clone(),
        sha256: adapter.sha256.clone(),
        requested: adapter.requested.clone(),
    }
}

/// The runtime's view of a configured endpoint, with its private data directory created.
fn endpoint_spec(
    root: &Dir,
    data_dir: &Path,
    endpoint: &EndpointRecord,
    secrets: std::collections::BTreeMap<String, String>,
) -> anyhow::Result<EndpointSpec> {
    crate::names::check_name("endpoint", &endpoint.name).map_err(Refusal::invalid)?;
    let relative = format!("endpoints/{}", endpoint.name);
    root.create_dir_all(&relative)
        .with_context(|| format!("creating the data directory of endpoint {}", endpoint.name))?;
    EndpointSpec::new(
        &endpoint.name,
        &endpoint.adapter,
        endpoint.settings.clone(),
        data_dir.join(relative),
    )
    .map(|spec| EndpointSpec {
        grants: endpoint.grants.clone(),
        secrets,
        ..spec
    })
    .map_err(|e: BadSetting| Refusal::invalid(e.to_string()))
}
