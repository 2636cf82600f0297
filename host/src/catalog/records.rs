//! What the catalog stores, as plain records (serialized as the CLI's JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

fn as_time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::format_time(*ms))
}

/// Serializes catalog times as RFC 3339 (for records defined beside the catalog's own).
pub fn as_time_pub<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    as_time(ms, s)
}

fn as_opt_time<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&super::format_time(*ms)),
        None => s.serialize_none(),
    }
}

/// One configured instance of an adapter.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EndpointRecord {
    pub name: String,
    pub adapter: String,
    /// Settings given at `endpoint add`.
    pub settings: BTreeMap<String, String>,
    /// What its sandbox is granted (`data-dir`, `tcp=HOST:PORT`, `http=HOST[:PORT]`).
    pub grants: crate::model::capabilities::Grants,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A VM under protection, as last discovered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct VmRecord {
    /// Tidemark's name for it (unique).
    pub name: String,
    /// The hypervisor endpoint that manages it.
    pub endpoint: String,
    /// The hypervisor's id of the VM.
    pub vm_ref: String,
    /// Hypervisor host id.
    pub host: String,
    /// `on` or `off`.
    pub power: String,
    pub devices: Vec<DeviceRecord>,
    /// vCPUs, memory, firmware, NICs, disk bus, guest OS hint, as the hypervisor reports
    /// them; fields it does not report are absent (unknown).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub hardware: crate::model::Hardware,
}

/// A disk of a VM: a virtual disk or a mapped LUN, at a mount point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DeviceRecord {
    /// The hypervisor's id of the device within the VM.
    pub device_ref: String,
    pub mount_point: String,
    /// `virtual-disk` or `mapped-lun`.
    pub kind: String,
    /// The hypervisor's disk id, for a virtual disk.
    pub disk_ref: Option<String>,
    /// For a mapped LUN.
    pub wwn: Option<String>,
    /// `physical` or `virtual`, for a mapped LUN.
    pub mode: Option<String>,
    pub capacity: u64,
}

/// Device kind names used in records and JSON.
pub const VIRTUAL_DISK: &str = crate::model::Device::VIRTUAL_DISK;
/// Device kind names used in records and JSON.
pub const MAPPED_LUN: &str = crate::model::Device::MAPPED_LUN;

impl DeviceRecord {
    /// What the device is; a record whose kind columns make no sense is an error.
    pub fn device(&self) -> anyhow::Result<crate::model::Device> {
        crate::model::Device::from_columns(
            &self.kind,
            &self.device_ref,
            self.wwn.as_deref(),
            self.mode.as_deref(),
        )
    }
}

impl SnapshotRefRecord {
    /// A snapshot ref of `device` at `mount_point`, held by `endpoint` as `snapshot`.
    pub fn new(
        device_ref: &str,
        mount_point: &str,
        device: &crate::model::Device,
        endpoint: &str,
        snapshot: &crate::model::SnapshotRef,
    ) -> Self {
        Self {
            device_ref: device_ref.to_string(),
            mount_point: mount_point.to_string(),
            device_kind: device.kind_name().to_string(),
            wwn: device.wwn().map(str::to_string),
            mode: device.mode().map(|m| m.to_string()),
            endpoint: endpoint.to_string(),
            snapshot: snapshot.id.clone(),
            created_at: snapshot.created_at as i64,
            expired_at: None,
        }
    }

    /// What the snapshotted device is; a record whose kind columns make no sense is an error.
    pub fn device(&self) -> anyhow::Result<crate::model::Device> {
        crate::model::Device::from_columns(
            &self.device_kind,
            &self.device_ref,
            self.wwn.as_deref(),
            self.mode.as_deref(),
        )
    }
}

/// A recovery point: the snapshots of all devices of one VM, taken together.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PointRecord {
    pub id: String,
    pub vm_name: String,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub job_id: String,
    pub snapshots: Vec<SnapshotRefRecord>,
    /// The device copies in the copy store (the "bu" columns of the tracking table).
    pub copies: Vec<CopyRefRecord>,
}

impl PointRecord {
    /// Whether every device's snapshot still exists (the point can be reverted).
    pub fn snapshots_present(&self) -> bool {
        self.snapshots.iter().all(|s| s.expired_at.is_none())
    }

    /// The copy of a device, if the point has one.
    pub fn copy_of(&self, device_ref: &str) -> Option<&CopyRefRecord> {
        self.copies.iter().find(|c| c.device_ref == device_ref)
    }
}

/// One device's copy in the copy store, part of a recovery point.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CopyRefRecord {
    /// The device (as in the point's snapshot refs).
    pub device_ref: String,
    /// Which copy store holds it.
    pub store: String,
    /// The manifest id in that store.
    pub copy: String,
    /// Device size in bytes (what a restore writes).
    pub size: u64,
    /// Bytes read from the device for this copy (small when incremental).
    pub bytes_read: u64,
    /// Bytes this copy added to the store (new chunks, compressed and encrypted).
    pub bytes_stored: u64,
    /// Stored size of every chunk the copy references (its footprint if alone).
    pub stored_total: u64,
    /// The job that made it.
    pub job_id: String,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// Where one device's snapshot of a recovery point lives.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SnapshotRefRecord {
    pub device_ref: String,
    pub mount_point: String,
    /// `virtual-disk` or `mapped-lun`.
    pub device_kind: String,
    pub wwn: Option<String>,
    pub mode: Option<String>,
    /// The endpoint that holds the snapshot (hypervisor or array).
    pub endpoint: String,
    /// The endpoint's snapshot id.
    #[serde(rename = "ref")]
    pub snapshot: String,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When expiry deleted the snapshot; `None` while it exists.
    #[serde(serialize_with = "as_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expired_at: Option<i64>,
}

/// A durable run of a workflow.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: String,
    /// `snapshot`, `revert`, ...
    pub kind: String,
    pub state: JobState,
    pub vm_name: Option<String>,
    pub params: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub steps: Vec<StepRecord>,
    /// The adapter version (`NAME@VERSION`) the job runs on each endpoint it has used.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub adapters: std::collections::BTreeMap<String, String>,
}

/// One step of a job's journal.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StepRecord {
    /// 1-based position in the job.
    pub seq: u32,
    pub name: String,
    pub state: StepState,
    /// What happened, for people.
    pub detail: String,
    /// The step's result, replayed on resume instead of running it again.
    pub output: Option<serde_json::Value>,
    /// How to undo the step, run by compensation.
    pub undo: Option<serde_json::Value>,
    #[serde(serialize_with = "as_time")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "as_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<i64>,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($variant),* }

        impl $name {
            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown {} '{other}'", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a job stands. `compensated`: it failed and every completed step was undone;
    /// `failed`: it failed and some undo failed too (see the steps).
    JobState {
        Running = "running",
        Compensating = "compensating",
        Succeeded = "succeeded",
        Failed = "failed",
        Compensated = "compensated",
    }
);

string_enum!(
    /// Where a step stands.
    StepState {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Compensated = "compensated",
        CompensationFailed = "compensation-failed",
    }
);

impl JobState {
    /// Whether `resume` has work to do for a job in this state.
    pub fn is_unfinished(self) -> bool {
        matches!(self, JobState::Running | JobState::Compensating)
    }
}
