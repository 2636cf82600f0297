//! The catalog: the tracking store of endpoints, VMs, devices, recovery points with their
//! snapshot and copy refs, and jobs with their step journals. SQLite in the data directory.
//!
//! Every write is one transaction, so a killed process leaves the catalog as of the last
//! committed write (WAL mode, `synchronous=NORMAL`: safe against process crashes).

mod access;
mod jobs;
mod migrations;
mod points;
mod records;
mod vms;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use rusqlite::Connection;

pub use access::{AuditRecord, TokenRecord};
pub use records::*;

/// The catalog file name inside the data directory.
pub const CATALOG_FILE: &str = "catalog.sqlite";

/// Read-only connections beside the writer: WAL lets them read while it writes, so busy
/// API reads do not queue behind one lock.
const READERS: usize = 3;

/// A handle on the catalog; cheap to share behind an `Arc`.
pub struct Catalog {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// Counts uses of the writer, bumped after each is over: a cached answer computed while
    /// this number stayed the same saw every committed write.
    generation: std::sync::atomic::AtomicU64,
}

/// The writer connection, held; bumps the catalog's generation once released.
pub(crate) struct WriteGuard<'a> {
    guard: Option<MutexGuard<'a, Connection>>,
    generation: &'a std::sync::atomic::AtomicU64,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Release first: the bump must come after the write is committed and visible.
        drop(self.guard.take());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Catalog {
    /// Opens (creating and migrating) the catalog at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening the catalog {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The API asks the same few queries many times a second.
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::migrate(&mut conn)
            .with_context(|| format!("migrating the catalog {}", path.display()))?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .with_context(|| format!("opening the catalog {} to read", path.display()))?;
                reader.busy_timeout(std::time::Duration::from_secs(10))?;
                reader.set_prepared_statement_cache_capacity(64);
                Ok(Mutex::new(reader))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A connection for a read outside any write transaction: a free reader if there is
    /// one, else the next in turn. It sees every committed write.
    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(guard) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return guard;
            }
        }
        self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn conn(&self) -> WriteGuard<'_> {
        // A panic while holding the lock cannot leave a half-written transaction (rusqlite
        // rolls back on drop), so a poisoned lock is safe to keep using.
        WriteGuard {
            guard: Some(self.conn.lock().unwrap_or_else(|p| p.into_inner())),
            generation: &self.generation,
        }
    }

    /// Changes whenever the writer was used: read it before computing an answer to cache,
    /// and the answer stays valid while it does not change (this process's writes only).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A catalog time as RFC 3339, for people and JSON.
pub fn format_time(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
