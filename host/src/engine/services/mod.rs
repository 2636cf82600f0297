//! Work on the endpoints outside jobs: discovering a VM and its LUNs' owners ([`discover`]),
//! listing and reconciling what the adapters hold ([`inventory`]), expiry and gc
//! ([`retention`]), rebuilding a lost catalog from the copies ([`recover`]).

pub mod adapters;
pub mod discover;
pub mod endpoints;
pub mod inventory;
pub mod recover;
pub mod retention;
