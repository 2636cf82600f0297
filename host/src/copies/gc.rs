//! gc: free the chunks no manifest references.
//!
//! Safe against concurrent copies because it holds the store lock exclusively (write
//! sessions hold it shared until their manifests are committed), and safe against damage
//! because it refuses to delete anything if any manifest cannot be read.

use std::io;

use serde::{Deserialize, Serialize};

use super::CopyStore;
use super::chunk::parse_chunk_key;
use super::error::{CopyStoreError, Result};
use super::lock::{LockMode, LockWait};
use super::session::IdSet;

/// What a gc run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Manifests read (all of them).
    pub manifests: u64,
    /// Chunk objects present before gc.
    pub chunks_total: u64,
    /// Chunk objects deleted.
    pub chunks_freed: u64,
    /// Bytes of the deleted chunk objects.
    pub bytes_freed: u64,
    /// Leftovers of interrupted writes removed.
    pub incomplete_removed: u64,
    /// Manifests deleted because the caller's live set did not hold them.
    pub manifests_removed: u64,
}

impl CopyStore {
    /// Deletes every chunk that no manifest references, and the leftovers of interrupted
    /// writes. Waits for running write sessions as `wait` says (`Busy` if it runs out).
    pub fn gc(&self, wait: LockWait) -> Result<GcReport> {
        self.gc_keeping(wait, || Ok(|_: &str| true))
    }

    /// Like [`CopyStore::gc`], and also deletes every manifest `live` does not keep (copies
    /// that crashed before their owner recorded them). `live` is evaluated only once the
    /// exclusive lock is held, so no copy can commit a manifest after the live set was read.
    pub fn gc_keeping<F, P>(&self, wait: LockWait, live: F) -> Result<GcReport>
    where
        F: FnOnce() -> std::result::Result<P, String>,
        P: Fn(&str) -> bool,
    {
        let backend = &self.inner.backend;
        let _lock = backend
            .lock(LockMode::Exclusive, wait)
            .map_err(self.io_err("lock", "lock"))?
            .ok_or_else(|| CopyStoreError::Busy {
                location: self.location().to_string(),
                reason: "copies are being written; gc waits for them to finish".to_string(),
            })?;
        let mut report = GcReport {
            incomplete_removed: backend
                .remove_incomplete()
                .map_err(self.io_err("remove incomplete objects in", ""))?,
            ..GcReport::default()
        };
        // Referenced ids by their first 8 bytes: a few bytes per chunk even for huge stores.
        // A prefix collision can only keep an unreferenced chunk, never free a referenced one.
        let keep = live().map_err(|reason| CopyStoreError::Busy {
            location: self.location().to_string(),
            reason: format!("cannot tell which copies are live: {reason}"),
        })?;
        let mut referenced = IdSet::default();
        for id in self.list_manifests()? {
            if !keep(&id) {
                self.delete_manifest(&id)?;
                report.manifests_removed += 1;
                continue;
            }
            match self.read_manifest(&id) {
                Ok(m) => {
                    report.manifests += 1;
                    referenced.extend(m.entries().iter().filter_map(|e| e.id().map(|i| i.short())));
                }
                // Deleted since it was listed: its chunks are simply not kept for it.
                Err(CopyStoreError::ManifestNotFound { .. }) => {}
                Err(e) => {
                    return Err(CopyStoreError::GcRefused {
                        id,
                        reason: e.to_string(),
                    });
                }
            }
        }
        // Make earlier manifest deletions durable before freeing their chunks, so a crash
        // cannot bring back a manifest whose chunks are gone.
        backend.sync().map_err(self.io_err("sync", ""))?;
        let keys = backend
            .list("chunks/")
            .map_err(self.io_err("list", "chunks"))?;
        for key in keys {
            // Files under chunks/ that are not chunk objects are left alone.
            let Some(id) = parse_chunk_key(&key) else {
                continue;
            };
            report.chunks_total += 1;
            if referenced.contains(&id.short()) {
                continue;
            }
            let size = backend.size(&key).map_err(self.io_err("check", &key))?;
            match backend.delete(&key) {
                Ok(true) => {
                    report.chunks_freed += 1;
                    report.bytes_freed += size.unwrap_or(0);
                }
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err("delete", &key)(e)),
            }
        }
        backend.sync().map_err(self.io_err("sync", "chunks"))?;
        Ok(report)
    }
}
