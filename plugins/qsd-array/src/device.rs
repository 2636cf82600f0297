//! The data path over NBD: a reader of a LUN or of a snapshot's frozen layer, and a
//! writer of a LUN, each one connection to qsd's NBD server on an export the adapter keeps
//! for itself (`io-<id>`, separate from the WWN export a hypervisor uses).
//!
//! Changed extents come from the external chain: `qemu:allocation-depth` says which layer
//! of the reader's chain holds each cluster, so everything found in a layer above the
//! `since` snapshot's layer changed after it, and nothing else did. This never guesses:
//! when the `since` layer is not in the reader's chain (a revert branched it away, or it is
//! another LUN's), the answer is `unsupported` and the host reads everything.

use std::net::TcpStream;

use nbd_client::Client;
use tidemark_sdk::{AdapterError, AdapterResult, DeviceRead, DeviceWrite, Extent};

use crate::records::Records;

/// Bytes per NBD request of one read; several are in flight at once.
const PIECE: u64 = 1 << 20;
/// The metadata context saying which layer of the chain holds each cluster.
const DEPTH: &str = "qemu:allocation-depth";

/// Maps an NBD failure to the contract's kinds, naming the export.
fn nbd_error(export: &str, e: nbd_client::Error) -> AdapterError {
    let text = format!("NBD export {export}: {e}");
    match e {
        nbd_client::Error::Io(_) => AdapterError::Transient(text),
        nbd_client::Error::Invalid(_) => AdapterError::Invalid(text),
        _ => AdapterError::Internal(text),
    }
}

fn connect(address: &str, export: &str) -> AdapterResult<Client<TcpStream>> {
    let stream = tidemark_sdk::net::connect(address, std::time::Duration::from_secs(5))?;
    let mut client = Client::connect(stream, export, &[DEPTH]).map_err(|e| nbd_error(export, e))?;
    client.set_in_flight(8);
    if !client.has_context(DEPTH) {
        return Err(AdapterError::Internal(format!(
            "NBD export {export} does not offer {DEPTH}"
        )));
    }
    Ok(client)
}

/// Reads a LUN, or the layer one of its snapshots froze.
pub struct LayerReader {
    client: Client<TcpStream>,
    export: String,
    /// The chain the reader reads, top first (layer ids).
    chain: Vec<String>,
    /// The LUN, to tell a foreign `since` from an unknown one.
    wwn: String,
}

impl LayerReader {
    /// Connects to `export` (serving the top of `chain`).
    pub fn open(address: &str, export: &str, chain: Vec<String>, wwn: &str) -> AdapterResult<Self> {
        Ok(LayerReader {
            client: connect(address, export)?,
            export: export.to_string(),
            chain,
            wwn: wwn.to_string(),
        })
    }

    /// Extents whose allocation depth satisfies `keep`, merged.
    fn extents_by_depth(&mut self, keep: impl Fn(u32) -> bool) -> AdapterResult<Vec<Extent>> {
        let size = self.client.size();
        if size == 0 {
            return Ok(Vec::new());
        }
        let status = self
            .client
            .block_status(DEPTH, 0, size)
            .map_err(|e| nbd_error(&self.export, e))?;
        let mut out: Vec<Extent> = Vec::new();
        for e in status.into_iter().filter(|e| keep(e.flags)) {
            match out.last_mut() {
                Some(last) if last.offset + last.length == e.offset => last.length += e.length,
                _ => out.push(Extent {
                    offset: e.offset,
                    length: e.length,
                }),
            }
        }
        Ok(out)
    }
}

impl DeviceRead for LayerReader {
    fn size(&self) -> u64 {
        self.client.size()
    }

    fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        let size = self.client.size();
        if offset >= size || length == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(length).min(size);
        if end - offset > 256 << 20 {
            return Err(AdapterError::Invalid(format!(
                "a read of {length} bytes is more than 256 MiB"
            )));
        }
        let pieces: Vec<(u64, u64)> = (offset..end)
            .step_by(PIECE as usize)
            .map(|at| (at, PIECE.min(end - at)))
            .collect();
        let parts = self
            .client
            .read_many(&pieces)
            .map_err(|e| nbd_error(&self.export, e))?;
        Ok(parts.concat())
    }

    fn allocated_extents(&mut self) -> AdapterResult<Vec<Extent>> {
        // Depth 0: in no layer of the chain, so it reads as zeroes.
        self.extents_by_depth(|depth| depth != 0)
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
        let Some(above) = self.chain.iter().position(|l| *l == snapshot.layer) else {
            return Err(AdapterError::Unsupported(format!(
                "snapshot {since} is no longer under what this reader reads (the LUN was reverted since); read it all"
            )));
        };
        // Depth d means the cluster was found in chain[d-1]: changed iff that is above
        // the snapshot's layer.
        let above = above as u32;
        self.extents_by_depth(|depth| depth >= 1 && depth <= above)
    }
}

/// Writes a LUN through its own export.
pub struct LunWriter {
    client: Client<TcpStream>,
    export: String,
}

impl LunWriter {
    /// Connects to the LUN's writable export.
    pub fn open(address: &str, export: &str) -> AdapterResult<Self> {
        Ok(LunWriter {
            client: connect(address, export)?,
            export: export.to_string(),
        })
    }
}

impl DeviceWrite for LunWriter {
    fn size(&self) -> u64 {
        self.client.size()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> AdapterResult<()> {
        let size = self.client.size();
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > size) {
            return Err(AdapterError::Invalid(format!(
                "a write of {} bytes at {offset} runs past the LUN's end ({size} bytes)",
                data.len()
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.client
            .write(offset, data)
            .map_err(|e| nbd_error(&self.export, e))
    }

    fn flush(&mut self) -> AdapterResult<()> {
        self.client.flush().map_err(|e| nbd_error(&self.export, e))
    }
}
