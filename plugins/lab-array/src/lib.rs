//! The lab storage array: LUNs with WWNs (`naa.` + 32 hex digits) as thin copy-on-write
//! volumes in the endpoint's data dir; snapshots of a set of LUNs taken together; revert;
//! clones; exposure to hypervisor hosts.
//!
//! Settings: `vendor-id` (6 hex digits placed in every WWN, default `5dc0de`), so two lab
//! arrays never hand out the same WWN.

use lab_common::{VolumeReader, VolumeWriter, check_wwn, lab, random_hex, store_error, token_key};
use serde::{Deserialize, Serialize};
use tidemark_sdk::{
    About, AdapterError, AdapterResult, DeviceRead, DeviceWrite, LunInfo, SnapshotRef,
};

/// The lab array (public so a test adapter can wrap it).
pub struct LabArray;

/// A LUN as the lab keeps it (`luns/<wwn>.json`); its volume id is the WWN.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LunRecord {
    wwn: String,
    name: String,
    capacity: u64,
    exposed_to: Vec<String>,
    /// The key of the idempotency token that created it, saved with the LUN itself: a crash
    /// between creating it and remembering the token cannot make a retry create a second.
    #[serde(default)]
    made_by: Option<String>,
}

/// Which LUN a snapshot belongs to (`snapshots/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    id: String,
    wwn: String,
    created_at: u64,
}

impl LunRecord {
    fn info(&self) -> LunInfo {
        LunInfo {
            wwn: self.wwn.clone(),
            name: self.name.clone(),
            capacity: self.capacity,
            exposed_to: self.exposed_to.clone(),
        }
    }
}

fn load_lun(wwn: &str) -> AdapterResult<LunRecord> {
    check_wwn(wwn).map_err(|_| AdapterError::NotFound(format!("this array has no LUN '{wwn}'")))?;
    lab()?
        .load("luns", wwn)?
        .ok_or_else(|| AdapterError::NotFound(format!("this array has no LUN {wwn}")))
}

fn load_snapshot(snapshot_id: &str) -> AdapterResult<SnapshotRecord> {
    let valid = !snapshot_id.is_empty()
        && snapshot_id.len() <= 64
        && snapshot_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let missing = || AdapterError::NotFound(format!("this array has no snapshot '{snapshot_id}'"));
    if !valid {
        return Err(missing());
    }
    lab()?.load("snapshots", snapshot_id)?.ok_or_else(missing)
}

fn new_wwn() -> AdapterResult<String> {
    let vendor = tidemark_sdk::setting_or("vendor-id", "5dc0de");
    if vendor.len() != 6 || !vendor.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AdapterError::Invalid(format!(
            "endpoint setting 'vendor-id' must be 6 hex digits, not '{vendor}'"
        )));
    }
    Ok(format!(
        "naa.6{}{}",
        vendor.to_ascii_lowercase(),
        random_hex(25)
    ))
}

/// Creates a LUN record (and, through `fill`, its volume) unless the token made it already.
fn create_with(
    name: &str,
    capacity: u64,
    token: &str,
    fill: impl FnOnce(&str) -> AdapterResult<()>,
) -> AdapterResult<LunInfo> {
    let lab = lab()?;
    if let Some(wwn) = lab.recall::<String>(token)? {
        return Ok(load_lun(&wwn)?.info());
    }
    let key = token_key(token);
    if let Some(made) = lab
        .load_all::<LunRecord>("luns")?
        .into_iter()
        .find(|l| l.made_by.as_deref() == Some(key.as_str()))
    {
        lab.remember(token, &made.wwn)?;
        return Ok(made.info());
    }
    if name.trim().is_empty() || name.len() > 128 {
        return Err(AdapterError::Invalid(
            "a LUN name must have 1 to 128 characters".into(),
        ));
    }
    let wwn = new_wwn()?;
    fill(&wwn)?;
    let record = LunRecord {
        wwn: wwn.clone(),
        name: name.to_string(),
        capacity,
        exposed_to: Vec::new(),
        made_by: Some(key),
    };
    lab.save("luns", &wwn, &record)?;
    lab.remember(token, &wwn)?;
    Ok(record.info())
}

impl tidemark_sdk::StorageArray for LabArray {
    fn about() -> About {
        About {
            vendor: "Tidemark lab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "consistency-groups".into(),
                "clones".into(),
                "copy-on-write".into(),
            ],
        }
    }

    fn list_luns() -> AdapterResult<Vec<LunInfo>> {
        Ok(lab()?
            .load_all::<LunRecord>("luns")?
            .iter()
            .map(LunRecord::info)
            .collect())
    }

    fn get_lun(wwn: String) -> AdapterResult<LunInfo> {
        Ok(load_lun(&wwn)?.info())
    }

    fn create_lun(name: String, capacity: u64, token: String) -> AdapterResult<LunInfo> {
        if capacity == 0 || !capacity.is_multiple_of(512) {
            return Err(AdapterError::Invalid(format!(
                "LUN capacity {capacity} must be a positive multiple of 512 bytes"
            )));
        }
        create_with(&name, capacity, &token, |wwn| {
            lab()?
                .volumes
                .create_volume(wwn, capacity)
                .map_err(store_error)
        })
    }

    fn delete_lun(wwn: String) -> AdapterResult<()> {
        let lun = load_lun(&wwn)?;
        if !lun.exposed_to.is_empty() {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} is exposed to {}; unexpose it first",
                lun.exposed_to.join(", ")
            )));
        }
        let lab = lab()?;
        let snapshots = lab.load_all::<SnapshotRecord>("snapshots")?;
        let count = snapshots.iter().filter(|s| s.wwn == wwn).count();
        if count > 0 {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} has {count} snapshot(s); delete them first"
            )));
        }
        lab.volumes.delete_volume(&wwn).map_err(store_error)?;
        lab.remove("luns", &wwn).map(|_| ())
    }

    fn expose(wwn: String, host_id: String) -> AdapterResult<()> {
        if host_id.trim().is_empty() {
            return Err(AdapterError::Invalid("host id must not be empty".into()));
        }
        let mut lun = load_lun(&wwn)?;
        if !lun.exposed_to.contains(&host_id) {
            lun.exposed_to.push(host_id);
            lab()?.save("luns", &wwn, &lun)?;
        }
        Ok(())
    }

    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()> {
        let mut lun = load_lun(&wwn)?;
        if lun.exposed_to.contains(&host_id) {
            lun.exposed_to.retain(|h| h != &host_id);
            lab()?.save("luns", &wwn, &lun)?;
        }
        Ok(())
    }

    fn snapshot_luns(wwns: Vec<String>, token: String) -> AdapterResult<Vec<SnapshotRef>> {
        if wwns.is_empty() {
            return Err(AdapterError::Invalid(
                "snapshot-luns needs at least one LUN".into(),
            ));
        }
        for wwn in &wwns {
            load_lun(wwn)?;
        }
        let lab = lab()?;
        // One instant for the whole group: the block store fences every member (writes
        // wait) before it takes the first member snapshot and lifts the fences after the
        // last, so no write lands between them.
        let now = tidemark_sdk::now_ms();
        let ids: Vec<String> = wwns
            .iter()
            .map(|_| format!("as-{}", random_hex(12)))
            .collect();
        let tokens: Vec<String> = wwns.iter().map(|wwn| format!("{token}/{wwn}")).collect();
        let members: Vec<(&str, &str, &str)> = wwns
            .iter()
            .zip(&ids)
            .zip(&tokens)
            .map(|((wwn, id), token)| (wwn.as_str(), id.as_str(), token.as_str()))
            .collect();
        let taken = lab
            .volumes
            .snapshot_group(&members, now)
            .map_err(store_error)?;
        let mut refs = Vec::new();
        for (wwn, info) in wwns.iter().zip(taken) {
            let record = SnapshotRecord {
                id: info.id.clone(),
                wwn: wwn.clone(),
                created_at: info.created_at_ms,
            };
            lab.save("snapshots", &info.id, &record)?;
            refs.push(SnapshotRef {
                id: info.id,
                source: wwn.clone(),
                created_at: info.created_at_ms,
            });
        }
        Ok(refs)
    }

    fn revert_lun(wwn: String, snapshot_id: String, token: String) -> AdapterResult<()> {
        load_lun(&wwn)?;
        let snapshot = load_snapshot(&snapshot_id)?;
        if snapshot.wwn != wwn {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot_id} belongs to LUN {}, not {wwn}",
                snapshot.wwn
            )));
        }
        lab()?
            .volumes
            .revert(&wwn, &snapshot_id, &token)
            .map_err(store_error)
    }

    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()> {
        let snapshot = load_snapshot(&snapshot_id)?;
        let lab = lab()?;
        match lab.volumes.delete_snapshot(&snapshot.wwn, &snapshot_id) {
            Ok(()) | Err(lab_blockstore::Error::NotFound(_)) => {}
            Err(e) => return Err(store_error(e)),
        }
        lab.remove("snapshots", &snapshot_id).map(|_| ())
    }

    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>> {
        Ok(lab()?
            .load_all::<SnapshotRecord>("snapshots")?
            .into_iter()
            .map(|s| SnapshotRef {
                id: s.id,
                source: s.wwn,
                created_at: s.created_at,
            })
            .collect())
    }

    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> AdapterResult<LunInfo> {
        let snapshot = load_snapshot(&snapshot_id)?;
        let source = load_lun(&snapshot.wwn)?;
        create_with(&name, source.capacity, &token, |wwn| {
            lab()?
                .volumes
                .clone_snapshot(&snapshot.wwn, &snapshot_id, wwn)
                .map_err(store_error)
        })
    }

    fn open_reader(wwn: String, snapshot_id: Option<String>) -> AdapterResult<Box<dyn DeviceRead>> {
        load_lun(&wwn)?;
        if let Some(snapshot) = &snapshot_id
            && load_snapshot(snapshot)?.wwn != wwn
        {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot} is not a snapshot of LUN {wwn}"
            )));
        }
        VolumeReader::open(&wwn, snapshot_id.as_deref())
    }

    fn open_writer(wwn: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        load_lun(&wwn)?;
        VolumeWriter::open(&wwn)
    }
}

#[cfg(feature = "export")]
tidemark_sdk::export_storage_array!(LabArray);
#[cfg(feature = "export")]
tidemark_sdk::manifest!(r#"{"data-dir": true}"#);
