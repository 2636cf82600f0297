//! Work on the endpoints outside jobs: discovering a VM and its LUNs' owners ([`discover`]),
//! listing and reconciling what the adapters hold ([`inventory`]), expiry and gc
//! ([`retention`]), rebuilding a lost catalog from the copies ([`recover`]), physical machines
//! behind BMCs ([`machines`]) and DNS records ([`dns`]).

pub mod adapters;
pub mod discover;
pub mod dns;
pub mod endpoints;
pub mod inventory;
pub mod machines;
pub mod recover;
pub mod retention;
