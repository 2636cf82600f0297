//! Outgoing TCP, for adapters whose endpoint is granted `tcp=HOST:PORT` (and whose manifest
//! asks for it): `std::net::TcpStream` works inside the sandbox; this maps its failures to
//! what the host's callers understand.

use std::net::TcpStream;
use std::time::Duration;

use crate::{AdapterError, AdapterResult};

/// Connects to `address` (`HOST:PORT`) within `timeout`. A destination the sandbox refused
/// (not granted) is `denied`; one that does not answer, `transient`.
pub fn connect(address: &str, timeout: Duration) -> AdapterResult<TcpStream> {
    use std::net::ToSocketAddrs as _;
    let targets: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| AdapterError::Transient(format!("resolving {address}: {e}")))?
        .collect();
    let mut last = None;
    for target in targets {
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.ok_or_else(|| AdapterError::Invalid(format!("{address} names no address")))?;
    Err(match e.kind() {
        std::io::ErrorKind::PermissionDenied => AdapterError::Denied(format!(
            "TCP to {address} was refused by the sandbox: not granted to this endpoint"
        )),
        _ => AdapterError::Transient(format!("connecting to {address}: {e}")),
    })
}
