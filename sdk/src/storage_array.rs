//! The trait a storage-array adapter implements, and its glue to the generated exports.

use std::marker::PhantomData;

use crate::adapter_info;
use crate::bindings::world::exports::tidemark::adapter::{adapter, data_path, storage_array};
use crate::data_path::{ReaderResource, WriterResource};
use crate::{About, AdapterInfo, AdapterResult, DeviceRead, DeviceWrite, LunInfo, SnapshotRef};

/// A storage array as Tidemark sees it. Each function is one call of the contract's
/// `storage-array` interface; see `wit/storage-array.wit`. Creating calls take an idempotency
/// `token`: the same token again must return the first result.
pub trait StorageArray {
    /// Vendor, version and capabilities.
    fn about() -> About;
    /// Every LUN with its WWN.
    fn list_luns() -> AdapterResult<Vec<LunInfo>>;
    /// One LUN; `not-found` when this array does not own the WWN.
    fn get_lun(wwn: String) -> AdapterResult<LunInfo>;
    /// Creates an empty LUN.
    fn create_lun(name: String, capacity: u64, token: String) -> AdapterResult<LunInfo>;
    /// Deletes a LUN that is neither exposed nor snapshotted.
    fn delete_lun(wwn: String) -> AdapterResult<()>;
    /// Makes the LUN visible to a hypervisor host.
    fn expose(wwn: String, host_id: String) -> AdapterResult<()>;
    /// Hides the LUN from a hypervisor host.
    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()>;
    /// Snapshots the LUNs at one instant.
    fn snapshot_luns(wwns: Vec<String>, token: String) -> AdapterResult<Vec<SnapshotRef>>;
    /// Reverts a LUN to one of its snapshots.
    fn revert_lun(wwn: String, snapshot_id: String, token: String) -> AdapterResult<()>;
    /// Deletes a snapshot.
    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()>;
    /// Every snapshot on the array.
    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>>;
    /// A new LUN holding a snapshot's data.
    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> AdapterResult<LunInfo>;
    /// Opens a LUN or one of its snapshots for reading.
    fn open_reader(wwn: String, snapshot_id: Option<String>) -> AdapterResult<Box<dyn DeviceRead>>;
    /// Opens a LUN for writing.
    fn open_writer(wwn: String) -> AdapterResult<Box<dyn DeviceWrite>>;
}

/// Connects a [`StorageArray`] to the generated exports; used by [`crate::export_storage_array!`].
pub struct StorageArrayExports<T>(PhantomData<T>);

impl<T: StorageArray> adapter::Guest for StorageArrayExports<T> {
    fn info() -> AdapterInfo {
        adapter_info(T::about())
    }
}

impl<T: StorageArray> data_path::Guest for StorageArrayExports<T> {
    type DeviceReader = ReaderResource;
    type DeviceWriter = WriterResource;
}

impl<T: StorageArray + 'static> storage_array::Guest for StorageArrayExports<T> {
    fn list_luns() -> AdapterResult<Vec<LunInfo>> {
        T::list_luns()
    }
    fn get_lun(wwn: String) -> AdapterResult<LunInfo> {
        T::get_lun(wwn)
    }
    fn create_lun(name: String, capacity: u64, token: String) -> AdapterResult<LunInfo> {
        T::create_lun(name, capacity, token)
    }
    fn delete_lun(wwn: String) -> AdapterResult<()> {
        T::delete_lun(wwn)
    }
    fn expose(wwn: String, host_id: String) -> AdapterResult<()> {
        T::expose(wwn, host_id)
    }
    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()> {
        T::unexpose(wwn, host_id)
    }
    fn snapshot_luns(wwns: Vec<String>, token: String) -> AdapterResult<Vec<SnapshotRef>> {
        T::snapshot_luns(wwns, token)
    }
    fn revert_lun(wwn: String, snapshot_id: String, token: String) -> AdapterResult<()> {
        T::revert_lun(wwn, snapshot_id, token)
    }
    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()> {
        T::delete_snapshot(snapshot_id)
    }
    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>> {
        T::list_snapshots()
    }
    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> AdapterResult<LunInfo> {
        T::clone_snapshot(snapshot_id, name, token)
    }
    fn open_reader(
        wwn: String,
        snapshot_id: Option<String>,
    ) -> AdapterResult<storage_array::DeviceReader> {
        let reader = T::open_reader(wwn, snapshot_id)?;
        Ok(storage_array::DeviceReader::new(ReaderResource::new(
            reader,
        )))
    }
    fn open_writer(wwn: String) -> AdapterResult<storage_array::DeviceWriter> {
        let writer = T::open_writer(wwn)?;
        Ok(storage_array::DeviceWriter::new(WriterResource::new(
            writer,
        )))
    }
}
