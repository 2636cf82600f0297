//! What workflows need from hypervisors and arrays, as traits: the runtime implements them
//! with Wasm adapters, and engine tests may use in-process fakes.

use async_trait::async_trait;

use crate::catalog::EndpointRecord;
use crate::model::{
    AdapterError, AdapterInfo, AdapterKind, AdapterSummary, BootDevice, CallStats, ConsoleOutput,
    DnsRecord, Extent, HostInfo, LunInfo, LunMapping, MachineInventory, NetworkInfo, NewDisk,
    RecordKind, RejectedAdapter, SnapshotRef, VmDevice, VmInfo, VmSpec,
};

/// Why a call to an endpoint failed: the adapter said so, or the sandbox stopped it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallErrorKind {
    /// The adapter returned an `adapter-error`.
    Adapter(AdapterError),
    /// The call ran past the endpoint's deadline and was interrupted.
    Timeout(std::time::Duration),
    /// The instance tried to grow its memory past the endpoint's cap.
    MemoryCap(u64),
    /// The adapter trapped (a bug in it); the instance was thrown away.
    Trap(String),
    /// The host could not make the call (instantiation, unusable instance, bad answer).
    Host(String),
}

/// A failed call, naming the endpoint and the call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("endpoint {endpoint}: {call}: {kind}")]
pub struct CallError {
    /// Endpoint name.
    pub endpoint: String,
    /// Contract function, e.g. `snapshot-disks`.
    pub call: &'static str,
    /// What happened.
    pub kind: CallErrorKind,
}

impl CallError {
    /// Whether the engine should retry (only `transient` adapter errors).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            CallErrorKind::Adapter(AdapterError::Transient(_))
        )
    }

    /// Whether the adapter said the thing does not exist (deleting it again is then done).
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, CallErrorKind::Adapter(AdapterError::NotFound(_)))
    }

    /// Whether the adapter said it cannot do this at all (the caller may fall back).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self.kind,
            CallErrorKind::Adapter(AdapterError::Unsupported(_))
        )
    }
}

impl std::fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallErrorKind::Adapter(e) => write!(f, "{e}"),
            CallErrorKind::Timeout(d) => write!(
                f,
                "deadline of {} ms exceeded; the call was interrupted",
                d.as_millis()
            ),
            CallErrorKind::MemoryCap(cap) => write!(
                f,
                "memory cap of {} exceeded; the instance was stopped",
                crate::units::format_size(*cap)
            ),
            CallErrorKind::Trap(m) => write!(f, "adapter trapped: {m}"),
            CallErrorKind::Host(m) => write!(f, "{m}"),
        }
    }
}

/// Result of a call to an endpoint.
pub type CallResult<T> = Result<T, CallError>;

/// What an open handle holds: whatever the session that opened it needs to find it again
/// (a Wasm resource for the runtime, an index for an in-process fake). Opaque to the engine,
/// so the engine does not depend on how any implementation keeps its handles.
pub struct Handle(Box<dyn std::any::Any + Send + Sync>);

impl Handle {
    /// Wraps what the session needs to find the handle again.
    pub fn new<T: std::any::Any + Send + Sync>(inner: T) -> Self {
        Self(Box::new(inner))
    }

    /// What the session wrapped, if it is of type `T` (a handle of another session is not).
    pub fn get<T: std::any::Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle(..)")
    }
}

/// An open reader of device bytes, valid within the session that opened it.
#[derive(Debug)]
pub struct ReaderHandle(pub Handle);

/// An open writer of device bytes, valid within the session that opened it.
#[derive(Debug)]
pub struct WriterHandle(pub Handle);

/// Reading and writing device bytes through an adapter.
#[async_trait]
pub trait DataPath: Send {
    /// Size of the opened device.
    async fn reader_size(&mut self, reader: &ReaderHandle) -> CallResult<u64>;
    /// Reads `length` bytes at `offset`.
    async fn read(
        &mut self,
        reader: &ReaderHandle,
        offset: u64,
        length: u64,
    ) -> CallResult<Vec<u8>>;
    /// Ranges holding data.
    async fn allocated_extents(&mut self, reader: &ReaderHandle) -> CallResult<Vec<Extent>>;
    /// Ranges that may differ from the older snapshot `since` of the same device.
    async fn changed_extents(
        &mut self,
        reader: &ReaderHandle,
        since: &str,
    ) -> CallResult<Vec<Extent>>;
    /// Releases the reader.
    async fn close_reader(&mut self, reader: ReaderHandle) -> CallResult<()>;
    /// Size of the opened device.
    async fn writer_size(&mut self, writer: &WriterHandle) -> CallResult<u64>;
    /// Writes `data` at `offset`.
    async fn write(&mut self, writer: &WriterHandle, offset: u64, data: &[u8]) -> CallResult<()>;
    /// Makes writes durable.
    async fn flush(&mut self, writer: &WriterHandle) -> CallResult<()>;
    /// Releases the writer.
    async fn close_writer(&mut self, writer: WriterHandle) -> CallResult<()>;
}

/// A hypervisor endpoint for the length of one job step.
#[async_trait]
pub trait Hypervisor: DataPath {
    /// Endpoint name, for messages.
    fn endpoint(&self) -> &str;
    /// Hypervisor hosts.
    async fn list_hosts(&mut self) -> CallResult<Vec<HostInfo>>;
    /// VMs with devices.
    async fn list_vms(&mut self) -> CallResult<Vec<VmInfo>>;
    /// One VM.
    async fn get_vm(&mut self, vm_id: &str) -> CallResult<VmInfo>;
    /// Creates a VM.
    async fn create_vm(&mut self, spec: &VmSpec, token: &str) -> CallResult<VmInfo>;
    /// Deletes a VM.
    async fn delete_vm(&mut self, vm_id: &str) -> CallResult<()>;
    /// Powers on.
    async fn power_on(&mut self, vm_id: &str) -> CallResult<()>;
    /// Powers off.
    async fn power_off(&mut self, vm_id: &str) -> CallResult<()>;
    /// Adds a virtual disk.
    async fn add_disk(&mut self, vm_id: &str, disk: &NewDisk, token: &str) -> CallResult<VmDevice>;
    /// Maps a LUN.
    async fn map_lun(
        &mut self,
        vm_id: &str,
        mapping: &LunMapping,
        token: &str,
    ) -> CallResult<VmDevice>;
    /// Unmaps a LUN.
    async fn unmap_lun(&mut self, vm_id: &str, wwn: &str) -> CallResult<()>;
    /// Attaches another VM's disk snapshot read-only (a proxy reading it).
    async fn attach_snapshot(
        &mut self,
        vm_id: &str,
        source_vm_id: &str,
        snapshot_id: &str,
        mount_point: &str,
        token: &str,
    ) -> CallResult<VmDevice>;
    /// Detaches an attached snapshot, or deletes a disk of the VM's own.
    async fn detach_disk(&mut self, vm_id: &str, device_id: &str) -> CallResult<()>;
    /// Snapshots virtual disks together.
    async fn snapshot_disks(
        &mut self,
        vm_id: &str,
        device_ids: &[String],
        token: &str,
    ) -> CallResult<Vec<SnapshotRef>>;
    /// Reverts virtual disks.
    async fn revert_disks(
        &mut self,
        vm_id: &str,
        snapshot_ids: &[String],
        token: &str,
    ) -> CallResult<()>;
    /// Deletes a snapshot.
    async fn delete_snapshot(&mut self, vm_id: &str, snapshot_id: &str) -> CallResult<()>;
    /// Snapshots of a VM.
    async fn list_snapshots(&mut self, vm_id: &str) -> CallResult<Vec<SnapshotRef>>;
    /// Opens a virtual disk or snapshot for reading.
    async fn open_reader(
        &mut self,
        vm_id: &str,
        device_id: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle>;
    /// Opens a virtual disk for writing.
    async fn open_writer(&mut self, vm_id: &str, device_id: &str) -> CallResult<WriterHandle>;
    /// Asks the guest to hold its writes for an application-consistent snapshot
    /// (`unsupported` is an allowed answer; callers then take a crash-consistent one).
    async fn quiesce(&mut self, vm_id: &str) -> CallResult<()>;
    /// Lets the guest write again; always called after `quiesce`.
    async fn unquiesce(&mut self, vm_id: &str) -> CallResult<()>;
    /// Console output from byte `from` on, and where to read on.
    async fn read_console(&mut self, vm_id: &str, from: u64) -> CallResult<ConsoleOutput>;
    /// Creates a network (isolated: reaching nothing outside itself).
    async fn create_network(
        &mut self,
        name: &str,
        isolated: bool,
        token: &str,
    ) -> CallResult<NetworkInfo>;
    /// Deletes a network `create_network` made.
    async fn delete_network(&mut self, network_id: &str) -> CallResult<()>;
}

/// A storage-array endpoint for the length of one job step.
#[async_trait]
pub trait StorageArray: DataPath {
    /// Endpoint name, for messages.
    fn endpoint(&self) -> &str;
    /// LUNs.
    async fn list_luns(&mut self) -> CallResult<Vec<LunInfo>>;
    /// One LUN; not-found when the array does not own it.
    async fn get_lun(&mut self, wwn: &str) -> CallResult<LunInfo>;
    /// Creates a LUN.
    async fn create_lun(&mut self, name: &str, capacity: u64, token: &str) -> CallResult<LunInfo>;
    /// Deletes a LUN.
    async fn delete_lun(&mut self, wwn: &str) -> CallResult<()>;
    /// Exposes a LUN to a hypervisor host.
    async fn expose(&mut self, wwn: &str, host_id: &str) -> CallResult<()>;
    /// Hides a LUN from a hypervisor host.
    async fn unexpose(&mut self, wwn: &str, host_id: &str) -> CallResult<()>;
    /// Snapshots LUNs together.
    async fn snapshot_luns(&mut self, wwns: &[String], token: &str)
    -> CallResult<Vec<SnapshotRef>>;
    /// Reverts a LUN.
    async fn revert_lun(&mut self, wwn: &str, snapshot_id: &str, token: &str) -> CallResult<()>;
    /// Deletes a snapshot.
    async fn delete_snapshot(&mut self, snapshot_id: &str) -> CallResult<()>;
    /// Every snapshot.
    async fn list_snapshots(&mut self) -> CallResult<Vec<SnapshotRef>>;
    /// Clones a snapshot to a new LUN.
    async fn clone_snapshot(
        &mut self,
        snapshot_id: &str,
        name: &str,
        token: &str,
    ) -> CallResult<LunInfo>;
    /// Opens a LUN or snapshot for reading.
    async fn open_reader(
        &mut self,
        wwn: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle>;
    /// Opens a LUN for writing.
    async fn open_writer(&mut self, wwn: &str) -> CallResult<WriterHandle>;
}

/// A DNS endpoint for the length of one step: the records a cut-over repoints. An empty
/// `zone` lets the adapter pick the longest zone of its server holding the name.
#[async_trait]
pub trait Dns: Send {
    /// Endpoint name, for messages.
    fn endpoint(&self) -> &str;
    /// Zones the endpoint may change, fully qualified.
    async fn list_zones(&mut self) -> CallResult<Vec<String>>;
    /// The record of that name and kind, `None` when there is none.
    async fn get_record(
        &mut self,
        zone: &str,
        name: &str,
        kind: RecordKind,
    ) -> CallResult<Option<DnsRecord>>;
    /// Makes the record exactly `record`.
    async fn upsert_record(&mut self, zone: &str, record: &DnsRecord) -> CallResult<()>;
    /// Removes the record (one that is not there is removed already).
    async fn delete_record(&mut self, zone: &str, name: &str, kind: RecordKind) -> CallResult<()>;
}

/// A BMC endpoint for the length of one step: physical machines for P2V and V2P.
#[async_trait]
pub trait Machine: Send {
    /// Endpoint name, for messages.
    fn endpoint(&self) -> &str;
    /// Machine ids behind the BMC.
    async fn list_machines(&mut self) -> CallResult<Vec<String>>;
    /// What the BMC reports of one machine (unknown fields stay `None`).
    async fn get_inventory(&mut self, machine_id: &str) -> CallResult<MachineInventory>;
    /// Powers on; returns once it is on.
    async fn power_on(&mut self, machine_id: &str) -> CallResult<()>;
    /// Powers off (`force`: at once; else the OS is asked to shut down).
    async fn power_off(&mut self, machine_id: &str, force: bool) -> CallResult<()>;
    /// Restarts.
    async fn reset(&mut self, machine_id: &str) -> CallResult<()>;
    /// Boots from `device` next time (`once`) or until changed.
    async fn set_boot_override(
        &mut self,
        machine_id: &str,
        device: BootDevice,
        once: bool,
    ) -> CallResult<()>;
    /// Inserts the image at `image_url` (one the BMC can fetch) as virtual media.
    async fn insert_media(&mut self, machine_id: &str, image_url: &str) -> CallResult<()>;
    /// Ejects virtual media.
    async fn eject_media(&mut self, machine_id: &str) -> CallResult<()>;
}

/// Opens endpoints by name: one fresh sandboxed session per call, so no state leaks between
/// job steps.
#[async_trait]
pub trait Endpoints: Send + Sync {
    /// A session on a hypervisor endpoint.
    async fn hypervisor(&self, endpoint: &str) -> anyhow::Result<Box<dyn Hypervisor>>;
    /// A session on a storage-array endpoint.
    async fn storage_array(&self, endpoint: &str) -> anyhow::Result<Box<dyn StorageArray>>;
    /// Names of every storage-array endpoint (to find which one owns a WWN).
    fn storage_array_names(&self) -> Vec<String>;
    /// A session on a DNS endpoint.
    async fn dns(&self, endpoint: &str) -> anyhow::Result<Box<dyn Dns>> {
        anyhow::bail!("endpoint {endpoint}: these endpoints have no DNS service")
    }
    /// A session on a machine (BMC) endpoint.
    async fn machine(&self, endpoint: &str) -> anyhow::Result<Box<dyn Machine>> {
        anyhow::bail!("endpoint {endpoint}: these endpoints have no machines")
    }
    /// Names of every endpoint of a kind (machine endpoints for `machine list`).
    fn names_of(&self, kind: AdapterKind) -> Vec<String> {
        match kind {
            AdapterKind::StorageArray => self.storage_array_names(),
            _ => Vec::new(),
        }
    }
    /// The adapter version (`NAME@VERSION`) a session on the endpoint would have run at
    /// `as_of_ms` (a job's start: the newest version added by then), so a job keeps the one
    /// it started on; `None` where versions are not known (test fakes).
    fn adapter_of(&self, endpoint: &str, as_of_ms: i64) -> Option<String> {
        let _ = (endpoint, as_of_ms);
        None
    }
    /// A session on a hypervisor endpoint running adapter `adapter` (`NAME@VERSION`).
    async fn hypervisor_on(
        &self,
        endpoint: &str,
        adapter: &str,
    ) -> anyhow::Result<Box<dyn Hypervisor>> {
        let _ = adapter;
        self.hypervisor(endpoint).await
    }
    /// A session on a storage-array endpoint running adapter `adapter` (`NAME@VERSION`).
    async fn storage_array_on(
        &self,
        endpoint: &str,
        adapter: &str,
    ) -> anyhow::Result<Box<dyn StorageArray>> {
        let _ = adapter;
        self.storage_array(endpoint).await
    }
}

/// The adapters and endpoints as an operator manages them while the server runs: what is
/// loaded, what was refused, and endpoints configured or forgotten. The API speaks to the
/// runtime only through this (and [`Endpoints`]), so it never depends on one contract version.
#[async_trait]
pub trait AdapterAdmin: Send + Sync {
    /// Every loaded adapter.
    fn adapters(&self) -> Vec<AdapterSummary>;
    /// Adapter files found but refused, with why.
    fn rejected(&self) -> Vec<RejectedAdapter>;
    /// The kind of a loaded adapter; a not-found refusal naming the loaded ones otherwise.
    fn adapter_kind(&self, adapter: &str) -> anyhow::Result<AdapterKind>;
    /// The adapter a reference (`NAME`: its newest version, or `NAME@VERSION`) means now.
    fn resolve(&self, reference: &str) -> anyhow::Result<AdapterSummary>;
    /// What the reference meant at `as_of_ms` (a job's start).
    fn resolve_as_of(&self, reference: &str, as_of_ms: i64) -> anyhow::Result<AdapterSummary>;
    /// Adds an adapter (or a new version of one) while the server runs; `true` when it was
    /// not loaded before (the same bytes again change nothing). A file that is not a
    /// component of a supported contract is an invalid refusal naming why; a version loaded
    /// with other bytes, or a name of an embedded adapter, a conflict.
    async fn install(&self, name: &str, wasm: &[u8]) -> anyhow::Result<(AdapterSummary, bool)>;
    /// Takes an adapter (every version, or one) out and deletes its files; what was taken.
    /// Callers check first that nothing uses it.
    fn uninstall(&self, name: &str, version: Option<&str>) -> anyhow::Result<Vec<AdapterSummary>>;
    /// The kind of a configured endpoint, if it and its adapter are known.
    fn endpoint_kind(&self, endpoint: &str) -> Option<AdapterKind>;
    /// Makes a recorded endpoint usable at once (or again, with new secrets: sessions opened
    /// after it see them). Settings the host reserves (`timeout`, `memory`) that are
    /// malformed are an invalid refusal; nothing is changed then.
    fn configure(
        &self,
        endpoint: &EndpointRecord,
        secrets: std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<()>;
    /// Checks what [`configure`](Self::configure) would refuse, changing nothing.
    fn check(&self, endpoint: &EndpointRecord) -> anyhow::Result<()>;
    /// Forgets a removed endpoint (sessions already open keep theirs).
    fn unconfigure(&self, endpoint: &str);
    /// Opens a session on the endpoint and asks its adapter who it is (a test of endpoints
    /// whose kind has no inventory).
    async fn probe(&self, endpoint: &str) -> anyhow::Result<AdapterInfo>;
    /// Call totals by endpoint and call, for `/metrics`.
    fn call_stats(&self) -> Vec<(String, &'static str, CallStats)>;
    /// Refusals of the sandbox by endpoint and kind (`http`, `tcp`, …), for `/metrics`.
    fn denied_stats(&self) -> Vec<(String, &'static str, u64)>;
}

/// Seals endpoints' secrets for the catalog and opens them for their endpoint's sandbox; the
/// data directory keeps the key, so the engine never sees it.
pub trait SecretVault: Send + Sync {
    /// The sealed form of `value`, bound to the endpoint and the secret's name.
    fn seal(&self, endpoint: &str, name: &str, value: &str) -> anyhow::Result<Vec<u8>>;
    /// The value of a sealed secret of `endpoint`.
    fn open(&self, endpoint: &str, name: &str, sealed: &[u8]) -> anyhow::Result<String>;
}
