//! Write sessions: putting chunks and committing manifests, under the shared store lock.
//!
//! Chunks are sealed on the caller's threads and appended to packs, one open pack per writer
//! lane. Crash safety comes from ordering: `commit` closes the open packs, makes every pack
//! durable, then writes an index object naming their blobs (create-only), then the manifest.
//! A crash at any point leaves at most packs no index names, or chunks no manifest
//! references; verify ignores both and gc removes them.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::chunk::{ChunkId, Packing, encode, is_zero};
use super::error::{CopyStoreError, Result};
use super::index::PackBlobs;
use super::lock::{LockGuard, LockMode, LockWait};
use super::manifest::{ChunkEntry, Manifest, check_manifest_id, manifest_key};
use super::pack::PackBuilder;
use super::{CopyStore, crash_hook};

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
    /// How a new chunk was sealed (`None` when nothing was written).
    pub packing: Option<Packing>,
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
    /// Open packs, one per writer lane, so workers rarely wait for each other.
    lanes: Vec<Mutex<PackBuilder>>,
    next_lane: AtomicUsize,
    /// Closed packs being written: `commit` waits until none is, so every chunk whose put
    /// returned is in `written` before the index is.
    writing: Mutex<usize>,
    written_cv: Condvar,
    /// Blobs of packs written (not yet durable) that no index object names yet.
    written: Mutex<PackBlobs>,
    /// Set when a pack could not be written: chunks whose puts had returned are lost, so no
    /// manifest of this session may be committed.
    lost: Mutex<Option<String>>,
    _lock: LockGuard,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let held = store
            .inner
            .backend
            .lock(LockMode::Shared, wait)
            .map_err(store.io_err("lock", "lock"))?
            .ok_or_else(|| CopyStoreError::Busy {
                location: store.location().to_string(),
                reason: "gc is running".to_string(),
            })?;
        // Under the lock: what gc left is what this session deduplicates against.
        store.refresh_index()?;
        let lock = held;
        Ok(WriteSession {
            inner: Arc::new(SessionInner {
                store: store.clone(),
                known: Mutex::new(IdSet::default()),
                recent: Mutex::new(HashMap::new()),
                lanes: (0..store.inner.lanes)
                    .map(|_| Mutex::new(PackBuilder::default()))
                    .collect(),
                next_lane: AtomicUsize::new(0),
                writing: Mutex::new(0),
                written_cv: Condvar::new(),
                written: Mutex::new(Vec::new()),
                lost: Mutex::new(None),
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
                packing: None,
            });
        }
        let id = store.keys.chunk_id(data);
        let recent = lock(&self.inner.recent).get(&id).copied();
        // Dedup before compress: a stored chunk is never sealed again.
        let existing = recent.or_else(|| {
            self.inner
                .store
                .locate(&id)
                .map(|(_, at)| u64::from(at.len))
        });
        let (stored, new, packing) = match existing {
            Some(size) => (size, false, None),
            None => {
                let (size, packing) = encode(&store.keys, &id, data, store.zstd_level, |obj| {
                    self.append(id, len, obj)
                })
                .map_err(self.inner.store.io_err("seal", "packs"))?;
                let size = size?;
                let mut recent = lock(&self.inner.recent);
                if recent.len() >= RECENT_MAX {
                    recent.clear();
                }
                recent.insert(id, size);
                (size, true, Some(packing))
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
            packing,
        })
    }

    /// Appends a sealed chunk to an open pack; closes and writes the pack once it is full.
    /// Returns the blob's stored size.
    fn append(&self, id: ChunkId, len: u32, blob: &[u8]) -> Result<u64> {
        let lanes = &self.inner.lanes;
        let start = self.inner.next_lane.fetch_add(1, Ordering::Relaxed);
        // The first free lane, else wait for the one this put was dealt.
        let mut lane = (0..lanes.len())
            .find_map(|k| lanes[(start + k) % lanes.len()].try_lock().ok())
            .unwrap_or_else(|| lock(&lanes[start % lanes.len()]));
        lane.add(id, len, blob);
        if lane.len() >= self.inner.store.inner.pack_target {
            let full = std::mem::take(&mut *lane);
            *lock(&self.inner.writing) += 1;
            drop(lane);
            let r = self.write_pack(full);
            *lock(&self.inner.writing) -= 1;
            self.inner.written_cv.notify_all();
            if let Err(e) = &r {
                lock(&self.inner.lost).get_or_insert_with(|| e.to_string());
            }
            r?;
        }
        Ok(blob.len() as u64)
    }

    /// Seals a closed pack and puts it (durable at the next sync).
    fn write_pack(&self, pack: PackBuilder) -> Result<()> {
        let (blobs, _) = self.inner.store.put_pack(pack)?;
        lock(&self.inner.written).push(blobs);
        crash_hook::pack_written();
        Ok(())
    }

    /// Closes every open pack and waits for packs being written, so every chunk whose put
    /// has returned is in `written`.
    fn close_packs(&self) -> Result<()> {
        for lane in &self.inner.lanes {
            let open = std::mem::take(&mut *lock(lane));
            if !open.is_empty() {
                self.write_pack(open)?;
            }
        }
        let mut writing = lock(&self.inner.writing);
        while *writing > 0 {
            writing = self
                .inner
                .written_cv
                .wait(writing)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(writing);
        match lock(&self.inner.lost).as_ref() {
            None => Ok(()),
            Some(reason) => Err(self.inner.store.io_err("write", "packs")(
                std::io::Error::other(format!(
                    "an earlier pack of this session could not be written ({reason}); copy again"
                )),
            )),
        }
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

    /// Publishes a device copy: checks the manifest, closes the open packs and makes them
    /// durable, writes an index object naming their blobs, then writes the manifest
    /// atomically and makes it durable. Only after this returns is the copy
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
            if store.locate(chunk).is_some() {
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
        self.close_packs()?;
        backend.sync().map_err(store.io_err("sync", "packs"))?;
        let blobs = std::mem::take(&mut *lock(&self.inner.written));
        if !blobs.is_empty()
            && let Err(e) = store.publish_index(&blobs)
        {
            // Keep them for a retried commit: the packs are durable, only unindexed.
            lock(&self.inner.written).extend(blobs);
            return Err(e);
        }
        let key = manifest_key(id);
        backend
            .put(&key, &obj)
            .map_err(store.io_err("write", &key))?;
        backend.sync().map_err(store.io_err("sync", &key))?;
        Ok(())
    }
}
