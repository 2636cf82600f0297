//! Pack files: many chunk blobs in one object, so a 1 GiB copy is a few hundred objects
//! instead of 16,384 files (restic's and kopia's design; one file per chunk, as PBS keeps
//! them, costs a create, a write and a directory entry per chunk).
//!
//! A pack is `blob … blob | sealed header | header length (u32 LE) | "TMPK"`. Each blob is a
//! chunk object exactly as `chunk.rs` seals it (authenticated against its chunk id, so a blob
//! can move between packs unchanged). The header, sealed in the shared envelope with the pack
//! id as context, lists every blob, so the index can be rebuilt from the packs alone. Packs
//! are named by a random id and written once: gc writes new packs and deletes old ones, it
//! never rewrites one.

use std::fmt;

use super::CopyStore;
use super::chunk::ChunkId;
use super::crypto::Keys;
use super::envelope::{OVERHEAD, open_object, seal_object};
use super::error::Result;

/// Size at which a pack is closed and written: a few MiB keeps the object count low and a
/// repack cheap, and bounds what each writer lane holds in memory.
pub(crate) const PACK_TARGET: usize = 4 << 20;
const MAGIC: &[u8; 4] = b"TMPK";
const TRAILER_LEN: usize = 8;
/// Bytes one blob entry takes in a pack header or an index object.
const ENTRY_LEN: usize = 32 + 4 + 4 + 4;

/// Name of a pack: 32 random bytes (names must never be reused, so they are not derived from
/// content that a repack could reproduce).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub [u8; 32]);

impl PackId {
    /// A fresh random pack id.
    pub(crate) fn random() -> std::io::Result<PackId> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(std::io::Error::other)?;
        Ok(PackId(b))
    }

    /// Lower-case hex form, as used in object names and reports.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackId({})", self.to_hex())
    }
}

/// Object key of a pack: `packs/ab/abcd…`.
pub(crate) fn pack_key(id: &PackId) -> String {
    let h = id.to_hex();
    format!("packs/{}/{h}", &h[..2])
}

/// Parses a pack object key back to its id; `None` for anything that is not one of ours.
pub(crate) fn parse_pack_key(key: &str) -> Option<PackId> {
    let rest = key.strip_prefix("packs/")?;
    let (dir, name) = rest.split_once('/')?;
    let mut b = [0u8; 32];
    hex::decode_to_slice(name, &mut b).ok()?;
    let id = PackId(b);
    (dir.len() == 2 && name.starts_with(dir) && name == id.to_hex()).then_some(id)
}

/// Where one blob is inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobEntry {
    /// The chunk the blob holds.
    pub(crate) id: ChunkId,
    /// Byte offset of the blob in the pack.
    pub(crate) offset: u32,
    /// Length of the blob (the sealed chunk object).
    pub(crate) len: u32,
    /// Plaintext length of the chunk.
    pub(crate) plain_len: u32,
}

/// Appends the binary form of `entries` (shared by pack headers and index objects).
pub(crate) fn put_entries(out: &mut Vec<u8>, entries: &[BlobEntry]) {
    out.reserve(entries.len() * ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
        out.extend_from_slice(&e.plain_len.to_le_bytes());
    }
}

/// Reads `n` entries written by [`put_entries`] from the front of `p`, returning the rest.
pub(crate) fn take_entries(p: &[u8], n: usize) -> Result<(Vec<BlobEntry>, &[u8]), String> {
    let bytes = n
        .checked_mul(ENTRY_LEN)
        .filter(|&b| b <= p.len())
        .ok_or_else(|| format!("{n} entries do not fit in {} bytes", p.len()))?;
    let u32_at = |e: &[u8], at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4"));
    let entries = p[..bytes]
        .chunks_exact(ENTRY_LEN)
        .map(|e| BlobEntry {
            id: ChunkId(e[..32].try_into().expect("32 bytes")),
            offset: u32_at(e, 32),
            len: u32_at(e, 36),
            plain_len: u32_at(e, 40),
        })
        .collect();
    Ok((entries, &p[bytes..]))
}

/// Bytes a pack of `blobs` blobs spends besides them (sealed header and trailer).
pub(crate) fn header_len(blobs: usize) -> usize {
    OVERHEAD + 4 + blobs * ENTRY_LEN + TRAILER_LEN
}

fn header_context(pack: &PackId) -> Vec<u8> {
    [b"pack header:".as_slice(), &pack.0].concat()
}

/// A pack being filled by one writer lane.
#[derive(Default)]
pub(crate) struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl PackBuilder {
    /// Appends a sealed chunk object.
    pub(crate) fn add(&mut self, id: ChunkId, plain_len: u32, blob: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(PACK_TARGET + blob.len() + 4096);
        }
        self.entries.push(BlobEntry {
            id,
            offset: self.buf.len() as u32,
            len: blob.len() as u32,
            plain_len,
        });
        self.buf.extend_from_slice(blob);
    }

    /// Bytes of blobs so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no blob was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Closes the pack: its bytes, ready to store under `pack`, and its blobs.
    pub(crate) fn seal(
        mut self,
        keys: &Keys,
        pack: &PackId,
    ) -> std::io::Result<(Vec<u8>, Vec<BlobEntry>)> {
        let mut plain = Vec::with_capacity(4 + self.entries.len() * ENTRY_LEN);
        plain.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        put_entries(&mut plain, &self.entries);
        let header = seal_object(&keys.index, &header_context(pack), &plain, false)?;
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(MAGIC);
        Ok((self.buf, self.entries))
    }
}

/// Reads the header of a whole pack `obj` named `pack`; the error is a reason for a damage
/// report.
pub(crate) fn read_header(
    keys: &Keys,
    pack: &PackId,
    obj: &[u8],
) -> Result<Vec<BlobEntry>, String> {
    if obj.len() < TRAILER_LEN || &obj[obj.len() - 4..] != MAGIC {
        return Err("the pack has no trailer (truncated or not a pack)".to_string());
    }
    let at = obj.len() - TRAILER_LEN;
    let hlen = u32::from_le_bytes(obj[at..at + 4].try_into().expect("4 bytes")) as usize;
    let start = at
        .checked_sub(hlen)
        .ok_or_else(|| format!("header length {hlen} exceeds the pack"))?;
    let plain = open_object(
        &keys.index,
        &header_context(pack),
        obj[start..at].to_vec(),
        "pack header",
    )?;
    let n = plain
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or("pack header is empty")?;
    let (entries, rest) = take_entries(&plain[4..], n)?;
    if !rest.is_empty() {
        return Err("pack header has trailing bytes".to_string());
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.offset as usize + e.len as usize > start)
    {
        return Err(format!("blob of chunk {} lies past the blobs' end", e.id));
    }
    Ok(entries)
}

impl CopyStore {
    /// Seals a pack and puts it under a new random name (durable at the next sync). Returns
    /// its blobs, for an index object, and its size.
    pub(crate) fn put_pack(&self, builder: PackBuilder) -> Result<((PackId, Vec<BlobEntry>), u64)> {
        let id = PackId::random().map_err(self.io_err("name", "packs"))?;
        let key = pack_key(&id);
        let (bytes, entries) = builder
            .seal(&self.inner.keys, &id)
            .map_err(self.io_err("seal", &key))?;
        self.inner
            .backend
            .put(&key, &bytes)
            .map_err(self.io_err("write", &key))?;
        Ok(((id, entries), bytes.len() as u64))
    }
}
