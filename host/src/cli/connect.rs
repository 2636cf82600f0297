//! Where a command's requests go. With `--server URL` (or `TIDEMARK_SERVER`) to that server
//! with `TIDEMARK_TOKEN`; else, if a running `tidemark serve` owns the data directory, to it
//! with the token it left there; else the command opens the data directory itself and serves
//! its own requests on a private loopback port, so every command speaks the same API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::client::Api;
use crate::data_dir::DataDir;
use crate::data_dir::ownership::{self, Access, Claim};

/// The environment variable with the bearer token for `--server`.
pub const TOKEN_ENV: &str = "TIDEMARK_TOKEN";

/// The environment variable naming a PEM file of CA certificates to trust for HTTPS.
pub const CA_ENV: &str = "TIDEMARK_CA_CERT";

fn ca_from_env() -> Option<PathBuf> {
    std::env::var_os(CA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A command's way to the API.
pub struct Connection {
    pub api: Api,
    /// The data directory, when this process opened it (embedded).
    local: Option<Arc<DataDir>>,
    /// Held while embedded, so no server starts on the directory under this command.
    _claim: Option<Claim>,
    data_dir: Option<PathBuf>,
}

impl Connection {
    /// Connects as the flags and the data directory say.
    pub async fn open(server: Option<&str>, data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(url) = server {
            let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
            let token = token.with_context(|| {
                format!(
                    "--server needs a bearer token in {TOKEN_ENV} (see `tidemark token create`)"
                )
            })?;
            return Ok(Self {
                api: Api::new(url, &token, ca_from_env().as_deref())?,
                local: None,
                _claim: None,
                data_dir: super::default_data_dir(data_dir).ok(),
            });
        }
        let data_dir = super::default_data_dir(data_dir)?;
        match ownership::access(&data_dir)? {
            Access::Served { server, token } => {
                tracing::debug!("the data directory is served at {}", server.url);
                // The server's own certificate file (with its CA) is trusted for its URL.
                let ca = ca_from_env().or(server.ca_cert.clone());
                Ok(Self {
                    api: Api::new(&server.url, &token, ca.as_deref())?,
                    local: None,
                    _claim: None,
                    data_dir: Some(data_dir),
                })
            }
            Access::Embedded(claim) => {
                let context = Arc::new(DataDir::open(&data_dir).await?);
                let (url, token) = crate::api::serve_private(context.clone()).await?;
                Ok(Self {
                    api: Api::new(&url, &token, None)?,
                    local: Some(context),
                    _claim: Some(claim),
                    data_dir: Some(data_dir),
                })
            }
        }
    }

    /// Whether jobs run inside this process (they stop when it does).
    pub fn embedded(&self) -> bool {
        self.local.is_some()
    }

    /// The data directory opened locally, for the lab (which plays the world outside
    /// Tidemark and so works on the adapters' data directly, whoever serves the catalog).
    pub async fn local_data(&self) -> anyhow::Result<Arc<DataDir>> {
        if let Some(local) = &self.local {
            return Ok(local.clone());
        }
        let dir: &Path = self.data_dir.as_deref().context(
            "lab commands work on a local data directory: give --data-dir (or TIDEMARK_DATA_DIR)",
        )?;
        Ok(Arc::new(DataDir::open(dir).await?))
    }
}
