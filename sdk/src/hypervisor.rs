//! The trait a hypervisor adapter implements, and its glue to the generated exports.

use std::marker::PhantomData;

use crate::adapter_info;
use crate::bindings::world::exports::tidemark::adapter::{adapter, data_path, hypervisor};
use crate::data_path::{ReaderResource, WriterResource};
use crate::{
    About, AdapterInfo, AdapterResult, Device, DeviceRead, DeviceWrite, HostInfo, LunMapping,
    NewDisk, SnapshotRef, VmInfo, VmSpec,
};
pub use hypervisor::{ConsoleOutput, NetworkInfo};

/// A hypervisor as Tidemark sees it. Each function is one call of the contract's `hypervisor`
/// interface; see `wit/hypervisor.wit` for what each must do. Calls that create something take
/// an idempotency `token`: the same token again must return the first result.
pub trait Hypervisor {
    /// Vendor, version and capabilities.
    fn about() -> About;
    /// Hypervisor hosts this endpoint manages.
    fn list_hosts() -> AdapterResult<Vec<HostInfo>>;
    /// Every VM with its devices.
    fn list_vms() -> AdapterResult<Vec<VmInfo>>;
    /// One VM with its devices.
    fn get_vm(vm_id: String) -> AdapterResult<VmInfo>;
    /// Creates a VM from a spec.
    fn create_vm(spec: VmSpec, token: String) -> AdapterResult<VmInfo>;
    /// Deletes a VM and its virtual disks; LUNs are only unmapped.
    fn delete_vm(vm_id: String) -> AdapterResult<()>;
    /// Powers the VM on (no-op when on).
    fn power_on(vm_id: String) -> AdapterResult<()>;
    /// Powers the VM off (no-op when off).
    fn power_off(vm_id: String) -> AdapterResult<()>;
    /// Adds a new empty virtual disk.
    fn add_disk(vm_id: String, disk: NewDisk, token: String) -> AdapterResult<Device>;
    /// Maps an array LUN into the VM.
    fn map_lun(vm_id: String, mapping: LunMapping, token: String) -> AdapterResult<Device>;
    /// Removes a LUN mapping.
    fn unmap_lun(vm_id: String, wwn: String) -> AdapterResult<()>;
    /// Snapshots virtual disks together; physically mapped LUNs are `unsupported`.
    fn snapshot_disks(
        vm_id: String,
        device_ids: Vec<String>,
        token: String,
    ) -> AdapterResult<Vec<SnapshotRef>>;
    /// Attaches a snapshot of another VM's virtual disk, read-only, at a mount point (how a
    /// proxy VM reads a snapshot). The default: not supported.
    fn attach_snapshot(
        vm_id: String,
        source_vm_id: String,
        snapshot_id: String,
        mount_point: String,
        token: String,
    ) -> AdapterResult<Device> {
        let _ = (vm_id, source_vm_id, mount_point, token);
        Err(crate::AdapterError::Unsupported(format!(
            "this hypervisor cannot attach snapshot {snapshot_id} to another VM"
        )))
    }
    /// Removes a virtual disk (or detaches an attached snapshot) from a VM.
    fn detach_disk(vm_id: String, device_id: String) -> AdapterResult<()> {
        let _ = vm_id;
        Err(crate::AdapterError::Unsupported(format!(
            "this hypervisor cannot detach device {device_id}"
        )))
    }
    /// Reverts each disk to its snapshot.
    fn revert_disks(vm_id: String, snapshot_ids: Vec<String>, token: String) -> AdapterResult<()>;
    /// Deletes one snapshot.
    fn delete_snapshot(vm_id: String, snapshot_id: String) -> AdapterResult<()>;
    /// Every snapshot of the VM's virtual disks.
    fn list_snapshots(vm_id: String) -> AdapterResult<Vec<SnapshotRef>>;
    /// Opens a virtual disk or one of its snapshots for reading.
    fn open_reader(
        vm_id: String,
        device_id: String,
        snapshot_id: Option<String>,
    ) -> AdapterResult<Box<dyn DeviceRead>>;
    /// Opens a virtual disk for writing.
    fn open_writer(vm_id: String, device_id: String) -> AdapterResult<Box<dyn DeviceWrite>>;
    /// Holds the guest's writes for an application-consistent snapshot. The default: not
    /// supported (the host then takes a crash-consistent snapshot).
    fn quiesce(vm_id: String) -> AdapterResult<()> {
        Err(unsupported(format!(
            "this hypervisor cannot quiesce VM {vm_id}"
        )))
    }
    /// Lets the guest write again after [`quiesce`](Self::quiesce).
    fn unquiesce(vm_id: String) -> AdapterResult<()> {
        Err(unsupported(format!(
            "this hypervisor cannot quiesce VM {vm_id}"
        )))
    }
    /// Console output from byte `from` on and the offset to read on from. The default: not
    /// supported.
    fn read_console(vm_id: String, from: u64) -> AdapterResult<ConsoleOutput> {
        let _ = from;
        Err(unsupported(format!(
            "this hypervisor cannot read the console of VM {vm_id}"
        )))
    }
    /// Creates a network; `isolated` reaches nothing outside itself. The default: not
    /// supported.
    fn create_network(name: String, isolated: bool, token: String) -> AdapterResult<NetworkInfo> {
        let _ = (isolated, token);
        Err(unsupported(format!(
            "this hypervisor cannot create network {name}"
        )))
    }
    /// Deletes a network made by [`create_network`](Self::create_network).
    fn delete_network(network_id: String) -> AdapterResult<()> {
        Err(unsupported(format!(
            "this hypervisor cannot delete network {network_id}"
        )))
    }
}

fn unsupported(message: String) -> crate::AdapterError {
    crate::AdapterError::Unsupported(message)
}

/// Connects a [`Hypervisor`] to the generated exports; used by [`crate::export_hypervisor!`].
pub struct HypervisorExports<T>(PhantomData<T>);

impl<T: Hypervisor> adapter::Guest for HypervisorExports<T> {
    fn info() -> AdapterInfo {
        adapter_info(T::about())
    }
}

impl<T: Hypervisor> data_path::Guest for HypervisorExports<T> {
    type DeviceReader = ReaderResource;
    type DeviceWriter = WriterResource;
}

impl<T: Hypervisor + 'static> hypervisor::Guest for HypervisorExports<T> {
    fn list_hosts() -> AdapterResult<Vec<HostInfo>> {
        T::list_hosts()
    }
    fn list_vms() -> AdapterResult<Vec<VmInfo>> {
        T::list_vms()
    }
    fn get_vm(vm_id: String) -> AdapterResult<VmInfo> {
        T::get_vm(vm_id)
    }
    fn create_vm(spec: VmSpec, token: String) -> AdapterResult<VmInfo> {
        T::create_vm(spec, token)
    }
    fn delete_vm(vm_id: String) -> AdapterResult<()> {
        T::delete_vm(vm_id)
    }
    fn power_on(vm_id: String) -> AdapterResult<()> {
        T::power_on(vm_id)
    }
    fn power_off(vm_id: String) -> AdapterResult<()> {
        T::power_off(vm_id)
    }
    fn add_disk(vm_id: String, disk: NewDisk, token: String) -> AdapterResult<Device> {
        T::add_disk(vm_id, disk, token)
    }
    fn map_lun(vm_id: String, mapping: LunMapping, token: String) -> AdapterResult<Device> {
        T::map_lun(vm_id, mapping, token)
    }
    fn unmap_lun(vm_id: String, wwn: String) -> AdapterResult<()> {
        T::unmap_lun(vm_id, wwn)
    }
    fn snapshot_disks(
        vm_id: String,
        device_ids: Vec<String>,
        token: String,
    ) -> AdapterResult<Vec<SnapshotRef>> {
        T::snapshot_disks(vm_id, device_ids, token)
    }
    fn revert_disks(vm_id: String, snapshot_ids: Vec<String>, token: String) -> AdapterResult<()> {
        T::revert_disks(vm_id, snapshot_ids, token)
    }
    fn delete_snapshot(vm_id: String, snapshot_id: String) -> AdapterResult<()> {
        T::delete_snapshot(vm_id, snapshot_id)
    }
    fn attach_snapshot(
        vm_id: String,
        source_vm_id: String,
        snapshot_id: String,
        mount_point: String,
        token: String,
    ) -> AdapterResult<Device> {
        T::attach_snapshot(vm_id, source_vm_id, snapshot_id, mount_point, token)
    }
    fn detach_disk(vm_id: String, device_id: String) -> AdapterResult<()> {
        T::detach_disk(vm_id, device_id)
    }
    fn list_snapshots(vm_id: String) -> AdapterResult<Vec<SnapshotRef>> {
        T::list_snapshots(vm_id)
    }
    fn open_reader(
        vm_id: String,
        device_id: String,
        snapshot_id: Option<String>,
    ) -> AdapterResult<hypervisor::DeviceReader> {
        let reader = T::open_reader(vm_id, device_id, snapshot_id)?;
        Ok(hypervisor::DeviceReader::new(ReaderResource::new(reader)))
    }
    fn open_writer(vm_id: String, device_id: String) -> AdapterResult<hypervisor::DeviceWriter> {
        let writer = T::open_writer(vm_id, device_id)?;
        Ok(hypervisor::DeviceWriter::new(WriterResource::new(writer)))
    }
    fn quiesce(vm_id: String) -> AdapterResult<()> {
        T::quiesce(vm_id)
    }
    fn unquiesce(vm_id: String) -> AdapterResult<()> {
        T::unquiesce(vm_id)
    }
    fn read_console(vm_id: String, from: u64) -> AdapterResult<ConsoleOutput> {
        T::read_console(vm_id, from)
    }
    fn create_network(name: String, isolated: bool, token: String) -> AdapterResult<NetworkInfo> {
        T::create_network(name, isolated, token)
    }
    fn delete_network(network_id: String) -> AdapterResult<()> {
        T::delete_network(network_id)
    }
}
