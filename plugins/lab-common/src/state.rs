//! The lab's data dir: a block store plus small JSON state files (the SDK's records), one
//! file per object so concurrent calls on different objects never overwrite each other.

use lab_blockstore::{BlockStore, WasiStorage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidemark_sdk::records::Records;
use tidemark_sdk::{AdapterError, AdapterResult};

/// The lab system behind one endpoint: volumes and state files under `/data`.
pub struct Lab {
    /// Disks or LUNs.
    pub volumes: BlockStore<WasiStorage>,
    /// The JSON state files.
    pub records: Records,
}

/// Opens the endpoint's data dir (preopened by the host at `/data`).
pub fn lab() -> AdapterResult<Lab> {
    let storage = WasiStorage::preopened("/data").map_err(|e| {
        AdapterError::Internal(format!(
            "the lab needs its data dir preopened at /data: {e}"
        ))
    })?;
    Ok(Lab {
        volumes: BlockStore::new(storage),
        records: Records::open()?,
    })
}

impl Lab {
    /// Reads `dir/name.json`; `None` if absent.
    pub fn load<T: DeserializeOwned>(&self, dir: &str, name: &str) -> AdapterResult<Option<T>> {
        self.records.load(dir, name)
    }

    /// Writes `dir/name.json` atomically.
    pub fn save<T: Serialize>(&self, dir: &str, name: &str, value: &T) -> AdapterResult<()> {
        self.records.save(dir, name, value)
    }

    /// Removes `dir/name.json`; false if it was absent.
    pub fn remove(&self, dir: &str, name: &str) -> AdapterResult<bool> {
        self.records.remove(dir, name)
    }

    /// Every object of a directory, sorted by name.
    pub fn load_all<T: DeserializeOwned>(&self, dir: &str) -> AdapterResult<Vec<T>> {
        self.records.load_all(dir)
    }

    /// What an idempotency token produced earlier, if anything.
    pub fn recall<T: DeserializeOwned>(&self, token: &str) -> AdapterResult<Option<T>> {
        self.records.recall(token)
    }

    /// Remembers what a token produced, so the same call again returns it.
    pub fn remember<T: Serialize>(&self, token: &str, value: &T) -> AdapterResult<()> {
        self.records.remember(token, value)
    }
}
