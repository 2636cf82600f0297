//! Manifests: the full, ordered chunk list of one device copy.
//!
//! Every manifest describes the whole device (each copy restores on its own) while its chunks
//! are shared with other copies. Incremental copies are built by cloning the previous
//! manifest of the device and replacing only the entries of changed chunks.
//!
//! Stored form: a compact binary encoding (a JSON header, then 1 or 37 bytes per entry),
//! zstd-compressed and sealed in the shared envelope (`envelope.rs`) with the manifest id in
//! the associated data, so a manifest file renamed to another id fails authentication.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::chunk::ChunkId;
use super::crypto::Keys;
use super::envelope::{open_object, seal_object};
use super::error::{CopyStoreError, Result};

/// Version of the manifest encoding written by this code.
const MANIFEST_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"TMMF";
const TAG_ZERO: u8 = 0;
const TAG_FULL: u8 = 1;
const TAG_SHORT: u8 = 2;

/// Smallest chunk size a store accepts (one page / typical filesystem block).
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest chunk size a store accepts.
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// Checks a chunk size: a power of two within [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`], so
/// chunks stay aligned with device blocks and extents map to chunk indexes by shifting.
pub fn check_chunk_size(size: u64) -> Result<u32> {
    if size.is_power_of_two() && (MIN_CHUNK_SIZE as u64..=MAX_CHUNK_SIZE as u64).contains(&size) {
        Ok(size as u32)
    } else {
        Err(CopyStoreError::InvalidChunkSize { size })
    }
}

/// One slot of a device in a manifest.
///
/// `Copy` and small, so manifests are cheap to clone and to patch by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkEntry {
    /// The slot is all zeros: nothing stored, nothing hashed (devices are often sparse).
    Zero {
        /// Length of the slot.
        len: u32,
    },
    /// The slot's bytes are the chunk `id`. If `len` is shorter than the slot (only after a
    /// device grew), the rest of the slot is zeros.
    Data {
        /// Content address of the chunk.
        id: ChunkId,
        /// Plaintext length of the chunk.
        len: u32,
        /// Size of the stored (compressed + encrypted) object, for usage reports.
        stored: u32,
    },
}

impl ChunkEntry {
    /// Plaintext length of the entry.
    pub fn len(&self) -> u32 {
        match self {
            ChunkEntry::Zero { len } | ChunkEntry::Data { len, .. } => *len,
        }
    }

    /// True if the entry has no bytes (never the case in a valid manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunk id, `None` for a zero slot.
    pub fn id(&self) -> Option<&ChunkId> {
        match self {
            ChunkEntry::Zero { .. } => None,
            ChunkEntry::Data { id, .. } => Some(id),
        }
    }

    /// Bytes the chunk object takes in the store (0 for a zero slot).
    pub fn stored_bytes(&self) -> u64 {
        match self {
            ChunkEntry::Zero { .. } => 0,
            ChunkEntry::Data { stored, .. } => *stored as u64,
        }
    }
}

/// Sizes of one copy, for `copies` listings: logical size against what it takes to store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStats {
    /// Size of the device.
    pub device_size: u64,
    /// Number of slots.
    pub chunks: u64,
    /// Slots that are all zeros.
    pub zero_chunks: u64,
    /// Logical bytes in non-zero slots.
    pub data_bytes: u64,
    /// Distinct chunks referenced.
    pub distinct_chunks: u64,
    /// Stored bytes of the distinct chunks (shared chunks count fully in every copy that
    /// references them: this is what the copy needs, not what deleting it would free).
    pub stored_bytes: u64,
}

/// The chunk list of one device copy plus the caller's label.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    device_size: u64,
    chunk_size: u32,
    /// Caller-supplied description (VM, device, recovery point, ...), stored encrypted with
    /// the manifest so the copy store stays self-describing.
    pub label: serde_json::Value,
    entries: Vec<ChunkEntry>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    device_size: u64,
    chunk_size: u32,
    entries: u64,
    label: serde_json::Value,
}

fn invalid(reason: impl Into<String>) -> CopyStoreError {
    CopyStoreError::InvalidManifest {
        reason: reason.into(),
    }
}

fn slot_count(device_size: u64, chunk_size: u32) -> Result<usize> {
    usize::try_from(device_size.div_ceil(chunk_size as u64))
        .map_err(|_| invalid(format!("device size {device_size} is too large")))
}

impl Manifest {
    /// A manifest of an all-zero device; fill it with [`Manifest::set`]. Entries never set
    /// restore as zeros, which is what unallocated extents are.
    pub fn new(device_size: u64, chunk_size: u32, label: serde_json::Value) -> Result<Manifest> {
        let chunk_size = check_chunk_size(chunk_size as u64)?;
        let n = slot_count(device_size, chunk_size)?;
        let mut m = Manifest {
            device_size,
            chunk_size,
            label,
            entries: Vec::with_capacity(n),
        };
        for i in 0..n as u64 {
            let len = m.chunk_len(i);
            m.entries.push(ChunkEntry::Zero { len });
        }
        Ok(m)
    }

    /// Size of the device in bytes.
    pub fn device_size(&self) -> u64 {
        self.device_size
    }

    /// Chunk size the manifest was cut with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of slots.
    pub fn chunk_count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Every entry in device order.
    pub fn entries(&self) -> &[ChunkEntry] {
        &self.entries
    }

    /// The entry of slot `index`.
    pub fn entry(&self, index: u64) -> Option<&ChunkEntry> {
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// Byte offset of slot `index` on the device.
    pub fn chunk_offset(&self, index: u64) -> u64 {
        index * self.chunk_size as u64
    }

    /// Length of slot `index` (the chunk size, except a shorter last slot).
    pub fn chunk_len(&self, index: u64) -> u32 {
        let start = self.chunk_offset(index);
        (self.device_size.saturating_sub(start)).min(self.chunk_size as u64) as u32
    }

    /// Slot indexes that overlap the byte range `offset..offset+len`: how the engine turns
    /// changed extents into chunks to re-read.
    pub fn chunks_touching(&self, offset: u64, len: u64) -> Range<u64> {
        let end = offset.saturating_add(len).min(self.device_size);
        if len == 0 || offset >= end {
            return 0..0;
        }
        let cs = self.chunk_size as u64;
        offset / cs..end.div_ceil(cs)
    }

    /// Replaces the entry of slot `index`. A zero entry takes the slot's length whatever it
    /// says; a data entry must not be longer than the slot.
    pub fn set(&mut self, index: u64, entry: ChunkEntry) -> Result<()> {
        let slot = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.entries.len())
            .ok_or_else(|| {
                invalid(format!(
                    "slot {index} is beyond the device ({} slots)",
                    self.entries.len()
                ))
            })?;
        let max = self.chunk_len(index);
        let entry = match entry {
            ChunkEntry::Zero { .. } => ChunkEntry::Zero { len: max },
            ChunkEntry::Data { len, .. } if len == 0 || len > max => {
                return Err(invalid(format!(
                    "slot {index} holds {max} bytes, entry has {len}"
                )));
            }
            e => e,
        };
        self.entries[slot] = entry;
        Ok(())
    }

    /// Sets many entries, e.g. the result of `ParallelPut::finish`.
    pub fn apply(&mut self, entries: &[(u64, ChunkEntry)]) -> Result<()> {
        for (i, e) in entries {
            self.set(*i, *e)?;
        }
        Ok(())
    }

    /// Changes the device size (a disk grew or shrank). Growing adds zero slots and keeps
    /// every existing entry valid (a short last chunk is followed by zeros). Shrinking drops
    /// slots; if the new last slot now cuts through stored data, its index is returned: that
    /// chunk must be re-read and set again, or `commit` refuses the manifest.
    #[must_use = "a returned slot must be re-read from the device"]
    pub fn resize(&mut self, device_size: u64) -> Result<Option<u64>> {
        let n = slot_count(device_size, self.chunk_size)?;
        let old_n = self.entries.len();
        self.device_size = device_size;
        self.entries.truncate(n);
        while self.entries.len() < n {
            self.entries.push(ChunkEntry::Zero { len: 0 });
        }
        // Fix lengths of zero slots whose size changed: the old last one and the new ones.
        for i in old_n.saturating_sub(1).min(n)..n {
            let len = self.chunk_len(i as u64);
            if let ChunkEntry::Zero { len: l } = &mut self.entries[i] {
                *l = len;
            }
        }
        if let Some(last) = n.checked_sub(1) {
            let slot = self.chunk_len(last as u64);
            if let ChunkEntry::Zero { len } = &mut self.entries[last] {
                *len = slot;
            } else if self.entries[last].len() > slot {
                return Ok(Some(last as u64));
            }
        }
        Ok(None)
    }

    /// Checks every invariant `commit` relies on.
    pub(crate) fn validate(&self) -> Result<()> {
        check_chunk_size(self.chunk_size as u64)?;
        let n = slot_count(self.device_size, self.chunk_size)?;
        if n != self.entries.len() {
            return Err(invalid(format!(
                "{} entries for a device of {} slots",
                self.entries.len(),
                n
            )));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let max = self.chunk_len(i as u64);
            let ok = match e {
                ChunkEntry::Zero { len } => *len == max,
                ChunkEntry::Data { len, .. } => *len > 0 && *len <= max,
            };
            if !ok {
                return Err(invalid(format!(
                    "slot {i} holds {max} bytes, entry has {} (re-read it after a shrink)",
                    e.len()
                )));
            }
        }
        Ok(())
    }

    /// Logical size against stored size.
    pub fn stats(&self) -> ManifestStats {
        let mut s = ManifestStats {
            device_size: self.device_size,
            chunks: self.entries.len() as u64,
            ..ManifestStats::default()
        };
        let mut seen = HashSet::new();
        for e in &self.entries {
            match e {
                ChunkEntry::Zero { .. } => s.zero_chunks += 1,
                ChunkEntry::Data { id, len, stored } => {
                    s.data_bytes += *len as u64;
                    if seen.insert(*id) {
                        s.distinct_chunks += 1;
                        s.stored_bytes += *stored as u64;
                    }
                }
            }
        }
        s
    }

    /// Distinct chunk ids referenced, with the length of their first use.
    pub(crate) fn distinct_chunks(&self) -> Vec<(ChunkId, u32)> {
        let mut seen = HashSet::new();
        self.entries
            .iter()
            .filter_map(|e| match e {
                ChunkEntry::Data { id, len, .. } if seen.insert(*id) => Some((*id, *len)),
                _ => None,
            })
            .collect()
    }

    /// Encrypted stored form.
    pub(crate) fn encode(&self, keys: &Keys, id: &str) -> Result<Vec<u8>> {
        self.validate()?;
        let header = serde_json::to_vec(&Header {
            version: MANIFEST_VERSION,
            device_size: self.device_size,
            chunk_size: self.chunk_size,
            entries: self.entries.len() as u64,
            label: self.label.clone(),
        })
        .map_err(|e| invalid(format!("label cannot be encoded: {e}")))?;
        let mut plain = Vec::with_capacity(8 + header.len() + self.entries.len() * 37);
        plain.extend_from_slice(MAGIC);
        plain.extend_from_slice(&(header.len() as u32).to_le_bytes());
        plain.extend_from_slice(&header);
        for (i, e) in self.entries.iter().enumerate() {
            match e {
                ChunkEntry::Zero { .. } => plain.push(TAG_ZERO),
                ChunkEntry::Data { id, len, stored } => {
                    let short = *len != self.chunk_len(i as u64);
                    plain.push(if short { TAG_SHORT } else { TAG_FULL });
                    plain.extend_from_slice(&id.0);
                    plain.extend_from_slice(&stored.to_le_bytes());
                    if short {
                        plain.extend_from_slice(&len.to_le_bytes());
                    }
                }
            }
        }
        seal_object(&keys.manifest, &context(id), &plain, true).map_err(|e| CopyStoreError::Io {
            op: "seal manifest",
            path: id.to_string(),
            source: e,
        })
    }

    /// Parses the stored form; the error is a reason for a damage report.
    pub(crate) fn decode(keys: &Keys, id: &str, obj: Vec<u8>) -> Result<Manifest, String> {
        let plain = open_object(&keys.manifest, &context(id), obj, "manifest")?;
        Self::parse(&plain)
    }

    fn parse(p: &[u8]) -> Result<Manifest, String> {
        let bad = |what: &str| format!("malformed manifest: {what}");
        if p.len() < 8 || &p[..4] != MAGIC {
            return Err(bad("missing magic"));
        }
        let hlen = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes")) as usize;
        let hend = 8usize
            .checked_add(hlen)
            .filter(|&e| e <= p.len())
            .ok_or_else(|| bad("header length"))?;
        let h: Header =
            serde_json::from_slice(&p[8..hend]).map_err(|e| bad(&format!("header: {e}")))?;
        if h.version != MANIFEST_VERSION {
            return Err(format!(
                "manifest format version {} is not supported (this program reads {MANIFEST_VERSION})",
                h.version
            ));
        }
        let mut m =
            Manifest::new(h.device_size, h.chunk_size, h.label).map_err(|e| bad(&e.to_string()))?;
        if m.entries.len() as u64 != h.entries {
            return Err(bad("entry count does not match device size"));
        }
        let mut at = hend;
        let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
            let s = p
                .get(*at..*at + n)
                .ok_or_else(|| bad("entries are truncated"))?;
            *at += n;
            Ok(s)
        };
        for i in 0..m.entries.len() {
            let slot = m.chunk_len(i as u64);
            let tag = take(&mut at, 1)?[0];
            m.entries[i] = match tag {
                TAG_ZERO => ChunkEntry::Zero { len: slot },
                TAG_FULL | TAG_SHORT => {
                    let id = ChunkId(take(&mut at, 32)?.try_into().expect("32 bytes"));
                    let stored = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4 bytes"));
                    let len = if tag == TAG_SHORT {
                        u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4 bytes"))
                    } else {
                        slot
                    };
                    if len == 0 || len > slot {
                        return Err(bad(&format!(
                            "entry {i} has length {len} in a slot of {slot}"
                        )));
                    }
                    ChunkEntry::Data { id, len, stored }
                }
                t => return Err(bad(&format!("entry {i} has unknown tag {t}"))),
            };
        }
        if at != p.len() {
            return Err(bad("trailing bytes after the entries"));
        }
        Ok(m)
    }
}

/// Associated data of a manifest's envelope: the id, so a renamed manifest fails.
fn context(id: &str) -> Vec<u8> {
    [b"manifest:".as_slice(), id.as_bytes()].concat()
}

/// Checks a caller-chosen manifest id: it becomes an object name, so only
/// `[A-Za-z0-9._-]`, 1 to 200 characters, not starting with a dot.
pub fn check_manifest_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CopyStoreError::InvalidManifestId { id: id.to_string() })
    }
}

/// Object key of a manifest.
pub(crate) fn manifest_key(id: &str) -> String {
    format!("manifests/{id}")
}
