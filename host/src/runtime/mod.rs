//! Loading, sandboxing and calling adapters (wasmtime component model).
//!
//! One `Engine` for the process; every adapter compiled once (and cached on disk) and
//! pre-instantiated; a fresh `Store` and instance per job step. Each call has a deadline
//! (epoch interruption) and each instance a memory cap; a trap, a deadline or a cap breach
//! becomes a [`CallError`](crate::engine::ports::CallError) naming the endpoint and the call.

mod array;
pub(crate) mod bindings;
mod connector;
mod data_path;
mod dns;
pub mod endpoint;
mod hypervisor;
pub mod loader;
mod machine;
pub mod metrics;
pub mod registry;
mod session;
pub mod store;
mod translate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use connector::Connector;
pub use endpoint::EndpointSpec;
pub use loader::{AdapterKind, LoadedAdapter};
pub use registry::{Inserted, RegistryError};

use crate::model::capabilities::Effective;
use registry::Registry;
pub use session::Session;
use store::StoreState;

/// How often the epoch advances; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The adapters bundled in the binary: the lab hypervisor and array, built for wasm32-wasip2
/// by the build script.
pub const EMBEDDED_ADAPTERS: &[(&str, &[u8])] = &[
    (
        "lab-hypervisor",
        include_bytes!(concat!(env!("OUT_DIR"), "/lab_hypervisor.wasm")),
    ),
    (
        "lab-array",
        include_bytes!(concat!(env!("OUT_DIR"), "/lab_array.wasm")),
    ),
];

/// The adapter runtime: engine, linker, loaded adapters, epoch ticker. Adapters can be
/// added and removed while it runs (`install`, `uninstall`).
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    adapters: RwLock<Registry>,
    /// Adapter files that failed to load, with the reason (shown by `adapter list`).
    rejected: RwLock<Vec<(String, String)>>,
    /// Where installed adapters are kept (`NAME@VERSION.wasm`), and compiled ones cached.
    adapters_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime with the embedded adapters and every `*.wasm` in `adapters_dir` (if given).
    /// An external adapter that fails to load is recorded in `rejected`, never fatal.
    pub async fn new(
        adapters_dir: Option<&Path>,
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let engine = new_engine()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI: {e:?}"))?;
        // Every supported contract version's host imports, side by side (their names carry
        // the version, so a 0.2.0 adapter links to 0.2.0's and a 0.3.0 one to 0.3.0's).
        // wasi:http for adapters granted HTTP; every request passes the grants' hook.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI HTTP: {e:?}"))?;
        crate::contract::v0_2::HostView::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("linking contract 0.2.0's host imports: {e:?}"))?;
        crate::contract::v0_3::HostView::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("linking contract 0.3.0's host imports: {e:?}"))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        let runtime = Self {
            engine,
            linker,
            adapters: RwLock::new(Registry::default()),
            rejected: RwLock::new(Vec::new()),
            adapters_dir: adapters_dir.map(Path::to_path_buf),
            cache_dir: cache_dir.map(Path::to_path_buf),
            ticker_stop,
        };
        for (name, wasm) in EMBEDDED_ADAPTERS {
            let adapter = runtime
                .load(name, wasm, "embedded".to_string())
                .await
                .with_context(|| format!("loading embedded adapter {name}"))?;
            runtime.registry_mut().insert(Arc::new(adapter))?;
        }
        if let Some(dir) = adapters_dir {
            for path in wasm_files(dir)? {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                // `NAME@VERSION.wasm` as `install` writes it, or a bare `NAME.wasm`.
                let (name, file_version) = registry::split_reference(&stem);
                let outcome = match std::fs::read(&path) {
                    Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
                    Ok(wasm) => runtime
                        .load(name, &wasm, path.display().to_string())
                        .await
                        .and_then(|mut adapter| {
                            adapter.loaded_at_ms = modified_ms(&path);
                            if file_version.is_some_and(|v| v != adapter.info.version) {
                                anyhow::bail!(
                                    "{} is named for version {}, but the adapter says it is {}",
                                    path.display(),
                                    file_version.unwrap_or_default(),
                                    adapter.info.version
                                );
                            }
                            runtime.registry_mut().insert(Arc::new(adapter))?;
                            Ok(())
                        }),
                };
                if let Err(e) = outcome {
                    tracing::warn!(adapter = %name, "adapter not loaded: {e:#}");
                    runtime
                        .rejected_mut()
                        .push((stem.clone(), format!("{e:#}")));
                }
            }
        }
        Ok(runtime)
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.adapters.read().unwrap_or_else(|p| p.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.adapters.write().unwrap_or_else(|p| p.into_inner())
    }

    fn rejected_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(String, String)>> {
        self.rejected.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adapter files that failed to load at start, with why.
    pub fn rejected(&self) -> Vec<(String, String)> {
        self.rejected
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Compiles, checks, links and introduces one adapter (not yet usable).
    async fn load(&self, name: &str, wasm: &[u8], source: String) -> anyhow::Result<LoadedAdapter> {
        let component = loader::compile(&self.engine, wasm, self.cache_dir.as_deref())
            .with_context(|| format!("adapter {name} is not a valid WebAssembly component"))?;
        let identity = loader::inspect(&self.engine, &component, name)?;
        let mut adapter = loader::prepare(&self.linker, &component, name, source, identity)?;
        adapter.sha256 = loader::sha256_hex(wasm);
        adapter.requested =
            loader::read_manifest(wasm).map_err(|e| anyhow!("adapter {name}: {e}"))?;
        adapter.info = self.introduce(&adapter).await?;
        Ok(adapter)
    }

    /// Adds an adapter while the runtime runs: checks it as at start, keeps its file as
    /// `adapters/NAME@VERSION.wasm` (create-only), and makes it the newest version of `name`
    /// for new sessions. The same bytes again change nothing (`Inserted::Same`).
    pub async fn install(
        &self,
        name: &str,
        wasm: &[u8],
    ) -> Result<(Arc<LoadedAdapter>, Inserted), InstallError> {
        crate::names::check_name("adapter", name).map_err(InstallError::Invalid)?;
        let dir = self
            .adapters_dir
            .clone()
            .ok_or_else(|| InstallError::Invalid("this runtime keeps no adapter files".into()))?;
        let staged = self
            .load(name, wasm, String::new())
            .await
            .map_err(|e| InstallError::Invalid(format!("{e:#}")))?;
        let version = staged.info.version.clone();
        let version_ok = !version.is_empty()
            && version.len() <= 64
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
        if !version_ok {
            return Err(InstallError::Invalid(format!(
                "adapter {name} says its version is {version:?}; use 1-64 letters, digits, '.', '-', '+' or '_'"
            )));
        }
        if let Ok(loaded) = self.registry().resolve(&format!("{name}@{version}"))
            && loaded.sha256 == staged.sha256
        {
            return Ok((loaded, Inserted::Same));
        }
        let file = dir.join(format!("{name}@{version}.wasm"));
        let mut adapter = staged;
        adapter.source = file.display().to_string();
        adapter.loaded_at_ms = crate::catalog::now_ms();
        let adapter = Arc::new(adapter);
        // Checked against what is loaded before the file is written, and inserted under the
        // same lock, so two installs of one version cannot both win.
        let mut registry = self.registry_mut();
        if let Err(e) = registry.check_insert(&adapter) {
            return Err(InstallError::Registry(e));
        }
        write_new(&file, wasm).map_err(|e| InstallError::Io(format!("{e:#}")))?;
        let inserted = registry
            .insert(adapter.clone())
            .map_err(InstallError::Registry)?;
        Ok((adapter, inserted))
    }

    /// Takes an adapter (every version, or one) out of use and deletes its files; sessions
    /// already open keep theirs. Callers check first that nothing uses it.
    pub fn uninstall(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<Arc<LoadedAdapter>>, RegistryError> {
        let taken = self.registry_mut().remove(name, version)?;
        for adapter in &taken {
            if let Err(e) = std::fs::remove_file(&adapter.source) {
                tracing::warn!(adapter = %adapter.name, "could not delete {}: {e}", adapter.source);
            }
        }
        Ok(taken)
    }

    /// Asks a new adapter who it is, in a sandbox with no data dir, and checks its answer
    /// agrees with the version its exports are of.
    async fn introduce(
        &self,
        adapter: &LoadedAdapter,
    ) -> anyhow::Result<crate::model::AdapterInfo> {
        let spec = Arc::new(EndpointSpec::new(
            &format!("adapter:{}", adapter.name),
            &adapter.name,
            BTreeMap::new(),
            PathBuf::new(),
        )?);
        let info = self
            .ask_info(adapter, &spec, Arc::default())
            .await
            .with_context(|| format!("adapter {} failed its introduction", adapter.name))?;
        if crate::contract::Version::parse(&info.contract) != Some(adapter.version()) {
            anyhow::bail!(
                "adapter {} reports contract {:?}, but its exports are of contract {}",
                adapter.name,
                info.contract,
                adapter.version()
            );
        }
        Ok(info)
    }

    /// Opens a session on `endpoint` and asks its adapter who it is: that it instantiates in
    /// the endpoint's sandbox and answers (how an endpoint of a kind without an inventory is
    /// tested).
    pub async fn probe(
        &self,
        endpoint: Arc<EndpointSpec>,
    ) -> anyhow::Result<crate::model::AdapterInfo> {
        let adapter = self.adapter(&endpoint.adapter)?;
        let effective = Arc::new(endpoint.effective(&adapter.requested));
        self.ask_info(&adapter, &endpoint, effective).await
    }

    /// One `info` call in a fresh instance.
    async fn ask_info(
        &self,
        adapter: &LoadedAdapter,
        spec: &Arc<EndpointSpec>,
        effective: Arc<Effective>,
    ) -> anyhow::Result<crate::model::AdapterInfo> {
        use translate::IntoHost;
        let mut store = self.new_store(spec, effective)?;
        let instance = adapter
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow!("instantiating adapter {}: {e:?}", adapter.name))?;
        let failed = |e: wasmtime::Error| anyhow!("info call failed: {e:?}");
        Ok(match &adapter.indices {
            bindings::Indices::V0_2(i) => {
                let guest = i.adapter.load(&mut store, &instance).map_err(failed)?;
                guest
                    .call_info(&mut store)
                    .await
                    .map_err(failed)?
                    .into_host()
            }
            bindings::Indices::V0_3(i) => {
                let guest = i.adapter.load(&mut store, &instance).map_err(failed)?;
                guest
                    .call_info(&mut store)
                    .await
                    .map_err(failed)?
                    .into_host()
            }
        })
    }

    /// A store for one step of `endpoint`, with its limits and its first deadline set.
    pub(crate) fn new_store(
        &self,
        endpoint: &Arc<EndpointSpec>,
        effective: Arc<Effective>,
    ) -> anyhow::Result<Store<StoreState>> {
        let state = StoreState::new(endpoint.clone(), effective)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store.set_epoch_deadline(deadline_ticks(endpoint.call_timeout));
        Ok(store)
    }

    /// Opens a fresh sandboxed session on `endpoint` (its adapter must be loaded and its data
    /// directory must exist: it is created once, when the endpoint is configured, not on this
    /// hot path).
    pub async fn open(&self, endpoint: Arc<EndpointSpec>) -> anyhow::Result<Session> {
        let adapter = self.adapter(&endpoint.adapter)?;
        let effective = Arc::new(endpoint.effective(&adapter.requested));
        let mut store = self.new_store(&endpoint, effective)?;
        let instance = adapter
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| {
                anyhow!(
                    "endpoint {}: instantiating adapter {}: {e:?}",
                    endpoint.name,
                    adapter.name
                )
            })?;
        Ok(Session::new(store, instance, adapter))
    }

    /// A loaded adapter by `NAME` (its newest version) or `NAME@VERSION`.
    pub fn adapter(&self, reference: &str) -> anyhow::Result<Arc<LoadedAdapter>> {
        Ok(self.registry().resolve(reference)?)
    }

    /// Like [`adapter`](Self::adapter), as it resolved at `as_of_ms` (a job's start).
    pub fn adapter_as_of(
        &self,
        reference: &str,
        as_of_ms: i64,
    ) -> anyhow::Result<Arc<LoadedAdapter>> {
        Ok(self.registry().resolve_as_of(reference, as_of_ms)?)
    }

    /// Every loaded version of every adapter.
    pub fn adapters(&self) -> Vec<Arc<LoadedAdapter>> {
        self.registry().all()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks for a deadline, rounded up, at least one.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

fn new_engine() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(512)
        .total_memories(256)
        .total_tables(512)
        .total_stacks(256)
        .max_memory_size(endpoint::MAX_MEMORY_CAP as usize);
    let mut pooled = config.clone();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            // A host with little address space cannot reserve the pool; fall back rather
            // than refuse to run.
            tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation");
            Engine::new(&config).map_err(|e| anyhow!("creating the wasm engine: {e:?}"))
        }
    }
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Why an adapter could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstallError {
    /// Not a component of a supported contract, or it says something unusable.
    #[error("{0}")]
    Invalid(String),
    /// In the way of what is loaded.
    #[error(transparent)]
    Registry(RegistryError),
    /// Its file could not be kept.
    #[error("keeping the adapter file: {0}")]
    Io(String),
}

/// Writes `bytes` to a new file (never over an existing one), durably: a temporary file in
/// the same directory, synced, then linked into place create-only.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().context("an adapter file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut staged = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    staged.write_all(bytes)?;
    staged.as_file().sync_all()?;
    match staged.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by an earlier install that was killed after writing: the same bytes are
            // the same adapter; other bytes are not ours to replace.
            let existing = std::fs::read(path)?;
            anyhow::ensure!(
                existing == bytes,
                "{} exists with other contents; remove it by hand",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(e.error).with_context(|| format!("writing {}", path.display())),
    }
}

/// A file's modification time in ms since the epoch (0 when unknown).
fn modified_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    Ok(files)
}
