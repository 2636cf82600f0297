//! gc: free the chunks no manifest references, pack by pack.
//!
//! Safe against concurrent copies because it holds the store lock exclusively (write
//! sessions hold it shared until their manifests are committed), and safe against damage
//! because it refuses to delete anything if any manifest cannot be read.
//!
//! A pack whose live share (bytes of blobs some manifest references, against the pack's
//! size) is zero is deleted; one below the repack threshold has its live blobs copied,
//! unchanged, into new packs and is deleted. Packs no index names (a crash before a commit's
//! index) are deleted. The index is then replaced, crash-safely and without renames: new
//! packs durable, one new index object durable, old index objects deleted and that made
//! durable, and only then old packs deleted. A crash in between leaves index objects whose
//! packs all exist, or packs no index names, which the next gc removes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::CopyStore;
use super::error::{CopyStoreError, ObjectRef, Result};
use super::index::PackBlobs;
use super::lock::{LockMode, LockWait};
use super::pack::{BlobEntry, PackBuilder, PackId, header_len, pack_key, parse_pack_key};
use super::session::IdSet;

/// Default repack threshold in percent: a pack less than half live is rewritten.
pub const DEFAULT_REPACK_BELOW: u8 = 50;

/// What a gc run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Manifests read (all of them).
    pub manifests: u64,
    /// Chunks indexed before gc.
    pub chunks_total: u64,
    /// Chunks dropped (no manifest references them).
    pub chunks_freed: u64,
    /// Bytes the store shrank by (deleted packs less the packs written by repacking).
    pub bytes_freed: u64,
    /// Pack files present before gc.
    pub packs_total: u64,
    /// Packs deleted (empty, repacked, or named by no index).
    pub packs_deleted: u64,
    /// Packs whose live blobs were copied into new packs.
    pub packs_repacked: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
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
    /// Repacks below [`DEFAULT_REPACK_BELOW`] percent.
    pub fn gc_keeping<F, P>(&self, wait: LockWait, live: F) -> Result<GcReport>
    where
        F: FnOnce() -> std::result::Result<P, String>,
        P: Fn(&str) -> bool,
    {
        self.gc_repacking(wait, live, DEFAULT_REPACK_BELOW)
    }

    /// Like [`CopyStore::gc_keeping`] with the repack threshold in percent (0 never repacks,
    /// 100 repacks every pack with any dead blob).
    pub fn gc_repacking<F, P>(&self, wait: LockWait, live: F, repack_below: u8) -> Result<GcReport>
    where
        F: FnOnce() -> std::result::Result<P, String>,
        P: Fn(&str) -> bool,
    {
        if repack_below > 100 {
            return Err(CopyStoreError::InvalidOption {
                reason: format!("repack threshold {repack_below}% is above 100%"),
            });
        }
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
        self.sweep_packs(&referenced, repack_below, &mut report)?;
        Ok(report)
    }

    /// Deletes and repacks packs by their live share, then replaces the index (see the
    /// module comment). Runs under the exclusive lock.
    fn sweep_packs(
        &self,
        referenced: &IdSet,
        repack_below: u8,
        report: &mut GcReport,
    ) -> Result<()> {
        let backend = &self.inner.backend;
        // The whole index, read afresh: every object, not what this handle saw before.
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = Default::default();
        self.refresh_index()?;
        let (by_pack, old_objects, total) = {
            let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            (index.by_pack(), index.objects.clone(), index.len() as u64)
        };
        report.chunks_total = total;
        let packs: HashSet<PackId> = backend
            .list("packs/")
            .map_err(self.io_err("list", "packs"))?
            .iter()
            .filter_map(|k| parse_pack_key(k))
            .collect();
        report.packs_total = packs.len() as u64;
        let mut doomed: Vec<PackId> = packs
            .iter()
            .filter(|p| !by_pack.contains_key(p))
            .copied()
            .collect();
        let mut keep: PackBlobs = Vec::new();
        let mut repack: Vec<(PackId, Vec<BlobEntry>)> = Vec::new();
        let mut changed = old_objects.len() > 1;
        for (pack, entries) in by_pack {
            let (live, dead): (Vec<_>, Vec<_>) = entries
                .into_iter()
                .partition(|e| referenced.contains(&e.id.short()));
            report.chunks_freed += dead.len() as u64;
            changed |= !dead.is_empty();
            let key = pack_key(&pack);
            let size = backend.size(&key).map_err(self.io_err("check", &key))?;
            let Some(size) = size else {
                // A missing pack: keep its entries so verify goes on naming it.
                keep.push((pack, live));
                continue;
            };
            let live_bytes: u64 = live.iter().map(|e| u64::from(e.len)).sum();
            // Blob bytes of the pack, as far as its size tells (dead entries may have left
            // the index in an earlier gc): a fully live pack comes out at exactly 100%.
            let blob_bytes = size.saturating_sub(header_len(live.len()) as u64).max(1);
            if live.is_empty() {
                doomed.push(pack);
            } else if live_bytes * 100 < blob_bytes * u64::from(repack_below) {
                repack.push((pack, live));
            } else {
                keep.push((pack, live));
            }
        }
        let kept_before = keep.len();
        let mut builder = PackBuilder::default();
        let mut buf = Vec::new();
        let mut written = 0u64;
        for (pack, live) in &repack {
            let key = pack_key(pack);
            for e in live {
                backend
                    .get_range_into(&key, u64::from(e.offset), e.len as usize, &mut buf)
                    .map_err(|err| CopyStoreError::Damaged {
                        object: ObjectRef::Pack(pack.to_hex()),
                        reason: format!("reading chunk {} to repack it: {err}", e.id),
                    })?;
                builder.add(e.id, e.plain_len, &buf);
                if builder.len() >= self.inner.pack_target {
                    let (pack, bytes) = self.put_pack(std::mem::take(&mut builder))?;
                    written += bytes;
                    keep.push(pack);
                }
            }
            doomed.push(*pack);
            report.packs_repacked += 1;
        }
        if !builder.is_empty() {
            let (pack, bytes) = self.put_pack(builder)?;
            written += bytes;
            keep.push(pack);
        }
        report.packs_written = keep.len().saturating_sub(kept_before) as u64;
        if !changed && doomed.is_empty() {
            return Ok(());
        }
        backend.sync().map_err(self.io_err("sync", "packs"))?;
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = Default::default();
        let new_key = if keep.iter().any(|(_, e)| !e.is_empty()) {
            Some(self.publish_index(&keep)?)
        } else {
            None
        };
        for key in old_objects.iter().filter(|k| Some(*k) != new_key.as_ref()) {
            backend.delete(key).map_err(self.io_err("delete", key))?;
        }
        backend.sync().map_err(self.io_err("sync", "index"))?;
        for pack in doomed {
            let key = pack_key(&pack);
            let size = backend.size(&key).map_err(self.io_err("check", &key))?;
            if backend.delete(&key).map_err(self.io_err("delete", &key))? {
                report.packs_deleted += 1;
                report.bytes_freed += size.unwrap_or(0);
            }
        }
        backend.sync().map_err(self.io_err("sync", "packs"))?;
        report.bytes_freed = report.bytes_freed.saturating_sub(written);
        Ok(())
    }
}
