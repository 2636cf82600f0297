//! What a copy's manifest says about itself: enough to rebuild the catalog's recovery point
//! and copy ref from the copy store alone (`tidemark catalog recover --from-copies`), since
//! a lost `catalog.sqlite` must not take every copy's meaning with it.
//!
//! The label is sealed inside the manifest with the chunk list. Labels written before
//! version 2 carry only the device's identity; recovery reports such copies and skips them.

use serde::{Deserialize, Serialize};

use crate::catalog::{CopyRefRecord, PointRecord, SnapshotRefRecord, VmRecord};

/// Version of the label this code writes.
pub const LABEL_VERSION: u32 = 2;

/// The label stored in every manifest a copy writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopyLabel {
    /// Absent (0) in labels written before versions were numbered.
    #[serde(default)]
    pub label_version: u32,
    /// The manifest id.
    pub copy: String,
    pub mount_point: String,
    pub device_kind: String,
    pub wwn: Option<String>,
    /// The endpoint's snapshot the copy was read from.
    pub snapshot: String,
    /// Where the copy belongs (since version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// The VM, point, device and job a copy was made of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Origin {
    /// The VM as the catalog knew it when the copy was made (devices, hardware, endpoint).
    pub vm: VmRecord,
    pub point: String,
    /// Milliseconds since the epoch.
    pub point_created_at: i64,
    /// The job that took the point's snapshots.
    pub point_job: String,
    pub device_ref: String,
    /// `physical` or `virtual`, for a mapped LUN.
    pub mode: Option<String>,
    /// The endpoint that held the snapshot.
    pub snapshot_endpoint: String,
    pub snapshot_created_at: i64,
    /// The job that made the copy, and when it committed it.
    pub copy_job: String,
    pub copied_at: i64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
}

/// The facts of one point a copy job knows and puts into each device's label.
#[derive(Debug, Clone)]
pub struct PointFacts {
    pub vm: VmRecord,
    pub point: String,
    pub point_created_at: i64,
    pub point_job: String,
    pub copy_job: String,
}

impl PointFacts {
    /// The facts of `point` of `vm`, copied by `copy_job`.
    pub fn of(vm: &VmRecord, point: &PointRecord, copy_job: &str) -> PointFacts {
        PointFacts {
            vm: vm.clone(),
            point: point.id.clone(),
            point_created_at: point.created_at,
            point_job: point.job_id.clone(),
            copy_job: copy_job.to_string(),
        }
    }
}

impl CopyLabel {
    /// The label of the copy `copy` of the snapshot `snapshot`, committed at `copied_at`
    /// (the time the catalog's copy ref records too).
    pub fn new(
        facts: &PointFacts,
        snapshot: &SnapshotRefRecord,
        copy: &str,
        (bytes_read, bytes_stored): (u64, u64),
        copied_at: i64,
    ) -> CopyLabel {
        CopyLabel {
            label_version: LABEL_VERSION,
            copy: copy.to_string(),
            mount_point: snapshot.mount_point.clone(),
            device_kind: snapshot.device_kind.clone(),
            wwn: snapshot.wwn.clone(),
            snapshot: snapshot.snapshot.clone(),
            origin: Some(Origin {
                vm: facts.vm.clone(),
                point: facts.point.clone(),
                point_created_at: facts.point_created_at,
                point_job: facts.point_job.clone(),
                device_ref: snapshot.device_ref.clone(),
                mode: snapshot.mode.clone(),
                snapshot_endpoint: snapshot.endpoint.clone(),
                snapshot_created_at: snapshot.created_at,
                copy_job: facts.copy_job.clone(),
                copied_at,
                bytes_read,
                bytes_stored,
            }),
        }
    }

    /// Reads a manifest's label; the error says why it is not one (for a recovery report).
    pub fn parse(value: &serde_json::Value) -> Result<CopyLabel, String> {
        let label: CopyLabel = serde_json::from_value(value.clone())
            .map_err(|e| format!("its label is not a copy label ({e})"))?;
        if label.label_version > LABEL_VERSION {
            return Err(format!(
                "its label is version {}, newer than this program reads ({LABEL_VERSION})",
                label.label_version
            ));
        }
        Ok(label)
    }

    /// As JSON, for the manifest.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a label always serialises")
    }
}

impl Origin {
    /// The point's snapshot ref of this device, as the copy job saw it.
    pub fn snapshot_ref(&self, label: &CopyLabel) -> SnapshotRefRecord {
        SnapshotRefRecord {
            device_ref: self.device_ref.clone(),
            mount_point: label.mount_point.clone(),
            device_kind: label.device_kind.clone(),
            wwn: label.wwn.clone(),
            mode: self.mode.clone(),
            endpoint: self.snapshot_endpoint.clone(),
            snapshot: label.snapshot.clone(),
            created_at: self.snapshot_created_at,
            expired_at: None,
        }
    }

    /// The point's copy ref of this device; `size` and `stored_total` come from the manifest.
    pub fn copy_ref(
        &self,
        label: &CopyLabel,
        store: &str,
        size: u64,
        stored_total: u64,
    ) -> CopyRefRecord {
        CopyRefRecord {
            device_ref: self.device_ref.clone(),
            store: store.to_string(),
            copy: label.copy.clone(),
            size,
            bytes_read: self.bytes_read,
            bytes_stored: self.bytes_stored,
            stored_total,
            job_id: self.copy_job.clone(),
            created_at: self.copied_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_before_versions_parses_without_origin_and_a_newer_one_is_refused() {
        let old = serde_json::json!({
            "copy": "rp-1.d0", "mount_point": "C:", "device_kind": "virtual-disk",
            "wwn": null, "snapshot": "s1",
        });
        let label = CopyLabel::parse(&old).unwrap();
        assert_eq!((label.label_version, label.origin), (0, None));
        let mut newer = old.clone();
        newer["label_version"] = 3.into();
        let err = CopyLabel::parse(&newer).unwrap_err();
        assert!(err.contains("version 3, newer"), "{err}");
        let err = CopyLabel::parse(&serde_json::json!({"device": "x"})).unwrap_err();
        assert!(err.contains("not a copy label"), "{err}");
    }
}
