//! Storage-array calls through a session.

use async_trait::async_trait;

use super::bindings::Interface;
use super::session::{Session, guest_call};
use crate::engine::ports::{CallResult, Handle, ReaderHandle, StorageArray, WriterHandle};
use crate::model::{LunInfo, SnapshotRef};

const SA: Interface = Interface::StorageArray;

#[async_trait]
impl StorageArray for Session {
    fn endpoint(&self) -> &str {
        self.endpoint_name()
    }
    async fn list_luns(&mut self) -> CallResult<Vec<LunInfo>> {
        guest_call!(self, SA, storage_array, "list-luns", |g, s| g
            .call_list_luns(s))
    }
    async fn get_lun(&mut self, wwn: &str) -> CallResult<LunInfo> {
        guest_call!(self, SA, storage_array, "get-lun", |g, s| g
            .call_get_lun(s, wwn))
    }
    async fn create_lun(&mut self, name: &str, capacity: u64, token: &str) -> CallResult<LunInfo> {
        guest_call!(self, SA, storage_array, "create-lun", |g, s| g
            .call_create_lun(s, name, capacity, token))
    }
    async fn delete_lun(&mut self, wwn: &str) -> CallResult<()> {
        guest_call!(self, SA, storage_array, "delete-lun", |g, s| g
            .call_delete_lun(s, wwn))
    }
    async fn expose(&mut self, wwn: &str, host_id: &str) -> CallResult<()> {
        guest_call!(self, SA, storage_array, "expose", |g, s| g
            .call_expose(s, wwn, host_id))
    }
    async fn unexpose(&mut self, wwn: &str, host_id: &str) -> CallResult<()> {
        guest_call!(self, SA, storage_array, "unexpose", |g, s| g
            .call_unexpose(s, wwn, host_id))
    }
    async fn snapshot_luns(
        &mut self,
        wwns: &[String],
        token: &str,
    ) -> CallResult<Vec<SnapshotRef>> {
        guest_call!(self, SA, storage_array, "snapshot-luns", |g, s| g
            .call_snapshot_luns(s, wwns, token))
    }
    async fn revert_lun(&mut self, wwn: &str, snapshot_id: &str, token: &str) -> CallResult<()> {
        guest_call!(self, SA, storage_array, "revert-lun", |g, s| g
            .call_revert_lun(s, wwn, snapshot_id, token))
    }
    async fn delete_snapshot(&mut self, snapshot_id: &str) -> CallResult<()> {
        guest_call!(self, SA, storage_array, "delete-snapshot", |g, s| g
            .call_delete_snapshot(s, snapshot_id))
    }
    async fn list_snapshots(&mut self) -> CallResult<Vec<SnapshotRef>> {
        guest_call!(self, SA, storage_array, "list-snapshots", |g, s| g
            .call_list_snapshots(s))
    }
    async fn clone_snapshot(
        &mut self,
        snapshot_id: &str,
        name: &str,
        token: &str,
    ) -> CallResult<LunInfo> {
        guest_call!(self, SA, storage_array, "clone-snapshot", |g, s| g
            .call_clone_snapshot(s, snapshot_id, name, token))
    }
    async fn open_reader(
        &mut self,
        wwn: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle> {
        guest_call!(self, SA, storage_array, "open-reader", |g, s| g
            .call_open_reader(s, wwn, snapshot_id))
        .map(|r| ReaderHandle(Handle::new(r)))
    }
    async fn open_writer(&mut self, wwn: &str) -> CallResult<WriterHandle> {
        guest_call!(self, SA, storage_array, "open-writer", |g, s| g
            .call_open_writer(s, wwn))
        .map(|w| WriterHandle(Handle::new(w)))
    }
}
