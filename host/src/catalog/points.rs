//! Recovery points and their snapshot refs.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, PointRecord, SnapshotRefRecord};

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
            .query_map(params![id], |r| {
                Ok(SnapshotRefRecord {
                    device_ref: r.get(0)?,
                    mount_point: r.get(1)?,
                    device_kind: r.get(2)?,
                    wwn: r.get(3)?,
                    mode: r.get(4)?,
                    endpoint: r.get(5)?,
                    snapshot: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })?
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
            Ok((
                r.get::<_, String>(0)?,
                SnapshotRefRecord {
                    device_ref: r.get(1)?,
                    mount_point: r.get(2)?,
                    device_kind: r.get(3)?,
                    wwn: r.get(4)?,
                    mode: r.get(5)?,
                    endpoint: r.get(6)?,
                    snapshot: r.get(7)?,
                    created_at: r.get(8)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
