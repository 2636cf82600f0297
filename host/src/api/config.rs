//! The configuration of `tidemark serve`: a TOML file (`--config`), environment overrides,
//! then flags; precedence flag > environment > file > default. Unknown keys in the file are
//! refused (a misspelt setting must not silently fall back to its default). Every setting,
//! its default and its variable are documented here and in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Everything `tidemark serve` can be told. Field docs give each default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Default `127.0.0.1:7480`. Anything but a loopback address
    /// requires `tls`. Env `TIDEMARK_LISTEN`; flag `--listen`.
    pub listen: SocketAddr,
    /// Jobs running at once; job starts beyond it are refused with 429. Default 256.
    /// Env `TIDEMARK_MAX_RUNNING_JOBS`.
    pub max_running_jobs: usize,
    /// Largest request body in bytes; larger ones get 413. Default 65536 (64 KiB).
    /// Env `TIDEMARK_BODY_LIMIT` (also takes units: `1MiB`).
    pub body_limit: usize,
    /// Largest adapter component `POST /v1/adapters` takes, in bytes; larger ones get 413.
    /// Default 64 MiB. Env `TIDEMARK_ADAPTER_BODY_LIMIT` (also takes units).
    pub adapter_body_limit: usize,
    /// Seconds a token found valid is trusted without asking the catalog again (so a
    /// deleted token keeps working at most this long). Default 5; 0 asks every time.
    /// Env `TIDEMARK_TOKEN_CACHE_TTL`.
    pub token_cache_ttl_secs: u64,
    /// What is logged to stderr, in `RUST_LOG` syntax (e.g. `info,tidemark::api=debug`).
    /// Default `warn`. Env `RUST_LOG`.
    pub log: String,
    /// `POST /v1/copies/gc` (and `tidemark gc` without `--repack-below`) rewrites packs
    /// whose live share is below this percentage, 0-100. Default 50 (0 never repacks).
    /// Env `TIDEMARK_GC_REPACK_BELOW`.
    pub gc_repack_below: u8,
    /// HTTPS. Default: none (plain HTTP, loopback only).
    pub tls: TlsConfig,
}

/// HTTPS: both files or neither. Relative paths in a config file are relative to the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, server certificate first. Default none.
    /// Env `TIDEMARK_TLS_CERT`.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate. Default none.
    /// Env `TIDEMARK_TLS_KEY`.
    pub key: Option<PathBuf>,
}

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            max_running_jobs: crate::engine::slots::DEFAULT_MAX_RUNNING_JOBS,
            body_limit: 64 * 1024,
            adapter_body_limit: 64 << 20,
            token_cache_ttl_secs: 5,
            log: crate::logging::DEFAULT_FILTER.to_string(),
            gc_repack_below: crate::copies::DEFAULT_REPACK_BELOW,
            tls: TlsConfig::default(),
        }
    }
}

/// The environment variable overriding each setting (by its key in the file).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("TIDEMARK_LISTEN", "listen"),
    ("TIDEMARK_MAX_RUNNING_JOBS", "max_running_jobs"),
    ("TIDEMARK_BODY_LIMIT", "body_limit"),
    ("TIDEMARK_ADAPTER_BODY_LIMIT", "adapter_body_limit"),
    ("TIDEMARK_TOKEN_CACHE_TTL", "token_cache_ttl_secs"),
    ("RUST_LOG", "log"),
    ("TIDEMARK_GC_REPACK_BELOW", "gc_repack_below"),
    ("TIDEMARK_TLS_CERT", "tls.cert"),
    ("TIDEMARK_TLS_KEY", "tls.key"),
];

/// Certificate and key files of a configuration with HTTPS.
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl ServeConfig {
    /// The effective configuration: defaults, then `file` (if given), then the variables
    /// of [`ENV_OVERRIDES`] found by `env`, then `listen` from the command line. Checked.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        for (var, key) in ENV_OVERRIDES {
            if let Some(raw) = env(var).filter(|v| !v.is_empty()) {
                config
                    .set(key, &raw)
                    .with_context(|| format!("environment variable {var}={raw}"))?;
            }
        }
        if let Some(listen) = listen {
            config.listen = listen;
        }
        config.check()?;
        Ok(config)
    }

    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
            .with_context(|| format!("config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for file in [&mut config.tls.cert, &mut config.tls.key]
            .into_iter()
            .flatten()
        {
            *file = base.join(&*file);
        }
        Ok(config)
    }

    /// Sets one setting from text (an environment variable's value).
    fn set(&mut self, key: &str, raw: &str) -> anyhow::Result<()> {
        match key {
            "listen" => {
                self.listen = raw
                    .parse()
                    .context("expected an address like 127.0.0.1:7480")?
            }
            "max_running_jobs" => {
                self.max_running_jobs = raw.parse().context("expected a whole number")?
            }
            "body_limit" => {
                let bytes = crate::units::parse_size(raw).map_err(anyhow::Error::msg)?;
                self.body_limit = usize::try_from(bytes).context("too large")?;
            }
            "adapter_body_limit" => {
                let bytes = crate::units::parse_size(raw).map_err(anyhow::Error::msg)?;
                self.adapter_body_limit = usize::try_from(bytes).context("too large")?;
            }
            "token_cache_ttl_secs" => {
                self.token_cache_ttl_secs = raw.parse().context("expected whole seconds")?
            }
            "log" => {
                crate::logging::parse_filter(raw)?;
                self.log = raw.to_string();
            }
            "gc_repack_below" => {
                self.gc_repack_below = raw.parse().context("expected a percentage from 0 to 100")?
            }
            "tls.cert" => self.tls.cert = Some(raw.into()),
            "tls.key" => self.tls.key = Some(raw.into()),
            other => bail!("no setting '{other}'"),
        }
        Ok(())
    }

    /// Refuses combinations that cannot serve safely.
    fn check(&self) -> anyhow::Result<()> {
        if self.max_running_jobs == 0 {
            bail!("max_running_jobs must be at least 1");
        }
        if self.body_limit == 0 {
            bail!("body_limit must be at least 1 byte");
        }
        if self.adapter_body_limit == 0 {
            bail!("adapter_body_limit must be at least 1 byte");
        }
        if self.gc_repack_below > 100 {
            bail!(
                "gc_repack_below is a percentage from 0 to 100, not {}",
                self.gc_repack_below
            );
        }
        crate::logging::parse_filter(&self.log).context("setting `log`")?;
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => bail!("tls.cert is set but tls.key is not; HTTPS needs both"),
            (None, Some(_)) => bail!("tls.key is set but tls.cert is not; HTTPS needs both"),
            (None, None) if !self.listen.ip().is_loopback() => bail!(
                "refusing to listen on {}: anything but loopback requires TLS (set tls.cert and tls.key, or TIDEMARK_TLS_CERT and TIDEMARK_TLS_KEY)",
                self.listen
            ),
            _ => Ok(()),
        }
    }

    /// The certificate and key when HTTPS is configured.
    pub fn tls_files(&self) -> Option<TlsFiles<'_>> {
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        }
    }

    /// How long a valid token is cached.
    pub fn token_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.token_cache_ttl_secs)
    }

    /// The configuration as a TOML file would say it (`serve --print-config`).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("writing the configuration as TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let (dir, path) = file(
            "listen = \"127.0.0.1:9000\"\nmax_running_jobs = 8\nbody_limit = 1000\n[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n",
        );
        let env = |var: &str| match var {
            "TIDEMARK_LISTEN" => Some("127.0.0.1:9001".to_string()),
            "TIDEMARK_BODY_LIMIT" => Some("1MiB".to_string()),
            _ => None,
        };
        let config = ServeConfig::load(Some(&path), env, None).unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.body_limit, 1 << 20);
        assert_eq!(config.max_running_jobs, 8);
        assert_eq!(config.token_cache_ttl_secs, 5);
        assert_eq!(config.tls.cert, Some(dir.path().join("c.pem")));
        assert_eq!(config.tls.key, Some(PathBuf::from("/abs/k.pem")));
        let flag = ServeConfig::load(Some(&path), env, Some("127.0.0.1:9002".parse().unwrap()));
        assert_eq!(flag.unwrap().listen.port(), 9002);
        assert_eq!(
            ServeConfig::load(None, no_env, None).unwrap(),
            ServeConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        let (_dir, path) = file("listen = \"127.0.0.1:1\"\n[tls]\ncrt = \"x\"\n");
        let error = format!(
            "{:#}",
            ServeConfig::load(Some(&path), no_env, None).unwrap_err()
        );
        assert!(
            error.contains("crt") && error.contains("serve.toml"),
            "{error}"
        );
        let (_dir, path) = file("max_running_jobs = \"many\"\n");
        let error = format!(
            "{:#}",
            ServeConfig::load(Some(&path), no_env, None).unwrap_err()
        );
        assert!(
            error.contains("max_running_jobs") && error.contains("serve.toml"),
            "{error}"
        );
        let env = |var: &str| (var == "TIDEMARK_MAX_RUNNING_JOBS").then(|| "x".to_string());
        let error = format!("{:#}", ServeConfig::load(None, env, None).unwrap_err());
        assert!(error.contains("TIDEMARK_MAX_RUNNING_JOBS=x"), "{error}");
        let (_dir, path) = file("log = \"tidemark=loud\"\n");
        let error = format!(
            "{:#}",
            ServeConfig::load(Some(&path), no_env, None).unwrap_err()
        );
        assert!(error.contains("tidemark=loud"), "{error}");
        let env = |var: &str| (var == "RUST_LOG").then(|| "info,tidemark::api=debug".to_string());
        let config = ServeConfig::load(Some(&path), env, None).unwrap();
        assert_eq!(config.log, "info,tidemark::api=debug");
    }

    #[test]
    fn gc_repack_below_comes_from_the_file_or_the_environment_and_is_a_percentage() {
        assert_eq!(
            ServeConfig::default().gc_repack_below,
            crate::copies::DEFAULT_REPACK_BELOW
        );
        let (_dir, path) = file("gc_repack_below = 30\n");
        let config = ServeConfig::load(Some(&path), no_env, None).unwrap();
        assert_eq!(config.gc_repack_below, 30);
        let env = |var: &str| (var == "TIDEMARK_GC_REPACK_BELOW").then(|| "75".to_string());
        assert_eq!(
            ServeConfig::load(Some(&path), env, None)
                .unwrap()
                .gc_repack_below,
            75
        );
        let (_dir, path) = file("gc_repack_below = 101\n");
        let error = format!(
            "{:#}",
            ServeConfig::load(Some(&path), no_env, None).unwrap_err()
        );
        assert!(error.contains("gc_repack_below"), "{error}");
        let env = |var: &str| (var == "TIDEMARK_GC_REPACK_BELOW").then(|| "half".to_string());
        let error = format!("{:#}", ServeConfig::load(None, env, None).unwrap_err());
        assert!(error.contains("TIDEMARK_GC_REPACK_BELOW=half"), "{error}");
    }

    #[test]
    fn beyond_loopback_needs_both_tls_files() {
        let open: SocketAddr = "0.0.0.0:7480".parse().unwrap();
        let error = ServeConfig::load(None, no_env, Some(open)).unwrap_err();
        assert!(error.to_string().contains("requires TLS"), "{error}");
        let half = |var: &str| (var == "TIDEMARK_TLS_CERT").then(|| "c.pem".to_string());
        assert!(ServeConfig::load(None, half, None).is_err());
        let both = |var: &str| {
            var.starts_with("TIDEMARK_TLS_")
                .then(|| "f.pem".to_string())
        };
        let config = ServeConfig::load(None, both, Some(open)).unwrap();
        assert!(config.tls_files().is_some());
    }

    #[test]
    fn the_printed_configuration_reads_back_the_same() {
        let mut config = ServeConfig::default();
        config.tls.cert = Some("/etc/tidemark/cert.pem".into());
        config.tls.key = Some("/etc/tidemark/key.pem".into());
        let (_dir, path) = file(&config.to_toml().unwrap());
        assert_eq!(
            ServeConfig::load(Some(&path), no_env, None).unwrap(),
            config
        );
    }
}
