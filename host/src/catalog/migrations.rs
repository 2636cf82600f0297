//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the tracking store of the foundation.
    r#"
    CREATE TABLE endpoints (
        name        TEXT PRIMARY KEY,
        adapter     TEXT NOT NULL,
        settings    TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE vms (
        name        TEXT PRIMARY KEY,
        endpoint    TEXT NOT NULL REFERENCES endpoints(name),
        vm_ref      TEXT NOT NULL,
        host        TEXT NOT NULL,
        power       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (endpoint, vm_ref)
    );
    CREATE TABLE devices (
        vm_name     TEXT NOT NULL REFERENCES vms(name) ON DELETE CASCADE,
        device_ref  TEXT NOT NULL,
        mount_point TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('virtual-disk', 'mapped-lun')),
        disk_ref    TEXT,
        wwn         TEXT,
        mode        TEXT CHECK (mode IN ('physical', 'virtual')),
        capacity    INTEGER NOT NULL,
        PRIMARY KEY (vm_name, device_ref),
        UNIQUE (vm_name, mount_point)
    );
    CREATE TABLE lun_owners (
        wwn         TEXT PRIMARY KEY,
        endpoint    TEXT NOT NULL,
        found_at    INTEGER NOT NULL
    );
    CREATE TABLE recovery_points (
        id          TEXT PRIMARY KEY,
        vm_name     TEXT NOT NULL REFERENCES vms(name),
        created_at  INTEGER NOT NULL,
        job_id      TEXT NOT NULL
    );
    CREATE INDEX recovery_points_by_vm ON recovery_points (vm_name, created_at);
    CREATE TABLE snapshot_refs (
        point_id    TEXT NOT NULL REFERENCES recovery_points(id) ON DELETE CASCADE,
        device_ref  TEXT NOT NULL,
        mount_point TEXT NOT NULL,
        device_kind TEXT NOT NULL,
        wwn         TEXT,
        mode        TEXT,
        endpoint    TEXT NOT NULL,
        snapshot    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (point_id, device_ref)
    );
    CREATE TABLE copy_refs (
        point_id    TEXT NOT NULL REFERENCES recovery_points(id) ON DELETE CASCADE,
        device_ref  TEXT NOT NULL,
        store       TEXT NOT NULL,
        copy        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (point_id, device_ref)
    );
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        vm_name     TEXT,
        params      TEXT NOT NULL,
        result      TEXT,
        error       TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE job_steps (
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        name        TEXT NOT NULL,
        state       TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '',
        output      TEXT,
        undo        TEXT,
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        PRIMARY KEY (job_id, seq)
    );
    "#,
    // 2: copies. Snapshot refs outlive their snapshots (marked expired) so a point whose
    // snapshots are gone still describes its devices for a restore from its copies.
    r#"
    ALTER TABLE snapshot_refs ADD COLUMN expired_at INTEGER;
    ALTER TABLE copy_refs ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE copy_refs ADD COLUMN bytes_read INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE copy_refs ADD COLUMN bytes_stored INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE copy_refs ADD COLUMN stored_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE copy_refs ADD COLUMN job_id TEXT NOT NULL DEFAULT '';
    "#,
    // 3: the admin API: bearer tokens (hashed), the audit log, idempotency keys.
    r#"
    CREATE TABLE api_tokens (
        name        TEXT PRIMARY KEY,
        role        TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
        hash        TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        who         TEXT NOT NULL,
        method      TEXT NOT NULL,
        path        TEXT NOT NULL,
        status      INTEGER NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE idempotency_keys (
        key         TEXT PRIMARY KEY,
        who         TEXT NOT NULL,
        request     TEXT NOT NULL,
        job_id      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    "#,
    // 4: contract 0.3.0: a VM's hardware as its hypervisor reports it (JSON; unknown is {}).
    r#"
    ALTER TABLE vms ADD COLUMN hardware TEXT NOT NULL DEFAULT '{}';
    "#,
    // 5: live adapter upgrades: the adapter version each job runs each endpoint on, fixed
    // by its first session there, so a job finishes on the version it started on.
    r#"
    CREATE TABLE job_adapters (
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        endpoint    TEXT NOT NULL,
        adapter     TEXT NOT NULL,
        PRIMARY KEY (job_id, endpoint)
    );
    "#,
    // 6: capabilities: what each endpoint's sandbox is granted (a JSON list in `--grant`
    // syntax; endpoints made before grants existed keep the data directory they always had),
    // and its secrets, sealed (data_dir/secrets.rs) — never their plaintext.
    r#"
    ALTER TABLE endpoints ADD COLUMN grants TEXT NOT NULL DEFAULT '["data-dir"]';
    CREATE TABLE endpoint_secrets (
        endpoint    TEXT NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (endpoint, name)
    );
    "#,
];

/// Brings the schema up to date; refuses a catalog written by a newer Tidemark.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        anyhow::bail!(
            "the catalog has schema version {current}, newer than this Tidemark knows ({}); \
             upgrade Tidemark",
            MIGRATIONS.len()
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_made_before_grants_keep_their_data_directory_and_get_no_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        {
            // A catalog as the release before grants left it (schema 5), with an endpoint.
            let mut conn = Connection::open(&path).unwrap();
            for (index, sql) in MIGRATIONS.iter().enumerate().take(5) {
                let tx = conn.transaction().unwrap();
                tx.execute_batch(sql).unwrap();
                tx.pragma_update(None, "user_version", (index + 1) as i64)
                    .unwrap();
                tx.commit().unwrap();
            }
            conn.execute(
                "INSERT INTO endpoints (name, adapter, settings, created_at) VALUES ('old', 'lab-array', '{}', 1)",
                [],
            )
            .unwrap();
        }
        let catalog = crate::catalog::Catalog::open(&path).unwrap();
        let endpoints = catalog.endpoints().unwrap();
        assert_eq!(endpoints[0].grants.describe(), ["data-dir"]);
        assert!(catalog.sealed_secrets("old").unwrap().is_empty());
        assert!(catalog.remove_endpoint("old").unwrap());
    }
}
