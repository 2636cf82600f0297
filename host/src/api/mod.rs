//! The HTTP admin API (axum): `tidemark serve`. JSON in and out under `/v1`, bearer-token
//! authentication with roles on every request, an audit log of state changes, idempotent
//! job starts. Jobs run in the background; their journals make them resumable, so a killed
//! server resumes every unfinished job when it starts again.

pub mod auth;
mod bodies;
mod error;
mod events;
pub mod job_limit;
mod openapi;
#[cfg(test)]
mod route_walk;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::Catalog;
use crate::engine::Engine;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;

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
    /// How many jobs started over the API may run at once; past it `POST /v1/jobs` is a
    /// 429 with `Retry-After` (default [`job_limit::DEFAULT_MAX_RUNNING_JOBS`]).
    pub max_running_jobs: usize,
    /// The jobs running now, each holding a slot under `max_running_jobs`.
    pub running_jobs: job_limit::RunningJobs,
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
        .routes(routes!(routes::endpoints))
        .routes(routes!(routes::inventory))
        .routes(routes!(routes::adapters))
        .routes(routes!(routes::tokens))
        .routes(routes!(routes::audit))
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM. Anything but a loopback address is refused until TLS
/// can be configured.
pub async fn serve(
    engine: Engine,
    adapters: serde_json::Value,
    (hypervisors, arrays): (Vec<String>, Vec<String>),
    listen: SocketAddr,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {listen}: anything but loopback requires TLS, which this build cannot configure yet"
        );
    }
    let catalog = engine.catalog.clone();
    let engine = Arc::new(engine);
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        catalog,
        adapters,
        ready: AtomicBool::new(false),
        submit_lock: tokio::sync::Mutex::new(()),
        tokens: auth::TokenCache::default(),
        hypervisors,
        arrays,
        max_running_jobs: job_limit::DEFAULT_MAX_RUNNING_JOBS,
        running_jobs: job_limit::RunningJobs::default(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!("tidemark serving on http://{}", listener.local_addr()?);
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;
    Ok(())
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
