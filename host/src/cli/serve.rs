//! `tidemark serve`: loads the configuration (before touching the data directory, so a bad
//! file fails fast and `--print-config` needs none), opens the data directory and runs the
//! API until a signal. No terminal progress bar: jobs report progress to event streams.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Context, Outcome, default_data_dir, endpoints};
use crate::api::ServeConfig;

/// Runs (or with `print_config` only shows the configuration of) the API server.
pub async fn run(
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    config_file: Option<PathBuf>,
    print_config: bool,
) -> anyhow::Result<Outcome> {
    let config = ServeConfig::load(
        config_file.as_deref(),
        |var| std::env::var(var).ok(),
        listen,
    )?;
    crate::logging::set_filter(&config.log)?;
    if print_config {
        return Ok(Outcome::ok(
            serde_json::to_value(&config)?,
            config.to_toml()?,
        ));
    }
    let mut ctx = Context::open(&default_data_dir(data_dir)?).await?;
    if let Err(e) = ctx.attach_copy_store(false) {
        tracing::debug!("serving without a copy store: {e:#}");
    }
    let adapters = endpoints::adapters(&ctx)?.json;
    let names = (ctx.hypervisors(), ctx.arrays());
    crate::api::serve(ctx.engine, adapters, names, &config).await?;
    Ok(Outcome::ok(
        serde_json::json!({ "stopped": true }),
        "stopped",
    ))
}
