//! Opens a data directory: catalog, adapter runtime, configured endpoints, engine.
//!
//! Layout: `catalog.sqlite`, `adapters/*.wasm` (external adapters), `endpoints/<name>/`
//! (each endpoint's private data, the only directory its sandbox sees), `cache/` (compiled
//! adapters). The host reaches them through a cap-std `Dir` rooted at the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::catalog::{CATALOG_FILE, Catalog, EndpointRecord};
use crate::engine::Engine;
use crate::engine::ports::Endpoints;
use crate::runtime::{AdapterKind, Connector, EndpointSpec, Runtime};

/// Everything a command needs from one data directory.
pub struct Context {
    pub data_dir: PathBuf,
    pub root: Dir,
    pub catalog: Arc<Catalog>,
    pub runtime: Arc<Runtime>,
    pub connector: Arc<Connector>,
    pub engine: Engine,
}

impl Context {
    /// Opens (creating if needed) the data directory.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let root = Dir::open_ambient_dir(data_dir, ambient_authority())
            .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
        for dir in ["adapters", "endpoints", "cache"] {
            root.create_dir_all(dir)
                .with_context(|| format!("creating {dir}/ in the data directory"))?;
        }
        let catalog = Arc::new(Catalog::open(&data_dir.join(CATALOG_FILE))?);
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
        let specs = catalog
            .endpoints()?
            .iter()
            .map(|e| endpoint_spec(&root, data_dir, e))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let connector = Arc::new(Connector::new(runtime.clone(), specs));
        let endpoints: Arc<dyn Endpoints> = connector.clone();
        let engine = Engine::new(catalog.clone(), endpoints)?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            root,
            catalog,
            runtime,
            connector,
            engine,
        })
    }

    /// The endpoints as the engine sees them.
    pub fn endpoints(&self) -> &dyn Endpoints {
        self.connector.as_ref()
    }

    /// Names of the configured hypervisor endpoints.
    pub fn hypervisors(&self) -> Vec<String> {
        self.connector.names_of(AdapterKind::Hypervisor)
    }

    /// Names of the configured array endpoints.
    pub fn arrays(&self) -> Vec<String> {
        self.connector.names_of(AdapterKind::StorageArray)
    }
}

/// The runtime's view of a configured endpoint, with its private data directory created.
pub fn endpoint_spec(
    root: &Dir,
    data_dir: &Path,
    endpoint: &EndpointRecord,
) -> anyhow::Result<EndpointSpec> {
    crate::names::check_name("endpoint", &endpoint.name).map_err(anyhow::Error::msg)?;
    let relative = format!("endpoints/{}", endpoint.name);
    root.create_dir_all(&relative)
        .with_context(|| format!("creating the data directory of endpoint {}", endpoint.name))?;
    EndpointSpec::new(
        &endpoint.name,
        &endpoint.adapter,
        endpoint.settings.clone(),
        data_dir.join(relative),
    )
}
