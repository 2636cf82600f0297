//! The data path over block volumes.

use lab_blockstore::{Reader, WasiStorage, Writer};
use tidemark_sdk::{AdapterResult, DeviceRead, DeviceWrite, Extent};

use crate::error::store_error;
use crate::state::lab;

/// A volume (or one of its snapshots) as a `device-reader`. It remembers which volume and
/// snapshot it reads so it can say what changed since an older snapshot.
pub struct VolumeReader {
    reader: Reader<WasiStorage>,
    volume: String,
    snapshot: Option<String>,
}

/// A volume as a `device-writer`.
pub struct VolumeWriter(Writer<WasiStorage>);

impl VolumeReader {
    /// Opens a volume, or one of its snapshots, for reading.
    pub fn open(volume: &str, snapshot: Option<&str>) -> AdapterResult<Box<dyn DeviceRead>> {
        let reader = lab()?
            .volumes
            .open_reader(volume, snapshot)
            .map_err(store_error)?;
        Ok(Box::new(VolumeReader {
            reader,
            volume: volume.to_string(),
            snapshot: snapshot.map(str::to_string),
        }))
    }
}

impl VolumeWriter {
    /// Opens a volume's head for writing.
    pub fn open(volume: &str) -> AdapterResult<Box<dyn DeviceWrite>> {
        let writer = lab()?.volumes.open_writer(volume).map_err(store_error)?;
        Ok(Box::new(VolumeWriter(writer)))
    }
}

fn to_contract(extents: Vec<lab_blockstore::Extent>) -> Vec<Extent> {
    extents
        .into_iter()
        .map(|e| Extent {
            offset: e.offset,
            length: e.length,
        })
        .collect()
}

impl DeviceRead for VolumeReader {
    fn size(&self) -> u64 {
        self.reader.size()
    }
    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        self.reader.read(offset, length).map_err(store_error)
    }
    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        Ok(to_contract(
            self.reader.allocated_extents().map_err(store_error)?,
        ))
    }
    fn changed_extents(&mut self, since: &str) -> AdapterResult<Vec<Extent>> {
        let extents = lab()?
            .volumes
            .changed_extents(&self.volume, since, self.snapshot.as_deref())
            .map_err(store_error)?;
        Ok(to_contract(extents))
    }
}

impl DeviceWrite for VolumeWriter {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()> {
        self.0.write(offset, data).map_err(store_error)
    }
    fn flush(&mut self) -> AdapterResult<()> {
        self.0.flush().map_err(store_error)
    }
}
