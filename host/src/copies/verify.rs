//! `verify`: prove that chosen copies can be restored, by reading back every chunk.
//!
//! Each distinct chunk is read, authenticated, decompressed and re-hashed once per call even
//! if many manifests share it, on worker threads. Damage is reported per manifest, naming the
//! slot and chunk, so an operator knows which copies are affected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::chunk::ChunkId;
use super::manifest::{ChunkEntry, Manifest};
use super::{CopyStore, default_threads};

/// One damaged slot of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    /// Slot index in the manifest.
    pub index: u64,
    /// The chunk that failed, in hex.
    pub chunk: String,
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
        let list: Vec<(ChunkId, u32)> = chunks.into_iter().collect();
        let failures: Mutex<HashMap<ChunkId, String>> = Mutex::new(HashMap::new());
        let next = AtomicUsize::new(0);
        let bytes = AtomicU64::new(0);
        let threads = default_threads().min(list.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((id, len)) = list.get(i) else { break };
                        match self.load_chunk(id, *len as usize) {
                            Ok(_) => {
                                bytes.fetch_add(*len as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                let reason = match e {
                                    super::CopyStoreError::Damaged { reason, .. } => reason,
                                    other => other.to_string(),
                                };
                                failures
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(*id, reason);
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
                                failures.get(id).map(|reason| DamagedChunk {
                                    index: index as u64,
                                    chunk: id.to_hex(),
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
            chunks_checked: list.len() as u64,
            bytes_checked: bytes.into_inner(),
        }
    }
}
