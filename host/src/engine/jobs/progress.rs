//! Progress of long steps (bytes copied or restored), reported to whoever watches: the
//! job's event stream (see [`super::progress_hub`]), which the CLI's progress bar follows.

/// Receives progress of one long piece of work at a time.
pub trait Progress: Send + Sync {
    /// A piece of work of `total` bytes starts.
    fn start(&self, label: &str, total: u64);
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
    /// The piece of work ended (successfully or not).
    fn finish(&self);
}
