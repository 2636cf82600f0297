//! An NBD export as an adapter's device (feature `device`): reads in pieces with several
//! requests in flight, writes checked against the export's end, flushes, and extents by a
//! metadata context, each failure an [`AdapterError`] naming the export. What an extent
//! *means* (which layer holds it, what changed since a snapshot) stays with the adapter.

use std::net::TcpStream;
use std::time::Duration;

use tidemark_sdk::{AdapterError, AdapterResult, Extent};

use crate::{Client, Error};

/// Bytes per NBD request of one read; several are in flight at once.
pub const PIECE: u64 = 1 << 20;
/// The largest read one call may ask for.
pub const READ_MAX: u64 = 256 << 20;
/// QEMU's context saying which layer of a chain holds each cluster (0: none, reads zeroes).
pub const ALLOCATION_DEPTH: &str = "qemu:allocation-depth";
/// The standard context saying which ranges are holes (flag 1) or read as zeroes (flag 2).
pub const BASE_ALLOCATION: &str = "base:allocation";

/// Maps an NBD failure to the contract's kinds, naming the export.
pub fn adapter_error(export: &str, e: Error) -> AdapterError {
    let text = format!("NBD export {export}: {e}");
    match e {
        Error::Io(_) => AdapterError::Transient(text),
        Error::Invalid(_) => AdapterError::Invalid(text),
        _ => AdapterError::Internal(text),
    }
}

/// One connection to one export.
pub struct NbdDevice {
    client: Client<TcpStream>,
    export: String,
}

impl NbdDevice {
    /// Connects to `export` at `address` (a granted `HOST:PORT`), asking for `contexts`;
    /// each must be offered, or the device is refused as `internal` naming it.
    pub fn connect(
        address: &str,
        export: &str,
        contexts: &[&str],
        timeout: Duration,
    ) -> AdapterResult<Self> {
        let stream = tidemark_sdk::net::connect(address, timeout)?;
        let _ = stream.set_read_timeout(Some(timeout.max(Duration::from_secs(30))));
        let mut client = Client::connect(stream, export, contexts)
            .map_err(|e| adapter_error(&format!("{export} at {address}"), e))?;
        client.set_in_flight(8);
        if let Some(missing) = contexts.iter().find(|c| !client.has_context(c)) {
            return Err(AdapterError::Internal(format!(
                "NBD export {export} at {address} does not offer {missing}"
            )));
        }
        Ok(NbdDevice {
            client,
            export: export.to_string(),
        })
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.client.size()
    }

    /// `length` bytes at `offset`, short only at the end; more than [`READ_MAX`] is
    /// `invalid`.
    pub fn read(&mut self, offset: u64, length: u64) -> AdapterResult<Vec<u8>> {
        let size = self.client.size();
        if offset >= size || length == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(length).min(size);
        if end - offset > READ_MAX {
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
            .map_err(|e| adapter_error(&self.export, e))?;
        Ok(parts.concat())
    }

    /// Writes `data` at `offset`; past the end is `invalid` naming `what` (the device).
    pub fn write(&mut self, offset: u64, data: &[u8], what: &str) -> AdapterResult<()> {
        let size = self.client.size();
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > size)
        {
            return Err(AdapterError::Invalid(format!(
                "a write of {} bytes at {offset} runs past the end of {what} ({size} bytes)",
                data.len()
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.client
            .write(offset, data)
            .map_err(|e| adapter_error(&self.export, e))
    }

    /// Makes every write so far durable.
    pub fn flush(&mut self) -> AdapterResult<()> {
        self.client
            .flush()
            .map_err(|e| adapter_error(&self.export, e))
    }

    /// The ranges whose `context` flags satisfy `keep`, neighbours merged.
    pub fn extents_where(
        &mut self,
        context: &str,
        keep: impl Fn(u32) -> bool,
    ) -> AdapterResult<Vec<Extent>> {
        let size = self.client.size();
        if size == 0 {
            return Ok(Vec::new());
        }
        let status = self
            .client
            .block_status(context, 0, size)
            .map_err(|e| adapter_error(&self.export, e))?;
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

    /// What some layer of the export's chain holds ([`ALLOCATION_DEPTH`] not 0; the rest
    /// reads as zeroes). Needs a connection that asked for that context.
    pub fn allocated_in_chain(&mut self) -> AdapterResult<Vec<Extent>> {
        self.extents_where(ALLOCATION_DEPTH, |depth| depth != 0)
    }

    /// What changed since `layer` was frozen: the clusters found in the layers of `chain`
    /// (the export's own chain, top first) above it. `None` when `layer` is not in `chain`
    /// (a revert branched it away): the caller says `unsupported`, never guesses.
    pub fn changed_above<L: PartialEq>(
        &mut self,
        chain: &[L],
        layer: &L,
    ) -> Option<AdapterResult<Vec<Extent>>> {
        let above = chain.iter().position(|l| l == layer)? as u32;
        // Depth d means the cluster was found in chain[d-1]: changed iff that is above
        // the snapshot's layer.
        Some(self.extents_where(ALLOCATION_DEPTH, |depth| depth >= 1 && depth <= above))
    }
}
