//! A storage array on qemu-storage-daemon (qsd), reached only over QMP and NBD on granted
//! TCP ports. A LUN is a chain of qcow2 layers in the endpoint's data directory; its top is
//! exported over NBD under its WWN while it is exposed, which is what a hypervisor maps.
//! Snapshots are external: one QMP `transaction` puts a new overlay on every member LUN
//! at once (a real consistency group) and freezes the layer below. Revert puts a new
//! overlay on the snapshot's layer and moves the exports to it; clones are linked clones
//! (an overlay on the snapshot's layer, under a new WWN); deleting a snapshot merges its
//! layer into its only child (`block-stream`) or sweeps it.
//!
//! qsd keeps nothing across a restart; the records in the data directory do, and every call
//! first rebuilds nodes and exports from them. Settings: see [`settings`].

mod daemon;
mod device;
mod qmp;
mod records;
mod settings;

use lab_common::random_hex;
use serde_json::json;
use tidemark_sdk::records::token_key;
use tidemark_sdk::{
    About, AdapterError, AdapterResult, DeviceRead, DeviceWrite, LunInfo, SnapshotRef,
};

use daemon::{Daemon, node};
use device::{LayerReader, LunWriter};
use records::{LunRecord, Records, SnapshotRecord};

/// The qsd array.
pub struct QsdArray;

/// The largest LUN: qcow2 with 64 KiB clusters holds up to 256 TiB; a round 64 TiB is plenty.
const MAX_CAPACITY: u64 = 64 << 40;

/// The adapter's own NBD export of a LUN or snapshot (the WWN export is the hypervisor's).
fn io_export(id: &str) -> String {
    format!("io-{id}")
}

fn check_name(name: &str) -> AdapterResult<()> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(AdapterError::Invalid(
            "a LUN name must have 1 to 128 characters, not all blank".into(),
        ));
    }
    Ok(())
}

fn check_capacity(capacity: u64) -> AdapterResult<()> {
    if capacity == 0 || !capacity.is_multiple_of(512) || capacity > MAX_CAPACITY {
        return Err(AdapterError::Invalid(format!(
            "LUN capacity {capacity} must be a positive multiple of 512 bytes, at most 64 TiB"
        )));
    }
    Ok(())
}

/// Creates a LUN over `backing` (a snapshot's layer for a clone) unless `token` made one.
fn create_lun_over(
    name: &str,
    capacity: u64,
    backing: Option<&str>,
    token: &str,
    records: &Records,
) -> AdapterResult<LunInfo> {
    if let Some(wwn) = records.files.recall::<String>(token)? {
        return Ok(records.lun(&wwn)?.info());
    }
    let key = token_key(token);
    if let Some(made) = records
        .luns()?
        .into_iter()
        .find(|l| l.made_by.as_deref() == Some(key.as_str()))
    {
        records.files.remember(token, &made.wwn)?;
        return Ok(made.info());
    }
    check_name(name)?;
    let mut daemon = Daemon::open()?;
    let layer = daemon.create_layer(capacity, backing, false)?;
    let wwn = format!("naa.6{}{}", daemon.settings.vendor_id, random_hex(25));
    let lun = LunRecord {
        wwn: wwn.clone(),
        name: name.to_string(),
        capacity,
        top: layer.id,
        exposed_to: Vec::new(),
        made_by: Some(key),
    };
    records.save_lun(&lun)?;
    records.files.remember(token, &wwn)?;
    Ok(lun.info())
}

/// Whether qsd has `node` open with a backing node attached.
fn has_backing(daemon: &mut Daemon, layer: &str) -> AdapterResult<bool> {
    let nodes = daemon
        .qmp
        .execute("query-named-block-nodes", json!({ "flat": false }))?;
    Ok(nodes
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["node-name"] == json!(node(layer)) && n["image"].get("backing-image").is_some()))
}

/// Snapshots a token recorded before: finished ones as they are; pending ones finished if
/// their transaction ran (the overlay rests on the frozen layer), else dropped.
fn earlier_snapshots(
    daemon: &mut Daemon,
    key: &str,
    wwns: &[String],
) -> AdapterResult<Option<Vec<SnapshotRef>>> {
    let mut found: Vec<SnapshotRecord> = daemon
        .records
        .snapshots()?
        .into_iter()
        .filter(|s| s.made_by == key)
        .collect();
    if found.is_empty() {
        return Ok(None);
    }
    let mut complete = true;
    for s in &mut found {
        if !s.pending {
            continue;
        }
        let mut lun = daemon.records.lun(&s.wwn)?;
        let ran = lun.top == s.overlay || has_backing(daemon, &s.overlay)?;
        if ran {
            lun.top = s.overlay.clone();
            daemon.records.save_lun(&lun)?;
            s.pending = false;
            daemon.records.save_snapshot(s)?;
        } else {
            complete = false;
        }
    }
    if !complete || found.len() != wwns.len() {
        for s in found.iter().filter(|s| s.pending) {
            daemon.records.files.remove("snapshots", &s.id)?;
        }
        return Ok(None);
    }
    Ok(Some(
        wwns.iter()
            .filter_map(|w| {
                found
                    .iter()
                    .find(|s| s.wwn == *w)
                    .map(SnapshotRecord::as_ref)
            })
            .collect(),
    ))
}

impl tidemark_sdk::StorageArray for QsdArray {
    fn about() -> About {
        About {
            vendor: "Tidemark qemu-storage-daemon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "consistency-groups".into(),
                "clones".into(),
                "copy-on-write".into(),
                "changed-extents".into(),
            ],
        }
    }

    fn list_luns() -> AdapterResult<Vec<LunInfo>> {
        Daemon::open()?;
        Ok(Records::open()?
            .luns()?
            .iter()
            .map(LunRecord::info)
            .collect())
    }

    fn get_lun(wwn: String) -> AdapterResult<LunInfo> {
        Ok(Records::open()?.lun(&wwn)?.info())
    }

    fn create_lun(name: String, capacity: u64, token: String) -> AdapterResult<LunInfo> {
        check_capacity(capacity)?;
        create_lun_over(&name, capacity, None, &token, &Records::open()?)
    }

    fn delete_lun(wwn: String) -> AdapterResult<()> {
        let mut daemon = Daemon::open()?;
        let lun = daemon.records.lun(&wwn)?;
        if !lun.exposed_to.is_empty() {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} is exposed to {}; unexpose it first",
                lun.exposed_to.join(", ")
            )));
        }
        let count = daemon
            .records
            .snapshots()?
            .iter()
            .filter(|s| s.wwn == wwn)
            .count();
        if count > 0 {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} has {count} snapshot(s); delete them first"
            )));
        }
        daemon.unexport(&io_export(&wwn), true)?;
        let chain: Vec<String> = daemon
            .records
            .chain(&lun.top)?
            .into_iter()
            .map(|l| l.id)
            .collect();
        daemon.records.files.remove("luns", &wwn)?;
        // Its own layers go now, whatever their age; layers a clone shares stay.
        daemon.sweep(&chain)
    }

    fn expose(wwn: String, host_id: String) -> AdapterResult<()> {
        if host_id.trim().is_empty() {
            return Err(AdapterError::Invalid("host id must not be empty".into()));
        }
        let mut daemon = Daemon::open()?;
        let mut lun = daemon.records.lun(&wwn)?;
        daemon.export(&wwn, &lun.top, true)?;
        if !lun.exposed_to.contains(&host_id) {
            lun.exposed_to.push(host_id);
            daemon.records.save_lun(&lun)?;
        }
        Ok(())
    }

    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()> {
        let mut daemon = Daemon::open()?;
        let mut lun = daemon.records.lun(&wwn)?;
        if !lun.exposed_to.contains(&host_id) {
            return Ok(());
        }
        if lun.exposed_to.len() == 1 {
            // A hypervisor still attached makes this a conflict, and the LUN stays exposed.
            daemon.unexport(&wwn, false)?;
        }
        lun.exposed_to.retain(|h| h != &host_id);
        daemon.records.save_lun(&lun)
    }

    fn snapshot_luns(wwns: Vec<String>, token: String) -> AdapterResult<Vec<SnapshotRef>> {
        if wwns.is_empty() {
            return Err(AdapterError::Invalid(
                "snapshot-luns needs at least one LUN".into(),
            ));
        }
        if token.is_empty() {
            return Err(AdapterError::Invalid(
                "idempotency token must not be empty".into(),
            ));
        }
        let mut daemon = Daemon::open()?;
        let mut luns = Vec::new();
        for wwn in &wwns {
            let lun = daemon.records.lun(wwn)?;
            if luns.iter().any(|l: &LunRecord| l.wwn == lun.wwn) {
                return Err(AdapterError::Invalid(format!("LUN {wwn} is named twice")));
            }
            luns.push(lun);
        }
        let key = token_key(&token);
        if let Some(refs) = earlier_snapshots(&mut daemon, &key, &wwns)? {
            return Ok(refs);
        }
        // Overlays first, detached; the transaction then puts each on its LUN's top at
        // one instant (writes after it land in the overlays, exports follow them).
        let now = tidemark_sdk::now_ms();
        let mut taken = Vec::new();
        for lun in &luns {
            let overlay = daemon.create_layer(lun.capacity, Some(&lun.top), true)?;
            let snapshot = SnapshotRecord {
                id: format!("qs-{}", random_hex(12)),
                wwn: lun.wwn.clone(),
                layer: lun.top.clone(),
                overlay: overlay.id,
                created_at: now,
                made_by: key.clone(),
                pending: true,
            };
            daemon.records.save_snapshot(&snapshot)?;
            taken.push(snapshot);
        }
        let actions: Vec<_> = taken
            .iter()
            .map(|s| json!({ "type": "blockdev-snapshot", "data": { "node": node(&s.layer), "overlay": node(&s.overlay) } }))
            .collect();
        if let Err(e) = daemon
            .qmp
            .execute("transaction", json!({ "actions": actions }))
        {
            for s in &taken {
                daemon.records.files.remove("snapshots", &s.id)?;
            }
            let overlays: Vec<String> = taken.iter().map(|s| s.overlay.clone()).collect();
            daemon.sweep(&overlays)?;
            return Err(e);
        }
        for (lun, snapshot) in luns.iter_mut().zip(&mut taken) {
            lun.top = snapshot.overlay.clone();
            daemon.records.save_lun(lun)?;
            snapshot.pending = false;
            daemon.records.save_snapshot(snapshot)?;
        }
        Ok(taken.iter().map(SnapshotRecord::as_ref).collect())
    }

    fn revert_lun(wwn: String, snapshot_id: String, token: String) -> AdapterResult<()> {
        let mut daemon = Daemon::open()?;
        let mut lun = daemon.records.lun(&wwn)?;
        let snapshot = daemon.records.snapshot(&snapshot_id)?;
        if snapshot.wwn != wwn {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot_id} belongs to LUN {}, not {wwn}",
                snapshot.wwn
            )));
        }
        if daemon.records.files.recall::<String>(&token)?.is_some() {
            return Ok(());
        }
        let fresh = daemon.create_layer(lun.capacity, Some(&snapshot.layer), false)?;
        daemon.export(&io_export(&wwn), &fresh.id, true)?;
        if !lun.exposed_to.is_empty() {
            daemon.export(&wwn, &fresh.id, true)?;
        }
        let old = std::mem::replace(&mut lun.top, fresh.id);
        daemon.records.save_lun(&lun)?;
        daemon.records.files.remember(&token, &snapshot_id)?;
        daemon.sweep(&[old])
    }

    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()> {
        let mut daemon = Daemon::open()?;
        let snapshot = daemon.records.snapshot(&snapshot_id)?;
        daemon.unexport(&io_export(&snapshot_id), true)?;
        daemon.records.files.remove("snapshots", &snapshot_id)?;
        // Its layer's data lives on in whatever rests on it; merging gives the space back.
        if let Err(e) = daemon.collapse(&snapshot.layer) {
            tidemark_sdk::log::warn(&format!(
                "snapshot {snapshot_id} deleted; its layer {} stays unmerged: {e:?}",
                snapshot.layer
            ));
        }
        daemon.sweep(&[snapshot.layer])
    }

    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>> {
        Ok(Records::open()?
            .snapshots()?
            .iter()
            .filter(|s| !s.pending)
            .map(SnapshotRecord::as_ref)
            .collect())
    }

    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> AdapterResult<LunInfo> {
        let records = Records::open()?;
        let snapshot = records.snapshot(&snapshot_id)?;
        let source = records.lun(&snapshot.wwn)?;
        create_lun_over(
            &name,
            source.capacity,
            Some(&snapshot.layer),
            &token,
            &records,
        )
    }

    fn open_reader(wwn: String, snapshot_id: Option<String>) -> AdapterResult<Box<dyn DeviceRead>> {
        let mut daemon = Daemon::open()?;
        let lun = daemon.records.lun(&wwn)?;
        let (export, layer, writable) = match &snapshot_id {
            Some(id) => {
                let snapshot = daemon.records.snapshot(id)?;
                if snapshot.wwn != wwn {
                    return Err(AdapterError::Invalid(format!(
                        "snapshot {id} is not a snapshot of LUN {wwn}"
                    )));
                }
                (io_export(id), snapshot.layer, false)
            }
            None => (io_export(&wwn), lun.top, true),
        };
        daemon.export(&export, &layer, writable)?;
        let chain = daemon
            .records
            .chain(&layer)?
            .into_iter()
            .map(|l| l.id)
            .collect();
        let address = daemon.settings.nbd_address();
        drop(daemon);
        Ok(Box::new(LayerReader::open(&address, &export, chain, &wwn)?))
    }

    fn open_writer(wwn: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        let export = io_export(&wwn);
        // A group snapshot in another session makes the LUN's top layer a read-only backing
        // node and records the new top a moment later; a writer that read the old top in
        // between is refused by qsd ("Cannot export read-only node as writable") and tries
        // again with the records read anew.
        let mut attempts = 0;
        let address = loop {
            let mut daemon = Daemon::open()?;
            let lun = daemon.records.lun(&wwn)?;
            match daemon.export(&export, &lun.top, true) {
                Err(AdapterError::Internal(why)) if why.contains("read-only") && attempts < 40 => {
                    attempts += 1;
                    drop(daemon);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                done => {
                    done?;
                    break daemon.settings.nbd_address();
                }
            }
        };
        Ok(Box::new(LunWriter::open(&address, &export)?))
    }
}

tidemark_sdk::export_storage_array!(QsdArray);
tidemark_sdk::manifest!(r#"{"tcp": ["*:*"], "data-dir": true}"#);
