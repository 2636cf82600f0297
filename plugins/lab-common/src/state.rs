//! The lab's data dir: a block store plus small JSON state files, one file per object so
//! concurrent calls on different objects never overwrite each other.

use lab_blockstore::{BlockStore, Storage, WasiStorage, read_json, write_json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::error::store_error;
use crate::ids::token_key;

/// The lab system behind one endpoint: volumes and state files under `/data`.
pub struct Lab {
    /// Disks or LUNs.
    pub volumes: BlockStore<WasiStorage>,
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
    })
}

impl Lab {
    fn storage(&self) -> &WasiStorage {
        self.volumes.storage()
    }

    /// Reads `dir/name.json`; `None` if absent.
    pub fn load<T: DeserializeOwned>(&self, dir: &str, name: &str) -> AdapterResult<Option<T>> {
        read_json(self.storage(), &format!("{dir}/{name}.json")).map_err(store_error)
    }

    /// Writes `dir/name.json` atomically.
    pub fn save<T: Serialize>(&self, dir: &str, name: &str, value: &T) -> AdapterResult<()> {
        self.storage().create_dir_all(dir).map_err(store_error)?;
        write_json(self.storage(), &format!("{dir}/{name}.json"), value).map_err(store_error)
    }

    /// Removes `dir/name.json`; false if it was absent.
    pub fn remove(&self, dir: &str, name: &str) -> AdapterResult<bool> {
        self.storage()
            .remove_file(&format!("{dir}/{name}.json"))
            .map_err(store_error)
    }

    /// Every object of a directory, sorted by name.
    pub fn load_all<T: DeserializeOwned>(&self, dir: &str) -> AdapterResult<Vec<T>> {
        let mut names: Vec<String> = self
            .storage()
            .list_dir(dir)
            .map_err(store_error)?
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            if let Some(value) = self.load(dir, &name)? {
                all.push(value);
            }
        }
        Ok(all)
    }

    /// What an idempotency token produced earlier, if anything.
    pub fn recall<T: DeserializeOwned>(&self, token: &str) -> AdapterResult<Option<T>> {
        if token.is_empty() {
            return Err(AdapterError::Invalid(
                "idempotency token must not be empty".into(),
            ));
        }
        self.load("tokens", &token_key(token))
    }

    /// Remembers what a token produced, so the same call again returns it.
    pub fn remember<T: Serialize>(&self, token: &str, value: &T) -> AdapterResult<()> {
        self.save("tokens", &token_key(token), value)
    }
}
