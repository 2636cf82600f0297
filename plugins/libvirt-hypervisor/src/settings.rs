//! The endpoint's settings, read once per call, with errors naming the setting:
//!
//! - `libvirt` — `HOST:PORT` of the daemon's TCP listener (`libvirtd --listen`, no
//!   authentication); the adapter opens `qemu:///session` (or `uri`) there;
//! - `pool` — the `dir` storage pool new virtual disks are created in (default `tidemark`);
//! - `pool-path` — an absolute directory: when `pool` does not exist the adapter defines
//!   and starts it there (the directory must exist and be writable by the daemon);
//! - `san` — `nbd://HOST:PORT`, where mapped LUNs are exported (under their WWNs);
//! - `nbd` — `HOST:PORTS` (`P`, `P1,P2` or `FIRST-LAST`, each granted): where the data
//!   path's NBD servers listen (QEMU of a paused proxy domain, or of the running domain,
//!   exporting one image; the adapter connects there), one free port per open reader or
//!   writer;
//! - `host-name` — the host id the adapter reports (default: the daemon's hostname);
//! - `uri` — the connection URI (default `qemu:///session`);
//! - `timeout` — seconds for connecting and for each answer (default 60).

use std::time::Duration;

use tidemark_sdk::{AdapterError, AdapterResult};

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST:PORT` of libvirtd.
    pub libvirt: String,
    /// The URI opened on it.
    pub uri: String,
    /// The storage pool for new volumes.
    pub pool: String,
    /// Where to define the pool if it is missing.
    pub pool_path: Option<String>,
    /// The SAN's NBD server, when set.
    pub san: Option<(String, u16)>,
    /// The host id to report, when set.
    pub host_name: Option<String>,
    /// The data path's NBD host and ports, when set.
    pub nbd: Option<(String, Vec<u16>)>,
    /// Connect and answer deadline.
    pub timeout: Duration,
}

impl Settings {
    /// Reads and checks the endpoint's settings.
    pub fn read() -> AdapterResult<Settings> {
        let libvirt = tidemark_sdk::required_setting("libvirt")?;
        host_port(&libvirt, "libvirt")?;
        let pool = tidemark_sdk::setting_or("pool", "tidemark");
        if pool.is_empty()
            || pool.len() > 100
            || !pool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "pool",
                &pool,
                "a pool name of letters, digits, '-', '_', '.'",
            ));
        }
        let pool_path = match tidemark_sdk::setting("pool-path") {
            None => None,
            Some(p) if p.starts_with('/') && !p.contains(['<', '>', '&', '\'', '"', '\n']) => {
                Some(p.trim_end_matches('/').to_string())
            }
            Some(p) => {
                return Err(bad(
                    "pool-path",
                    &p,
                    "an absolute directory without XML special characters",
                ));
            }
        };
        let san = match tidemark_sdk::setting("san") {
            None => None,
            Some(s) => {
                let rest = s
                    .strip_prefix("nbd://")
                    .ok_or_else(|| bad("san", &s, "nbd://HOST:PORT"))?;
                let (host, port) = host_port(rest.trim_end_matches('/'), "san")?;
                Some((host, port))
            }
        };
        let nbd = match tidemark_sdk::setting("nbd") {
            None => None,
            Some(text) => {
                let (host, ports) = text
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.is_empty() && !h.contains(['<', '>', '&', '\'', '"', '/']))
                    .ok_or_else(|| bad("nbd", &text, "HOST:PORTS"))?;
                let ports = tidemark_sdk::net::ports(ports, 256)
                    .map_err(|why| bad("nbd", &text, &format!("HOST:PORTS, {why}")))?;
                Some((host.to_string(), ports))
            }
        };
        let host_name = tidemark_sdk::setting("host-name")
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        let uri = tidemark_sdk::setting_or("uri", "qemu:///session");
        let secs: u64 = tidemark_sdk::setting_parse("timeout", 60)?;
        if secs == 0 || secs > 3600 {
            return Err(bad("timeout", &secs.to_string(), "1 to 3600 seconds"));
        }
        Ok(Settings {
            libvirt,
            uri,
            pool,
            pool_path,
            san,
            host_name,
            nbd,
            timeout: Duration::from_secs(secs),
        })
    }

    /// The SAN, or `invalid` naming the missing setting.
    pub fn san(&self) -> AdapterResult<(String, u16)> {
        self.san.clone().ok_or_else(|| {
            AdapterError::Invalid(
                "endpoint setting 'san' (nbd://HOST:PORT) is required to map LUNs".into(),
            )
        })
    }
}

impl Settings {
    /// The data path's NBD host and ports, or `invalid` naming the setting.
    pub fn nbd(&self) -> AdapterResult<(String, Vec<u16>)> {
        self.nbd.clone().ok_or_else(|| {
            AdapterError::Invalid(
                "endpoint setting 'nbd' (HOST:PORTS, granted) is required to read or write \
                 disks"
                    .into(),
            )
        })
    }
}

fn host_port(value: &str, key: &str) -> AdapterResult<(String, u16)> {
    let (host, port) = value
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty() && !h.contains(['<', '>', '&', '\'', '"', '/']))
        .ok_or_else(|| bad(key, value, "HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(key, value, "HOST:PORT with a port from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

fn bad(key: &str, value: &str, expected: &str) -> AdapterError {
    AdapterError::Invalid(format!(
        "endpoint setting '{key}' is {value:?}; expected {expected}"
    ))
}
