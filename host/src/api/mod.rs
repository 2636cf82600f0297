//! The HTTP admin API (axum): `tidemark serve`. JSON in and out under `/v1`, bearer-token
//! authentication with roles on every request, an audit log of state changes, idempotent
//! job starts. Jobs run in the background; their journals make them resumable, so a killed
//! server resumes every unfinished job when it starts again. Plain HTTP on loopback, or
//! HTTPS anywhere ([`config`], [`tls`]).

pub mod auth;
mod cache;
pub mod config;
mod copies;
mod endpoints;
mod error;
mod events;
mod inventory;
mod routes;
pub mod tls;
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::catalog::Catalog;
use crate::data_dir::Context;
use crate::data_dir::ownership::{self, Claim, ServerInfo};
use crate::engine::Engine;

pub use config::{DEFAULT_LISTEN, ServeConfig};

/// What every handler shares.
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub catalog: Arc<Catalog>,
    /// The data directory with its adapter runtime and endpoints.
    pub data: Arc<Context>,
    /// Set once unfinished jobs were resumed.
    pub ready: AtomicBool,
    /// Serializes job submission (idempotency check + job creation).
    pub submit_lock: tokio::sync::Mutex<()>,
    /// Tokens recently found valid.
    pub tokens: auth::TokenCache,
    /// A serving process resumes unfinished jobs itself at start; a command's private API
    /// does it only when asked.
    pub resumes_at_start: bool,
    /// Request bodies larger than this are refused (413).
    pub body_limit: usize,
    /// Serialized answers of the busiest reads.
    pub cache: cache::ResponseCache,
}

impl ApiState {
    /// The state over an opened data directory; a serving process (`resumes_at_start`) is
    /// ready once it has resumed unfinished jobs. `config` gives the limits.
    pub fn new(data: Arc<Context>, resumes_at_start: bool, config: &ServeConfig) -> Arc<Self> {
        Arc::new(Self {
            engine: data.engine.clone(),
            catalog: data.catalog.clone(),
            data,
            ready: AtomicBool::new(!resumes_at_start),
            resumes_at_start,
            cache: cache::ResponseCache::default(),
            submit_lock: tokio::sync::Mutex::new(()),
            tokens: auth::TokenCache::new(config.token_cache_ttl()),
            body_limit: config.body_limit,
        })
    }
}

/// The whole router, authentication included.
pub fn router(state: Arc<ApiState>) -> Router {
    let v1 = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/v1/vms", get(routes::vms))
        .route("/v1/vms/{name}", get(routes::vm))
        .route("/v1/vms/{name}/points", get(routes::vm_points))
        .route("/v1/points/{id}", get(routes::point))
        .route("/v1/jobs", get(routes::jobs).post(routes::start_job))
        .route("/v1/jobs/{id}", get(routes::job))
        .route("/v1/jobs/{id}/cancel", post(routes::cancel_job))
        .route("/v1/jobs/{id}/events", get(events::job_events))
        .route("/metrics", get(routes::metrics))
        .route(
            "/v1/endpoints",
            get(routes::endpoints).post(endpoints::add_endpoint),
        )
        .route(
            "/v1/endpoints/{name}",
            axum::routing::delete(endpoints::remove_endpoint),
        )
        .route("/v1/endpoints/{name}/test", post(endpoints::test_endpoint))
        .route("/v1/inventory", get(routes::inventory))
        .route("/v1/inventory/refresh", post(inventory::refresh))
        .route("/v1/inventory/hosts", get(inventory::hosts))
        .route("/v1/inventory/vms", get(inventory::vms))
        .route("/v1/inventory/luns", get(inventory::luns))
        .route("/v1/reconcile", get(inventory::reconcile))
        .route("/v1/vms/{name}/copies", get(copies::vm_copies))
        .route("/v1/copies/verify", post(copies::verify))
        .route("/v1/copies/expire", post(copies::expire))
        .route("/v1/copies/gc", post(copies::gc))
        .route("/v1/jobs/resume", post(copies::resume))
        .route("/v1/adapters", get(routes::adapters))
        .route("/v1/tokens", get(routes::tokens).post(tokens::create_token))
        .route("/v1/audit", get(routes::audit))
        .fallback(routes::fallback);
    v1.layer(axum::middleware::from_fn_with_state(
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
pub async fn serve(data: Context, claim: Claim, config: &ServeConfig) -> anyhow::Result<()> {
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
    };
    ownership::publish(&data_dir, &info, &local_token)?;
    eprintln!("tidemark serving on {scheme}://{address}");
    tracing::info!(
        max_running_jobs = config.max_running_jobs,
        body_limit = config.body_limit,
        "serving"
    );
    let resuming = state.clone();
    tokio::spawn(async move {
        match resuming.engine.resume().await {
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
pub async fn serve_private(data: Arc<Context>) -> anyhow::Result<(String, String)> {
    if let Err(e) = data.attach_copy_store(false) {
        tracing::debug!("no copy store open for now: {e:#}");
    }
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
