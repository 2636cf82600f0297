//! Write sessions: putting chunks and committing manifests, under the shared store lock.
//!
//! Crash safety comes from ordering: chunks are put (staged), then `commit` makes every put
//! durable, then writes the manifest atomically, then makes it durable. A crash at any point
//! leaves at most chunks no manifest references, which gc removes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::CopyStore;
use super::chunk::{ChunkId, chunk_key, encode, is_zero};
use super::error::{CopyStoreError, Result};
use super::lock::{LockGuard, LockMode, LockWait};
use super::manifest::{ChunkEntry, Manifest, check_manifest_id, manifest_key};

/// Hasher for sets keyed by [`ChunkId::short`]: ids are already uniformly random.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of chunk ids by their first 8 bytes.
pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// How many recently written chunks a session remembers to deduplicate repeats that the
/// backend has not published yet; bounded so huge devices keep bounded memory (forgetting
/// one only costs writing it twice).
const RECENT_MAX: usize = 65_536;

/// What [`WriteSession::put_chunk`] did with one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// The manifest entry for the chunk.
    pub entry: ChunkEntry,
    /// Bytes newly written to the store (0 when deduplicated or zero).
    pub stored_bytes: u64,
    /// Whether a new chunk object was written.
    pub new: bool,
}

/// A write session: holds the store lock shared until dropped (with all its clones).
///
/// Cheap to clone and `Send + Sync`, so worker threads can put chunks concurrently.
#[derive(Clone)]
pub struct WriteSession {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    store: CopyStore,
    /// Chunks known to be stored for this session's commits: put by it, or referenced by a
    /// manifest read under its lock. Keyed by the first 8 bytes of the id (uniformly random;
    /// a collision would only skip one existence check), to keep big devices cheap.
    known: Mutex<IdSet>,
    /// Full ids (and stored sizes) of chunks this session wrote recently.
    recent: Mutex<HashMap<ChunkId, u64>>,
    _lock: LockGuard,
}

impl std::fmt::Debug for WriteSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteSession")
            .field("store", &self.inner.store.location())
            .finish()
    }
}

impl WriteSession {
    pub(crate) fn begin(store: &CopyStore, wait: LockWait) -> Result<WriteSession> {
        let lock = store
            .inner
            .backend
            .lock(LockMode::Shared, wait)
            .map_err(store.io_err("lock", "lock"))?
            .ok_or_else(|| CopyStoreError::Busy {
                location: store.location().to_string(),
                reason: "gc is running".to_string(),
            })?;
        Ok(WriteSession {
            inner: Arc::new(SessionInner {
                store: store.clone(),
                known: Mutex::new(IdSet::default()),
                recent: Mutex::new(HashMap::new()),
                _lock: lock,
            }),
        })
    }

    /// The store this session writes to.
    pub fn store(&self) -> &CopyStore {
        &self.inner.store
    }

    /// The store's chunk size; every chunk but a device's last must have exactly this size.
    pub fn chunk_size(&self) -> u32 {
        self.inner.store.inner.chunk_size
    }

    fn remember(&self, id: &ChunkId) {
        self.inner
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.short());
    }

    fn is_known(&self, id: &ChunkId) -> bool {
        self.inner
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id.short())
    }

    /// Stores one chunk (1 byte ..= chunk size) unless it is all zeros or already stored, and
    /// returns its manifest entry. Thread-safe; CPU-heavy (hash, compress, encrypt), so call
    /// it from worker threads (see [`super::ParallelPut`]).
    pub fn put_chunk(&self, data: &[u8]) -> Result<PutOutcome> {
        let store = &self.inner.store.inner;
        if data.is_empty() || data.len() > store.chunk_size as usize {
            return Err(CopyStoreError::InvalidChunk {
                reason: format!(
                    "{} bytes; a chunk holds 1 to {} bytes",
                    data.len(),
                    store.chunk_size
                ),
            });
        }
        let len = data.len() as u32;
        if is_zero(data) {
            return Ok(PutOutcome {
                entry: ChunkEntry::Zero { len },
                stored_bytes: 0,
                new: false,
            });
        }
        let id = store.keys.chunk_id(data);
        let key = chunk_key(&id);
        let recent = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied();
        let existing = match recent {
            Some(size) => Some(size),
            None => store
                .backend
                .size(&key)
                .map_err(self.inner.store.io_err("check", &key))?,
        };
        let (stored, new) = match existing {
            Some(size) => (size, false),
            None => {
                let size = encode(&store.keys, &id, data, store.zstd_level, |obj| {
                    store.backend.put(&key, obj).map(|()| obj.len() as u64)
                })
                .and_then(|r| r)
                .map_err(self.inner.store.io_err("write", &key))?;
                let mut recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.len() >= RECENT_MAX {
                    recent.clear();
                }
                recent.insert(id, size);
                (size, true)
            }
        };
        self.remember(&id);
        Ok(PutOutcome {
            entry: ChunkEntry::Data {
                id,
                len,
                stored: u32::try_from(stored).unwrap_or(u32::MAX),
            },
            stored_bytes: if new { stored } else { 0 },
            new,
        })
    }

    /// Reads a manifest under this session's lock, typically the previous copy of the device
    /// an incremental copy starts from. Reading it here (not before `begin_write`) guarantees
    /// gc has not freed its chunks, so they can be reused without re-checking.
    pub fn read_manifest(&self, id: &str) -> Result<Manifest> {
        let m = self.inner.store.read_manifest(id)?;
        let mut known = self.inner.known.lock().unwrap_or_else(|e| e.into_inner());
        for e in m.entries() {
            if let Some(id) = e.id() {
                known.insert(id.short());
            }
        }
        Ok(m)
    }

    /// Publishes a device copy: checks the manifest, makes every chunk durable, then writes
    /// the manifest atomically and makes it durable. Only after this returns is the copy
    /// visible to `list_manifests`; a crash before leaves only unreferenced chunks.
    ///
    /// Every referenced chunk must be stored: entries not put or read in this session are
    /// checked one by one and a missing one fails with `MissingChunk`. Committing an id that
    /// exists replaces it (a retried commit is harmless).
    pub fn commit(&self, id: &str, manifest: &Manifest) -> Result<()> {
        check_manifest_id(id)?;
        let store = &self.inner.store;
        if manifest.chunk_size() != store.chunk_size() {
            return Err(CopyStoreError::InvalidManifest {
                reason: format!(
                    "chunk size {} differs from the store's {}",
                    manifest.chunk_size(),
                    store.chunk_size()
                ),
            });
        }
        manifest.validate()?;
        for (index, e) in manifest.entries().iter().enumerate() {
            let Some(chunk) = e.id() else { continue };
            if self.is_known(chunk) {
                continue;
            }
            let key = chunk_key(chunk);
            if store
                .inner
                .backend
                .exists(&key)
                .map_err(store.io_err("check", &key))?
            {
                self.remember(chunk);
            } else {
                return Err(CopyStoreError::MissingChunk {
                    id: id.to_string(),
                    index: index as u64,
                    chunk: *chunk,
                });
            }
        }
        let obj = manifest.encode(&store.inner.keys, id)?;
        let backend = &store.inner.backend;
        backend.sync().map_err(store.io_err("sync", "chunks"))?;
        let key = manifest_key(id);
        backend
            .put(&key, &obj)
            .map_err(store.io_err("write", &key))?;
        backend.sync().map_err(store.io_err("sync", &key))?;
        Ok(())
    }
}
