//! Jobs and their step journals.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, JobRecord, JobState, StepRecord, StepState, now_ms};

fn parse<T: std::str::FromStr<Err = String>>(raw: String) -> rusqlite::Result<T> {
    raw.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn json(raw: Option<String>) -> rusqlite::Result<Option<serde_json::Value>> {
    raw.map(|s| {
        serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

/// The columns [`job_row`] reads, in order.
const JOB_COLUMNS: &str = "id, kind, state, vm_name, params, result, error, created_at, updated_at";

/// A job (without its steps) from [`JOB_COLUMNS`].
fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: parse(r.get(2)?)?,
        vm_name: r.get(3)?,
        params: json(r.get(4)?)?.unwrap_or_default(),
        result: json(r.get(5)?)?,
        error: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        steps: Vec::new(),
        adapters: Default::default(),
    })
}

impl Catalog {
    /// Records a new job in state `running`.
    pub fn create_job(
        &self,
        id: &str,
        kind: &str,
        vm_name: Option<&str>,
        params: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        self.conn().execute(
            "INSERT INTO jobs (id, kind, state, vm_name, params, created_at, updated_at) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?5)",
            params![id, kind, vm_name, params.to_string(), now],
        )?;
        Ok(())
    }

    /// Moves a job to a state, with its result or error.
    pub fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        self.conn().execute(
            "UPDATE jobs SET state = ?2, result = COALESCE(?3, result), error = COALESCE(?4, error), updated_at = ?5 WHERE id = ?1",
            params![id, state.as_str(), result.map(|r| r.to_string()), error, now_ms()],
        )?;
        Ok(())
    }

    /// A job with its steps.
    pub fn job(&self, id: &str) -> anyhow::Result<Option<JobRecord>> {
        let conn = self.read();
        let job = conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row(params![id], job_row)
            .optional()?;
        let Some(mut job) = job else { return Ok(None) };
        let mut stmt = conn.prepare_cached(
            "SELECT seq, name, state, detail, output, undo, started_at, ended_at FROM job_steps WHERE job_id = ?1 ORDER BY seq",
        )?;
        job.steps = stmt
            .query_map(params![id], |r| {
                Ok(StepRecord {
                    seq: r.get(0)?,
                    name: r.get(1)?,
                    state: parse(r.get(2)?)?,
                    detail: r.get(3)?,
                    output: json(r.get(4)?)?,
                    undo: json(r.get(5)?)?,
                    started_at: r.get(6)?,
                    ended_at: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        job.adapters = self.job_record_adapters(id)?;
        Ok(Some(job))
    }

    /// When a job was created (ms since the epoch), if it exists.
    pub fn job_created_at(&self, id: &str) -> anyhow::Result<Option<i64>> {
        Ok(self
            .read()
            .prepare_cached("SELECT created_at FROM jobs WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?)
    }

    /// The adapter version a job runs `endpoint` on: the one recorded by its first session
    /// there, else `current` (recorded now). First writer wins, so concurrent steps agree.
    pub fn pin_job_adapter(
        &self,
        job_id: &str,
        endpoint: &str,
        current: &str,
    ) -> anyhow::Result<String> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO job_adapters (job_id, endpoint, adapter) VALUES (?1, ?2, ?3)",
            params![job_id, endpoint, current],
        )?;
        Ok(conn.query_row(
            "SELECT adapter FROM job_adapters WHERE job_id = ?1 AND endpoint = ?2",
            params![job_id, endpoint],
            |r| r.get(0),
        )?)
    }

    /// The adapter version a job runs on each endpoint it has used.
    pub fn job_record_adapters(
        &self,
        id: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        Ok(self
            .read()
            .prepare_cached("SELECT endpoint, adapter FROM job_adapters WHERE job_id = ?1")?
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// Every job, newest first, without steps: one query for a listing.
    pub fn jobs_newest_first(&self) -> anyhow::Result<Vec<JobRecord>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, rowid DESC"
        ))?;
        Ok(stmt.query_map([], job_row)?.collect::<Result<_, _>>()?)
    }

    /// Ids of unfinished jobs, oldest first (the order to resume them in).
    pub fn unfinished_job_ids(&self) -> anyhow::Result<Vec<String>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM jobs WHERE state IN ('running', 'compensating') ORDER BY created_at, rowid",
        )?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// An unfinished job on a VM, if any (one job per VM at a time).
    pub fn unfinished_job_on(&self, vm_name: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM jobs WHERE vm_name = ?1 AND state IN ('running', 'compensating') LIMIT 1",
                params![vm_name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records that a step started (or restarted after a crash).
    pub fn begin_step(&self, job_id: &str, seq: u32, name: &str) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO job_steps (job_id, seq, name, state, started_at) VALUES (?1, ?2, ?3, 'running', ?4)
             ON CONFLICT(job_id, seq) DO UPDATE SET name = ?3, state = 'running', started_at = ?4, ended_at = NULL",
            params![job_id, seq, name, now_ms()],
        )?;
        Ok(())
    }

    /// Records how a step ended, with its output and undo (for a success).
    pub fn end_step(
        &self,
        job_id: &str,
        seq: u32,
        state: StepState,
        detail: &str,
        output: Option<&serde_json::Value>,
        undo: Option<&serde_json::Value>,
    ) -> anyhow::Result<()> {
        self.conn().execute(
            "UPDATE job_steps SET state = ?3, detail = ?4, output = COALESCE(?5, output), undo = COALESCE(?6, undo), ended_at = ?7
             WHERE job_id = ?1 AND seq = ?2",
            params![job_id, seq, state.as_str(), detail, output.map(|o| o.to_string()), undo.map(|u| u.to_string()), now_ms()],
        )?;
        Ok(())
    }
}
