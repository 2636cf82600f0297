//! Recovery points and their snapshot refs.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, PointRecord, SnapshotRefRecord};

/// A snapshot ref from its eight columns, starting at `first`.
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
        let conn = self.conn();
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
                    })
                },
            )
            .optional()?;
        let Some(mut point) = point else {
            return Ok(None);
        };
        let mut stmt = conn.prepare(
            "SELECT device_ref, mount_point, device_kind, wwn, mode, endpoint, snapshot, created_at
             FROM snapshot_refs WHERE point_id = ?1 ORDER BY mount_point",
        )?;
        point.snapshots = stmt
            .query_map(params![id], |r| snapshot_ref(r, 0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(point))
    }

    /// Every recovery point of a VM, oldest first.
    pub fn points(&self, vm_name: &str) -> anyhow::Result<Vec<PointRecord>> {
        let ids: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
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
        let mut stmt = conn.prepare(
            "SELECT point_id, device_ref, mount_point, device_kind, wwn, mode, endpoint, snapshot, created_at
             FROM snapshot_refs WHERE endpoint = ?1 ORDER BY point_id, mount_point",
        )?;
        let rows = stmt.query_map(params![endpoint], |r| {
            Ok((r.get::<_, String>(0)?, snapshot_ref(r, 1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
