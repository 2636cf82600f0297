//! [`LocalDir`]: the copy store's objects as files of one local directory, behind the
//! [`ObjectStore`] seam.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cap_std::fs::{Dir, FileExt, OpenOptions, OpenOptionsExt};

use super::backend::{ObjectStore, check_key};
use super::crash_hook;
use super::lock::{LockGuard, LockMode, LockWait, flock_file};

/// Prefix of staged (not yet published) files; dotted names are never valid keys, so a staged
/// file can never be mistaken for an object.
const TMP_PREFIX: &str = ".tmp.";

/// How many bytes of staged objects [`LocalDir`] lets pile up before it publishes them in
/// the background: keeps dirty page cache bounded for huge devices, and starts disk writes
/// early so the flush at commit is short (measured with one file per 64 KiB chunk: batches of
/// 64 MiB made the commit 0.05 s instead of 0.2-0.6 s with 256 MiB; packs keep the size).
const MAX_STAGED_BYTES: usize = 64 << 20;

/// How [`LocalDir`] makes puts durable; both are kept so the cheaper one can be measured
/// against the classic one on a given filesystem (see `examples/measure.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Default. A put writes a staged file; `sync` runs one `syncfs(2)` (data of all staged
    /// files durable), renames every staged file to its key, then a second `syncfs` (names
    /// durable). One flush per batch instead of one `fsync` per chunk, and a published name
    /// always points at durable bytes, so a crash can never leave a truncated chunk under a
    /// valid name that later copies would deduplicate against.
    Batched,
    /// A put writes a temp file, `fsync`s it and renames it; `sync` fsyncs the touched
    /// directories. Costs one fsync per object.
    PerObject,
}

struct Staged {
    tmp: String,
    key: String,
    bytes: usize,
}

/// The local-directory backend: one file per object under a `cap_std` directory handle, so
/// no key can reach outside the store directory. Packs fan out by key (`packs/ab/abcd…`).
pub struct LocalDir {
    inner: Arc<LocalInner>,
    durability: Durability,
}

struct LocalInner {
    dir: Dir,
    location: String,
    staged: Mutex<Vec<Staged>>,
    dirty_dirs: Mutex<BTreeSet<String>>,
    /// Serialises publishing (background and foreground).
    sync_lock: Mutex<()>,
    /// A publish running in the background, started when many objects are staged, so the
    /// thread that filled the batch goes on compressing instead of waiting for the disk.
    background: Mutex<Option<JoinHandle<io::Result<()>>>>,
    tmp_tag: String,
    counter: AtomicU64,
}

impl std::fmt::Debug for LocalDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDir")
            .field("location", &self.inner.location)
            .field("durability", &self.durability)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalDir {
    /// Wraps a directory handle; the location shown in messages is read from `/proc` where
    /// possible (a `Dir` has no path of its own).
    pub fn new(dir: Dir) -> LocalDir {
        let location = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<copy store directory>".to_string());
        LocalDir::with_location(dir, location)
    }

    /// Wraps a directory handle with an explicit location for messages.
    pub fn with_location(dir: Dir, location: impl Into<String>) -> LocalDir {
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        LocalDir {
            inner: Arc::new(LocalInner {
                dir,
                location: location.into(),
                staged: Mutex::new(Vec::new()),
                dirty_dirs: Mutex::new(BTreeSet::new()),
                sync_lock: Mutex::new(()),
                background: Mutex::new(None),
                tmp_tag: format!("{TMP_PREFIX}{}.{}.", std::process::id(), hex::encode(r)),
                counter: AtomicU64::new(0),
            }),
            durability: Durability::Batched,
        }
    }

    /// Chooses how puts are made durable (default [`Durability::Batched`]).
    pub fn with_durability(mut self, durability: Durability) -> LocalDir {
        self.durability = durability;
        self
    }

    /// The directory handle (for files that are not objects: the key file, the lock).
    pub(crate) fn dir(&self) -> &Dir {
        &self.inner.dir
    }

    /// Creates a private file (mode 0600) durably, atomically and create-only: the key file.
    /// `Ok(false)` means a file of that name exists (it is left as it is). Kept out of
    /// [`ObjectStore`] because a key must never be uploaded next to the data it protects.
    pub(crate) fn create_private(&self, name: &str, bytes: &[u8]) -> io::Result<bool> {
        check_key(name)?;
        self.inner.publish_new(name, bytes, 0o600, true)
    }

    /// [`ObjectStore::put_new`] for store creation: the same, but passing the creation test
    /// hook's points (see `crash_hook.rs`), which no other write counts.
    pub(crate) fn create_object(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        check_key(key)?;
        self.inner.publish_new(key, bytes, 0o666, true)
    }

    /// Removes a private file (a key file that protects nothing); whether it existed.
    pub(crate) fn remove_private(&self, name: &str) -> io::Result<bool> {
        check_key(name)?;
        match self.inner.dir.remove_file(name) {
            Ok(()) => {
                rustix::fs::fsync(self.inner.sync_fd("")?)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits for a background publish, returning its error if it failed.
    fn join_background(&self) -> io::Result<()> {
        let handle = lock(&self.inner.background).take();
        match handle.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("background publish panicked")),
        }
    }

    /// Starts publishing staged objects in the background unless a publish is running; an
    /// error of a finished one is returned here (or by the next `sync`).
    fn publish_in_background(&self) -> io::Result<()> {
        let mut bg = lock(&self.inner.background);
        if let Some(h) = bg.as_ref() {
            if !h.is_finished() {
                return Ok(());
            }
            let h = bg.take().expect("checked above");
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("background publish panicked")),
            }
        }
        let inner = Arc::clone(&self.inner);
        *bg = Some(
            std::thread::Builder::new()
                .name("copy-publish".to_string())
                .spawn(move || inner.publish_staged())?,
        );
        Ok(())
    }
}

impl LocalInner {
    fn tmp_name(&self, parent: &str, leaf: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        if parent.is_empty() {
            format!("{}{n}.{leaf}", self.tmp_tag)
        } else {
            format!("{parent}/{}{n}.{leaf}", self.tmp_tag)
        }
    }

    /// Writes `bytes` to a new file, creating the parent directory on first use.
    fn write_new(
        &self,
        parent: &str,
        path: &str,
        bytes: &[u8],
        fsync: bool,
        mode: u32,
    ) -> io::Result<()> {
        let opts = {
            let mut o = OpenOptions::new();
            o.write(true).create_new(true).mode(mode);
            o
        };
        let mut f = match self.dir.open_with(path, &opts) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !parent.is_empty() => {
                self.dir.create_dir_all(parent)?;
                self.dir.open_with(path, &opts)?
            }
            Err(e) => return Err(e),
        };
        f.write_all(bytes)?;
        if fsync {
            f.sync_all()?;
        }
        Ok(())
    }

    /// Publishes `bytes` under `key` create-only: writes and fsyncs a uniquely named temporary
    /// file, hard-links it to `key` (`link(2)` fails if `key` exists, exactly like `O_EXCL`,
    /// but the name only ever appears with every byte behind it, which `O_EXCL` on the final
    /// name cannot promise across a crash), removes the temporary name and fsyncs the
    /// directory. No rename anywhere: a crash leaves the object whole or absent, plus at most
    /// a temporary file that `remove_incomplete` deletes.
    fn publish_new(&self, key: &str, bytes: &[u8], mode: u32, hook: bool) -> io::Result<bool> {
        let point = |what: &str| {
            if hook {
                crash_hook::point(what);
            }
        };
        let (parent, leaf) = split_key(key);
        let tmp = self.tmp_name(parent, leaf);
        self.write_new(parent, &tmp, bytes, true, mode)?;
        point("a temporary file written");
        let linked = match self.dir.hard_link(&tmp, &self.dir, key) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = self.dir.remove_file(&tmp);
                return Err(e);
            }
        };
        point("an object linked to its name");
        self.dir.remove_file(&tmp)?;
        rustix::fs::fsync(self.sync_fd(parent)?)?;
        point("its temporary name removed");
        Ok(linked)
    }

    /// A readable descriptor of a directory of the store: `cap_std` holds directories as
    /// `O_PATH` descriptors, which `fsync`/`syncfs` refuse. Paths are validated keys (or
    /// their parents), so they stay inside the store.
    fn sync_fd(&self, rel: &str) -> io::Result<OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let p = if rel.is_empty() { "." } else { rel };
        Ok(rustix::fs::openat(
            &self.dir,
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    fn syncfs(&self) -> io::Result<()> {
        rustix::fs::syncfs(self.sync_fd("")?)?;
        Ok(())
    }

    fn publish_staged(&self) -> io::Result<()> {
        let _one = lock(&self.sync_lock);
        let mut staged = std::mem::take(&mut *lock(&self.staged));
        let r = self.publish(&mut staged);
        if !staged.is_empty() {
            // Not published (an error): keep them for the next sync, which must not report
            // success while they are invisible.
            lock(&self.staged).append(&mut staged);
        }
        r
    }

    /// Publishes `staged`, removing from it every entry that is done.
    fn publish(&self, staged: &mut Vec<Staged>) -> io::Result<()> {
        // Data (and the staged names) of everything staged so far reach the disk first ...
        self.syncfs()?;
        if staged.is_empty() {
            return Ok(());
        }
        while let Some(s) = staged.last() {
            match self.dir.rename(&s.tmp, &self.dir, &s.key) {
                Ok(()) => {}
                // Only gc removes staged files, under the exclusive lock, so a vanished one was
                // left by a session that ended without committing: nothing refers to it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            staged.pop();
        }
        // ... then the final names.
        self.syncfs()
    }

    fn walk(&self, rel: &str, out: &mut Vec<String>, temps: bool) -> io::Result<()> {
        let entries = if rel.is_empty() {
            self.dir.entries()?
        } else {
            match self.dir.read_dir(rel) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let key = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                self.walk(&key, out, temps)?;
            } else if ft.is_file() && name.starts_with(TMP_PREFIX) == temps {
                out.push(key);
            }
        }
        Ok(())
    }
}

fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
    }
}

impl ObjectStore for LocalDir {
    fn location(&self) -> &str {
        &self.inner.location
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        check_key(key)?;
        let inner = &self.inner;
        let (parent, leaf) = split_key(key);
        let tmp = inner.tmp_name(parent, leaf);
        match self.durability {
            Durability::Batched => {
                inner.write_new(parent, &tmp, bytes, false, 0o666)?;
                let pending: usize = {
                    let mut staged = lock(&inner.staged);
                    staged.push(Staged {
                        tmp,
                        key: key.to_string(),
                        bytes: bytes.len(),
                    });
                    staged.iter().map(|s| s.bytes).sum()
                };
                if pending >= MAX_STAGED_BYTES {
                    self.publish_in_background()?;
                }
                Ok(())
            }
            Durability::PerObject => {
                inner.write_new(parent, &tmp, bytes, true, 0o666)?;
                inner.dir.rename(&tmp, &inner.dir, key)?;
                // The parent and its ancestors: directories may have been created on the way.
                let mut dirty = lock(&inner.dirty_dirs);
                let mut d = parent;
                loop {
                    dirty.insert(d.to_string());
                    if d.is_empty() {
                        break;
                    }
                    d = split_key(d).0;
                }
                Ok(())
            }
        }
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        check_key(key)?;
        self.inner.publish_new(key, bytes, 0o666, false)
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        check_key(key)?;
        self.inner.dir.read(key)
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        check_key(key)?;
        let mut f = self.inner.dir.open(key)?;
        buf.clear();
        f.read_to_end(buf)?;
        Ok(())
    }

    fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        check_key(key)?;
        let f = self.inner.dir.open(key)?;
        // Every byte is read over; only growth of the (reused) buffer is zero-filled.
        buf.truncate(len);
        buf.resize(len, 0);
        f.read_exact_at(buf, offset)
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        Ok(self.size(key)?.is_some())
    }

    fn size(&self, key: &str) -> io::Result<Option<u64>> {
        check_key(key)?;
        match self.inner.dir.metadata(key) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> io::Result<bool> {
        check_key(key)?;
        match self.inner.dir.remove_file(key) {
            Ok(()) => {
                if self.durability == Durability::PerObject {
                    lock(&self.inner.dirty_dirs).insert(split_key(key).0.to_string());
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        if prefix.contains("..") || prefix.starts_with('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid list prefix {prefix:?}"),
            ));
        }
        let start = split_key(prefix).0;
        let mut out = Vec::new();
        self.inner.walk(start, &mut out, false)?;
        out.retain(|k| k.starts_with(prefix));
        out.sort_unstable();
        Ok(out)
    }

    fn sync(&self) -> io::Result<()> {
        match self.durability {
            Durability::Batched => {
                self.join_background()?;
                self.inner.publish_staged()
            }
            Durability::PerObject => {
                let _one = lock(&self.inner.sync_lock);
                let dirs = std::mem::take(&mut *lock(&self.inner.dirty_dirs));
                for d in dirs {
                    rustix::fs::fsync(self.inner.sync_fd(&d)?)?;
                }
                Ok(())
            }
        }
    }

    fn remove_incomplete(&self) -> io::Result<u64> {
        // A failed background publish only concerns objects nobody will reference now.
        let _ = self.join_background();
        let inner = &self.inner;
        let _one = lock(&inner.sync_lock);
        // Our own staged files belong to sessions that ended without committing (gc holds the
        // exclusive lock, so no session is live): forget them before deleting them.
        lock(&inner.staged).clear();
        let mut temps = Vec::new();
        inner.walk("", &mut temps, true)?;
        let mut n = 0;
        for t in temps {
            match inner.dir.remove_file(&t) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn lock(&self, mode: LockMode, wait: LockWait) -> io::Result<Option<LockGuard>> {
        Ok(flock_file(&self.inner.dir, "lock", mode, wait)?.map(LockGuard::new))
    }
}

impl Drop for LocalDir {
    fn drop(&mut self) {
        let _ = self.join_background();
    }
}
