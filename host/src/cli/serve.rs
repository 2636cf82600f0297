//! `tidemark serve`: loads the configuration (before touching the data directory, so a bad
//! file fails fast and `--print-config` needs none), claims and opens the data directory
//! and runs the API until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::json;

use super::{Outcome, default_data_dir};
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
    let data_dir = default_data_dir(data_dir)?;
    let claim = crate::data_dir::ownership::claim_for_server(&data_dir)?;
    let context = crate::data_dir::DataDir::open(&data_dir).await?;
    crate::api::serve(context, claim, &config).await?;
    Ok(Outcome::ok(json!({ "stopped": true }), "stopped"))
}
