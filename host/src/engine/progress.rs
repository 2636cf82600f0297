//! Progress of long steps (bytes copied or restored), reported to whoever watches: a
//! terminal progress bar in the CLI, nothing in JSON mode or tests.

use std::sync::Arc;

/// Receives progress of one long piece of work at a time.
pub trait Progress: Send + Sync {
    /// A piece of work of `total` bytes starts.
    fn start(&self, label: &str, total: u64);
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
    /// The piece of work ended (successfully or not).
    fn finish(&self);
}

/// Reports nowhere.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _label: &str, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// The default: silent.
pub fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}
