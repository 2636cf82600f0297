//! Ids, WWNs, mount points and token keys. WWNs and mount points follow the host's rules
//! (`tidemark-names`), answered as the contract's `invalid`.

use tidemark_sdk::{AdapterError, AdapterResult};

/// `n` random hex digits from the WASI random source.
pub fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n + 16);
    while out.len() < n {
        out.push_str(&format!(
            "{:016x}",
            wasip2::random::random::get_random_u64()
        ));
    }
    out.truncate(n);
    out
}

/// A file-name-safe key for an idempotency token (two independent 64-bit FNV-1a hashes).
pub fn token_key(token: &str) -> String {
    let fnv = |seed: u64| {
        token
            .bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf29ce484222325),
        fnv(0x84222325cbf29ce4)
    )
}

/// A WWN as arrays report them: `naa.` and 16 or 32 hex digits (the host's own rule).
pub fn check_wwn(wwn: &str) -> AdapterResult<()> {
    tidemark_names::check_wwn(wwn).map_err(|e| AdapterError::Invalid(e.to_string()))
}

/// A mount point: a drive letter (`C:`) or an absolute path (`/data`) (the host's own rule).
pub fn check_mount_point(mount: &str) -> AdapterResult<()> {
    tidemark_names::check_mount_point(mount).map_err(|e| AdapterError::Invalid(e.to_string()))
}

/// A MAC address, `invalid` naming it otherwise.
pub fn check_mac(mac: &str) -> AdapterResult<()> {
    tidemark_names::check_mac(mac).map_err(|e| AdapterError::Invalid(e.to_string()))
}
