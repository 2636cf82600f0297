//! The process's log output (tracing to stderr) and its filter, which `tidemark serve` can
//! change after start from its configuration (`log`), since logging starts before any
//! configuration is read.

use std::sync::OnceLock;

use anyhow::Context as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The filter when neither `RUST_LOG` nor a configuration says otherwise.
pub const DEFAULT_FILTER: &str = "warn";

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Starts logging to stderr, filtered by `RUST_LOG` (else [`DEFAULT_FILTER`]).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Parses a filter (`RUST_LOG` syntax, e.g. `info,tidemark::api=debug`).
pub fn parse_filter(directives: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(directives).map_err(|e| {
        anyhow::anyhow!(
            "log filter '{directives}' is not valid ({e}); e.g. `info,tidemark::api=debug`"
        )
    })
}

/// Replaces the filter of the logging started by [`init`] (no-op if it was not).
pub fn set_filter(directives: &str) -> anyhow::Result<()> {
    let filter = parse_filter(directives)?;
    if let Some(handle) = FILTER.get() {
        handle.reload(filter).context("changing the log filter")?;
    }
    Ok(())
}
