//! What one sandboxed adapter instance owns: WASI context, limits, the host imports, and
//! the enforcement of its endpoint's grants (data directory, TCP, HTTP).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::endpoint::EndpointSpec;
use crate::model::capabilities::{Denial, Effective, Target};

/// Guest path of the endpoint's private data directory.
pub const DATA_DIR_GUEST_PATH: &str = "/data";

/// What the sandbox refused during the call in flight: recorded where it is refused (the
/// socket check, the HTTP hook), read when the call settles.
pub(crate) type Denials = Arc<Mutex<Vec<Denial>>>;

/// The data of one `Store`: lives for one job step, never shared between jobs.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub(crate) endpoint: Arc<EndpointSpec>,
    /// What this instance may reach: the endpoint's grants within the adapter's request.
    pub(crate) effective: Arc<Effective>,
    memory_cap_hit: bool,
    http: WasiHttpCtx,
    hooks: HttpGrants,
    pub(crate) denials: Denials,
}

impl StoreState {
    /// A sandbox for `endpoint` allowing `effective`: its data dir preopened at `/data` if
    /// granted, TCP connects and HTTP requests to granted destinations only, clocks and
    /// random from WASI, no environment, no other files.
    pub fn new(endpoint: Arc<EndpointSpec>, effective: Arc<Effective>) -> anyhow::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        // The adapter's store runs on a task of its own for one step, so blocking the thread
        // for file I/O is cheaper than a hop to the blocking pool (3.5x, see notes).
        wasi.allow_blocking_current_thread(true);
        if effective.data_dir {
            let dir = match &effective.data_dir_at {
                Some(granted) => std::path::Path::new(granted),
                None => endpoint.data_dir.as_path(),
            };
            wasi.preopened_dir(dir, DATA_DIR_GUEST_PATH, FsPerms::ReadWrite)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "endpoint {}: cannot open its data directory {}: {e}",
                        endpoint.name,
                        dir.display()
                    )
                })?;
        }
        let denials = Denials::default();
        let name: Arc<str> = endpoint.name.as_str().into();
        // Every socket use reaches the check, so a refused one is recorded with its address
        // (a socket layer switched off would refuse without saying where it tried).
        wasi.allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(!effective.tcp.is_empty());
        wasi.socket_addr_check(socket_check(
            name.clone(),
            effective.clone(),
            denials.clone(),
        ));
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
            hooks: HttpGrants {
                endpoint: name,
                allowed: effective.clone(),
                denials: denials.clone(),
            },
            endpoint,
            effective,
            memory_cap_hit: false,
            http: WasiHttpCtx::new(),
            denials,
        })
    }

    /// Whether the instance tried to grow past its memory cap (turned into a clear error).
    pub fn memory_cap_hit(&self) -> bool {
        self.memory_cap_hit
    }

    /// Whether this instance may reach the network at all (its calls then wait on sockets,
    /// which the epoch deadline cannot interrupt, so they get a wall-clock limit too).
    pub fn networked(&self) -> bool {
        !self.effective.tcp.is_empty() || !self.effective.http.is_empty()
    }

    /// The refusals recorded since the last call settled.
    pub(crate) fn take_denials(&mut self) -> Vec<Denial> {
        std::mem::take(&mut *self.denials.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Records, logs and counts one refusal.
fn deny(endpoint: &str, denials: &Denials, kind: &'static str, address: String) {
    tracing::warn!(endpoint, kind, address = %address, "sandbox denied the adapter: not granted");
    super::metrics::record_denial(endpoint, kind);
    denials
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Denial { kind, address });
}

/// The check every socket address of the instance goes through: a TCP connect to a granted
/// destination passes (a granted host name is resolved when it is first needed), as does
/// the ephemeral bind a connect makes; listening binds, UDP and everything else are refused
/// and recorded.
fn socket_check(
    endpoint: Arc<str>,
    allowed: Arc<Effective>,
    denials: Denials,
) -> impl Fn(SocketAddr, SocketAddrUse) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    move |address, usage| {
        let endpoint = endpoint.clone();
        let allowed = allowed.clone();
        let denials = denials.clone();
        Box::pin(async move {
            let kind = match usage {
                SocketAddrUse::TcpConnect => "tcp",
                SocketAddrUse::TcpBind => "tcp-bind",
                _ => "udp",
            };
            if kind == "tcp" && tcp_allowed(&allowed.tcp, address).await {
                return true;
            }
            // A connect binds the socket to an ephemeral local port first: a client's bind,
            // not a listener.
            if kind == "tcp-bind" && address.ip().is_unspecified() && address.port() == 0 {
                return true;
            }
            deny(&endpoint, &denials, kind, address.to_string());
            false
        })
    }
}

/// Whether `address` is one of the granted TCP destinations (by IP, or by a granted name
/// that resolves to it now).
async fn tcp_allowed(allowed: &[Target], address: SocketAddr) -> bool {
    let ip = address.ip().to_string();
    for target in allowed {
        if target.covers(&ip, address.port()) {
            return true;
        }
        let Some(host) = target.host.as_deref() else {
            continue;
        };
        if host.parse::<std::net::IpAddr>().is_ok() || !target.covers(host, address.port()) {
            continue;
        }
        if let Ok(resolved) = tokio::net::lookup_host((host, address.port())).await
            && resolved.into_iter().any(|a| a.ip() == address.ip())
        {
            return true;
        }
    }
    false
}

/// The `send_request` hook: an outgoing request leaves only for a granted destination.
struct HttpGrants {
    endpoint: Arc<str>,
    allowed: Arc<Effective>,
    denials: Denials,
}

type HttpResponse = (
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
);

impl WasiHttpHooks for HttpGrants {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<HttpResponse, wasmtime_wasi_http::Error>> + Send> {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let granted = uri.authority().is_some_and(|authority| {
            let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
            self.allowed
                .http
                .iter()
                .any(|t| t.covers(authority.host(), port))
        });
        if !granted {
            let address = uri
                .authority()
                .map_or_else(|| uri.to_string(), |a| a.to_string());
            deny(&self.endpoint, &self.denials, "http", address);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
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
            // Only a secret the adapter asked for in its manifest, of its own endpoint.
            if !self.effective.secrets.contains(&name) {
                return None;
            }
            self.endpoint.secrets.get(&name).cloned()
        }
    };
}

host_imports!(v0_2);
host_imports!(v0_3);
