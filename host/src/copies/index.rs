//! The chunk index: which pack holds each chunk, at which offset and length.
//!
//! Index objects `index/<random id>` are written once, create-only, each naming the blobs of
//! the packs one commit (or one gc, or one rebuild) made durable, and only after those packs
//! are durable; the in-memory index is their union. gc replaces the set: it writes one index
//! object covering every live blob, then deletes the old ones. A crash between leaves two
//! objects naming blobs that both still exist, which loading tolerates (first one wins).

use std::collections::{BTreeSet, HashMap};
use std::io;

use super::CopyStore;
use super::chunk::ChunkId;
use super::crypto::Keys;
use super::envelope::{open_object, seal_object};
use super::error::{CopyStoreError, ObjectRef, Result};
use super::pack::{BlobEntry, PackId, put_entries, take_entries};

const MAGIC: &[u8; 4] = b"TMIX";

/// The blobs of some packs, grouped by pack: what one index object holds.
pub(crate) type PackBlobs = Vec<(PackId, Vec<BlobEntry>)>;

/// Where a chunk is: the pack's number in [`Index::packs`], offset and length of its blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pack: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
    pub(crate) plain_len: u32,
}

/// The union of the index objects loaded so far.
#[derive(Default)]
pub(crate) struct Index {
    packs: Vec<PackId>,
    numbers: HashMap<PackId, u32>,
    chunks: HashMap<ChunkId, Location>,
    /// Keys of the index objects merged in.
    pub(crate) objects: BTreeSet<String>,
}

impl Index {
    /// The pack, offset and length of a chunk's blob.
    pub(crate) fn get(&self, id: &ChunkId) -> Option<(PackId, Location)> {
        self.chunks
            .get(id)
            .map(|l| (self.packs[l.pack as usize], *l))
    }

    /// Number of chunks indexed.
    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Adds the blobs of packs; a chunk already indexed keeps its first location.
    pub(crate) fn merge(&mut self, blobs: &PackBlobs) {
        for (pack, entries) in blobs {
            let number = *self.numbers.entry(*pack).or_insert_with(|| {
                self.packs.push(*pack);
                (self.packs.len() - 1) as u32
            });
            for e in entries {
                self.chunks.entry(e.id).or_insert(Location {
                    pack: number,
                    offset: e.offset,
                    len: e.len,
                    plain_len: e.plain_len,
                });
            }
        }
    }

    /// Every indexed chunk grouped by the pack its location is in.
    pub(crate) fn by_pack(&self) -> HashMap<PackId, Vec<BlobEntry>> {
        let mut out: HashMap<PackId, Vec<BlobEntry>> = HashMap::new();
        for (id, l) in &self.chunks {
            out.entry(self.packs[l.pack as usize])
                .or_default()
                .push(BlobEntry {
                    id: *id,
                    offset: l.offset,
                    len: l.len,
                    plain_len: l.plain_len,
                });
        }
        for entries in out.values_mut() {
            entries.sort_unstable_by_key(|e| e.offset);
        }
        out
    }
}

/// Object key of an index object.
pub(crate) fn index_key(id: &PackId) -> String {
    format!("index/{}", id.to_hex())
}

fn context(key: &str) -> Vec<u8> {
    [b"index:".as_slice(), key.as_bytes()].concat()
}

/// The sealed form of an index object stored under `key`.
pub(crate) fn encode(keys: &Keys, key: &str, blobs: &PackBlobs) -> io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    plain.extend_from_slice(MAGIC);
    plain.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
    for (pack, entries) in blobs {
        plain.extend_from_slice(&pack.0);
        plain.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        put_entries(&mut plain, entries);
    }
    seal_object(&keys.index, &context(key), &plain, false)
}

/// Parses an index object stored under `key`; the error is a reason for a damage report.
pub(crate) fn decode(keys: &Keys, key: &str, obj: Vec<u8>) -> Result<PackBlobs, String> {
    let plain = open_object(&keys.index, &context(key), obj, "index object")?;
    if plain.len() < 8 || &plain[..4] != MAGIC {
        return Err("index object has no magic".to_string());
    }
    let count = u32::from_le_bytes(plain[4..8].try_into().expect("4 bytes")) as usize;
    let mut rest = &plain[8..];
    let mut out = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        if rest.len() < 36 {
            return Err("index object is truncated".to_string());
        }
        let pack = PackId(rest[..32].try_into().expect("32 bytes"));
        let n = u32::from_le_bytes(rest[32..36].try_into().expect("4 bytes")) as usize;
        let (entries, tail) = take_entries(&rest[36..], n)?;
        out.push((pack, entries));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err("index object has trailing bytes".to_string());
    }
    Ok(out)
}

impl CopyStore {
    /// Merges index objects written since the last look; starts over if one the in-memory
    /// index holds is gone (gc replaced the set).
    pub(crate) fn refresh_index(&self) -> Result<()> {
        let backend = &self.inner.backend;
        let keys: BTreeSet<String> = backend
            .list("index/")
            .map_err(self.io_err("list", "index"))?
            .into_iter()
            .collect();
        let mut index = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
        if !index.objects.is_subset(&keys) {
            *index = Index::default();
        }
        for key in keys.difference(&index.objects.clone()) {
            let obj = match backend.get(key) {
                Ok(o) => o,
                // Replaced by a gc since the listing: the next refresh sees the new set.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err("read", key)(e)),
            };
            let blobs =
                decode(&self.inner.keys, key, obj).map_err(|reason| CopyStoreError::Damaged {
                    object: ObjectRef::Index(key.clone()),
                    reason,
                })?;
            index.merge(&blobs);
            index.objects.insert(key.clone());
        }
        Ok(())
    }

    /// The pack and place of a chunk's blob, from the in-memory index.
    pub(crate) fn locate(&self, id: &ChunkId) -> Option<(PackId, Location)> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
    }

    /// Writes an index object naming `blobs` (whose packs must be durable already), durable
    /// when this returns, and merges it into the in-memory index. Returns its key.
    pub(crate) fn publish_index(&self, blobs: &PackBlobs) -> Result<String> {
        let id = PackId::random().map_err(self.io_err("name", "index"))?;
        let key = index_key(&id);
        let obj = encode(&self.inner.keys, &key, blobs).map_err(self.io_err("seal", &key))?;
        // A random name cannot be taken; create-only so even a broken generator never
        // replaces an index.
        if !self
            .inner
            .backend
            .put_new(&key, &obj)
            .map_err(self.io_err("write", &key))?
        {
            return Err(self.io_err("write", &key)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "an index object of that name exists",
            )));
        }
        let mut index = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
        index.merge(blobs);
        index.objects.insert(key.clone());
        Ok(key)
    }
}
