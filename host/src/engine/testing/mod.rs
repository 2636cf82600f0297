//! What engine tests share: in-process fakes of the ports ([`fakes`]) and a ready engine
//! over them with a catalog and a copy store in a temporary directory.

pub mod fakes;
#[cfg(test)]
mod workflow_tests;

use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::catalog::Catalog;
use crate::copies::{CopyStore, KeySource};
use crate::engine::{CopyStoreOpener, Engine};

/// A copy store made in a directory on first use, as the data directory's opener does.
pub struct TempStore {
    dir: std::path::PathBuf,
    store: std::sync::OnceLock<Arc<CopyStore>>,
}

impl CopyStoreOpener for TempStore {
    fn open(&self, create: bool) -> anyhow::Result<Arc<CopyStore>> {
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        anyhow::ensure!(create, "no copy store yet");
        std::fs::create_dir_all(&self.dir)?;
        let dir = Dir::open_ambient_dir(&self.dir, ambient_authority())?;
        let store = CopyStore::init(dir, KeySource::KeyFile, 64 * 1024)?;
        Ok(self.store.get_or_init(|| Arc::new(store)).clone())
    }

    fn opened(&self) -> Option<Arc<CopyStore>> {
        self.store.get().cloned()
    }
}

/// An engine over the fakes, a fresh catalog and a copy store, all in a temporary directory
/// that lives as long as the returned guard.
pub fn engine_over(systems: &fakes::FakeSystems) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let catalog = Arc::new(Catalog::open(&dir.path().join("catalog.sqlite")).expect("a catalog"));
    let store = Arc::new(TempStore {
        dir: dir.path().join("copies"),
        store: std::sync::OnceLock::new(),
    });
    let engine = Engine::new(catalog, Arc::new(systems.clone()), store).expect("an engine");
    (engine, dir)
}
