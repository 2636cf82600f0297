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
use crate::runtime::{Connector, EndpointSpec, Runtime};

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
    ) -> anyhow::Result<Self> {
        let runtime = Arc::new(
            Runtime::new(
                Some(&data_dir.join("adapters")),
                Some(&data_dir.join("cache")),
            )
            .await?,
        );
        for (name, reason) in &runtime.rejected {
            tracing::warn!("adapter {name} not loaded: {reason}");
        }
        let specs = endpoints
            .iter()
            .map(|e| endpoint_spec(root, data_dir, e))
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
        self.runtime
            .adapters()
            .map(|a| AdapterSummary {
                name: a.name.clone(),
                source: a.source.clone(),
                kind: a.kind,
                contract: a.version().to_string(),
                vendor: a.info.vendor.clone(),
                version: a.info.version.clone(),
                capabilities: a.info.capabilities.clone(),
            })
            .collect()
    }

    fn rejected(&self) -> Vec<RejectedAdapter> {
        self.runtime
            .rejected
            .iter()
            .map(|(name, reason)| RejectedAdapter {
                name: name.clone(),
                reason: reason.clone(),
            })
            .collect()
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

    fn configure(&self, endpoint: &EndpointRecord) -> anyhow::Result<()> {
        self.check(endpoint)?;
        let spec = endpoint_spec(&self.root, &self.data_dir, endpoint)?;
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
}

/// The runtime's view of a configured endpoint, with its private data directory created.
fn endpoint_spec(
    root: &Dir,
    data_dir: &Path,
    endpoint: &EndpointRecord,
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
    .map_err(|e: BadSetting| Refusal::invalid(e.to_string()))
}
