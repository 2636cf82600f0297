//! The copy store: deduplicated, compressed, encrypted, verifiable copies of devices.
//!
//! Layout of a store (one directory, by default under the data directory):
//!
//! ```text
//! config.json          format, version, chunk size, algorithms, key protection (written last)
//! key                  master key (key-file mode, mode 0600) - back it up!
//! lock                 flock: write sessions shared, gc exclusive
//! packs/ab/abcd…       pack files: many sealed chunks each, plus a sealed header listing them
//! index/<id>           index objects: chunk → pack, offset, length
//! manifests/<id>       one encrypted manifest per device copy
//! ```
//!
//! A device is cut into fixed-size, aligned chunks (block devices change in aligned blocks, so
//! an incremental copy re-stores only the chunks that changed). Each chunk is named by a keyed
//! BLAKE3 hash of its content (deduplication without revealing content), zstd-compressed when
//! that saves space, sealed with AES-256-GCM and appended to a pack of a few MiB. A manifest
//! lists every chunk of a device, so every copy restores on its own while sharing chunks with
//! other copies; the index says where each chunk is.
//!
//! Objects are written once under unique names and never replaced (packs and index objects
//! by random id, the config create-only), so correctness never rests on renaming, which
//! object storage lacks. Everything goes through the [`ObjectStore`] trait, so an
//! object-storage backend can be added beside [`LocalDir`] without touching the workflows
//! that use [`CopyStore`].
//!
//! Nothing here is async: callers run it inside `spawn_blocking` / `block_in_place`; the
//! parallel helpers use their own threads with bounded queues.

mod backend;
mod chunk;
mod config;
mod crash_hook;
mod create;
// The key handling and sealed envelopes serve the endpoints' secrets too (data_dir/secrets.rs).
pub(crate) mod crypto;
pub(crate) mod envelope;
mod error;
mod gc;
mod index;
mod key_export;
mod local_dir;
mod lock;
mod manifest;
mod pack;
mod parallel;
mod session;
mod upgrade;
mod verify;

#[cfg(test)]
mod tests;

use std::io;
use std::sync::{Arc, RwLock};

use cap_std::fs::Dir;

pub use backend::ObjectStore;
pub use chunk::{ChunkId, Packing};
pub use config::STORE_VERSION;
pub use error::{CopyStoreError, ObjectRef, Result};
pub use gc::{DEFAULT_REPACK_BELOW, GcReport};
pub use local_dir::{Durability, LocalDir};
pub use lock::{LockGuard, LockMode, LockWait, flock_file};
pub use manifest::{
    ChunkEntry, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, Manifest, ManifestStats, check_chunk_size,
    check_manifest_id,
};
pub use pack::PackId;
pub use parallel::{ParallelGet, ParallelPut, PutStats};
pub use session::{PutOutcome, WriteSession};
pub use upgrade::{RebuildReport, UpgradeReport};
pub use verify::{DamagedChunk, ManifestReport, VerifyReport};

use config::{CONFIG_KEY, StoreConfig};
use crypto::Keys;
use index::Index;
use manifest::manifest_key;
use pack::{PACK_TARGET, pack_key};

/// The text of the key file `file` of the store on `local`, `None` if there is none.
pub(crate) fn read_key_file(local: &LocalDir, file: &str) -> Result<Option<String>> {
    match local.dir().read_to_string(file) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CopyStoreError::Io {
            op: "read",
            path: format!("{}/{file}", local.location()),
            source,
        }),
    }
}

/// Why a chunk a manifest names cannot be found (also what verify reports).
pub(crate) const NOT_INDEXED: &str = "it is in no index object (index lost: `tidemark copies rebuild-index` rebuilds it from the packs)";

/// Default chunk size: 64 KiB, the largest size that meets the incremental target, chosen by
/// measurement (`examples/measure.rs` in the scratch crate; 1 GiB of alternating random and
/// text-like MiB blocks). After 1% of the device changed as scattered 4 KiB writes, an
/// incremental copy re-stores 15.6% of the full copy's bytes at 64 KiB, 28.5% at 128 KiB and
/// 93% at 1 MiB (restic re-stores nearly everything; the target is <= 20% of restic). Smaller
/// chunks store less on increments but cost 2-4x more files, syscalls and CPU: full copies
/// at 32 KiB took ~1.5x and at 16 KiB ~2.5x as long. Manifests cost ~37 bytes per 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;

/// Default zstd level. Measured on text-like data here: level 1 compresses ~3.6x at about
/// 0.19 GB/s per core, level 3 ~3.9x at the same or slightly lower speed, and the stored
/// total differs by ~1% on mixed data; level 1 gave the faster full copies.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// How the master key of a new store is protected.
#[derive(Clone)]
pub enum KeySource {
    /// Generate a random key and keep it in the key file `key` inside the store directory
    /// (mode 0600). Operators must back this file up: without it no copy can be read.
    KeyFile,
    /// Generate a random key and keep it only wrapped under a key derived from this passphrase
    /// (Argon2id); the passphrase is needed to open the store.
    Passphrase(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::KeyFile => f.write_str("KeySource::KeyFile"),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(<redacted>)"),
        }
    }
}

/// Parameters fixed when a store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Chunk size in bytes: a power of two from 4 KiB to 4 MiB.
    pub chunk_size: u32,
    /// zstd level used for chunks (reading does not depend on it).
    pub zstd_level: i32,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// Number of worker threads the parallel helpers use when the caller has no better idea.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// An open copy store. Cheap to clone (shared handle) and usable from many threads.
#[derive(Clone)]
pub struct CopyStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn ObjectStore>,
    pub(crate) keys: Keys,
    pub(crate) chunk_size: u32,
    pub(crate) zstd_level: i32,
    /// The union of the index objects read so far (see `index.rs`).
    pub(crate) index: RwLock<Index>,
    /// Size at which a pack is closed ([`pack::PACK_TARGET`]; tests make it small).
    pub(crate) pack_target: usize,
    /// Open packs per write session: one per core, so workers rarely wait for each other.
    pub(crate) lanes: usize,
    /// The key file's name in key-file mode (`None`: the key is wrapped under a passphrase).
    pub(crate) key_file: Option<String>,
}

impl std::fmt::Debug for CopyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyStore")
            .field("location", &self.location())
            .field("chunk_size", &self.inner.chunk_size)
            .finish()
    }
}

impl CopyStore {
    /// Creates a store in the (empty) directory `dir` with the given key protection and
    /// chunk size, and the default zstd level.
    pub fn init(dir: Dir, key: KeySource, chunk_size: u32) -> Result<CopyStore> {
        CopyStore::init_local(
            LocalDir::new(dir),
            key,
            StoreOptions {
                chunk_size,
                ..StoreOptions::default()
            },
        )
    }

    /// Creates a store on a configured [`LocalDir`] (explicit location or durability), or
    /// finishes one whose creation was cut short (see `create.rs`). Refuses a directory that
    /// already holds a store, or chunks or manifests without a config, so a key that anything
    /// was sealed with can never be replaced.
    pub fn init_local(local: LocalDir, key: KeySource, options: StoreOptions) -> Result<CopyStore> {
        create::create(local, key, options)
    }

    /// Opens the store in `dir`. `passphrase` is needed for a passphrase-protected store (the
    /// caller reads it from `TIDEMARK_COPY_PASSPHRASE`) and refused for a key-file store.
    pub fn open(dir: Dir, passphrase: Option<&str>) -> Result<CopyStore> {
        CopyStore::open_local(LocalDir::new(dir), passphrase)
    }

    /// Opens a store on a configured [`LocalDir`].
    pub fn open_local(local: LocalDir, passphrase: Option<&str>) -> Result<CopyStore> {
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
        let config = StoreConfig::parse(&bytes, &location)?;
        let keys = config.unlock(&location, |file| read_key_file(&local, file), passphrase)?;
        Ok(CopyStore::from_parts(local, keys, &config))
    }

    fn from_parts(backend: Arc<dyn ObjectStore>, keys: Keys, config: &StoreConfig) -> CopyStore {
        CopyStore {
            inner: Arc::new(Inner {
                backend,
                keys,
                chunk_size: config.chunk_size,
                zstd_level: config.zstd_level,
                index: RwLock::new(Index::default()),
                pack_target: PACK_TARGET,
                lanes: default_threads().max(2),
                key_file: match &config.key {
                    config::KeyConfig::KeyFile { file, .. } => Some(file.clone()),
                    config::KeyConfig::Passphrase { .. } => None,
                },
            }),
        }
    }

    /// Where the store is (for messages).
    pub fn location(&self) -> &str {
        self.inner.backend.location()
    }

    /// The chunk size fixed at init; devices are cut at this size.
    pub fn chunk_size(&self) -> u32 {
        self.inner.chunk_size
    }

    /// The backend, for callers that need raw access (tests, tools).
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.backend
    }

    pub(crate) fn io_err(
        &self,
        op: &'static str,
        key: &str,
    ) -> impl FnOnce(io::Error) -> CopyStoreError {
        let path = format!("{}/{key}", self.location());
        move |source| CopyStoreError::Io { op, path, source }
    }

    /// Starts writing copies: takes the store lock shared (waiting while gc runs) and holds it
    /// until the session and all its clones are dropped, so gc cannot free a chunk the session
    /// deduplicated against before the session's manifests are committed.
    pub fn begin_write(&self) -> Result<WriteSession> {
        WriteSession::begin(self, LockWait::Forever)
    }

    /// Like [`CopyStore::begin_write`], but gives up with `Busy` after `wait` (e.g. while a
    /// long gc runs).
    pub fn begin_write_wait(&self, wait: LockWait) -> Result<WriteSession> {
        WriteSession::begin(self, wait)
    }

    /// Reads and authenticates a manifest.
    pub fn read_manifest(&self, id: &str) -> Result<Manifest> {
        check_manifest_id(id)?;
        let key = manifest_key(id);
        let obj = match self.inner.backend.get(&key) {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CopyStoreError::ManifestNotFound { id: id.to_string() });
            }
            Err(e) => return Err(self.io_err("read", &key)(e)),
        };
        Manifest::decode(&self.inner.keys, id, obj).map_err(|reason| CopyStoreError::Damaged {
            object: ObjectRef::Manifest(id.to_string()),
            reason,
        })
    }

    /// Whether a manifest exists (without reading it).
    pub fn manifest_exists(&self, id: &str) -> Result<bool> {
        check_manifest_id(id)?;
        let key = manifest_key(id);
        self.inner
            .backend
            .exists(&key)
            .map_err(self.io_err("check", &key))
    }

    /// Ids of every manifest, sorted.
    pub fn list_manifests(&self) -> Result<Vec<String>> {
        let keys = self
            .inner
            .backend
            .list("manifests/")
            .map_err(self.io_err("list", "manifests"))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix("manifests/").map(str::to_string))
            .filter(|id| check_manifest_id(id).is_ok())
            .collect())
    }

    /// Deletes a copy's manifest; its chunks are freed by the next gc if no other manifest
    /// uses them. Returns whether it existed, so a retried delete is harmless.
    pub fn delete_manifest(&self, id: &str) -> Result<bool> {
        check_manifest_id(id)?;
        let key = manifest_key(id);
        self.inner
            .backend
            .delete(&key)
            .map_err(self.io_err("delete", &key))
    }

    /// Reads one slot's bytes, verified: a zero slot gives zeros; a data slot is decrypted,
    /// decompressed and re-hashed, and any failure is `Damaged` naming the chunk (damaged data
    /// is never returned). The result has the entry's length (see [`ChunkEntry::Data`]).
    pub fn read_chunk(&self, entry: &ChunkEntry) -> Result<Vec<u8>> {
        let mut out = vec![0; entry.len() as usize];
        self.read_run(&[(*entry, entry.len())], &mut out)?;
        Ok(out)
    }

    /// Decodes the chunks of consecutive device slots into `out` (zeroed by the caller, the
    /// slots' total length): each `(entry, slot length)` in turn, zero entries and the tail
    /// of a chunk shorter than its slot left as they are. Chunks that lie next to each other
    /// in one pack are read with one request, so a restore costs a few reads per pack
    /// instead of an open and a read per chunk.
    pub(crate) fn read_run(&self, slots: &[(ChunkEntry, u32)], out: &mut [u8]) -> Result<()> {
        let mut located = Vec::with_capacity(slots.len());
        let mut at = 0usize;
        for (entry, slot_len) in slots {
            if let ChunkEntry::Data { id, len, .. } = entry {
                let place = match self.locate(id) {
                    Some(l) => l,
                    None => {
                        self.refresh_index()?;
                        self.locate(id).ok_or_else(|| CopyStoreError::Damaged {
                            object: ObjectRef::Chunk(*id),
                            reason: NOT_INDEXED.to_string(),
                        })?
                    }
                };
                located.push((*id, place, at, *len as usize));
            }
            at += *slot_len as usize;
        }
        let mut i = 0;
        while i < located.len() {
            // The longest stretch from i whose blobs follow each other in the same pack.
            let mut j = i + 1;
            while j < located.len() {
                let (prev, next) = (&located[j - 1].1, &located[j].1);
                if next.0 != prev.0 || next.1.offset != prev.1.offset + prev.1.len {
                    break;
                }
                j += 1;
            }
            let (first, last) = (&located[i], &located[j - 1]);
            let (pack, start) = (&first.1.0, first.1.1.offset);
            let span = (last.1.1.offset + last.1.1.len - start) as usize;
            let key = pack_key(pack);
            chunk::with_read_buffer(|buf| {
                self.inner
                    .backend
                    .get_range_into(&key, u64::from(start), span, buf)
                    .map_err(|e| self.read_failure(&first.0, pack, start, span, e))?;
                for (id, (_, blob), place, len) in &located[i..j] {
                    let from = (blob.offset - start) as usize;
                    let obj = &mut buf[from..from + blob.len as usize];
                    chunk::decode_into(&self.inner.keys, id, obj, &mut out[*place..place + len])
                        .map_err(|reason| CopyStoreError::Damaged {
                            object: ObjectRef::Chunk(*id),
                            reason: format!("in pack {pack}: {reason}"),
                        })?;
                }
                Ok::<_, CopyStoreError>(())
            })?;
            i = j;
        }
        Ok(())
    }

    /// The damage report (or I/O error) of a failed read of `len` bytes at `offset` of
    /// `pack`, on behalf of chunk `id`.
    fn read_failure(
        &self,
        id: &ChunkId,
        pack: &PackId,
        offset: u32,
        len: usize,
        e: io::Error,
    ) -> CopyStoreError {
        let damaged = |reason| CopyStoreError::Damaged {
            object: ObjectRef::Chunk(*id),
            reason,
        };
        match e.kind() {
            io::ErrorKind::NotFound => damaged(format!("its pack {pack} is missing")),
            io::ErrorKind::UnexpectedEof => damaged(format!(
                "its pack {pack} ends before offset {offset} + {len} (a truncated pack, or an index entry past its end)"
            )),
            _ => self.io_err("read", &pack_key(pack))(e),
        }
    }

    /// Makes packs close at `bytes` with `lanes` open packs per session (tests pin both to
    /// get a known number of packs).
    #[cfg(test)]
    pub(crate) fn with_packing(mut self, bytes: usize, lanes: usize) -> CopyStore {
        let inner = Arc::get_mut(&mut self.inner).expect("only before the store is shared");
        inner.pack_target = bytes;
        inner.lanes = lanes.max(1);
        self
    }

    /// Where a chunk's blob is: its pack's object key, offset and length (tests damage
    /// blobs in place).
    #[cfg(test)]
    pub(crate) fn blob_location(&self, id: &ChunkId) -> Result<Option<(String, u64, usize)>> {
        self.refresh_index()?;
        Ok(self
            .locate(id)
            .map(|(pack, at)| (pack_key(&pack), u64::from(at.offset), at.len as usize)))
    }
}
