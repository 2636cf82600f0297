//! Who may use the admin API: bearer tokens (only their hashes are kept), the audit log of
//! state-changing requests, and idempotency keys (same key, same job).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Catalog, now_ms};

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
    #[serde(serialize_with = "super::records::as_time_pub")]
    pub created_at: i64,
}

/// One audited request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(serialize_with = "super::records::as_time_pub")]
    pub at: i64,
    pub who: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Catalog {
    /// Stores a new token's hash under a unique name.
    pub fn add_token(&self, name: &str, role: &str, hash: &str) -> anyhow::Result<()> {
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO api_tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role, hash, now_ms()],
        )?;
        if inserted == 0 {
            anyhow::bail!("a token named '{name}' exists already");
        }
        Ok(())
    }

    /// The token with this hash: (name, role).
    pub fn token_by_hash(&self, hash: &str) -> anyhow::Result<Option<(String, String)>> {
        Ok(self
            .read()
            .prepare_cached("SELECT name, role FROM api_tokens WHERE hash = ?1")?
            .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Every token, without secrets.
    pub fn tokens(&self) -> anyhow::Result<Vec<TokenRecord>> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT name, role, created_at FROM api_tokens ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenRecord {
                name: r.get(0)?,
                role: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a state-changing request and its outcome.
    pub fn audit(&self, who: &str, method: &str, path: &str, status: u16) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO audit_log (at, who, method, path, status) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), who, method, path, status],
        )?;
        Ok(())
    }

    /// The newest audit entries first.
    pub fn audit_log(&self, limit: u32) -> anyhow::Result<Vec<AuditRecord>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, who, method, path, status FROM audit_log ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                who: r.get(2)?,
                method: r.get(3)?,
                path: r.get(4)?,
                status: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The job an idempotency key already started: (who, request, job id).
    pub fn idempotent_job(&self, key: &str) -> anyhow::Result<Option<(String, String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT who, request, job_id FROM idempotency_keys WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// Remembers which job a key started.
    pub fn remember_idempotency(
        &self,
        key: &str,
        who: &str,
        request: &str,
        job_id: &str,
    ) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO idempotency_keys (key, who, request, job_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, who, request, job_id, now_ms()],
        )?;
        Ok(())
    }
}

impl Catalog {
    /// Asks a running job to stop: it compensates before its next step. `false` if the job
    /// is not running (finished, or compensating already).
    pub fn request_cancel(&self, job_id: &str) -> anyhow::Result<bool> {
        let changed = self.conn().execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
            params![job_id],
        )?;
        Ok(changed == 1)
    }

    /// Whether someone asked the job to stop.
    pub fn cancel_requested(&self, job_id: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT cancel_requested FROM jobs WHERE id = ?1",
                params![job_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0)
            != 0)
    }

    /// Jobs per state, for `/metrics`.
    pub fn job_counts(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finished steps per name: (name, count, total seconds), for `/metrics`.
    pub fn step_durations(&self) -> anyhow::Result<Vec<(String, u64, f64)>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT name, COUNT(*), SUM(ended_at - started_at) FROM job_steps
             WHERE ended_at IS NOT NULL GROUP BY name ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0) as f64 / 1000.0,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
