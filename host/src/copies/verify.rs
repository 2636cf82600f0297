//! `verify`: prove that chosen copies can be restored, by reading back every chunk.
//!
//! Each distinct chunk is read, authenticated, decompressed and re-hashed once per call even
//! if many manifests share it. Packs are read whole and in order, one per worker thread at a
//! time (sequential reads, not a seek per chunk). Damage is reported per manifest, naming the
//! slot, the chunk and its pack, so an operator knows which copies are affected; a missing
//! pack, a truncated one, an index entry past a pack's end and a chunk no index names (a
//! lost index) are each said as such. Packs no index names yet (a crash before a commit's
//! index) hold nothing a copy needs: they are not damage, and gc removes them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::chunk::{ChunkId, decode};
use super::index::Location;
use super::manifest::{ChunkEntry, Manifest};
use super::pack::{PackId, pack_key};
use super::{CopyStore, NOT_INDEXED, default_threads};

/// A chunk verify must read: its id, where the index puts it, its plaintext length.
type Needed = (ChunkId, Location, u32);

/// One damaged slot of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    /// Slot index in the manifest.
    pub index: u64,
    /// The chunk that failed, in hex.
    pub chunk: String,
    /// The pack the index places it in (none if no index names it).
    pub pack: Option<String>,
    /// Why it failed.
    pub reason: String,
}

/// Outcome for one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestReport {
    /// Manifest id.
    pub id: String,
    /// True when the manifest and every chunk it references check out.
    pub ok: bool,
    /// Every slot whose chunk failed.
    pub damaged_chunks: Vec<DamagedChunk>,
    /// Set when the manifest itself could not be read (missing or damaged).
    pub error: Option<String>,
}

/// Outcome of a `verify` call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// One report per manifest asked for, in the order asked.
    pub manifests: Vec<ManifestReport>,
    /// Distinct chunks read.
    pub chunks_checked: u64,
    /// Plaintext bytes of those chunks.
    pub bytes_checked: u64,
}

impl VerifyReport {
    /// True when every manifest checked out.
    pub fn ok(&self) -> bool {
        self.manifests.iter().all(|m| m.ok)
    }
}

impl CopyStore {
    /// Verifies the given manifests and every chunk they reference. Never fails as a whole:
    /// problems are reported per manifest.
    pub fn verify(&self, manifest_ids: &[String]) -> VerifyReport {
        let mut loaded: Vec<(String, Result<Manifest, String>)> = Vec::new();
        let mut chunks: HashMap<ChunkId, u32> = HashMap::new();
        for id in manifest_ids {
            let m = self.read_manifest(id).map_err(|e| e.to_string());
            if let Ok(m) = &m {
                for (c, len) in m.distinct_chunks() {
                    chunks.entry(c).or_insert(len);
                }
            }
            loaded.push((id.clone(), m));
        }
        let failures: Mutex<HashMap<ChunkId, (Option<String>, String)>> =
            Mutex::new(HashMap::new());
        let fail = |id: ChunkId, pack: Option<&PackId>, reason: String| {
            failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, (pack.map(PackId::to_hex), reason));
        };
        if let Err(e) = self.refresh_index() {
            for id in chunks.keys() {
                fail(*id, None, format!("the index cannot be read: {e}"));
            }
        }
        let chunks_checked = chunks.len() as u64;
        let mut packs: HashMap<PackId, Vec<Needed>> = HashMap::new();
        for (id, len) in chunks {
            match self.locate(&id) {
                Some((pack, at)) => packs.entry(pack).or_default().push((id, at, len)),
                None => fail(id, None, NOT_INDEXED.to_string()),
            }
        }
        let packs: Vec<(PackId, Vec<Needed>)> = packs.into_iter().collect();
        let next = AtomicUsize::new(0);
        let bytes = AtomicU64::new(0);
        let threads = default_threads().min(packs.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((pack, blobs)) = packs.get(i) else { break };
                        let key = pack_key(pack);
                        let whole = match self.inner.backend.get(&key) {
                            Ok(b) => b,
                            Err(e) => {
                                let reason = if e.kind() == std::io::ErrorKind::NotFound {
                                    "its pack is missing".to_string()
                                } else {
                                    format!("its pack cannot be read: {e}")
                                };
                                for (id, _, _) in blobs {
                                    fail(*id, Some(pack), reason.clone());
                                }
                                continue;
                            }
                        };
                        for (id, at, len) in blobs {
                            let (start, end) = (at.offset as usize, at.offset as usize + at.len as usize);
                            let Some(blob) = whole.get(start..end) else {
                                fail(*id, Some(pack), format!(
                                    "the index places it at {start}..{end}, past the end of its pack ({} bytes: truncated, or a wrong index entry)",
                                    whole.len()
                                ));
                                continue;
                            };
                            let mut blob = blob.to_vec();
                            match decode(&self.inner.keys, id, &mut blob, *len as usize) {
                                Ok(_) => {
                                    bytes.fetch_add(u64::from(*len), Ordering::Relaxed);
                                }
                                Err(reason) => fail(*id, Some(pack), reason),
                            }
                        }
                    }
                });
            }
        });
        let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
        let manifests = loaded
            .into_iter()
            .map(|(id, m)| match m {
                Err(error) => ManifestReport {
                    id,
                    ok: false,
                    damaged_chunks: Vec::new(),
                    error: Some(error),
                },
                Ok(m) => {
                    let damaged_chunks: Vec<DamagedChunk> = m
                        .entries()
                        .iter()
                        .enumerate()
                        .filter_map(|(index, e)| match e {
                            ChunkEntry::Data { id, .. } => {
                                failures.get(id).map(|(pack, reason)| DamagedChunk {
                                    index: index as u64,
                                    chunk: id.to_hex(),
                                    pack: pack.clone(),
                                    reason: reason.clone(),
                                })
                            }
                            ChunkEntry::Zero { .. } => None,
                        })
                        .collect();
                    ManifestReport {
                        id,
                        ok: damaged_chunks.is_empty(),
                        damaged_chunks,
                        error: None,
                    }
                }
            })
            .collect();
        VerifyReport {
            manifests,
            chunks_checked,
            bytes_checked: bytes.into_inner(),
        }
    }
}
