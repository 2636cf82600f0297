//! Moving a store between layouts in place: `upgrade` (version 1, one file per chunk, to
//! version 2, pack files) and `rebuild_index` (index objects from the pack headers alone).
//!
//! Upgrade, under the exclusive lock, surviving a crash at any point:
//!
//! 1. packs and index objects of an earlier, interrupted upgrade are deleted (a version-1
//!    store never writes any, so nothing else can have made them);
//! 2. every chunk file is appended unchanged to packs (a version-1 chunk object is exactly a
//!    version-2 blob, sealed against its chunk id), and the packs are made durable;
//! 3. one index object names them all;
//! 4. `config.json` is replaced by its version-2 form with the same key protection (the key
//!    is never touched). This is the one replacement in a store's life; it is atomic, and
//!    either config describes a complete store;
//! 5. the chunk files are deleted (a crash leaves a version-2 store with leftovers, which
//!    `upgrade` run again deletes).

use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::chunk::parse_chunk_key;
use super::config::{CONFIG_KEY, STORE_VERSION, StoreConfig, V1_ONE_FILE_PER_CHUNK};
use super::error::{CopyStoreError, ObjectRef, Result};
use super::index::PackBlobs;
use super::lock::{LockMode, LockWait};
use super::pack::{PackBuilder, parse_pack_key, read_header};
use super::{CopyStore, LocalDir, ObjectStore};

/// What an upgrade did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeReport {
    /// Format version found.
    pub from_version: u64,
    /// Format version now.
    pub to_version: u32,
    /// Chunk files moved into packs.
    pub chunks_packed: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Chunk files of version 1 deleted.
    pub chunk_files_removed: u64,
}

/// What an index rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Packs whose header was read.
    pub packs: u64,
    /// Chunks the new index names.
    pub chunks: u64,
    /// Index objects replaced.
    pub index_objects_replaced: u64,
    /// Packs whose header could not be read (named, with the reason); their chunks are not
    /// indexed, so verify names every copy that needs them.
    pub unreadable_packs: Vec<String>,
}

impl CopyStore {
    /// Upgrades the store on `local` to the current format in place (see the module
    /// comment); a store already current only has version-1 leftovers removed.
    pub fn upgrade_local(local: LocalDir, passphrase: Option<&str>) -> Result<UpgradeReport> {
        let local = Arc::new(local);
        let location = local.location().to_string();
        let bytes = match local.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CopyStoreError::NotInitialised { location });
            }
            Err(source) => {
                return Err(CopyStoreError::Io {
                    op: "read",
                    path: format!("{location}/{CONFIG_KEY}"),
                    source,
                });
            }
        };
        let mut config = StoreConfig::parse_for_upgrade(&bytes, &location, true)?;
        let keys = config.unlock(&location, |f| super::read_key_file(&local, f), passphrase)?;
        let from_version = u64::from(config.version);
        let store = CopyStore::from_parts(local.clone(), keys, &config);
        let _lock = local
            .lock(LockMode::Exclusive, LockWait::Forever)
            .map_err(store.io_err("lock", "lock"))?
            .ok_or_else(|| CopyStoreError::Busy {
                location: location.clone(),
                reason: "copies are being written".to_string(),
            })?;
        local
            .remove_incomplete()
            .map_err(store.io_err("remove incomplete objects in", ""))?;
        let chunk_files: Vec<String> = local
            .list("chunks/")
            .map_err(store.io_err("list", "chunks"))?
            .into_iter()
            .filter(|k| parse_chunk_key(k).is_some())
            .collect();
        let mut report = UpgradeReport {
            from_version,
            to_version: STORE_VERSION,
            ..UpgradeReport::default()
        };
        if from_version == V1_ONE_FILE_PER_CHUNK {
            for prefix in ["packs/", "index/"] {
                for key in local.list(prefix).map_err(store.io_err("list", prefix))? {
                    local.delete(&key).map_err(store.io_err("delete", &key))?;
                }
            }
            local.sync().map_err(store.io_err("sync", ""))?;
            let mut blobs: PackBlobs = Vec::new();
            let mut builder = PackBuilder::default();
            for key in &chunk_files {
                let id = parse_chunk_key(key).expect("filtered above");
                let blob = local.get(key).map_err(store.io_err("read", key))?;
                // The plaintext length is only known after decoding; the manifests have it.
                builder.add(id, 0, &blob);
                report.chunks_packed += 1;
                if builder.len() >= store.inner.pack_target {
                    blobs.push(store.put_pack(std::mem::take(&mut builder))?.0);
                }
            }
            if !builder.is_empty() {
                blobs.push(store.put_pack(builder)?.0);
            }
            report.packs_written = blobs.len() as u64;
            local.sync().map_err(store.io_err("sync", "packs"))?;
            if !blobs.is_empty() {
                store.publish_index(&blobs)?;
            }
            config.version = STORE_VERSION;
            let text = serde_json::to_vec_pretty(&config).expect("config serialises");
            local
                .put(CONFIG_KEY, &text)
                .map_err(store.io_err("write", CONFIG_KEY))?;
            local.sync().map_err(store.io_err("sync", CONFIG_KEY))?;
        }
        for key in &chunk_files {
            if local.delete(key).map_err(store.io_err("delete", key))? {
                report.chunk_files_removed += 1;
            }
        }
        local.sync().map_err(store.io_err("sync", "chunks"))?;
        Ok(report)
    }

    /// Rebuilds the index from the pack headers (after index objects were lost or damaged):
    /// one new index object naming every blob of every readable pack, then the old index
    /// objects deleted. Waits for running copies.
    pub fn rebuild_index(&self, wait: LockWait) -> Result<RebuildReport> {
        let backend = &self.inner.backend;
        let _lock = backend
            .lock(LockMode::Exclusive, wait)
            .map_err(self.io_err("lock", "lock"))?
            .ok_or_else(|| CopyStoreError::Busy {
                location: self.location().to_string(),
                reason: "copies are being written; the rebuild waits for them".to_string(),
            })?;
        let old = backend
            .list("index/")
            .map_err(self.io_err("list", "index"))?;
        let mut report = RebuildReport::default();
        let mut blobs: PackBlobs = Vec::new();
        for key in backend
            .list("packs/")
            .map_err(self.io_err("list", "packs"))?
        {
            let Some(pack) = parse_pack_key(&key) else {
                continue;
            };
            let whole = backend.get(&key).map_err(self.io_err("read", &key))?;
            match read_header(&self.inner.keys, &pack, &whole) {
                Ok(entries) => {
                    report.packs += 1;
                    report.chunks += entries.len() as u64;
                    blobs.push((pack, entries));
                }
                Err(reason) => report.unreadable_packs.push(
                    CopyStoreError::Damaged {
                        object: ObjectRef::Pack(pack.to_hex()),
                        reason,
                    }
                    .to_string(),
                ),
            }
        }
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = Default::default();
        let new_key = if blobs.is_empty() {
            None
        } else {
            Some(self.publish_index(&blobs)?)
        };
        for key in old.iter().filter(|k| Some(*k) != new_key.as_ref()) {
            if backend.delete(key).map_err(self.io_err("delete", key))? {
                report.index_objects_replaced += 1;
            }
        }
        backend.sync().map_err(self.io_err("sync", "index"))?;
        Ok(report)
    }
}
