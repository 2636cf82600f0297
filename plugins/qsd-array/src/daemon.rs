//! qemu-storage-daemon as the records want it. qsd forgets every node and export when it
//! restarts, so each call first makes the daemon match the records (`sync`): layers opened
//! bottom-up with their backing nodes, the NBD server started, exposed LUNs exported under
//! their WWNs. Layers are created, opened, closed and unlinked here, and layers nothing
//! needs any more are swept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tidemark_sdk::{AdapterError, AdapterResult, OrInternal as _};

use crate::qmp::Qmp;
use crate::records::{LayerRecord, LunRecord, Records};
use crate::settings::Settings;

/// Where images live, relative to the data directory (and to `image-dir`).
const IMAGES: &str = "images";
/// A layer nothing refers to is swept once older than this (a session may be creating it).
const SWEEP_AFTER_MS: u64 = 60_000;

/// Whether this instance has checked that `image-dir` is its data directory.
static IMAGE_DIR_CHECKED: AtomicBool = AtomicBool::new(false);

/// One call's connection to the daemon, with the records it acts on.
pub struct Daemon {
    /// The monitor this call holds.
    pub qmp: Qmp,
    /// The endpoint's settings.
    pub settings: Settings,
    /// The persisted records.
    pub records: Records,
}

/// A path in the data directory as the sandbox sees it.
fn local(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(tidemark_sdk::records::DATA_DIR).join(relative)
}

/// The qcow2 node of a layer.
pub fn node(layer: &str) -> String {
    format!("q{layer}")
}

fn file_node(layer: &str) -> String {
    format!("f{layer}")
}

impl Daemon {
    /// Takes a free monitor and brings the daemon in line with the records.
    pub fn open() -> AdapterResult<Daemon> {
        let settings = Settings::read()?;
        let records = Records::open()?;
        let qmp = Qmp::connect(&settings.qmp)?;
        let mut daemon = Daemon {
            qmp,
            settings,
            records,
        };
        daemon.check_image_dir()?;
        daemon.sync()?;
        Ok(daemon)
    }

    /// The path qsd opens a layer's image at.
    fn image_path(&self, layer: &str) -> String {
        format!("{}/{IMAGES}/{layer}.qcow2", self.settings.image_dir)
    }

    /// Proves `image-dir` is this endpoint's data directory as qsd sees it: a file made in
    /// the data directory must open in qsd under `image-dir`. Otherwise images would land
    /// where the adapter can never unlink them.
    fn check_image_dir(&mut self) -> AdapterResult<()> {
        if IMAGE_DIR_CHECKED.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::fs::create_dir_all(local(IMAGES)).or_internal("creating /data/images")?;
        let probe = format!("probe{}", lab_common::random_hex(12));
        let relative = format!("{IMAGES}/{probe}");
        std::fs::write(local(&relative), b"tidemark image-dir probe")
            .or_internal("writing the image-dir probe")?;
        let opened = self.qmp.try_execute(
            "blockdev-add",
            json!({ "driver": "file", "node-name": probe, "filename": format!("{}/{relative}", self.settings.image_dir), "read-only": true }),
        )?;
        if opened.is_ok() {
            let _ = self
                .qmp
                .try_execute("blockdev-del", json!({ "node-name": probe }))?;
        }
        let _ = std::fs::remove_file(local(&relative));
        match opened {
            Ok(_) => {
                IMAGE_DIR_CHECKED.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(AdapterError::Invalid(format!(
                "endpoint setting 'image-dir' is {:?}, but qemu-storage-daemon cannot see this endpoint's data directory there ({}): set it to the data directory's path",
                self.settings.image_dir, e.desc
            ))),
        }
    }

    /// Node names qsd has open now.
    fn open_nodes(&mut self) -> AdapterResult<BTreeSet<String>> {
        let nodes = self
            .qmp
            .execute("query-named-block-nodes", json!({ "flat": true }))?;
        Ok(nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["node-name"].as_str().map(str::to_string))
            .collect())
    }

    /// Export ids and the node each serves.
    fn exports(&mut self) -> AdapterResult<BTreeMap<String, String>> {
        let exports = self.qmp.execute("query-block-exports", json!({}))?;
        Ok(exports
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["shutting-down"] != json!(true))
            .filter_map(|e| {
                Some((
                    e["id"].as_str()?.to_string(),
                    e["node-name"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Opens every recorded layer qsd lacks (each after its backing), starts the NBD
    /// server, and exports every exposed LUN under its WWN.
    fn sync(&mut self) -> AdapterResult<()> {
        let mut open = self.open_nodes()?;
        // Only layers something refers to: one another session is creating right now is
        // recorded before its image is formatted, and is not referred to until it is.
        let luns = self.records.luns()?;
        let (layers, needed) = self.needed_layers(&luns)?;
        let mut missing: Vec<LayerRecord> = layers
            .into_values()
            .filter(|l| needed.contains(&l.id) && !open.contains(&node(&l.id)))
            .collect();
        while !missing.is_empty() {
            let before = missing.len();
            let mut rest = Vec::new();
            for layer in missing {
                let ready = layer
                    .backing
                    .as_ref()
                    .is_none_or(|b| open.contains(&node(b)));
                if ready && self.image_exists(&layer.id)? {
                    self.open_layer(&layer)?;
                    open.insert(node(&layer.id));
                } else if ready {
                    // Recorded but never created (a crash in between): nothing to open.
                    tidemark_sdk::log::warn(&format!(
                        "layer {} has a record but no image; it will be swept",
                        layer.id
                    ));
                } else {
                    rest.push(layer);
                }
            }
            if rest.len() == before {
                let ids: Vec<&str> = rest.iter().map(|l| l.id.as_str()).collect();
                return Err(AdapterError::Internal(format!(
                    "layers {} have backing layers that cannot be opened",
                    ids.join(", ")
                )));
            }
            missing = rest;
        }
        let exports = self.exports()?;
        let exposed: Vec<LunRecord> = luns
            .into_iter()
            .filter(|l| !l.exposed_to.is_empty() && !exports.contains_key(&l.wwn))
            .collect();
        for lun in exposed {
            self.export(&lun.wwn, &lun.top, true)?;
        }
        Ok(())
    }

    fn image_exists(&self, layer: &str) -> AdapterResult<bool> {
        match std::fs::metadata(local(&format!("{IMAGES}/{layer}.qcow2"))) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AdapterError::Internal(format!(
                "looking for layer {layer}'s image: {e}"
            ))),
        }
    }

    /// Records a new layer of `capacity` bytes over `backing`, creates its image through
    /// qsd and opens it (with its backing attached unless `detached`, as a snapshot's
    /// overlay must be until its transaction).
    pub fn create_layer(
        &mut self,
        capacity: u64,
        backing: Option<&str>,
        detached: bool,
    ) -> AdapterResult<LayerRecord> {
        let layer = LayerRecord {
            id: lab_common::random_hex(12),
            backing: backing.map(str::to_string),
            created_at: tidemark_sdk::now_ms(),
        };
        // The record first: a crash after it leaves a layer the sweep finds; one before it,
        // nothing at all.
        self.records.save_layer(&layer)?;
        let path = self.image_path(&layer.id);
        self.qmp.run_job(
            "blockdev-create",
            json!({ "options": { "driver": "file", "filename": path, "size": 0 } }),
            &format!("creating image {path}"),
        )?;
        let file = file_node(&layer.id);
        self.qmp.execute(
            "blockdev-add",
            json!({ "driver": "file", "node-name": file, "filename": path }),
        )?;
        let mut options =
            json!({ "driver": "qcow2", "file": file, "size": capacity, "cluster-size": 65536 });
        if let Some(backing) = backing {
            options["backing-file"] = json!(self.image_path(backing));
            options["backing-fmt"] = json!("qcow2");
        }
        let created = self.qmp.run_job(
            "blockdev-create",
            json!({ "options": options }),
            &format!("formatting image {path}"),
        );
        if let Err(e) = created {
            let _ = self
                .qmp
                .try_execute("blockdev-del", json!({ "node-name": file }));
            return Err(e);
        }
        let mut qcow2 = json!({ "driver": "qcow2", "node-name": node(&layer.id), "file": file });
        qcow2["backing"] = match (backing, detached) {
            (Some(b), false) => json!(node(b)),
            _ => Value::Null,
        };
        self.qmp.execute("blockdev-add", qcow2)?;
        Ok(layer)
    }

    /// Opens an existing layer's image (its backing already open).
    fn open_layer(&mut self, layer: &LayerRecord) -> AdapterResult<()> {
        let file = file_node(&layer.id);
        let path = self.image_path(&layer.id);
        let added = self.qmp.try_execute(
            "blockdev-add",
            json!({ "driver": "file", "node-name": file, "filename": path }),
        )?;
        match added {
            Ok(_) => {}
            // Another session is opening it at this moment.
            Err(e) if e.desc.contains("Duplicate") => return Ok(()),
            Err(e) => {
                return Err(AdapterError::Internal(format!(
                    "qemu-storage-daemon cannot open layer image {path}: {}",
                    e.desc
                )));
            }
        }
        let backing = match &layer.backing {
            Some(b) => json!(node(b)),
            None => Value::Null,
        };
        let opened = self.qmp.execute(
            "blockdev-add",
            json!({ "driver": "qcow2", "node-name": node(&layer.id), "file": file, "backing": backing }),
        );
        if opened.is_err() {
            let _ = self
                .qmp
                .try_execute("blockdev-del", json!({ "node-name": file }));
        }
        opened.map(|_| ())
    }

    /// Closes a layer's nodes (absent is fine), unlinks its image and drops its record.
    pub fn delete_layer(&mut self, layer: &str) -> AdapterResult<()> {
        for name in [node(layer), file_node(layer)] {
            if let Err(e) = self
                .qmp
                .try_execute("blockdev-del", json!({ "node-name": name }))?
                && !e.desc.contains("Failed to find node")
                && !e.desc.contains("Cannot find")
            {
                return Err(AdapterError::Internal(format!(
                    "qemu-storage-daemon would not close layer {layer}: {}",
                    e.desc
                )));
            }
        }
        match std::fs::remove_file(local(&format!("{IMAGES}/{layer}.qcow2"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AdapterError::Internal(format!(
                    "unlinking layer {layer}'s image: {e}"
                )));
            }
        }
        self.records.files.remove("layers", layer)?;
        Ok(())
    }

    /// Exports `layer` over NBD as `id` (its name too), moving an export of that id that
    /// serves another node. Exports offer `qemu:allocation-depth` for changed extents.
    pub fn export(&mut self, id: &str, layer: &str, writable: bool) -> AdapterResult<()> {
        let exports = self.exports()?;
        match exports.get(id) {
            Some(n) if *n == node(layer) => return Ok(()),
            Some(_) => self.unexport(id, !writable)?,
            None => {}
        }
        self.start_nbd_server()?;
        let added = self.qmp.try_execute(
            "block-export-add",
            json!({ "type": "nbd", "id": id, "node-name": node(layer), "name": id, "writable": writable, "allocation-depth": true }),
        )?;
        match added {
            Ok(_) => Ok(()),
            // Another session exported it a moment ago.
            Err(e) if e.desc.contains("already") => Ok(()),
            Err(e) => Err(AdapterError::Internal(format!(
                "qemu-storage-daemon would not export {id}: {}",
                e.desc
            ))),
        }
    }

    /// Removes an export and waits until it is gone. `hard` drops its clients (the
    /// adapter's own readers); otherwise a client still attached (a hypervisor) is a
    /// `conflict`.
    pub fn unexport(&mut self, id: &str, hard: bool) -> AdapterResult<()> {
        let mode = if hard { "hard" } else { "safe" };
        match self
            .qmp
            .try_execute("block-export-del", json!({ "id": id, "mode": mode }))?
        {
            Ok(_) => {}
            Err(e) if e.desc.contains("not found") => return Ok(()),
            Err(e) if e.desc.contains("in use") => {
                return Err(AdapterError::Conflict(format!(
                    "NBD export {id} still has clients: {}",
                    e.desc
                )));
            }
            Err(e) => {
                return Err(AdapterError::Internal(format!(
                    "qemu-storage-daemon would not remove export {id}: {}",
                    e.desc
                )));
            }
        }
        self.qmp.wait_event(
            "BLOCK_EXPORT_DELETED",
            |data| data["id"] == json!(id),
            Duration::from_secs(10),
        )?;
        Ok(())
    }

    fn start_nbd_server(&mut self) -> AdapterResult<()> {
        let (host, port) = &self.settings.nbd_listen;
        let address = json!({ "type": "inet", "data": { "host": host, "port": port.to_string() } });
        match self
            .qmp
            .try_execute("nbd-server-start", json!({ "addr": address }))?
        {
            Ok(_) => Ok(()),
            Err(e) if e.desc.contains("already running") => Ok(()),
            Err(e) => Err(AdapterError::Internal(format!(
                "qemu-storage-daemon would not start its NBD server on {host}:{port}: {}",
                e.desc
            ))),
        }
    }

    /// Every layer by id, and the ids of those something needs: LUN tops, snapshots'
    /// layers, pending snapshots' overlays, and everything under them.
    fn needed_layers(
        &self,
        luns: &[LunRecord],
    ) -> AdapterResult<(BTreeMap<String, LayerRecord>, BTreeSet<String>)> {
        let layers: BTreeMap<String, LayerRecord> = self
            .records
            .layers()?
            .into_iter()
            .map(|l| (l.id.clone(), l))
            .collect();
        let mut roots: Vec<String> = luns.iter().map(|l| l.top.clone()).collect();
        for s in self.records.snapshots()? {
            roots.push(s.layer);
            // A pending snapshot's overlay may be its LUN's top already.
            if s.pending {
                roots.push(s.overlay);
            }
        }
        let mut needed = BTreeSet::new();
        for root in roots {
            let mut next = Some(root);
            while let Some(id) = next {
                if !needed.insert(id.clone()) {
                    break;
                }
                next = layers.get(&id).and_then(|l| l.backing.clone());
            }
        }
        Ok((layers, needed))
    }

    /// Deletes layers nothing needs: not a LUN's top, a snapshot's layer or a pending one's overlay,
    /// nor below one of those, and older than a minute unless listed in `now` (layers the
    /// calling operation just let go of). Children go before their backing.
    pub fn sweep(&mut self, now: &[String]) -> AdapterResult<()> {
        let luns = self.records.luns()?;
        let (layers, needed) = self.needed_layers(&luns)?;
        let clock = tidemark_sdk::now_ms();
        let mut doomed: Vec<&LayerRecord> = layers
            .values()
            .filter(|l| {
                !needed.contains(&l.id)
                    && (now.contains(&l.id) || clock.saturating_sub(l.created_at) > SWEEP_AFTER_MS)
            })
            .collect();
        // Depth from the base: deeper layers (children) first.
        let depth = |l: &LayerRecord| {
            let mut d = 0;
            let mut next = l.backing.clone();
            while let Some(id) = next {
                d += 1;
                next = layers.get(&id).and_then(|l| l.backing.clone());
                if d > 4096 {
                    break;
                }
            }
            d
        };
        doomed.sort_by_key(|l| std::cmp::Reverse(depth(l)));
        for layer in doomed {
            // A layer some needed one still rests on stays (it is needed after all).
            if layers
                .values()
                .any(|l| l.backing.as_deref() == Some(&layer.id) && needed.contains(&l.id))
            {
                continue;
            }
            self.delete_layer(&layer.id)?;
        }
        Ok(())
    }

    /// Merges an unneeded layer into its only child with `block-stream`, so deleting
    /// snapshots gives space back; a layer with other children stays shared.
    pub fn collapse(&mut self, layer: &str) -> AdapterResult<()> {
        let layers = self.records.layers()?;
        let children: Vec<&LayerRecord> = layers
            .iter()
            .filter(|l| l.backing.as_deref() == Some(layer))
            .collect();
        let [child] = children.as_slice() else {
            return Ok(());
        };
        let Some(this) = layers.iter().find(|l| l.id == layer) else {
            return Ok(());
        };
        // Not dismissed by itself: a short stream would conclude and vanish between two
        // polls, and its outcome with it.
        let mut arguments = json!({ "device": node(&child.id), "auto-dismiss": false });
        if let Some(base) = &this.backing {
            arguments["base-node"] = json!(node(base));
        }
        self.qmp.run_job(
            "block-stream",
            arguments,
            &format!("merging layer {layer} into {}", child.id),
        )?;
        let mut child = (*child).clone();
        child.backing = this.backing.clone();
        self.records.save_layer(&child)?;
        self.delete_layer(layer)
    }
}
