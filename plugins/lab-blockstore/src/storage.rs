//! The storage abstraction: a directory tree of files addressed by relative paths.
//!
//! The block store and the lab adapters only ever touch files through this trait, so the
//! same code runs natively in unit tests ([`crate::StdStorage`]) and inside a WASI 0.2
//! component (`WasiStorage`).

use crate::error::{Error, Result};

/// A file opened for positional I/O. Exists so the data path can do one `pread`/`pwrite`
/// per contiguous run without any seek state.
pub trait StorageFile {
    /// Reads up to `buf.len()` bytes at `offset`; returns the count read, which is smaller
    /// than `buf.len()` only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;

    /// Reads up to `len` bytes at `offset` into a fresh buffer (shorter only at end of
    /// file). Backends whose native read hands out an owned buffer override this to avoid
    /// a copy.
    fn read_vec_at(&self, len: usize, offset: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = self.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes all of `buf` at `offset`, extending the file (sparsely) if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;

    /// Current length of the file in bytes.
    fn size(&self) -> Result<u64>;

    /// A hint that `len` bytes at `offset` will be read soon (`posix_fadvise(WILLNEED)`),
    /// so the disk works ahead of a sequential reader. A failed hint is no error: the
    /// default does nothing.
    fn will_need(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

/// A directory tree rooted somewhere private to the caller. Paths are relative,
/// `/`-separated and may not contain `.`/`..` components, so nothing can escape the root.
pub trait Storage {
    /// The open-file type of this backend.
    type File: StorageFile;

    /// Opens an existing file read-only; `None` if it does not exist.
    fn open_read(&self, path: &str) -> Result<Option<Self::File>>;
    /// Opens a file for reading and writing, creating it (empty) if absent.
    fn open_write(&self, path: &str) -> Result<Self::File>;
    /// Reads a whole (small) file; `None` if it does not exist.
    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Replaces a (small) file atomically: writes `<path>[.<unique>].tmp` then renames it over `path`,
    /// so a crash leaves either the old or the new content, never a mix.
    fn write_file_atomic(&self, path: &str, data: &[u8]) -> Result<()>;
    /// Removes a file; returns `false` if it did not exist.
    fn remove_file(&self, path: &str) -> Result<bool>;
    /// Renames a file or directory (replacing a file at `to`).
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// Creates a directory and all missing parents.
    fn create_dir_all(&self, path: &str) -> Result<()>;
    /// Removes a directory and everything under it; returns `false` if it did not exist.
    fn remove_dir_all(&self, path: &str) -> Result<bool>;
    /// Names of the entries of a directory (unsorted); `None` if it does not exist.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>>;
}

/// Checks a relative storage path: non-empty, `/`-separated, no empty, `.` or `..`
/// components and no backslashes or NULs. Backends call this before touching anything.
pub fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::Invalid(format!(
            "storage path {path:?} must be relative, '/'-separated, without '.'/'..' or empty components"
        )));
    }
    Ok(())
}

/// Reads and parses a small JSON file; `None` if it does not exist. Exists for the
/// adapters' own state files.
pub fn read_json<S: Storage, T: serde::de::DeserializeOwned>(
    storage: &S,
    path: &str,
) -> Result<Option<T>> {
    match storage.read_file(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{path}: invalid JSON: {e}"))),
    }
}

/// Serializes a value to JSON and writes it atomically (see
/// [`Storage::write_file_atomic`]). Exists for the adapters' own state files.
pub fn write_json<S: Storage, T: serde::Serialize>(
    storage: &S,
    path: &str,
    value: &T,
) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Invalid(format!("{path}: cannot serialize: {e}")))?;
    storage.write_file_atomic(path, &bytes)
}
