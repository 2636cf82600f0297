//! Readers and writers of device bytes, turned into the contract's `data-path` resources.

use std::cell::RefCell;

use crate::bindings::data_path::{GuestDeviceReader, GuestDeviceWriter};
use crate::{AdapterResult, Extent};

/// Reads a device or a snapshot of it. One is opened per host request and dropped after it.
pub trait DeviceRead {
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Reads `length` bytes at `offset`; may be short only at the end of the device.
    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>>;
    /// Ranges that hold data; everything else reads as zeros.
    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>>;
    /// Ranges that may differ from the snapshot `since` of the same device, so copies can
    /// read only those. The default says the system cannot tell; the host then reads all.
    fn changed_extents(&mut self, since: &str) -> AdapterResult<Vec<Extent>> {
        Err(crate::AdapterError::Unsupported(format!(
            "this adapter cannot tell what changed since snapshot {since}"
        )))
    }
}

/// Writes a device, as a guest would.
pub trait DeviceWrite {
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Writes `data` at `offset`; out of range is `invalid`.
    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()>;
    /// Makes every write so far durable and visible to snapshots.
    fn flush(&mut self) -> AdapterResult<()>;
}

/// The `device-reader` resource: wraps an adapter's [`DeviceRead`].
pub struct ReaderResource(RefCell<Box<dyn DeviceRead>>);

/// The `device-writer` resource: wraps an adapter's [`DeviceWrite`].
pub struct WriterResource(RefCell<Box<dyn DeviceWrite>>);

impl ReaderResource {
    pub(crate) fn new(reader: Box<dyn DeviceRead>) -> Self {
        Self(RefCell::new(reader))
    }
}

impl WriterResource {
    pub(crate) fn new(writer: Box<dyn DeviceWrite>) -> Self {
        Self(RefCell::new(writer))
    }
}

impl GuestDeviceReader for ReaderResource {
    fn size(&self) -> u64 {
        self.0.borrow().size()
    }
    fn read(&self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        self.0.borrow_mut().read(offset, length)
    }
    fn allocated_extents(&self) -> AdapterResult<Vec<Extent>> {
        self.0.borrow_mut().allocated_extents()
    }
    fn changed_extents(&self, since: String) -> AdapterResult<Vec<Extent>> {
        self.0.borrow_mut().changed_extents(&since)
    }
}

impl GuestDeviceWriter for WriterResource {
    fn size(&self) -> u64 {
        self.0.borrow().size()
    }
    fn write(&self, offset: u64, data: Vec<u8>) -> AdapterResult<()> {
        self.0.borrow_mut().write(offset, &data)
    }
    fn flush(&self) -> AdapterResult<()> {
        self.0.borrow_mut().flush()
    }
}
