//! Ids, WWNs, mount points and token keys.

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

/// A WWN as arrays report them: `naa.` and 16 or 32 hex digits.
pub fn check_wwn(wwn: &str) -> AdapterResult<()> {
    let ok = wwn.strip_prefix("naa.").is_some_and(|hex| {
        (hex.len() == 16 || hex.len() == 32) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(AdapterError::Invalid(format!(
            "'{wwn}' is not a WWN (expected naa. followed by 16 or 32 hex digits)"
        )))
    }
}

/// A mount point: a drive letter (`C:`) or an absolute path (`/data`).
pub fn check_mount_point(mount: &str) -> AdapterResult<()> {
    let bytes = mount.as_bytes();
    let drive = bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    let path = mount.starts_with('/')
        && mount.len() <= 255
        && !mount.split('/').any(|c| c == "." || c == "..")
        && mount.chars().all(|c| !c.is_control());
    if drive || path {
        Ok(())
    } else {
        Err(AdapterError::Invalid(format!(
            "'{mount}' is not a mount point (expected a drive like C: or an absolute path like /data)"
        )))
    }
}
