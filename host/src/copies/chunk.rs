//! Chunk ids and the chunk object format.
//!
//! A chunk object is `format (1) | flags (1) | nonce (12) | AES-256-GCM ciphertext | tag (16)`.
//! The associated data is the two header bytes plus the chunk id, so a flipped flag, a
//! modified byte, or a chunk file renamed to another id all fail authentication. After
//! decryption the plaintext is decompressed and re-hashed against the id, so even a bug that
//! stored the wrong bytes under an id is caught before data is returned.

use std::cell::RefCell;
use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use super::crypto::{Keys, NONCE_LEN, TAG_LEN, open, random_nonce, seal};

/// Object format written by this code.
const CHUNK_FORMAT: u8 = 1;
/// Flag: the payload is zstd-compressed.
const FLAG_ZSTD: u8 = 1;
/// Bytes before the ciphertext.
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// Content address of a chunk: keyed BLAKE3 of its plaintext (see `crypto::Keys::chunk_id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Lower-case hex form, as used in object names and reports.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 8 bytes as an integer; ids are uniformly random, so this is a good cheap hash key.
    pub(crate) fn short(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_hex())
    }
}

impl FromStr for ChunkId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<ChunkId, hex::FromHexError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)?;
        Ok(ChunkId(b))
    }
}

/// Parses the key of a version-1 chunk file (`chunks/ab/abcd…`, one file per chunk) back to
/// its id, for the upgrade; `None` for anything that is not one.
pub(crate) fn parse_chunk_key(key: &str) -> Option<ChunkId> {
    let rest = key.strip_prefix("chunks/")?;
    let (dir, name) = rest.split_once('/')?;
    let id: ChunkId = name.parse().ok()?;
    (dir.len() == 2 && name.starts_with(dir) && name == id.to_hex()).then_some(id)
}

/// True if every byte is zero. Written as OR-folds over fixed blocks so it vectorises
/// (~tens of GB/s), which makes sparse devices nearly free to copy.
pub(crate) fn is_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(256);
    for b in blocks.by_ref() {
        if b.iter().fold(0u8, |a, &x| a | x) != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&x| x == 0)
}

thread_local! {
    // Reused object buffers: allocating and freeing ~64 KiB per chunk makes the allocator hand
    // pages back to the kernel and fault them in again, which cost more than the crypto.
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    // zstd contexts are costly to create; each worker thread keeps one of each.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn aad(flags: u8, id: &ChunkId) -> [u8; 34] {
    let mut a = [0u8; 34];
    a[0] = CHUNK_FORMAT;
    a[1] = flags;
    a[2..].copy_from_slice(&id.0);
    a
}

/// What became of a chunk's bytes when it was sealed (counted per copy: the hit rate of
/// the compressibility estimate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// zstd-compressed (it saved at least 1/64).
    Compressed,
    /// Stored as is without trying: the sample said it would not compress.
    SkippedByEstimate,
    /// Compressed, but it saved too little, so stored as is (the estimate missed).
    NotWorthIt,
}

/// Chunks from this size on are sampled before they are compressed; smaller ones are just
/// compressed (a sample would be most of them).
const SAMPLE_FROM: usize = 16 * 1024;
/// The sample: this many pieces of [`SAMPLE_PIECE`] bytes, spread evenly over the chunk.
const SAMPLE_PIECES: usize = 4;
const SAMPLE_PIECE: usize = 1024;

/// Whether compressing `data` can pay, judged from a 4 KiB sample compressed at the same
/// level: random or already compressed data (half of a typical disk image, every media
/// or archive file) then costs one small compression instead of a whole one. The sample
/// must save 1/32, twice what the whole chunk must save to be kept, since small inputs
/// compress worse than the chunk they come from.
fn worth_compressing(comp: &mut zstd::bulk::Compressor<'static>, data: &[u8]) -> bool {
    if data.len() < SAMPLE_FROM {
        return true;
    }
    let mut sample = [0u8; SAMPLE_PIECES * SAMPLE_PIECE];
    let stride = data.len() / SAMPLE_PIECES;
    for (k, piece) in sample.chunks_exact_mut(SAMPLE_PIECE).enumerate() {
        piece.copy_from_slice(&data[k * stride..k * stride + SAMPLE_PIECE]);
    }
    let mut out = [0u8; SAMPLE_PIECES * SAMPLE_PIECE + 512];
    match comp.compress_to_buffer(&sample, &mut out[..]) {
        Ok(n) => n < sample.len() - sample.len() / 32,
        Err(_) => true,
    }
}

/// Compresses `data` after the header of `out` if that pays; returns the compressed length
/// when it is kept, and what was done.
fn compress_into(out: &mut Vec<u8>, data: &[u8], level: i32) -> (Option<usize>, Packing) {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = zstd::bulk::Compressor::new(level)
                .ok()
                .map(|comp| (level, comp));
        }
        let Some((_, comp)) = c.as_mut() else {
            return (None, Packing::NotWorthIt);
        };
        if !worth_compressing(comp, data) {
            return (None, Packing::SkippedByEstimate);
        }
        let mut cur = Cursor::new(&mut *out);
        cur.set_position(HEADER_LEN as u64);
        match comp.compress_to_buffer(data, &mut cur) {
            // Keep it only if it saves at least 1/64: a chunk that barely compresses would
            // cost a decompression on every restore for nothing.
            Ok(n) if n < data.len() - data.len() / 64 => (Some(n), Packing::Compressed),
            _ => (None, Packing::NotWorthIt),
        }
    })
}

/// Builds the encrypted object of a chunk whose id was computed from `data` in a reused
/// per-thread buffer, and hands it to `f` (which writes it out).
pub(crate) fn encode<R>(
    keys: &Keys,
    id: &ChunkId,
    data: &[u8],
    level: i32,
    f: impl FnOnce(&[u8]) -> R,
) -> std::io::Result<(R, Packing)> {
    ENCODE_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let packing = encode_into(keys, id, data, level, &mut buf)?;
        Ok((f(&buf), packing))
    })
}

fn encode_into(
    keys: &Keys,
    id: &ChunkId,
    data: &[u8],
    level: i32,
    out: &mut Vec<u8>,
) -> std::io::Result<Packing> {
    let nonce = random_nonce()?;
    out.clear();
    out.reserve(HEADER_LEN + zstd::zstd_safe::compress_bound(data.len()) + TAG_LEN);
    out.extend_from_slice(&[CHUNK_FORMAT, 0]);
    out.extend_from_slice(&nonce);
    let (compressed, packing) = compress_into(out, data, level);
    let flags = match compressed {
        Some(n) => {
            out.truncate(HEADER_LEN + n);
            FLAG_ZSTD
        }
        None => {
            out.truncate(HEADER_LEN);
            out.extend_from_slice(data);
            0
        }
    };
    out[1] = flags;
    let tag = seal(&keys.chunk, &nonce, &aad(flags, id), &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
    Ok(packing)
}

/// Runs `f` with this thread's reused read buffer (objects are read into it and decrypted
/// in place).
pub(crate) fn with_read_buffer<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    READ_BUF.with(|buf| f(&mut buf.borrow_mut()))
}

/// Opens a chunk object (decrypting it in place in `obj`): authenticates, decrypts,
/// decompresses, checks the length and re-hashes against `id`. The error is a human-readable
/// reason for a damage report.
pub(crate) fn decode(
    keys: &Keys,
    id: &ChunkId,
    obj: &mut [u8],
    expected_len: usize,
) -> Result<Vec<u8>, String> {
    let mut plain = vec![0u8; expected_len];
    decode_into(keys, id, obj, &mut plain)?;
    Ok(plain)
}

/// [`decode`] into `out`, whose length is the chunk's: a restore decodes each chunk straight
/// into its place in a run of the device, with no buffer of its own.
pub(crate) fn decode_into(
    keys: &Keys,
    id: &ChunkId,
    obj: &mut [u8],
    out: &mut [u8],
) -> Result<(), String> {
    let expected_len = out.len();
    if obj.len() < HEADER_LEN + TAG_LEN {
        return Err(format!("object is truncated ({} bytes)", obj.len()));
    }
    if obj[0] != CHUNK_FORMAT {
        return Err(format!("unknown chunk format {}", obj[0]));
    }
    let flags = obj[1];
    if flags & !FLAG_ZSTD != 0 {
        return Err(format!("unknown chunk flags {flags:#x}"));
    }
    let nonce: [u8; NONCE_LEN] = obj[2..HEADER_LEN].try_into().expect("nonce length");
    let tag_at = obj.len() - TAG_LEN;
    let tag: [u8; TAG_LEN] = obj[tag_at..].try_into().expect("tag length");
    if !open(
        &keys.chunk,
        &nonce,
        &aad(flags, id),
        &mut obj[HEADER_LEN..tag_at],
        &tag,
    ) {
        return Err(
            "authentication failed (bytes modified, object renamed from another chunk, or another key)"
                .to_string(),
        );
    }
    let payload = &obj[HEADER_LEN..tag_at];
    let got = if flags & FLAG_ZSTD != 0 {
        DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
            }
            let d = d.as_mut().expect("decompressor just created");
            d.decompress_to_buffer(payload, &mut out[..]).map_err(|e| {
                match zstd::zstd_safe::get_frame_content_size(payload) {
                    Ok(Some(n)) if n as usize != expected_len => {
                        format!("length is {n} bytes, manifest says {expected_len}")
                    }
                    _ => format!("decompression failed: {e}"),
                }
            })
        })?
    } else if payload.len() == expected_len {
        out.copy_from_slice(payload);
        expected_len
    } else {
        payload.len()
    };
    if got != expected_len {
        return Err(format!(
            "length is {got} bytes, manifest says {expected_len}"
        ));
    }
    if keys.chunk_id(out) != *id {
        return Err("content does not match its id".to_string());
    }
    Ok(())
}
