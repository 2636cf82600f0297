//! The endpoint's settings, checked once per call with errors naming the setting:
//!
//! - `qmp` — `HOST:PORTS`, qsd's monitors (one client each), ports as `P`, `P1,P2` or
//!   `FIRST-LAST`;
//! - `nbd` — `HOST:PORT` of qsd's NBD server, where LUNs are exported under their WWNs;
//! - `nbd-listen` — where qsd is told to listen, when that differs from where it is reached
//!   (a relay in between); default: `nbd`;
//! - `image-dir` — this endpoint's data directory as qsd sees it (an absolute path): the
//!   adapter creates its qcow2 images there through qsd and unlinks them itself;
//! - `vendor-id` — 6 hex digits placed in every WWN (default `5e0d5d`).

use tidemark_sdk::{AdapterError, AdapterResult};

/// The monitors a session may take.
#[derive(Debug, Clone)]
pub struct Monitors {
    /// Their host.
    pub host: String,
    /// Their ports, one monitor each.
    pub ports: Vec<u16>,
}

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// QMP monitors.
    pub qmp: Monitors,
    /// NBD server host and port.
    pub nbd_host: String,
    /// NBD server port.
    pub nbd_port: u16,
    /// Where qsd's NBD server listens (`nbd-listen`, default `nbd`).
    pub nbd_listen: (String, u16),
    /// The image directory, as qsd sees it.
    pub image_dir: String,
    /// WWN vendor part.
    pub vendor_id: String,
}

impl Settings {
    /// Reads the endpoint's settings.
    pub fn read() -> AdapterResult<Settings> {
        let qmp = tidemark_sdk::required_setting("qmp")?;
        let (host, ports) = split(&qmp, "qmp")?;
        let monitors = tidemark_sdk::net::ports(ports, 64).map_err(|why| bad("qmp", &qmp, &why))?;
        let nbd = tidemark_sdk::required_setting("nbd")?;
        let (nbd_host, nbd_port) = split(&nbd, "nbd")?;
        let nbd_port = port(nbd_port, "nbd")?;
        let nbd_listen = match tidemark_sdk::setting("nbd-listen") {
            Some(listen) => {
                let (host, p) = split(&listen, "nbd-listen")?;
                (host.to_string(), port(p, "nbd-listen")?)
            }
            None => (nbd_host.to_string(), nbd_port),
        };
        let image_dir = tidemark_sdk::required_setting("image-dir")?;
        if !image_dir.starts_with('/') || image_dir.contains(['\n', '"', '\\', ',']) {
            return Err(bad(
                "image-dir",
                &image_dir,
                "an absolute path without quotes, commas or backslashes",
            ));
        }
        let vendor_id = tidemark_sdk::setting_or("vendor-id", "5e0d5d").to_ascii_lowercase();
        if vendor_id.len() != 6 || !vendor_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("vendor-id", &vendor_id, "6 hex digits"));
        }
        Ok(Settings {
            qmp: Monitors {
                host: host.to_string(),
                ports: monitors,
            },
            nbd_host: nbd_host.to_string(),
            nbd_port,
            nbd_listen,
            image_dir: image_dir.trim_end_matches('/').to_string(),
            vendor_id,
        })
    }

    /// `HOST:PORT` of the NBD server.
    pub fn nbd_address(&self) -> String {
        format!("{}:{}", self.nbd_host, self.nbd_port)
    }
}

fn split<'a>(value: &'a str, key: &str) -> AdapterResult<(&'a str, &'a str)> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((host, port)),
        _ => Err(bad(key, value, "HOST:PORT")),
    }
}

fn port(text: &str, key: &str) -> AdapterResult<u16> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(key, text, "ports from 1 to 65535"))
}

fn bad(key: &str, value: &str, expected: &str) -> AdapterError {
    AdapterError::Invalid(format!(
        "endpoint setting '{key}' is {value:?}; expected {expected}"
    ))
}
