//! What the adapter persists in its data directory, because qsd keeps nothing across a
//! restart: LUNs (WWN, name, capacity, top layer, exposure), layers (one qcow2 file each,
//! with its backing layer) and snapshots (the layer frozen at their instant). One JSON file
//! per object, so sessions changing different objects never overwrite each other.

use serde::{Deserialize, Serialize};
use tidemark_sdk::records::Records as Files;
use tidemark_sdk::{AdapterError, AdapterResult, LunInfo, SnapshotRef};

/// A LUN: the top of a chain of qcow2 layers, exported over NBD under its WWN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LunRecord {
    /// `naa.6` + vendor + 25 hex digits.
    pub wwn: String,
    /// The operator's name for it.
    pub name: String,
    /// Bytes.
    pub capacity: u64,
    /// The layer writes go to.
    pub top: String,
    /// Hosts it is exposed to; exported under its WWN while any.
    pub exposed_to: Vec<String>,
    /// The key of the token that created it, so a retry after a crash finds it.
    pub made_by: Option<String>,
}

/// One qcow2 image in the image directory, opened in qsd as nodes `f<id>` (file) and
/// `q<id>` (qcow2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    /// 12 hex digits.
    pub id: String,
    /// The layer reads fall through to.
    pub backing: Option<String>,
    /// When it was recorded (ms); a layer nothing refers to is swept only when older than
    /// a minute, so a session creating one is never swept under by another.
    pub created_at: u64,
}

/// A snapshot: a layer frozen at the snapshot's instant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// `qs-` + 12 hex digits.
    pub id: String,
    /// The LUN it is of.
    pub wwn: String,
    /// The frozen layer.
    pub layer: String,
    /// The layer its LUN wrote to afterwards (the overlay the snapshot's transaction put on).
    pub overlay: String,
    /// ms since the epoch.
    pub created_at: u64,
    /// Key of the token that took it (with the WWN), for retries.
    pub made_by: String,
    /// Recorded before its transaction ran; cleared once the LUN's top moved.
    pub pending: bool,
}

impl LunRecord {
    /// As the contract reports it.
    pub fn info(&self) -> LunInfo {
        LunInfo {
            wwn: self.wwn.clone(),
            name: self.name.clone(),
            capacity: self.capacity,
            exposed_to: self.exposed_to.clone(),
        }
    }
}

impl SnapshotRecord {
    /// As the contract reports it.
    pub fn as_ref(&self) -> SnapshotRef {
        SnapshotRef {
            id: self.id.clone(),
            source: self.wwn.clone(),
            created_at: self.created_at,
        }
    }
}

/// The adapter's records, over the SDK's JSON records in the data directory.
pub struct Records {
    /// The JSON files (and the idempotency tokens).
    pub files: Files,
}

impl Records {
    /// The records in the data directory preopened at `/data`.
    pub fn open() -> AdapterResult<Records> {
        Ok(Records {
            files: Files::open()?,
        })
    }

    /// A LUN, or `not-found` naming it.
    pub fn lun(&self, wwn: &str) -> AdapterResult<LunRecord> {
        let missing = || AdapterError::NotFound(format!("this array has no LUN '{wwn}'"));
        lab_common::check_wwn(wwn).map_err(|_| missing())?;
        self.files.load("luns", wwn)?.ok_or_else(missing)
    }

    /// A snapshot that is not pending, or `not-found` naming it.
    pub fn snapshot(&self, id: &str) -> AdapterResult<SnapshotRecord> {
        let missing = || AdapterError::NotFound(format!("this array has no snapshot '{id}'"));
        let well_formed = id.len() == 15
            && id.starts_with("qs-")
            && id[3..].chars().all(|c| c.is_ascii_hexdigit());
        if !well_formed {
            return Err(missing());
        }
        self.files
            .load::<SnapshotRecord>("snapshots", id)?
            .filter(|s| !s.pending)
            .ok_or_else(missing)
    }

    /// A layer; its absence is damage to the records, named.
    pub fn layer(&self, id: &str) -> AdapterResult<LayerRecord> {
        self.files.load("layers", id)?.ok_or_else(|| {
            AdapterError::Internal(format!(
                "the records name layer {id} but hold no layers/{id}.json"
            ))
        })
    }

    /// Every LUN.
    pub fn luns(&self) -> AdapterResult<Vec<LunRecord>> {
        self.files.load_all("luns")
    }

    /// Every snapshot, pending ones included.
    pub fn snapshots(&self) -> AdapterResult<Vec<SnapshotRecord>> {
        self.files.load_all("snapshots")
    }

    /// Every layer.
    pub fn layers(&self) -> AdapterResult<Vec<LayerRecord>> {
        self.files.load_all("layers")
    }

    /// Saves a LUN.
    pub fn save_lun(&self, lun: &LunRecord) -> AdapterResult<()> {
        self.files.save("luns", &lun.wwn, lun)
    }

    /// Saves a snapshot.
    pub fn save_snapshot(&self, snapshot: &SnapshotRecord) -> AdapterResult<()> {
        self.files.save("snapshots", &snapshot.id, snapshot)
    }

    /// Saves a layer.
    pub fn save_layer(&self, layer: &LayerRecord) -> AdapterResult<()> {
        self.files.save("layers", &layer.id, layer)
    }

    /// The chain of layers from `top` down to the base, top first.
    pub fn chain(&self, top: &str) -> AdapterResult<Vec<LayerRecord>> {
        let mut chain = Vec::new();
        let mut next = Some(top.to_string());
        while let Some(id) = next {
            if chain.len() > 4096 || chain.iter().any(|l: &LayerRecord| l.id == id) {
                return Err(AdapterError::Internal(format!(
                    "the layer chain under {top} loops or runs past 4096 layers"
                )));
            }
            let layer = self.layer(&id)?;
            next = layer.backing.clone();
            chain.push(layer);
        }
        Ok(chain)
    }
}
