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

/// A handle on the catalog; cheap to share behind an `Arc`.
pub struct Catalog {
    conn: Mutex<Connection>,
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
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction (rusqlite
        // rolls back on drop), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
