//! A storage-array adapter to start from: `tidemark adapter new NAME --kind storage-array`
//! writes this file into a new project. It keeps its LUNs as plain files in the endpoint's
//! data directory and passes the conformance suite as it is; replace each function's body
//! with calls to your array, keeping what the contract asks (see the doc comments of
//! `tidemark_sdk::StorageArray` and `wit/since_v0.3.0/storage-array.wit`).
//!
//! - LUNs: `luns/<wwn>.json` records (`tidemark_sdk::records`) and `data/<wwn>.img` files.
//! - Snapshots: full copies `data/<id>.img` (a real array does copy-on-write).
//! - Idempotency: each creating call puts its token's key into the record it makes and looks
//!   there first, so a retry after a crash finds what the first try made.
//! - One instant for a group snapshot: writes and snapshots take one lock file, so no write
//!   lands between two members' copies.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidemark_sdk::records::{DATA_DIR, Records, random_hex, token_key};
use tidemark_sdk::{
    About, AdapterError, AdapterResult, DeviceRead, DeviceWrite, Extent, LunInfo, OrInternal as _,
    SnapshotRef,
};

/// The adapter.
pub struct TemplateArray;

/// A LUN as this adapter keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lun {
    wwn: String,
    name: String,
    capacity: u64,
    exposed_to: Vec<String>,
    /// The key of the token that created it.
    made_by: String,
}

/// A snapshot of one LUN.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    id: String,
    wwn: String,
    created_at: u64,
    /// The key of the token that took it (with the LUN's WWN).
    made_by: String,
}

impl Lun {
    fn info(&self) -> LunInfo {
        LunInfo {
            wwn: self.wwn.clone(),
            name: self.name.clone(),
            capacity: self.capacity,
            exposed_to: self.exposed_to.clone(),
        }
    }
}

impl Snapshot {
    fn as_ref(&self) -> SnapshotRef {
        SnapshotRef {
            id: self.id.clone(),
            source: self.wwn.clone(),
            created_at: self.created_at,
        }
    }
}

fn records() -> AdapterResult<Records> {
    Records::open()
}

fn image(id: &str) -> PathBuf {
    PathBuf::from(DATA_DIR)
        .join("data")
        .join(format!("{id}.img"))
}

/// Ids this adapter makes are hex after a prefix: anything else cannot be one of them.
fn well_formed(id: &str, prefix: &str, digits: usize) -> bool {
    id.len() == prefix.len() + digits
        && id.starts_with(prefix)
        && id[prefix.len()..].chars().all(|c| c.is_ascii_hexdigit())
}

fn lun(wwn: &str) -> AdapterResult<Lun> {
    let missing = || AdapterError::NotFound(format!("this array has no LUN '{wwn}'"));
    if !well_formed(wwn, "naa.6", 31) {
        return Err(missing());
    }
    records()?.load("luns", wwn)?.ok_or_else(missing)
}

fn snapshot(id: &str) -> AdapterResult<Snapshot> {
    let missing = || AdapterError::NotFound(format!("this array has no snapshot '{id}'"));
    if !well_formed(id, "ts-", 16) {
        return Err(missing());
    }
    records()?.load("snapshots", id)?.ok_or_else(missing)
}

/// The one lock writes and snapshots take: a file created exclusively, removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn take() -> AdapterResult<Lock> {
        let path = PathBuf::from(DATA_DIR).join("lock");
        for _ in 0..20_000 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Lock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A session killed while holding it leaves it behind: stale after 30 s.
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| at.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(30));
                    if stale {
                        let _ = std::fs::remove_file(&path);
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err(e) => return Err(AdapterError::Internal(format!("taking the lock: {e}"))),
            }
        }
        Err(AdapterError::Transient(
            "the array's lock stayed taken for 10 s".into(),
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn copy_image(from: &str, to: &str) -> AdapterResult<()> {
    std::fs::create_dir_all(PathBuf::from(DATA_DIR).join("data")).or_internal("data/")?;
    std::fs::copy(image(from), image(to)).or_internal("copying an image")?;
    Ok(())
}

/// Creates a LUN whose image `fill` makes, unless the token made one already.
fn create(
    name: &str,
    capacity: u64,
    token: &str,
    fill: impl FnOnce(&str) -> AdapterResult<()>,
) -> AdapterResult<LunInfo> {
    let records = records()?;
    if let Some(wwn) = records.recall::<String>(token)? {
        return Ok(lun(&wwn)?.info());
    }
    let key = token_key(token);
    if let Some(made) = records
        .load_all::<Lun>("luns")?
        .into_iter()
        .find(|l| l.made_by == key)
    {
        records.remember(token, &made.wwn)?;
        return Ok(made.info());
    }
    if name.trim().is_empty() || name.len() > 128 {
        return Err(AdapterError::Invalid(
            "a LUN name must have 1 to 128 characters, not all blank".into(),
        ));
    }
    let wwn = format!("naa.6{}", random_hex(31));
    fill(&wwn)?;
    let made = Lun {
        wwn: wwn.clone(),
        name: name.to_string(),
        capacity,
        exposed_to: Vec::new(),
        made_by: key,
    };
    records.save("luns", &wwn, &made)?;
    records.remember(token, &wwn)?;
    Ok(made.info())
}

impl tidemark_sdk::StorageArray for TemplateArray {
    fn about() -> About {
        About {
            vendor: "Tidemark template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec!["consistency-groups".into(), "clones".into()],
        }
    }

    fn list_luns() -> AdapterResult<Vec<LunInfo>> {
        Ok(records()?
            .load_all::<Lun>("luns")?
            .iter()
            .map(Lun::info)
            .collect())
    }

    fn get_lun(wwn: String) -> AdapterResult<LunInfo> {
        Ok(lun(&wwn)?.info())
    }

    fn create_lun(name: String, capacity: u64, token: String) -> AdapterResult<LunInfo> {
        if capacity == 0 || !capacity.is_multiple_of(512) || capacity > 1 << 40 {
            return Err(AdapterError::Invalid(format!(
                "LUN capacity {capacity} must be a positive multiple of 512 bytes, at most 1 TiB"
            )));
        }
        create(&name, capacity, &token, |wwn| {
            std::fs::create_dir_all(PathBuf::from(DATA_DIR).join("data")).or_internal("data/")?;
            File::create(image(wwn))
                .and_then(|f| f.set_len(capacity))
                .or_internal("creating a LUN image")
        })
    }

    fn delete_lun(wwn: String) -> AdapterResult<()> {
        let found = lun(&wwn)?;
        if !found.exposed_to.is_empty() {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} is exposed to {}; unexpose it first",
                found.exposed_to.join(", ")
            )));
        }
        let records = records()?;
        if records
            .load_all::<Snapshot>("snapshots")?
            .iter()
            .any(|s| s.wwn == wwn)
        {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} has snapshots; delete them first"
            )));
        }
        records.remove("luns", &wwn)?;
        let _ = std::fs::remove_file(image(&wwn));
        Ok(())
    }

    fn expose(wwn: String, host_id: String) -> AdapterResult<()> {
        if host_id.trim().is_empty() {
            return Err(AdapterError::Invalid("host id must not be empty".into()));
        }
        let mut found = lun(&wwn)?;
        if !found.exposed_to.contains(&host_id) {
            found.exposed_to.push(host_id);
            records()?.save("luns", &wwn, &found)?;
        }
        Ok(())
    }

    fn unexpose(wwn: String, host_id: String) -> AdapterResult<()> {
        let mut found = lun(&wwn)?;
        if found.exposed_to.contains(&host_id) {
            found.exposed_to.retain(|h| h != &host_id);
            records()?.save("luns", &wwn, &found)?;
        }
        Ok(())
    }

    fn snapshot_luns(wwns: Vec<String>, token: String) -> AdapterResult<Vec<SnapshotRef>> {
        if wwns.is_empty() {
            return Err(AdapterError::Invalid(
                "snapshot-luns needs at least one LUN".into(),
            ));
        }
        let records = records()?;
        if let Some(ids) = records.recall::<Vec<String>>(&token)? {
            return ids.iter().map(|id| Ok(snapshot(id)?.as_ref())).collect();
        }
        for wwn in &wwns {
            lun(wwn)?;
        }
        let key = token_key(&token);
        let earlier: Vec<Snapshot> = records
            .load_all::<Snapshot>("snapshots")?
            .into_iter()
            .filter(|s| s.made_by.starts_with(&key))
            .collect();
        if earlier.len() == wwns.len() {
            let ids: Vec<String> = earlier.iter().map(|s| s.id.clone()).collect();
            records.remember(&token, &ids)?;
            return Ok(earlier.iter().map(Snapshot::as_ref).collect());
        }
        let now = tidemark_sdk::now_ms();
        let mut taken = Vec::new();
        {
            // Every member copied under the lock: one instant.
            let _lock = Lock::take()?;
            for wwn in &wwns {
                let s = Snapshot {
                    id: format!("ts-{}", random_hex(16)),
                    wwn: wwn.clone(),
                    created_at: now,
                    made_by: format!("{key}/{wwn}"),
                };
                copy_image(wwn, &s.id)?;
                records.save("snapshots", &s.id, &s)?;
                taken.push(s);
            }
        }
        let ids: Vec<String> = taken.iter().map(|s| s.id.clone()).collect();
        records.remember(&token, &ids)?;
        Ok(taken.iter().map(Snapshot::as_ref).collect())
    }

    fn revert_lun(wwn: String, snapshot_id: String, _token: String) -> AdapterResult<()> {
        lun(&wwn)?;
        let s = snapshot(&snapshot_id)?;
        if s.wwn != wwn {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot_id} belongs to LUN {}, not {wwn}",
                s.wwn
            )));
        }
        // Reverting twice to the same snapshot leaves the same bytes: idempotent as it is.
        let _lock = Lock::take()?;
        copy_image(&snapshot_id, &wwn)
    }

    fn delete_snapshot(snapshot_id: String) -> AdapterResult<()> {
        snapshot(&snapshot_id)?;
        records()?.remove("snapshots", &snapshot_id)?;
        let _ = std::fs::remove_file(image(&snapshot_id));
        Ok(())
    }

    fn list_snapshots() -> AdapterResult<Vec<SnapshotRef>> {
        Ok(records()?
            .load_all::<Snapshot>("snapshots")?
            .iter()
            .map(Snapshot::as_ref)
            .collect())
    }

    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> AdapterResult<LunInfo> {
        let s = snapshot(&snapshot_id)?;
        let source = lun(&s.wwn)?;
        create(&name, source.capacity, &token, |wwn| {
            copy_image(&snapshot_id, wwn)
        })
    }

    fn open_reader(wwn: String, snapshot_id: Option<String>) -> AdapterResult<Box<dyn DeviceRead>> {
        let found = lun(&wwn)?;
        let id = match snapshot_id {
            Some(id) => {
                if snapshot(&id)?.wwn != wwn {
                    return Err(AdapterError::Invalid(format!(
                        "snapshot {id} is not a snapshot of LUN {wwn}"
                    )));
                }
                id
            }
            None => wwn,
        };
        let file = File::open(image(&id)).or_internal("opening an image")?;
        Ok(Box::new(ImageReader {
            file,
            size: found.capacity,
        }))
    }

    fn open_writer(wwn: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        let found = lun(&wwn)?;
        let file = OpenOptions::new()
            .write(true)
            .open(image(&wwn))
            .or_internal("opening an image")?;
        Ok(Box::new(ImageWriter {
            file,
            size: found.capacity,
        }))
    }
}

/// Reads an image file.
struct ImageReader {
    file: File,
    size: u64,
}

impl DeviceRead for ImageReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let length = length.min(self.size - offset).min(64 << 20);
        let mut out = vec![0u8; length as usize];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut out))
            .or_internal("reading an image")?;
        Ok(out)
    }

    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        // Plain files cannot tell: all of it (a superset is always a right answer).
        Ok(vec![Extent {
            offset: 0,
            length: self.size,
        }])
    }
}

/// Writes an image file, each write under the array's lock.
struct ImageWriter {
    file: File,
    size: u64,
}

impl DeviceWrite for ImageWriter {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()> {
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(AdapterError::Invalid(format!(
                "a write of {} bytes at {offset} runs past the LUN's end ({} bytes)",
                data.len(),
                self.size
            )));
        }
        let _lock = Lock::take()?;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(data))
            .or_internal("writing an image")
    }

    fn flush(&mut self) -> AdapterResult<()> {
        self.file.sync_data().or_internal("flushing an image")
    }
}

tidemark_sdk::export_storage_array!(TemplateArray);
tidemark_sdk::manifest!(r#"{"data-dir": true}"#);
