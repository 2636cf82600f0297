//! Opens a data directory: catalog, adapter runtime, configured endpoints, engine. Who may
//! open it for writing is settled first by [`ownership`].
//!
//! Layout: `catalog.sqlite`, `adapters/*.wasm` (external adapters), `endpoints/<name>/`
//! (each endpoint's private data, the only directory its sandbox sees), `cache/` (compiled
//! adapters). The host reaches them through a cap-std `Dir` rooted at the data directory.

mod adapters;
pub mod ownership;
pub mod secrets;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::catalog::{CATALOG_FILE, Catalog};
use crate::copies::{CopyStore, CopyStoreError, DEFAULT_CHUNK_SIZE, KeySource};
use crate::engine::ports::{AdapterAdmin, Endpoints};
use crate::engine::{CopyStoreOpener, Engine};
use crate::model::AdapterKind;
use crate::refusal::Refusal;
use adapters::Adapters;

/// The copy store's directory inside the data directory.
pub const COPIES_DIR: &str = "copies";

/// The environment variable holding the copy store's passphrase (if it uses one).
pub const PASSPHRASE_ENV: &str = "TIDEMARK_COPY_PASSPHRASE";

/// Everything a command needs from one data directory.
pub struct DataDir {
    pub data_dir: PathBuf,
    pub root: Dir,
    pub catalog: Arc<Catalog>,
    /// Loaded adapters and configured endpoints (the runtime lives behind it).
    adapters: Arc<Adapters>,
    pub engine: Arc<Engine>,
    /// The copy store, opened (or made) on first use; the engine holds the same opener.
    pub copies: Arc<StoreOpener>,
    /// Seals and opens the endpoints' secrets.
    vault: secrets::Vault,
}

/// Opens the copy store under `copies/` on first use and keeps it open: what the engine's
/// jobs and the API's copy upkeep share, so the store's location and key handling live here.
pub struct StoreOpener {
    root: Dir,
    location: PathBuf,
    /// One opening (or creation) at a time: two concurrent first copies must not both make
    /// a key.
    opening: std::sync::Mutex<()>,
    store: std::sync::OnceLock<Arc<CopyStore>>,
}

impl StoreOpener {
    fn new(root: &Dir, data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            root: root
                .try_clone()
                .context("sharing the data directory handle")?,
            location: data_dir.join(COPIES_DIR),
            opening: std::sync::Mutex::new(()),
            store: std::sync::OnceLock::new(),
        })
    }

    /// Opens, or with `create` makes, the store; a passphrase comes from
    /// `TIDEMARK_COPY_PASSPHRASE`. A store that cannot be opened for a reason of its state
    /// (none yet, passphrase missing or not used) is a conflict refusal saying what to do.
    fn open_now(&self, create: bool) -> anyhow::Result<Arc<CopyStore>> {
        let _one_at_a_time = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        let location = &self.location;
        self.root
            .create_dir_all(COPIES_DIR)
            .with_context(|| format!("creating {}", location.display()))?;
        let open_dir = || {
            self.root
                .open_dir(COPIES_DIR)
                .with_context(|| format!("opening {}", location.display()))
        };
        let store = match CopyStore::open(open_dir()?, passphrase.as_deref()) {
            Ok(store) => store,
            Err(CopyStoreError::NotInitialised { .. }) if create => {
                let key = match passphrase {
                    Some(p) => KeySource::Passphrase(p),
                    None => KeySource::KeyFile,
                };
                CopyStore::init(open_dir()?, key, DEFAULT_CHUNK_SIZE)
                    .with_context(|| format!("creating the copy store {}", location.display()))?
            }
            // The state of the store is in the way, not the request: conflicts.
            Err(CopyStoreError::NotInitialised { .. }) => {
                return Err(Refusal::conflict(format!(
                    "there is no copy store at {} yet; `tidemark copy` creates it",
                    location.display()
                )));
            }
            Err(e @ CopyStoreError::PassphraseRequired { .. }) => {
                return Err(Refusal::conflict(format!("{e}: set {PASSPHRASE_ENV}")));
            }
            Err(e @ CopyStoreError::PassphraseNotUsed { .. }) => {
                return Err(Refusal::conflict(format!("{e}: unset {PASSPHRASE_ENV}")));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(self.store.get_or_init(|| Arc::new(store)).clone())
    }
}

impl CopyStoreOpener for StoreOpener {
    fn open(&self, create: bool) -> anyhow::Result<Arc<CopyStore>> {
        self.open_now(create)
    }

    fn opened(&self) -> Option<Arc<CopyStore>> {
        self.store.get().cloned()
    }
}

impl DataDir {
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
        let vault = secrets::Vault::new(&root)?;
        let endpoints = catalog.endpoints()?;
        let mut endpoint_secrets = std::collections::BTreeMap::new();
        // Opened only where secrets are recorded, so a data directory without any never
        // reads (or derives) a key.
        for name in catalog.secret_names()?.keys() {
            match crate::engine::services::endpoints::open_all(&catalog, &vault, name) {
                Ok(values) => {
                    endpoint_secrets.insert(name.clone(), values);
                }
                Err(e) => tracing::warn!(
                    endpoint = %name,
                    "its secrets cannot be opened, so its adapter gets none: {e:#}"
                ),
            }
        }
        let adapters =
            Arc::new(Adapters::open(&root, data_dir, &endpoints, endpoint_secrets).await?);
        let copies = Arc::new(StoreOpener::new(&root, data_dir)?);
        let engine = Arc::new(Engine::new(
            catalog.clone(),
            adapters.endpoints(),
            copies.clone(),
        )?);
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            root,
            catalog,
            adapters,
            engine,
            copies,
            vault,
        })
    }

    /// Seals and opens the endpoints' secrets.
    pub fn vault(&self) -> &dyn crate::engine::ports::SecretVault {
        &self.vault
    }

    /// The copy store, opened (or, with `create`, made) on first use; see [`StoreOpener`].
    pub fn attach_copy_store(&self, create: bool) -> anyhow::Result<Arc<CopyStore>> {
        self.copies.open(create)
    }

    /// The endpoints as the engine sees them.
    pub fn endpoints(&self) -> &dyn Endpoints {
        self.adapters.sessions()
    }

    /// The adapters and endpoints as an operator manages them.
    pub fn admin(&self) -> &dyn AdapterAdmin {
        self.adapters.as_ref()
    }

    /// Names of the configured hypervisor endpoints.
    pub fn hypervisors(&self) -> Vec<String> {
        self.adapters.names_of(AdapterKind::Hypervisor)
    }

    /// Names of the configured array endpoints.
    pub fn arrays(&self) -> Vec<String> {
        self.adapters.names_of(AdapterKind::StorageArray)
    }
}
