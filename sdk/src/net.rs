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

/// Parses the ports of a setting like `qmp=HOST:PORTS`: `P`, `P1,P2` or `FIRST-LAST`
/// (mixed), at most `max` of them; the error says what was expected (the caller names the
/// setting). An endpoint grants each port separately (`--grant tcp=HOST:P`).
pub fn ports(text: &str, max: usize) -> Result<Vec<u16>, String> {
    let one = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ports from 1 to 65535, not {p:?}"))
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (one(first)?, one(last)?);
                if last < first {
                    return Err("ranges FIRST-LAST with FIRST <= LAST".into());
                }
                out.extend(first..=last);
            }
            None => out.push(one(part)?),
        }
        if out.len() > max {
            return Err(format!("at most {max} ports"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_take_lists_and_ranges_and_refuse_the_rest() {
        assert_eq!(super::ports("7,9-11", 8), Ok(vec![7, 9, 10, 11]));
        assert!(super::ports("9-7", 8).is_err());
        assert!(super::ports("0", 8).is_err());
        assert!(super::ports("1-100", 8).unwrap_err().contains("at most 8"));
        assert!(super::ports("x", 8).is_err());
    }
}
