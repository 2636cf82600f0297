//! What one sandboxed adapter instance owns: WASI context, limits, and the host imports.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::endpoint::EndpointSpec;

/// Guest path of the endpoint's private data directory.
pub const DATA_DIR_GUEST_PATH: &str = "/data";

/// The data of one `Store`: lives for one job step, never shared between jobs.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub(crate) endpoint: Arc<EndpointSpec>,
    memory_cap_hit: bool,
}

impl StoreState {
    /// A sandbox for `endpoint`: its data dir preopened at `/data` when `with_data_dir`,
    /// clocks and random from WASI, no network, no environment, no other files.
    pub fn new(endpoint: Arc<EndpointSpec>, with_data_dir: bool) -> anyhow::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        // The adapter's store runs on a task of its own for one step, so blocking the thread
        // for file I/O is cheaper than a hop to the blocking pool (3.5x, see notes).
        wasi.allow_blocking_current_thread(true);
        if with_data_dir {
            wasi.preopened_dir(&endpoint.data_dir, DATA_DIR_GUEST_PATH, FsPerms::ReadWrite)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "endpoint {}: cannot open its data directory {}: {e}",
                        endpoint.name,
                        endpoint.data_dir.display()
                    )
                })?;
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(endpoint.memory_cap as usize)
            .instances(64)
            .tables(256)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            endpoint,
            memory_cap_hit: false,
        })
    }

    /// Whether the instance tried to grow past its memory cap (turned into a clear error).
    pub fn memory_cap_hit(&self) -> bool {
        self.memory_cap_hit
    }
}

/// Wraps the stock limiter to remember that the memory cap was the reason of a trap.
impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let outcome = self.limits.memory_growing(current, desired, maximum);
        if !matches!(outcome, Ok(true)) {
            self.memory_cap_hit = true;
        }
        outcome
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }
    fn tables(&self) -> usize {
        self.limits.tables()
    }
    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// An adapter's log line into the host's tracing, tagged with the endpoint.
    fn log_line(&self, level: tracing::Level, message: &str) {
        let endpoint = self.endpoint.name.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(endpoint, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(endpoint, "{message}"),
            tracing::Level::INFO => tracing::info!(endpoint, "{message}"),
            tracing::Level::WARN => tracing::warn!(endpoint, "{message}"),
            tracing::Level::ERROR => tracing::error!(endpoint, "{message}"),
        }
    }
}

/// The host imports of one contract version, each a thin call of the version-free code
/// above: `$level` maps that version's log levels.
macro_rules! host_imports {
    ($version:ident) => {
        impl crate::contract::$version::host_imports::Host for StoreState {
            async fn log(
                &mut self,
                level: crate::contract::$version::host_imports::LogLevel,
                message: String,
            ) {
                use crate::contract::$version::host_imports::LogLevel;
                let level = match level {
                    LogLevel::Trace => tracing::Level::TRACE,
                    LogLevel::Debug => tracing::Level::DEBUG,
                    LogLevel::Info => tracing::Level::INFO,
                    LogLevel::Warn => tracing::Level::WARN,
                    LogLevel::Error => tracing::Level::ERROR,
                };
                self.log_line(level, &message);
            }

            async fn setting(&mut self, key: String) -> Option<String> {
                self.endpoint.settings.get(&key).cloned()
            }

            host_imports!(@since $version);
        }

        impl crate::contract::$version::tidemark::adapter::types::Host for StoreState {}
    };
    (@since v0_2) => {};
    (@since v0_3) => {
        async fn secret(&mut self, name: String) -> Option<String> {
            self.endpoint.secrets.get(&name).cloned()
        }
    };
}

host_imports!(v0_2);
host_imports!(v0_3);
