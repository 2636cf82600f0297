//! What names and identifiers may look like, checked where they enter (CLI, API, adapter
//! answers) so bad input is refused with a message naming it. The rules live in the
//! `tidemark-names` crate, which the lab adapters share; here each check gives its message
//! as a `String`, the form clap's value parsers and the engine's problem lists take.

/// A mount point: a drive letter (`C:`) or an absolute path (`/data`).
pub fn check_mount_point(mount: &str) -> Result<(), String> {
    tidemark_names::check_mount_point(mount).map_err(|e| e.to_string())
}

/// A name Tidemark gives things (VMs, endpoints): 1–64 of `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit, so it is safe in paths, URLs and shells.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    tidemark_names::check_name(what, name).map_err(|e| e.to_string())
}

/// A LUN WWN as arrays report it: `naa.` and 16 or 32 hex digits.
pub fn check_wwn(wwn: &str) -> Result<(), String> {
    tidemark_names::check_wwn(wwn).map_err(|e| e.to_string())
}

/// A MAC address: six hex pairs separated by colons.
pub fn check_mac(mac: &str) -> Result<(), String> {
    tidemark_names::check_mac(mac).map_err(|e| e.to_string())
}
