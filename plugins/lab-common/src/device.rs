//! The data path over block volumes, and block-store errors as adapter errors.

use lab_blockstore::{Error, Reader, WasiStorage, Writer};
use tidemark_sdk::{AdapterError, AdapterResult, DeviceRead, DeviceWrite, Extent};

/// Maps a block-store error onto the contract's error cases.
pub fn store_error(error: Error) -> AdapterError {
    match error {
        Error::NotFound(m) => AdapterError::NotFound(m),
        Error::Conflict(m) => AdapterError::Conflict(m),
        Error::Invalid(m) => AdapterError::Invalid(m),
        Error::Corrupt(m) => AdapterError::Internal(format!("corrupt lab state: {m}")),
        Error::Io(m) => AdapterError::Internal(format!("lab i/o: {m}")),
    }
}

/// A volume (or one of its snapshots) as a `device-reader`.
pub struct VolumeReader(pub Reader<WasiStorage>);

/// A volume as a `device-writer`.
pub struct VolumeWriter(pub Writer<WasiStorage>);

impl DeviceRead for VolumeReader {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        self.0.read(offset, length).map_err(store_error)
    }
    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        let extents = self.0.allocated_extents().map_err(store_error)?;
        Ok(extents
            .into_iter()
            .map(|e| Extent {
                offset: e.offset,
                length: e.length,
            })
            .collect())
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
