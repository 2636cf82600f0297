//! The one sealed envelope of the copy store's metadata objects: manifests, pack headers and
//! index objects.
//!
//! `format (1) | flags (1) | nonce (12) | AES-256-GCM ciphertext | tag (16)`, with
//! `format, flags, context` as associated data, so an object renamed to another id, or moved
//! to another kind (a pack header passed off as an index), fails authentication. The body is
//! zstd-compressed when the flag says so. Chunk blobs use the same layout (`chunk.rs`) but are
//! sealed in place in reused buffers, which is their hot path.

use aes_gcm::Aes256Gcm;

use super::crypto::{NONCE_LEN, TAG_LEN, open, random_nonce, seal};

/// Envelope format written by this code.
const FORMAT: u8 = 1;
/// Flag: the body is zstd-compressed.
const FLAG_ZSTD: u8 = 1;
/// Bytes before the ciphertext.
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes an envelope adds to its body.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

fn aad(flags: u8, context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(2 + context.len());
    a.extend_from_slice(&[FORMAT, flags]);
    a.extend_from_slice(context);
    a
}

/// Seals `plain` (zstd level 3 first if `compress`).
pub(crate) fn seal_object(
    cipher: &Aes256Gcm,
    context: &[u8],
    plain: &[u8],
    compress: bool,
) -> std::io::Result<Vec<u8>> {
    let (flags, body) = if compress {
        (FLAG_ZSTD, zstd::bulk::compress(plain, 3)?)
    } else {
        (0, plain.to_vec())
    };
    let nonce = random_nonce()?;
    let mut out = Vec::with_capacity(OVERHEAD + body.len());
    out.extend_from_slice(&[FORMAT, flags]);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    let tag = seal(cipher, &nonce, &aad(flags, context), &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens an envelope sealed with `context`; the error is a reason for a damage report
/// (`what` names the kind of object in it).
pub(crate) fn open_object(
    cipher: &Aes256Gcm,
    context: &[u8],
    mut obj: Vec<u8>,
    what: &str,
) -> Result<Vec<u8>, String> {
    if obj.len() < OVERHEAD {
        return Err(format!("{what} is truncated ({} bytes)", obj.len()));
    }
    if obj[0] != FORMAT {
        return Err(format!("unknown {what} format {}", obj[0]));
    }
    let flags = obj[1];
    if flags & !FLAG_ZSTD != 0 {
        return Err(format!("unknown {what} flags {flags:#x}"));
    }
    let nonce: [u8; NONCE_LEN] = obj[2..HEADER_LEN].try_into().expect("nonce length");
    let tag_at = obj.len() - TAG_LEN;
    let tag: [u8; TAG_LEN] = obj[tag_at..].try_into().expect("tag length");
    if !open(
        cipher,
        &nonce,
        &aad(flags, context),
        &mut obj[HEADER_LEN..tag_at],
        &tag,
    ) {
        return Err(format!(
            "{what} authentication failed (bytes modified, object renamed from another, or another key)"
        ));
    }
    let body = &obj[HEADER_LEN..tag_at];
    if flags & FLAG_ZSTD != 0 {
        zstd::stream::decode_all(body).map_err(|e| format!("{what} decompression failed: {e}"))
    } else {
        Ok(body.to_vec())
    }
}
