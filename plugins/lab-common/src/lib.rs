//! What the two lab adapters share, so each holds only its own system's rules: the block
//! store in the sandbox's data dir, JSON state files, idempotency tokens, ids, and the data
//! path over block volumes.

mod device;
mod error;
mod ids;
mod state;

pub use device::{VolumeReader, VolumeWriter};
pub use error::store_error;
pub use ids::{check_mac, check_mount_point, check_wwn, random_hex, token_key};
pub use state::{Lab, lab};
