//! A storage array written against contract 0.2.0, frozen. LUNs are files under the
//! endpoint's `/data` (`luns/<wwn>.json` and `.img`), snapshots are copies
//! (`snapshots/<id>.json` and `.img`); tokens are kept in what they created, so a retry finds
//! it. It exists so that a test proves a 0.2.0 adapter keeps working on a host that speaks
//! newer contracts: do not update it when the contract moves on.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

wit_bindgen::generate!({
    path: "../../../wit/since_v0.2.0",
    world: "storage-array-adapter",
});

use exports::tidemark::adapter::adapter::Guest as AdapterGuest;
use exports::tidemark::adapter::data_path::{
    Guest as DataPathGuest, GuestDeviceReader, GuestDeviceWriter,
};
use exports::tidemark::adapter::storage_array::{DeviceReader, DeviceWriter, Guest as ArrayGuest};
use tidemark::adapter::types::{AdapterError, AdapterInfo, Extent, LunInfo, SnapshotRef};

type Result<T> = std::result::Result<T, AdapterError>;

const LARGEST_LUN: u64 = 1 << 40;

#[derive(Serialize, Deserialize)]
struct Lun {
    wwn: String,
    name: String,
    capacity: u64,
    exposed_to: Vec<String>,
    token: String,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    id: String,
    wwn: String,
    created_at: u64,
    token: String,
}

fn path(kind: &str, id: &str, ext: &str) -> PathBuf {
    PathBuf::from(format!("/data/{kind}/{id}.{ext}"))
}

fn io(what: &str, e: std::io::Error) -> AdapterError {
    AdapterError::Internal(format!("{what}: {e}"))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn load<T: for<'de> Deserialize<'de>>(kind: &str, id: &str) -> Result<Option<T>> {
    if !valid_id(id) {
        return Ok(None);
    }
    match fs::read(path(kind, id, "json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AdapterError::Internal(format!("{kind}/{id} is corrupt: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&format!("reading {kind}/{id}"), e)),
    }
}

fn save<T: Serialize>(kind: &str, id: &str, value: &T) -> Result<()> {
    fs::create_dir_all(format!("/data/{kind}")).map_err(|e| io("creating a directory", e))?;
    let bytes = serde_json::to_vec(value).map_err(|e| AdapterError::Internal(e.to_string()))?;
    fs::write(path(kind, id, "json"), bytes).map_err(|e| io(&format!("writing {kind}/{id}"), e))
}

fn all<T: for<'de> Deserialize<'de>>(kind: &str) -> Result<Vec<T>> {
    let entries = match fs::read_dir(format!("/data/{kind}")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&format!("listing {kind}"), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io("listing", e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".json")
            && let Some(value) = load(kind, id)?
        {
            found.push(value);
        }
    }
    Ok(found)
}

fn lun(wwn: &str) -> Result<Lun> {
    load("luns", wwn)?
        .ok_or_else(|| AdapterError::NotFound(format!("this array has no LUN '{wwn}'")))
}

fn snapshot(id: &str) -> Result<Snapshot> {
    load("snapshots", id)?
        .ok_or_else(|| AdapterError::NotFound(format!("this array has no snapshot '{id}'")))
}

fn random_hex(digits: usize) -> String {
    let mut out = String::new();
    while out.len() < digits {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(now_ms());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(digits);
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn info(lun: &Lun) -> LunInfo {
    LunInfo {
        wwn: lun.wwn.clone(),
        name: lun.name.clone(),
        capacity: lun.capacity,
        exposed_to: lun.exposed_to.clone(),
    }
}

fn snapshot_ref(s: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        id: s.id.clone(),
        source: s.wwn.clone(),
        created_at: s.created_at,
    }
}

fn copy_image(from: &PathBuf, to: &PathBuf) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io("copying an image", e))
}

struct Frozen;

impl AdapterGuest for Frozen {
    fn info() -> AdapterInfo {
        AdapterInfo {
            contract: "0.2.0".into(),
            vendor: "Tidemark tests".into(),
            version: "0.2.0-frozen".into(),
            capabilities: vec!["consistency-groups".into()],
        }
    }
}

impl ArrayGuest for Frozen {
    fn list_luns() -> Result<Vec<LunInfo>> {
        Ok(all::<Lun>("luns")?.iter().map(info).collect())
    }

    fn get_lun(wwn: String) -> Result<LunInfo> {
        Ok(info(&lun(&wwn)?))
    }

    fn create_lun(name: String, capacity: u64, token: String) -> Result<LunInfo> {
        if let Some(made) = all::<Lun>("luns")?.into_iter().find(|l| l.token == token) {
            return Ok(info(&made));
        }
        if name.is_empty() || name.len() > 80 {
            return Err(AdapterError::Invalid(
                "a LUN name must have 1 to 80 characters".into(),
            ));
        }
        if capacity == 0 || capacity > LARGEST_LUN || !capacity.is_multiple_of(512) {
            return Err(AdapterError::Invalid(format!(
                "capacity {capacity} must be a positive multiple of 512 up to 1 TiB"
            )));
        }
        let wwn = format!("naa.6020f0{}", random_hex(26));
        fs::create_dir_all("/data/luns").map_err(|e| io("creating luns/", e))?;
        let image =
            fs::File::create(path("luns", &wwn, "img")).map_err(|e| io("creating a LUN", e))?;
        image.set_len(capacity).map_err(|e| io("sizing a LUN", e))?;
        let made = Lun {
            wwn: wwn.clone(),
            name,
            capacity,
            exposed_to: Vec::new(),
            token,
        };
        save("luns", &wwn, &made)?;
        Ok(info(&made))
    }

    fn delete_lun(wwn: String) -> Result<()> {
        let found = lun(&wwn)?;
        if !found.exposed_to.is_empty() {
            return Err(AdapterError::Conflict(format!(
                "LUN {wwn} is exposed; unexpose it first"
            )));
        }
        if all::<Snapshot>("snapshots")?.iter().any(|s| s.wwn == wwn) {
            return Err(AdapterError::Conflict(format!("LUN {wwn} has snapshots")));
        }
        let _ = fs::remove_file(path("luns", &wwn, "img"));
        fs::remove_file(path("luns", &wwn, "json")).map_err(|e| io("deleting a LUN", e))
    }

    fn expose(wwn: String, host_id: String) -> Result<()> {
        let mut found = lun(&wwn)?;
        if host_id.is_empty() || host_id.len() > 64 {
            return Err(AdapterError::Invalid(format!(
                "malformed host id '{host_id}'"
            )));
        }
        if !found.exposed_to.contains(&host_id) {
            found.exposed_to.push(host_id);
            save("luns", &wwn, &found)?;
        }
        Ok(())
    }

    fn unexpose(wwn: String, host_id: String) -> Result<()> {
        let mut found = lun(&wwn)?;
        found.exposed_to.retain(|h| h != &host_id);
        save("luns", &wwn, &found)
    }

    fn snapshot_luns(wwns: Vec<String>, token: String) -> Result<Vec<SnapshotRef>> {
        let earlier: Vec<Snapshot> = all::<Snapshot>("snapshots")?
            .into_iter()
            .filter(|s| s.token.split_once('#').map(|(t, _)| t) == Some(token.as_str()))
            .collect();
        if !earlier.is_empty() {
            return wwns
                .iter()
                .map(|w| {
                    earlier
                        .iter()
                        .find(|s| &s.wwn == w)
                        .map(snapshot_ref)
                        .ok_or_else(|| {
                            AdapterError::Conflict(format!("token {token} was used for other LUNs"))
                        })
                })
                .collect();
        }
        if wwns.is_empty() {
            return Err(AdapterError::Invalid("no LUNs to snapshot".into()));
        }
        for wwn in &wwns {
            lun(wwn)?;
        }
        let created_at = now_ms();
        let mut made = Vec::new();
        for (n, wwn) in wwns.iter().enumerate() {
            let id = format!("snap-{}", random_hex(16));
            copy_image(&path("luns", wwn, "img"), &path("snapshots", &id, "img")).or_else(
                |_| {
                    fs::create_dir_all("/data/snapshots")
                        .map_err(|e| io("creating snapshots/", e))?;
                    copy_image(&path("luns", wwn, "img"), &path("snapshots", &id, "img"))
                },
            )?;
            let s = Snapshot {
                id: id.clone(),
                wwn: wwn.clone(),
                created_at,
                token: format!("{token}#{n}"),
            };
            save("snapshots", &id, &s)?;
            made.push(snapshot_ref(&s));
        }
        Ok(made)
    }

    fn revert_lun(wwn: String, snapshot_id: String, _token: String) -> Result<()> {
        let s = snapshot(&snapshot_id)?;
        if s.wwn != wwn {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot_id} is not of LUN {wwn}"
            )));
        }
        lun(&wwn)?;
        copy_image(
            &path("snapshots", &snapshot_id, "img"),
            &path("luns", &wwn, "img"),
        )
    }

    fn delete_snapshot(snapshot_id: String) -> Result<()> {
        snapshot(&snapshot_id)?;
        let _ = fs::remove_file(path("snapshots", &snapshot_id, "img"));
        fs::remove_file(path("snapshots", &snapshot_id, "json"))
            .map_err(|e| io("deleting a snapshot", e))
    }

    fn list_snapshots() -> Result<Vec<SnapshotRef>> {
        Ok(all::<Snapshot>("snapshots")?
            .iter()
            .map(snapshot_ref)
            .collect())
    }

    fn clone_snapshot(snapshot_id: String, name: String, token: String) -> Result<LunInfo> {
        let s = snapshot(&snapshot_id)?;
        let source = lun(&s.wwn)?;
        let made = Self::create_lun(name, source.capacity, token)?;
        copy_image(
            &path("snapshots", &snapshot_id, "img"),
            &path("luns", &made.wwn, "img"),
        )?;
        Ok(made)
    }

    fn open_reader(wwn: String, snapshot_id: Option<String>) -> Result<DeviceReader> {
        let found = lun(&wwn)?;
        let image = match snapshot_id {
            Some(id) => {
                let s = snapshot(&id)?;
                if s.wwn != wwn {
                    return Err(AdapterError::NotFound(format!(
                        "LUN {wwn} has no snapshot {id}"
                    )));
                }
                path("snapshots", &id, "img")
            }
            None => path("luns", &wwn, "img"),
        };
        let file = fs::File::open(image).map_err(|e| io("opening a reader", e))?;
        Ok(DeviceReader::new(Reader {
            file: std::cell::RefCell::new(file),
            size: found.capacity,
        }))
    }

    fn open_writer(wwn: String) -> Result<DeviceWriter> {
        let found = lun(&wwn)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .open(path("luns", &wwn, "img"))
            .map_err(|e| io("opening a writer", e))?;
        Ok(DeviceWriter::new(Writer {
            file: std::cell::RefCell::new(file),
            size: found.capacity,
        }))
    }
}

struct Reader {
    file: std::cell::RefCell<fs::File>,
    size: u64,
}

struct Writer {
    file: std::cell::RefCell<fs::File>,
    size: u64,
}

impl DataPathGuest for Frozen {
    type DeviceReader = Reader;
    type DeviceWriter = Writer;
}

impl GuestDeviceReader for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, length: u64) -> Result<Vec<u8>> {
        if length > 16 << 20 {
            return Err(AdapterError::Invalid(format!(
                "read of {length} bytes: at most 16 MiB"
            )));
        }
        let end = offset.saturating_add(length).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; (end - offset) as usize];
        let mut file = self.file.borrow_mut();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io("seeking", e))?;
        file.read_exact(&mut buf).map_err(|e| io("reading", e))?;
        Ok(buf)
    }

    fn allocated_extents(&self) -> Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset: 0,
            length: self.size,
        }])
    }

    fn changed_extents(&self, since: String) -> Result<Vec<Extent>> {
        Err(AdapterError::Unsupported(format!(
            "this array keeps no change tracking (since {since})"
        )))
    }
}

impl GuestDeviceWriter for Writer {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&self, offset: u64, data: Vec<u8>) -> Result<()> {
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(AdapterError::Invalid(format!(
                "write of {} bytes at {offset} goes past the end ({})",
                data.len(),
                self.size
            )));
        }
        let mut file = self.file.borrow_mut();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io("seeking", e))?;
        file.write_all(&data).map_err(|e| io("writing", e))
    }

    fn flush(&self) -> Result<()> {
        self.file
            .borrow_mut()
            .sync_data()
            .map_err(|e| io("flushing", e))
    }
}

export!(Frozen);
