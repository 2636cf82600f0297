//! Recovery points with their snapshot refs and copy refs.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CopyRefRecord, PointRecord, SnapshotRefRecord};

const SNAPSHOT_COLUMNS: &str =
    "device_ref, mount_point, device_kind, wwn, mode, endpoint, snapshot, created_at, expired_at";
const COPY_COLUMNS: &str =
    "device_ref, store, copy, size, bytes_read, bytes_stored, stored_total, job_id, created_at";

/// A copy ref from its nine columns, starting at `first`.
fn copy_ref(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<CopyRefRecord> {
    Ok(CopyRefRecord {
        device_ref: r.get(first)?,
        store: r.get(first + 1)?,
        copy: r.get(first + 2)?,
        size: r.get::<_, i64>(first + 3)? as u64,
        bytes_read: r.get::<_, i64>(first + 4)? as u64,
        bytes_stored: r.get::<_, i64>(first + 5)? as u64,
        stored_total: r.get::<_, i64>(first + 6)? as u64,
        job_id: r.get(first + 7)?,
        created_at: r.get(first + 8)?,
    })
}

/// A snapshot ref from its nine columns, starting at `first`.
fn snapshot_ref(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<SnapshotRefRecord> {
    Ok(SnapshotRefRecord {
        device_ref: r.get(first)?,
        mount_point: r.get(first + 1)?,
        device_kind: r.get(first + 2)?,
        wwn: r.get(first + 3)?,
        mode: r.get(first + 4)?,
        endpoint: r.get(first + 5)?,
        snapshot: r.get(first + 6)?,
        created_at: r.get(first + 7)?,
        expired_at: r.get(first + 8)?,
    })
}

impl Catalog {
    /// Records a recovery point; recording the same id again changes nothing (a resumed
    /// step may do it twice).
    pub fn insert_point(&self, point: &PointRecord) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO recovery_points (id, vm_name, created_at, job_id) VALUES (?1, ?2, ?3, ?4)",
            params![point.id, point.vm_name, point.created_at, point.job_id],
        )?;
        if inserted == 1 {
            for s in &point.snapshots {
                tx.execute(
                    "INSERT INTO snapshot_refs (point_id, device_ref, mount_point, device_kind, wwn, mode, endpoint, snapshot, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![point.id, s.device_ref, s.mount_point, s.device_kind, s.wwn, s.mode, s.endpoint, s.snapshot, s.created_at],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a recovery point and its refs (the snapshots themselves are the caller's).
    pub fn delete_point(&self, id: &str) -> anyhow::Result<()> {
        self.conn()
            .execute("DELETE FROM recovery_points WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// A recovery point by id.
    pub fn point(&self, id: &str) -> anyhow::Result<Option<PointRecord>> {
        let conn = self.read();
        let point = conn
            .query_row(
                "SELECT id, vm_name, created_at, job_id FROM recovery_points WHERE id = ?1",
                params![id],
                |r| {
                    Ok(PointRecord {
                        id: r.get(0)?,
                        vm_name: r.get(1)?,
                        created_at: r.get(2)?,
                        job_id: r.get(3)?,
                        snapshots: Vec::new(),
                        copies: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut point) = point else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshot_refs WHERE point_id = ?1 ORDER BY mount_point"
        ))?;
        point.snapshots = stmt
            .query_map(params![id], |r| snapshot_ref(r, 0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COPY_COLUMNS} FROM copy_refs WHERE point_id = ?1 ORDER BY device_ref"
        ))?;
        point.copies = stmt
            .query_map(params![id], |r| copy_ref(r, 0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(point))
    }

    /// Every recovery point of a VM, oldest first.
    pub fn points(&self, vm_name: &str) -> anyhow::Result<Vec<PointRecord>> {
        let ids: Vec<String> = {
            let conn = self.read();
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM recovery_points WHERE vm_name = ?1 ORDER BY created_at, rowid",
            )?;
            stmt.query_map(params![vm_name], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(point) = self.point(&id)? {
                out.push(point);
            }
        }
        Ok(out)
    }

    /// Every snapshot ref held by a given endpoint, with its point id.
    pub fn snapshot_refs_on(
        &self,
        endpoint: &str,
    ) -> anyhow::Result<Vec<(String, SnapshotRefRecord)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT point_id, {SNAPSHOT_COLUMNS} FROM snapshot_refs
             WHERE endpoint = ?1 AND expired_at IS NULL ORDER BY point_id, mount_point"
        ))?;
        let rows = stmt.query_map(params![endpoint], |r| {
            Ok((r.get::<_, String>(0)?, snapshot_ref(r, 1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Catalog {
    /// Records a point's device copies; recording one again replaces it (a resumed step).
    pub fn insert_copy_refs(&self, point_id: &str, copies: &[CopyRefRecord]) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in copies {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO copy_refs (point_id, {COPY_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    point_id,
                    c.device_ref,
                    c.store,
                    c.copy,
                    c.size as i64,
                    c.bytes_read as i64,
                    c.bytes_stored as i64,
                    c.stored_total as i64,
                    c.job_id,
                    c.created_at
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets device copies of a point (the manifests are the caller's). A point left with
    /// neither snapshots nor copies is forgotten too.
    pub fn delete_copy_refs(&self, point_id: &str, device_refs: &[String]) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for device_ref in device_refs {
            tx.execute(
                "DELETE FROM copy_refs WHERE point_id = ?1 AND device_ref = ?2",
                params![point_id, device_ref],
            )?;
        }
        forget_if_empty(&tx, point_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a point's snapshot of one device as deleted by expiry.
    pub fn mark_snapshot_expired(
        &self,
        point_id: &str,
        device_ref: &str,
        when: i64,
    ) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE snapshot_refs SET expired_at = ?3 WHERE point_id = ?1 AND device_ref = ?2 AND expired_at IS NULL",
            params![point_id, device_ref, when],
        )?;
        forget_if_empty(&tx, point_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Every copy ref in the catalog with its point id (for `verify --all`).
    pub fn all_copy_refs(&self) -> anyhow::Result<Vec<(String, CopyRefRecord)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT point_id, {COPY_COLUMNS} FROM copy_refs ORDER BY created_at, point_id, device_ref"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, copy_ref(r, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Deletes a point whose snapshots are all expired and that has no copies left: it can
/// neither be reverted nor restored, so keeping it would only mislead.
fn forget_if_empty(tx: &rusqlite::Transaction<'_>, point_id: &str) -> anyhow::Result<()> {
    tx.execute(
        "DELETE FROM recovery_points WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM copy_refs WHERE point_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM snapshot_refs WHERE point_id = ?1 AND expired_at IS NULL)",
        params![point_id],
    )?;
    Ok(())
}
