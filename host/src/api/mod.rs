//! The HTTP admin API (axum): `tidemark serve`. JSON in and out under `/v1`, bearer-token
//! authentication with roles on every request, an audit log of state changes, idempotent
//! job starts. Jobs run in the background; their journals make them resumable, so a killed
//! server resumes every unfinished job when it starts again. Plain HTTP on loopback, or
//! HTTPS anywhere ([`config`], [`tls`]).

pub mod auth;
pub mod config;
mod error;
mod events;
mod routes;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::catalog::Catalog;
use crate::engine::Engine;
pub use config::{DEFAULT_LISTEN, ServeConfig};

/// What every handler shares.
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub catalog: Arc<Catalog>,
    /// The adapters document (loaded once at start).
    pub adapters: serde_json::Value,
    /// Set once unfinished jobs were resumed.
    pub ready: AtomicBool,
    /// Serializes job submission (idempotency check + job creation).
    pub submit_lock: tokio::sync::Mutex<()>,
    /// Tokens recently found valid.
    pub tokens: auth::TokenCache,
    /// Configured hypervisor and array endpoint names (for inventory).
    pub hypervisors: Vec<String>,
    pub arrays: Vec<String>,
    /// Request bodies larger than this are refused (413).
    pub body_limit: usize,
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
        .route("/v1/endpoints", get(routes::endpoints))
        .route("/v1/inventory", get(routes::inventory))
        .route("/v1/adapters", get(routes::adapters))
        .route("/v1/tokens", get(routes::tokens))
        .route("/v1/audit", get(routes::audit))
        .fallback(routes::fallback);
    v1.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::guard,
    ))
    .layer(DefaultBodyLimit::max(state.body_limit))
    .with_state(state)
}

/// Serves until SIGINT or SIGTERM, over HTTPS when `config` has TLS files (plain HTTP is
/// for loopback only; [`ServeConfig::load`] refused anything else). The first line on
/// stderr is `tidemark serving on http[s]://ADDR` (scripts and tests read the address).
pub async fn serve(
    engine: Engine,
    adapters: serde_json::Value,
    (hypervisors, arrays): (Vec<String>, Vec<String>),
    config: &ServeConfig,
) -> anyhow::Result<()> {
    // Bad certificate or key files fail here, before anything listens.
    let acceptor = match config.tls_files() {
        Some(files) => Some(tls::acceptor(files.cert, files.key)?),
        None => None,
    };
    let catalog = engine.catalog.clone();
    let engine = Arc::new(engine);
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        catalog,
        adapters,
        ready: AtomicBool::new(false),
        submit_lock: tokio::sync::Mutex::new(()),
        tokens: auth::TokenCache::new(config.token_cache_ttl()),
        hypervisors,
        arrays,
        body_limit: config.body_limit,
    });
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    eprintln!("tidemark serving on {scheme}://{local}");
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
    match acceptor {
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
    .context("serving the API")
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
