//! Snapshots of virtual disks as external qcow2 chains (see [`crate::chain`]), recorded in
//! the domain's own metadata (`<tm:snapshot>`), never as libvirt snapshot objects: libvirt
//! 9.0 cannot revert an external snapshot, so the adapter builds revert from verbs it has.
//!
//! - **Take**: per disk a new overlay volume `tm-<token key>-<dev>.qcow2` on the disk's
//!   top, which freezes as the snapshot's image. A domain that is off is redefined on the
//!   overlays while a proxy holds the old tops open for writing (QEMU's image locks: no
//!   writer of the data path is writing them then, none can open them until the switch is
//!   done, and a writer checks after opening that its image is still the top); a running
//!   one switches in one atomic disk-only external snapshot
//!   (`REUSE_EXT`, `NO_METADATA`: the overlays are the pool's own volumes), then the records
//!   are written. A retry finds the records, or the disk already on its overlay.
//! - **Revert** (domain off; running is `conflict`): per disk a new overlay on the
//!   snapshot's image, the domain redefined on it; the old top goes unless something needs
//!   it.
//! - **Delete**: the record goes; its image is folded into the one image above it (or
//!   deleted when nothing is above it); one a branch or a running domain still needs stays
//!   until a later delete or the domain's.

use libvirt_rpc::{Domain, flags};
use tidemark_sdk::{AdapterError, AdapterResult, PowerState, SnapshotRef, VmInfo};

use crate::chain::{self, Pool};
use crate::conn::Conn;
use crate::datapath;
use crate::xml::{Definition, MetaSnapshot, Source, esc};

/// The contract's view of a record.
pub fn as_ref(s: &MetaSnapshot) -> SnapshotRef {
    SnapshotRef {
        id: s.id.clone(),
        source: s.dev.clone(),
        created_at: s.at,
    }
}

/// The overlay volume a call with token key `key` puts on disk `dev`.
fn overlay_name(key: &str, dev: &str) -> String {
    format!("{}{key}-{dev}.qcow2", chain::MADE_PREFIX)
}

/// The current image of file disk `dev` in `def` (the live definition while the domain
/// runs).
fn current_source(vm: &VmInfo, def: &Definition, dev: &str) -> AdapterResult<String> {
    match def.disk(dev).map(|d| &d.source) {
        Some(Source::File(p)) => Ok(p.clone()),
        Some(_) => Err(AdapterError::Unsupported(format!(
            "disk {dev} of VM {} is not a file disk: this adapter snapshots qcow2 files only",
            vm.name
        ))),
        None => Err(AdapterError::NotFound(format!(
            "VM {} has no disk {dev}",
            vm.name
        ))),
    }
}

/// The capacity the VM reports for disk `dev` (an overlay gets the same).
fn capacity(vm: &VmInfo, dev: &str) -> u64 {
    vm.devices
        .iter()
        .find(|d| d.id == dev)
        .map_or(0, |d| d.capacity)
}

/// Snapshots `devs` of `vm` together (checked by the caller: known, not NBD).
pub fn take(
    c: &mut Conn,
    vm: &VmInfo,
    dom: &Domain,
    devs: &[String],
    key: &str,
) -> AdapterResult<Vec<SnapshotRef>> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    let done: Vec<SnapshotRef> = def
        .meta
        .snapshots
        .iter()
        .filter(|s| s.made_by == key)
        .map(as_ref)
        .collect();
    if !done.is_empty() {
        return Ok(done);
    }
    let on = vm.power == PowerState::On;
    let live = if on { Some(c.live(dom)?) } else { None };
    let current = live.as_ref().unwrap_or(&def);
    // (dev, overlay path, frozen image, already switched)
    let mut plan: Vec<(String, String, String, bool)> = Vec::new();
    for dev in devs {
        if plan.iter().any(|(d, ..)| d == dev) {
            continue;
        }
        let cur = current_source(vm, current, dev)?;
        let name = overlay_name(key, dev);
        if chain::file_name(&cur) == name {
            // A retry after the switch: the overlay's backing is the frozen image.
            let below = chain::chain_of(c, &cur)?.get(1).cloned().ok_or_else(|| {
                AdapterError::Internal(format!(
                    "overlay {cur} of disk {dev} has no backing image in the pool"
                ))
            })?;
            plan.push((dev.clone(), cur, below, true));
            continue;
        }
        let (overlay, _) = chain::create_volume(c, &name, capacity(vm, dev), Some(&cur))?;
        plan.push((dev.clone(), overlay, cur, false));
    }
    let at = tidemark_sdk::now_ms();
    let mut meta = def.meta.clone();
    for (dev, _, layer, _) in &plan {
        meta.snapshots.push(MetaSnapshot {
            id: format!("{key}-{dev}"),
            dev: dev.clone(),
            layer: layer.clone(),
            at,
            made_by: key.to_string(),
        });
    }
    if on {
        let switch: Vec<_> = plan.iter().filter(|p| !p.3).collect();
        if !switch.is_empty() {
            let mut disks = String::new();
            for d in &def.disks {
                match switch.iter().find(|p| p.0 == d.dev) {
                    Some((dev, overlay, ..)) => disks.push_str(&format!(
                        "<disk name='{}' snapshot='external' type='file'>\
                         <driver type='qcow2'/><source file='{}'/></disk>",
                        esc(dev),
                        esc(overlay)
                    )),
                    None => {
                        disks.push_str(&format!("<disk name='{}' snapshot='no'/>", esc(&d.dev)))
                    }
                }
            }
            let xml = format!("<domainsnapshot><disks>{disks}</disks></domainsnapshot>");
            use flags::snapshot_create as f;
            c.client
                .snapshot_create_xml(
                    dom,
                    &xml,
                    f::DISK_ONLY | f::REUSE_EXT | f::NO_METADATA | f::ATOMIC,
                )
                .map_err(c.err(&format!("snapshotting the disks of domain {}", dom.name)))?;
        }
        // libvirt moved the persistent definition onto the overlays too: record there.
        let text = c.definition(dom)?;
        let def = Definition::parse(&dom.name, &text)?;
        crate::redefine(c, dom, &def.with_sources(&text, &[], &meta))?;
    } else {
        let swaps: Vec<(String, String)> = plan
            .iter()
            .filter(|p| !p.3)
            .map(|(d, o, ..)| (d.clone(), o.clone()))
            .collect();
        let tops: Vec<String> = plan.iter().filter(|p| !p.3).map(|p| p.2.clone()).collect();
        // No writer may be writing a top as it freezes, nor open it until the domain is on
        // the overlays: hold the tops for the switch.
        let held = datapath::hold(c, &tops)?;
        let switched = crate::redefine(c, dom, &def.with_sources(&text, &swaps, &meta));
        datapath::stop_proxy(c, &held);
        switched?;
    }
    Ok(meta
        .snapshots
        .iter()
        .filter(|s| s.made_by == key)
        .map(as_ref)
        .collect())
}

/// Reverts `vm`'s disks to snapshots `ids` (one per disk at most).
pub fn revert(
    c: &mut Conn,
    vm: &VmInfo,
    dom: &Domain,
    ids: &[String],
    key: &str,
) -> AdapterResult<()> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    let mut snaps: Vec<MetaSnapshot> = Vec::new();
    for id in ids {
        let s = def
            .meta
            .snapshot(id)
            .ok_or_else(|| crate::no_snapshot(vm, id))?;
        if snaps.iter().any(|o| o.dev == s.dev && o.id != s.id) {
            return Err(AdapterError::Invalid(format!(
                "snapshots {} and {id} are both of disk {}: revert a disk to one",
                snaps
                    .iter()
                    .find(|o| o.dev == s.dev)
                    .map(|o| o.id.as_str())
                    .unwrap_or(""),
                s.dev
            )));
        }
        if !snaps.iter().any(|o| o.id == s.id) {
            snaps.push(s.clone());
        }
    }
    if vm.power == PowerState::On {
        return Err(AdapterError::Conflict(format!(
            "VM {} is powered on; power it off to revert its disks",
            vm.name
        )));
    }
    let mut swaps = Vec::new();
    let mut released = Vec::new();
    for s in &snaps {
        let cur = current_source(vm, &def, &s.dev)?;
        let name = overlay_name(key, &s.dev);
        if chain::file_name(&cur) == name {
            continue;
        }
        let (overlay, _) = chain::create_volume(c, &name, capacity(vm, &s.dev), Some(&s.layer))?;
        swaps.push((s.dev.clone(), overlay));
        released.push(cur);
    }
    if swaps.is_empty() {
        return Ok(());
    }
    // As for a snapshot: no writer on the old tops while the disks move.
    let held = datapath::hold(c, &released)?;
    let switched = crate::redefine(c, dom, &def.with_sources(&text, &swaps, &def.meta));
    datapath::stop_proxy(c, &held);
    switched?;
    chain::sweep(c, &released)
}

/// Deletes snapshot `id` of `vm`.
pub fn delete(c: &mut Conn, vm: &VmInfo, dom: &Domain, id: &str) -> AdapterResult<()> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    let snap = def
        .meta
        .snapshot(id)
        .cloned()
        .ok_or_else(|| crate::no_snapshot(vm, id))?;
    // One read of the pool serves the check and the fold: deleting a record changes what
    // the domains use, not the pool.
    let pool = Pool::read_fresh(c)?;
    if chain::uses(c, &pool)?.sources.contains(&snap.layer) {
        return Err(AdapterError::Conflict(format!(
            "snapshot {id} of VM {} is attached to a VM (read-only, for reading it); detach it \
             first",
            vm.name
        )));
    }
    let mut meta = def.meta.clone();
    meta.snapshots.retain(|s| s.id != id);
    crate::redefine(c, dom, &def.with_sources(&text, &[], &meta))?;
    chain::fold(c, &pool, &snap.layer)
}
