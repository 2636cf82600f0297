//! A storage-array adapter broken on purpose, to prove the conformance suite fails exactly
//! the checks of a flaw: the lab array with one flaw, picked by the endpoint setting `flaw`:
//! - `tokens`: every creating call (create-lun, snapshot-luns, clone-snapshot) ignores its
//!   idempotency token, so a retry creates anew;
//! - `isolation`: opening a snapshot for reading reads the live LUN instead;
//! - anything else: the lab array unchanged.
//!
//! Test-only: never shipped with the product.

#[path = "../../../../plugins/lab-array/src/lib.rs"]
mod lab_array;

use lab_array::LabArray;
use lab_common::random_hex;
use tidemark_sdk::{
    About, AdapterResult, DeviceRead, DeviceWrite, LunInfo, SnapshotRef, StorageArray,
};

struct BrokenArray;

fn flaw() -> String {
    tidemark_sdk::setting_or("flaw", "none")
}

/// The token as the lab sees it: with the `tokens` flaw, a new one on every call.
fn token(token: String) -> String {
    if flaw() == "tokens" {
        format!("{token}/{}", random_hex(16))
    } else {
        token
    }
}

impl StorageArray for BrokenArray {
    fn about() -> About {
        let mut about = LabArray::about();
        about.vendor = "Tidemark test (broken on purpose)".into();
        about
    }

    fn list_luns() -> AdapterResult<Vec<LunInfo>> {
        LabArray::list_luns()
    }

    fn get_lun(wwn: String) -> AdapterResult<LunInfo> {
        LabArray::get_lun(wwn)
    }

    fn create_lun(name: String, capacity: u64, t: String) -> AdapterResult<LunInfo> {
        LabArray::create_lun(name, capacity, token(t))
    }

    fn delete_lun(wwn: String) -> AdapterResult<()> {
        LabArray::delete_lun(wwn)
    }

    fn expose(wwn: String, host_id: String) -> AdapterResult<()> {
        LabArray::expose(wwn, host_id)
    }

    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()> {
        LabArray::unexpose(wwn, host_id)
    }

    fn snapshot_luns(wwns: Vec<String>, t: String) -> AdapterResult<Vec<SnapshotRef>> {
        LabArray::snapshot_luns(wwns, token(t))
    }

    fn revert_lun(wwn: String, snapshot_id: String, t: String) -> AdapterResult<()> {
        LabArray::revert_lun(wwn, snapshot_id, t)
    }

    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()> {
        LabArray::delete_snapshot(snapshot_id)
    }

    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>> {
        LabArray::list_snapshots()
    }

    fn clone_snapshot(snapshot_id: String, name: String, t: String) -> AdapterResult<LunInfo> {
        LabArray::clone_snapshot(snapshot_id, name, token(t))
    }

    fn open_reader(wwn: String, snapshot_id: Option<String>) -> AdapterResult<Box<dyn DeviceRead>> {
        if flaw() == "isolation" && snapshot_id.is_some() {
            // Still refuse what the lab refuses (unknown or foreign snapshots), then read
            // the live LUN as if it were the snapshot.
            drop(LabArray::open_reader(wwn.clone(), snapshot_id)?);
            return LabArray::open_reader(wwn, None);
        }
        LabArray::open_reader(wwn, snapshot_id)
    }

    fn open_writer(wwn: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        LabArray::open_writer(wwn)
    }
}

tidemark_sdk::export_storage_array!(BrokenArray);
tidemark_sdk::manifest!(r#"{"data-dir": true}"#);
