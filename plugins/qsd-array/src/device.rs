//! The data path over NBD: a reader of a LUN or of a snapshot's frozen layer, and a
//! writer of a LUN, each one connection to qsd's NBD server on an export the adapter keeps
//! for itself (`io-<id>`, separate from the WWN export a hypervisor uses).
//!
//! Changed extents come from the external chain: `qemu:allocation-depth` says which layer
//! of the reader's chain holds each cluster, so everything found in a layer above the
//! `since` snapshot's layer changed after it, and nothing else did. This never guesses:
//! when the `since` layer is not in the reader's chain (a revert branched it away, or it is
//! another LUN's), the answer is `unsupported` and the host reads everything.

use std::time::Duration;

use nbd_client::device::{ALLOCATION_DEPTH, NbdDevice};
use tidemark_sdk::{AdapterError, AdapterResult, DeviceRead, DeviceWrite, Extent};

use crate::records::Records;

fn connect(address: &str, export: &str) -> AdapterResult<NbdDevice> {
    NbdDevice::connect(address, export, &[ALLOCATION_DEPTH], Duration::from_secs(5))
}

/// Reads a LUN, or the layer one of its snapshots froze.
pub struct LayerReader {
    device: NbdDevice,
    /// The chain the reader reads, top first (layer ids).
    chain: Vec<String>,
    /// The LUN, to tell a foreign `since` from an unknown one.
    wwn: String,
}

impl LayerReader {
    /// Connects to `export` (serving the top of `chain`).
    pub fn open(address: &str, export: &str, chain: Vec<String>, wwn: &str) -> AdapterResult<Self> {
        Ok(LayerReader {
            device: connect(address, export)?,
            chain,
            wwn: wwn.to_string(),
        })
    }
}

impl DeviceRead for LayerReader {
    fn size(&self) -> u64 {
        self.device.size()
    }

    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        self.device.read(offset, length)
    }

    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        self.device.allocated_in_chain()
    }

    fn changed_extents(&mut self, since: &str) -> AdapterResult<Vec<Extent>> {
        let records = Records::open()?;
        let snapshot = records.snapshot(since)?;
        if snapshot.wwn != self.wwn {
            return Err(AdapterError::Unsupported(format!(
                "snapshot {since} is of LUN {}, not {}",
                snapshot.wwn, self.wwn
            )));
        }
        self.device
            .changed_above(&self.chain, &snapshot.layer)
            .unwrap_or_else(|| {
                Err(AdapterError::Unsupported(format!(
                    "snapshot {since} is no longer under what this reader reads (the LUN was reverted since); read it all"
                )))
            })
    }
}

/// Writes a LUN through its own export.
pub struct LunWriter {
    device: NbdDevice,
}

impl LunWriter {
    /// Connects to the LUN's writable export.
    pub fn open(address: &str, export: &str) -> AdapterResult<Self> {
        Ok(LunWriter {
            device: connect(address, export)?,
        })
    }
}

impl DeviceWrite for LunWriter {
    fn size(&self) -> u64 {
        self.device.size()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()> {
        self.device.write(offset, data, "the LUN")
    }

    fn flush(&mut self) -> AdapterResult<()> {
        self.device.flush()
    }
}
