//! Endpoints, VMs with their devices, and which array owns each LUN.

use anyhow::Context;
use rusqlite::{OptionalExtension, params};

use super::{Catalog, DeviceRecord, EndpointRecord, VmRecord, now_ms};

const VM_COLUMNS: &str = "name, endpoint, vm_ref, host, power, hardware";
const DEVICE_COLUMNS: &str = "device_ref, mount_point, kind, disk_ref, wwn, mode, capacity";

/// A VM (without devices) from its six columns.
fn vm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VmRecord> {
    let hardware: String = r.get(5)?;
    let hardware = serde_json::from_str(&hardware).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(VmRecord {
        name: r.get(0)?,
        endpoint: r.get(1)?,
        vm_ref: r.get(2)?,
        host: r.get(3)?,
        power: r.get(4)?,
        devices: Vec::new(),
        hardware,
    })
}

/// A device from its seven columns, starting at `first`.
fn device_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_ref: r.get(first)?,
        mount_point: r.get(first + 1)?,
        kind: r.get(first + 2)?,
        disk_ref: r.get(first + 3)?,
        wwn: r.get(first + 4)?,
        mode: r.get(first + 5)?,
        capacity: r.get::<_, i64>(first + 6)? as u64,
    })
}

/// Adds or replaces sealed secrets of an endpoint inside a transaction.
fn put_secrets(
    tx: &rusqlite::Transaction<'_>,
    endpoint: &str,
    sealed_secrets: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    for (name, sealed) in sealed_secrets {
        tx.execute(
            "INSERT INTO endpoint_secrets (endpoint, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (endpoint, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            params![endpoint, name, sealed, now_ms()],
        )?;
    }
    Ok(())
}

impl Catalog {
    /// Adds an endpoint with its sealed secrets (name, sealed bytes), in one transaction; an
    /// existing name is a conflict.
    pub fn add_endpoint(
        &self,
        endpoint: &EndpointRecord,
        sealed_secrets: &[(String, Vec<u8>)],
    ) -> anyhow::Result<()> {
        let settings = serde_json::to_string(&endpoint.settings)?;
        let grants = serde_json::to_string(&endpoint.grants)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO endpoints (name, adapter, settings, grants, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![endpoint.name, endpoint.adapter, settings, grants, endpoint.created_at],
        )?;
        if inserted == 0 {
            return Err(crate::refusal::Refusal::conflict(format!(
                "an endpoint named '{}' exists already",
                endpoint.name
            )));
        }
        put_secrets(&tx, &endpoint.name, sealed_secrets)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets (adds or replaces) sealed secrets of an endpoint and removes the named ones, in
    /// one transaction; `Ok(false)` if the endpoint is unknown.
    pub fn update_secrets(
        &self,
        endpoint: &str,
        sealed_secrets: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> anyhow::Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known: i64 = tx.query_row(
            "SELECT COUNT(*) FROM endpoints WHERE name = ?1",
            params![endpoint],
            |r| r.get(0),
        )?;
        if known == 0 {
            return Ok(false);
        }
        put_secrets(&tx, endpoint, sealed_secrets)?;
        for name in remove {
            tx.execute(
                "DELETE FROM endpoint_secrets WHERE endpoint = ?1 AND name = ?2",
                params![endpoint, name],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// An endpoint's sealed secrets, by name.
    pub fn sealed_secrets(&self, endpoint: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT name, sealed FROM endpoint_secrets WHERE endpoint = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![endpoint], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The names of every endpoint's secrets (never their values), by endpoint.
    pub fn secret_names(&self) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT endpoint, name FROM endpoint_secrets ORDER BY endpoint, name",
        )?;
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (endpoint, name) = row?;
            out.entry(endpoint).or_default().push(name);
        }
        Ok(out)
    }

    /// Removes an endpoint that nothing recorded depends on. `Ok(false)` if it is unknown;
    /// an error naming what still depends on it otherwise (its VMs, live snapshots, or
    /// unfinished jobs anywhere, since a job may resume against it).
    pub fn remove_endpoint(&self, name: &str) -> anyhow::Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let count = |sql: &str| -> anyhow::Result<i64> {
            Ok(tx.query_row(sql, params![name], |r| r.get(0))?)
        };
        let vms = count("SELECT COUNT(*) FROM vms WHERE endpoint = ?1")?;
        let snapshots =
            count("SELECT COUNT(*) FROM snapshot_refs WHERE endpoint = ?1 AND expired_at IS NULL")?;
        let running = count(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'compensating') AND ?1 = ?1",
        )?;
        let mut users = Vec::new();
        if vms > 0 {
            users.push(format!("{vms} VM(s)"));
        }
        if snapshots > 0 {
            users.push(format!("{snapshots} snapshot(s) of recovery points"));
        }
        if running > 0 {
            users.push(format!("{running} unfinished job(s)"));
        }
        if !users.is_empty() {
            return Err(crate::refusal::Refusal::conflict(format!(
                "endpoint '{name}' is still in use by {}; it was not removed",
                users.join(", ")
            )));
        }
        tx.execute(
            "DELETE FROM endpoint_secrets WHERE endpoint = ?1",
            params![name],
        )?;
        let removed = tx.execute("DELETE FROM endpoints WHERE name = ?1", params![name])?;
        tx.commit()?;
        Ok(removed > 0)
    }

    /// Every endpoint, by name.
    pub fn endpoints(&self) -> anyhow::Result<Vec<EndpointRecord>> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT name, adapter, settings, grants, created_at FROM endpoints ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, adapter, settings, grants, created_at) = row?;
            let settings = serde_json::from_str(&settings)
                .with_context(|| format!("endpoint {name}: stored settings are corrupt"))?;
            let grants = serde_json::from_str(&grants)
                .with_context(|| format!("endpoint {name}: stored grants are corrupt"))?;
            out.push(EndpointRecord {
                name,
                adapter,
                settings,
                grants,
                created_at,
            });
        }
        Ok(out)
    }

    /// Inserts or replaces a VM and its devices, as just discovered.
    pub fn upsert_vm(&self, vm: &VmRecord) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let hardware = serde_json::to_string(&vm.hardware)?;
        tx.execute(
            "INSERT INTO vms (name, endpoint, vm_ref, host, power, updated_at, hardware) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET endpoint = ?2, vm_ref = ?3, host = ?4, power = ?5, updated_at = ?6, hardware = ?7",
            params![vm.name, vm.endpoint, vm.vm_ref, vm.host, vm.power, now_ms(), hardware],
        )?;
        tx.execute("DELETE FROM devices WHERE vm_name = ?1", params![vm.name])?;
        for d in &vm.devices {
            tx.execute(
                "INSERT INTO devices (vm_name, device_ref, mount_point, kind, disk_ref, wwn, mode, capacity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![vm.name, d.device_ref, d.mount_point, d.kind, d.disk_ref, d.wwn, d.mode, d.capacity as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a VM that has no recovery points (a restore being undone). Refuses while
    /// points exist, so no history is dropped by accident.
    pub fn delete_vm(&self, name: &str) -> anyhow::Result<()> {
        let conn = self.conn();
        let points: i64 = conn.query_row(
            "SELECT COUNT(*) FROM recovery_points WHERE vm_name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        if points > 0 {
            anyhow::bail!("VM {name} has {points} recovery point(s); not forgetting it");
        }
        conn.execute("DELETE FROM vms WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// A VM by name.
    pub fn vm(&self, name: &str) -> anyhow::Result<Option<VmRecord>> {
        let conn = self.read();
        let vm = conn
            .prepare_cached(&format!("SELECT {VM_COLUMNS} FROM vms WHERE name = ?1"))?
            .query_row(params![name], vm_row)
            .optional()?;
        let Some(mut vm) = vm else { return Ok(None) };
        vm.devices = conn
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE vm_name = ?1 ORDER BY mount_point"
            ))?
            .query_map(params![name], |r| device_row(r, 0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(vm))
    }

    /// Every VM, by name: two queries however many VMs there are.
    pub fn vms(&self) -> anyhow::Result<Vec<VmRecord>> {
        let conn = self.read();
        let mut out: Vec<VmRecord> = conn
            .prepare_cached(&format!("SELECT {VM_COLUMNS} FROM vms ORDER BY name"))?
            .query_map([], vm_row)?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT vm_name, {DEVICE_COLUMNS} FROM devices ORDER BY vm_name, mount_point"
        ))?;
        let devices = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, device_row(r, 1)?)))?;
        for device in devices {
            let (vm_name, device) = device?;
            if let Ok(i) = out.binary_search_by(|v| v.name.as_str().cmp(vm_name.as_str())) {
                out[i].devices.push(device);
            }
        }
        Ok(out)
    }

    /// The array endpoint remembered as the owner of a LUN.
    pub fn lun_owner(&self, wwn: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT endpoint FROM lun_owners WHERE wwn = ?1",
                params![wwn],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Remembers which array endpoint owns a LUN.
    pub fn set_lun_owner(&self, wwn: &str, endpoint: &str) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO lun_owners (wwn, endpoint, found_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(wwn) DO UPDATE SET endpoint = ?2, found_at = ?3",
            params![wwn, endpoint, now_ms()],
        )?;
        Ok(())
    }
}
