//! The backend seam: a flat key → bytes object store, plus the store lock. Only the trait
//! and the rules for keys live here; the local-directory back end is `local_dir.rs`.
//!
//! The copy store only ever needs whole-object put/get/list/delete, which every object storage
//! service offers, so an S3-compatible backend can be added beside [`super::LocalDir`] without
//! touching the copy store logic or the workflows that use it.

use std::io;

use super::lock::{LockGuard, LockMode, LockWait};

/// A flat object store: keys are `/`-separated names made of `[A-Za-z0-9._-]` segments.
///
/// Why a trait: the copy store is written against this seam only, so a remote backend
/// (S3-compatible object storage) can be plugged in later. Errors are plain `io::Error`s
/// (a missing object is `ErrorKind::NotFound`) so any backend can produce them.
pub trait ObjectStore: Send + Sync {
    /// Human-readable place of the store (a path or URL), used in error messages.
    fn location(&self) -> &str;

    /// Stores `bytes` under `key`, replacing any previous object, atomically: a reader sees
    /// the old object, no object, or the whole new one, never a part. The object may become
    /// visible and is guaranteed durable only once a later [`ObjectStore::sync`] returns.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;

    /// Stores `bytes` under `key` only if no object of that name exists (create-only), and
    /// makes it durable before returning: `Ok(false)` means the name was taken and the
    /// existing object is untouched. Atomic like [`ObjectStore::put`], and it never replaces
    /// anything, which is what an object must be when two writers could race for its name
    /// or when replacing it would lose data (a store's config). Maps to `link(2)` of a fully
    /// written temporary file on a local directory and to `If-None-Match: *` on S3.
    fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool>;

    /// Reads a whole object; a missing object is `ErrorKind::NotFound`.
    fn get(&self, key: &str) -> io::Result<Vec<u8>>;

    /// Reads a whole object into `buf` (cleared first), so hot paths can reuse one buffer.
    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.get(key)?;
        Ok(())
    }

    /// Reads `len` bytes at `offset` of an object into `buf` (which then holds exactly
    /// them, whatever it held before): how blobs are
    /// read out of packs (a ranged GET on object storage). An object shorter than
    /// `offset + len` is `ErrorKind::UnexpectedEof`.
    fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> io::Result<()>;

    /// Whether an object exists.
    fn exists(&self, key: &str) -> io::Result<bool>;

    /// Size of an object in bytes, `None` if it does not exist (one round trip answers both,
    /// which is what deduplication needs).
    fn size(&self, key: &str) -> io::Result<Option<u64>>;

    /// Deletes an object; returns whether it existed (deleting a missing object is not an
    /// error, so retries are harmless).
    fn delete(&self, key: &str) -> io::Result<bool>;

    /// Every key that starts with `prefix`, sorted. Staged or incomplete objects are never
    /// listed.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;

    /// Makes every put and delete that returned before this call durable and visible.
    fn sync(&self) -> io::Result<()>;

    /// Removes the leftovers of puts that never completed (a crash, an abandoned session);
    /// returns how many were removed. Only called under the exclusive store lock.
    fn remove_incomplete(&self) -> io::Result<u64>;

    /// Takes the store-wide lock (see [`super::lock`]); `None` if `wait` ran out.
    fn lock(&self, mode: LockMode, wait: LockWait) -> io::Result<Option<LockGuard>>;
}

/// Rejects keys that could escape the store or collide with staged files: empty segments,
/// `.`/`..`, leading dots, absolute paths and characters outside `[A-Za-z0-9._-]`.
pub(crate) fn check_key(key: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid object key {key:?}: {why}"),
        ))
    };
    if key.is_empty() || key.len() > 512 {
        return bad("empty or too long");
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return bad("empty path segment (absolute path or '//')");
        }
        if seg.starts_with('.') {
            return bad("segments may not start with '.'");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("only A-Z a-z 0-9 . _ - and '/' are allowed");
        }
    }
    Ok(())
}
