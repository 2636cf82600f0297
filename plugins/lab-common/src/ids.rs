//! Ids, WWNs, mount points and token keys. WWNs and mount points follow the host's rules
//! (`tidemark-names`), answered as the contract's `invalid`.

use tidemark_sdk::{AdapterError, AdapterResult};

pub use tidemark_sdk::records::{random_hex, token_key};

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
