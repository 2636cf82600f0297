//! Hypervisor calls through a session.

use async_trait::async_trait;

use super::bindings::Interface;
use super::session::{Session, guest_call};
use super::translate::FromHost;
use crate::engine::ports::{CallResult, Handle, Hypervisor, ReaderHandle, WriterHandle};
use crate::model::{
    ConsoleOutput, HostInfo, LunMapping, NetworkInfo, NewDisk, SnapshotRef, VmDevice as Device,
    VmInfo, VmSpec,
};

const HV: Interface = Interface::Hypervisor;

#[async_trait]
impl Hypervisor for Session {
    fn endpoint(&self) -> &str {
        self.endpoint_name()
    }
    async fn list_hosts(&mut self) -> CallResult<Vec<HostInfo>> {
        guest_call!(self, HV, hypervisor, "list-hosts", |g, s| g
            .call_list_hosts(s))
    }
    async fn list_vms(&mut self) -> CallResult<Vec<VmInfo>> {
        guest_call!(self, HV, hypervisor, "list-vms", |g, s| g.call_list_vms(s))
    }
    async fn get_vm(&mut self, vm_id: &str) -> CallResult<VmInfo> {
        guest_call!(self, HV, hypervisor, "get-vm", |g, s| g
            .call_get_vm(s, vm_id))
    }
    async fn create_vm(&mut self, spec: &VmSpec, token: &str) -> CallResult<VmInfo> {
        guest_call!(self, HV, hypervisor, "create-vm", |g, s| g.call_create_vm(
            s,
            &FromHost::from_host(spec),
            token
        ))
    }
    async fn delete_vm(&mut self, vm_id: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "delete-vm", |g, s| g
            .call_delete_vm(s, vm_id))
    }
    async fn power_on(&mut self, vm_id: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "power-on", |g, s| g
            .call_power_on(s, vm_id))
    }
    async fn power_off(&mut self, vm_id: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "power-off", |g, s| g
            .call_power_off(s, vm_id))
    }
    async fn add_disk(&mut self, vm_id: &str, disk: &NewDisk, token: &str) -> CallResult<Device> {
        guest_call!(self, HV, hypervisor, "add-disk", |g, s| g.call_add_disk(
            s,
            vm_id,
            &FromHost::from_host(disk),
            token
        ))
    }
    async fn map_lun(
        &mut self,
        vm_id: &str,
        mapping: &LunMapping,
        token: &str,
    ) -> CallResult<Device> {
        guest_call!(self, HV, hypervisor, "map-lun", |g, s| g.call_map_lun(
            s,
            vm_id,
            &FromHost::from_host(mapping),
            token
        ))
    }
    async fn unmap_lun(&mut self, vm_id: &str, wwn: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "unmap-lun", |g, s| g
            .call_unmap_lun(s, vm_id, wwn))
    }
    async fn attach_snapshot(
        &mut self,
        vm_id: &str,
        source_vm_id: &str,
        snapshot_id: &str,
        mount_point: &str,
        token: &str,
    ) -> CallResult<Device> {
        guest_call!(self, HV, hypervisor, "attach-snapshot", |g, s| g
            .call_attach_snapshot(
                s,
                vm_id,
                source_vm_id,
                snapshot_id,
                mount_point,
                token
            ))
    }
    async fn detach_disk(&mut self, vm_id: &str, device_id: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "detach-disk", |g, s| g
            .call_detach_disk(s, vm_id, device_id))
    }
    async fn snapshot_disks(
        &mut self,
        vm_id: &str,
        device_ids: &[String],
        token: &str,
    ) -> CallResult<Vec<SnapshotRef>> {
        guest_call!(self, HV, hypervisor, "snapshot-disks", |g, s| g
            .call_snapshot_disks(s, vm_id, device_ids, token))
    }
    async fn revert_disks(
        &mut self,
        vm_id: &str,
        snapshot_ids: &[String],
        token: &str,
    ) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "revert-disks", |g, s| g
            .call_revert_disks(s, vm_id, snapshot_ids, token))
    }
    async fn delete_snapshot(&mut self, vm_id: &str, snapshot_id: &str) -> CallResult<()> {
        guest_call!(self, HV, hypervisor, "delete-snapshot", |g, s| g
            .call_delete_snapshot(s, vm_id, snapshot_id))
    }
    async fn list_snapshots(&mut self, vm_id: &str) -> CallResult<Vec<SnapshotRef>> {
        guest_call!(self, HV, hypervisor, "list-snapshots", |g, s| g
            .call_list_snapshots(s, vm_id))
    }
    async fn open_reader(
        &mut self,
        vm_id: &str,
        device_id: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle> {
        guest_call!(self, HV, hypervisor, "open-reader", |g, s| g
            .call_open_reader(s, vm_id, device_id, snapshot_id))
        .map(|r| ReaderHandle(Handle::new(r)))
    }
    async fn open_writer(&mut self, vm_id: &str, device_id: &str) -> CallResult<WriterHandle> {
        guest_call!(self, HV, hypervisor, "open-writer", |g, s| g
            .call_open_writer(s, vm_id, device_id))
        .map(|w| WriterHandle(Handle::new(w)))
    }
    async fn quiesce(&mut self, vm_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, HV, hypervisor, "quiesce", |g, s| g
            .call_quiesce(s, vm_id))
    }
    async fn unquiesce(&mut self, vm_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, HV, hypervisor, "unquiesce", |g, s| g
            .call_unquiesce(s, vm_id))
    }
    async fn read_console(&mut self, vm_id: &str, from: u64) -> CallResult<ConsoleOutput> {
        guest_call!(since v0_3 self, HV, hypervisor, "read-console", |g, s| g
            .call_read_console(s, vm_id, from))
    }
    async fn create_network(
        &mut self,
        name: &str,
        isolated: bool,
        token: &str,
    ) -> CallResult<NetworkInfo> {
        guest_call!(since v0_3 self, HV, hypervisor, "create-network", |g, s| g
            .call_create_network(s, name, isolated, token))
    }
    async fn delete_network(&mut self, network_id: &str) -> CallResult<()> {
        guest_call!(since v0_3 self, HV, hypervisor, "delete-network", |g, s| g
            .call_delete_network(s, network_id))
    }
}
