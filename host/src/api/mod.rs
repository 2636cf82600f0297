//! The HTTP admin API (axum): `tidemark serve`. JSON in and out under `/v1`, bearer-token
//! authentication with roles on every request, an audit log of state changes, idempotent
//! job starts. Jobs run in the background; their journals make them resumable, so a killed
//! server resumes every unfinished job when it starts again. Plain HTTP on loopback, or
//! HTTPS anywhere ([`config`], [`tls`]).

mod adapters;
pub mod auth;
mod bodies;
mod cache;
pub mod config;
mod copies;
mod dns;
mod endpoints;
mod error;
mod events;
mod inventory;
#[cfg(test)]
mod job_start_limit;
mod lab;
mod machines;
mod openapi;
#[cfg(test)]
mod route_walk;
mod routes;
pub mod tls;
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::data_dir::DataDir;
use crate::data_dir::ownership::{self, Claim, ServerInfo};

pub use config::{DEFAULT_LISTEN, ServeConfig};

/// What every handler shares.
pub struct ApiState {
    /// The data directory with its adapter runtime and endpoints.
    pub data: Arc<DataDir>,
    /// Set once unfinished jobs were resumed.
    pub ready: AtomicBool,
    /// Tokens recently found valid.
    pub tokens: auth::TokenCache,
    /// A serving process resumes unfinished jobs itself at start; a command's private API
    /// does it only when asked.
    pub resumes_at_start: bool,
    /// Request bodies larger than this are refused (413).
    pub body_limit: usize,
    /// Adapter components larger than this are refused (413).
    pub adapter_body_limit: usize,
    /// Serialized answers of the busiest reads.
    pub cache: cache::ResponseCache,
    /// How many jobs started over the API may run at once; past it `POST /v1/jobs` is a
    /// 429 with `Retry-After` (default
    /// [`crate::engine::slots::DEFAULT_MAX_RUNNING_JOBS`]); the engine keeps the count.
    pub max_running_jobs: usize,
    /// What `POST /v1/copies/gc` repacks below when its body does not say (the serve key
    /// `gc_repack_below`).
    pub gc_repack_below: u8,
}

impl ApiState {
    /// The state over an opened data directory; a serving process (`resumes_at_start`) is
    /// ready once it has resumed unfinished jobs. `config` gives the limits.
    pub fn new(data: Arc<DataDir>, resumes_at_start: bool, config: &ServeConfig) -> Arc<Self> {
        Arc::new(Self {
            data,
            ready: AtomicBool::new(!resumes_at_start),
            resumes_at_start,
            cache: cache::ResponseCache::default(),
            tokens: auth::TokenCache::new(config.token_cache_ttl()),
            body_limit: config.body_limit,
            adapter_body_limit: config.adapter_body_limit,
            max_running_jobs: config.max_running_jobs,
            gc_repack_below: config.gc_repack_below,
        })
    }
}

/// Every route with its OpenAPI operation, registered once: a handler annotated with
/// `#[utoipa::path(...)]` goes in a `routes!(...)` here, which both routes it and documents
/// it. Handlers on one path with different methods may share one `routes!`.
fn registered() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .routes(routes!(routes::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(routes::vms))
        .routes(routes!(routes::vm))
        .routes(routes!(routes::vm_points))
        .routes(routes!(routes::point))
        .routes(routes!(routes::jobs, routes::start_job))
        .routes(routes!(routes::job))
        .routes(routes!(routes::cancel_job))
        .routes(routes!(events::job_events))
        .routes(routes!(routes::endpoints, endpoints::add_endpoint))
        .routes(routes!(endpoints::remove_endpoint))
        .routes(routes!(endpoints::test_endpoint))
        .routes(routes!(endpoints::update_secrets))
        .routes(routes!(routes::inventory))
        .routes(routes!(inventory::refresh))
        .routes(routes!(inventory::hosts))
        .routes(routes!(inventory::vms))
        .routes(routes!(inventory::luns))
        .routes(routes!(inventory::reconcile))
        .routes(routes!(machines::list_machines))
        .routes(routes!(machines::get_machine))
        .routes(routes!(machines::power_machine))
        .routes(routes!(machines::set_machine_boot))
        .routes(routes!(
            machines::insert_machine_media,
            machines::eject_machine_media
        ))
        .routes(routes!(dns::list_dns_zones))
        .routes(routes!(
            dns::get_dns_record,
            dns::set_dns_record,
            dns::delete_dns_record
        ))
        .routes(routes!(copies::vm_copies))
        .routes(routes!(copies::verify))
        .routes(routes!(copies::expire))
        .routes(routes!(copies::gc))
        .routes(routes!(routes::resume))
        .routes(routes!(copies::upgrade))
        .routes(routes!(copies::rebuild_index))
        .routes(routes!(copies::recover))
        .routes(routes!(adapters::list_adapters))
        .routes(without_body_limit(routes!(adapters::add_adapter)))
        .routes(routes!(adapters::remove_adapter))
        .routes(routes!(routes::tokens, tokens::create_token))
        .routes(routes!(routes::audit))
        .routes(without_body_limit(routes!(
            lab::write_device,
            lab::read_device
        )))
}

/// A route whose handler streams its body itself, piece by piece (a device's bytes), and so
/// is not held to `body_limit`: the route's own layer lifts the router-wide one.
fn without_body_limit(
    route: UtoipaMethodRouter<Arc<ApiState>>,
) -> UtoipaMethodRouter<Arc<ApiState>> {
    let (schemas, mut paths, method_router) = route;
    openapi::mark_streamed_bodies(&mut paths);
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::disable()),
    )
}

/// The whole router, authentication included, serving its own OpenAPI document.
pub fn router(state: Arc<ApiState>) -> Router {
    let (routes, doc) = registered().split_for_parts();
    let doc = openapi::Document::new(&openapi::complete(doc));
    routes
        .fallback(routes::fallback)
        .layer(Extension(doc))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM, owning the data directory alone (`claim`), over HTTPS
/// when `config` has TLS files (plain HTTP is for loopback only; [`ServeConfig::load`]
/// refused anything else). Publishes its address and a token for local commands in the data
/// directory, so they go through this server. The first line on stderr is
/// `tidemark serving on http[s]://ADDR` (scripts and tests read the address).
pub async fn serve(data: DataDir, claim: Claim, config: &ServeConfig) -> anyhow::Result<()> {
    // Bad certificate or key files fail here, before anything listens.
    let acceptor = match config.tls_files() {
        Some(files) => Some(tls::acceptor(files.cert, files.key)?),
        None => None,
    };
    if let Err(e) = data.attach_copy_store(false) {
        tracing::debug!("serving without a copy store for now: {e:#}");
    }
    let data_dir = data.data_dir.clone();
    let state = ApiState::new(Arc::new(data), true, config);
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    let local_token = state.tokens.issue_local()?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let info = ServerInfo {
        url: format!("{scheme}://{address}"),
        pid: std::process::id(),
        ca_cert: config.tls_files().map(|files| files.cert.to_path_buf()),
    };
    ownership::publish(&data_dir, &info, &local_token)?;
    eprintln!("tidemark serving on {scheme}://{address}");
    tracing::info!(
        max_running_jobs = config.max_running_jobs,
        body_limit = config.body_limit,
        "serving"
    );
    // Listed before a request is taken: a job started through this server is not one a
    // crash left behind.
    let unfinished = state.data.catalog.unfinished_job_ids()?;
    let resuming = state.clone();
    tokio::spawn(async move {
        match resuming.data.engine.resume_jobs(unfinished).await {
            Ok(jobs) if !jobs.is_empty() => {
                tracing::info!("resumed {} unfinished job(s)", jobs.len())
            }
            Ok(_) => {}
            Err(e) => tracing::error!("resuming unfinished jobs: {e:#}"),
        }
        resuming.ready.store(true, Ordering::SeqCst);
    });
    let app = router(state);
    let served = match acceptor {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
    }
    .context("serving the API");
    ownership::withdraw(&data_dir);
    drop(claim);
    served
}

/// Serves one command's requests on an ephemeral loopback port inside the command's own
/// process: embedded commands talk to the same API as remote ones. Unfinished jobs are not
/// resumed here (`tidemark resume` asks for that). Returns the base URL and the token.
pub async fn serve_private(data: Arc<DataDir>) -> anyhow::Result<(String, String)> {
    // The copy store is opened by whatever needs it (a passphrase's key derivation is not
    // paid by commands that never touch it).
    let state = ApiState::new(data, false, &ServeConfig::default());
    let token = state.tokens.issue_local()?;
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .context("listening on a loopback port for this command")?;
    let address = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the command's private API stopped: {e}");
        }
    });
    Ok((format!("http://{address}"), token))
}

/// Resolves on SIGINT or SIGTERM. Running jobs are left as their journals say: a step
/// either recorded or not, so the next start resumes them.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    eprintln!("shutting down; running jobs resume at the next start");
}
