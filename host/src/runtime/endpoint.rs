//! One configured instance of an adapter, as the runtime needs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::capabilities::{self, Effective, Grants, Requested};

/// Per-call deadline when an endpoint sets none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Memory cap of one adapter instance when an endpoint sets none.
pub const DEFAULT_MEMORY_CAP: u64 = 256 * 1024 * 1024;
/// The largest memory cap an endpoint may ask for (the instance pool's slot size).
pub const MAX_MEMORY_CAP: u64 = 1024 * 1024 * 1024;

/// What the runtime must know to give an endpoint a sandbox: which adapter, its settings,
/// its private data directory, and its limits. Capabilities are granted here, by the host's
/// configuration, never by the adapter.
#[derive(Clone)]
pub struct EndpointSpec {
    /// Endpoint name, e.g. `lab-hypervisor` or `vcenter-prod`.
    pub name: String,
    /// Name of the loaded adapter it runs.
    pub adapter: String,
    /// Settings the adapter reads through the `host.setting` import.
    pub settings: BTreeMap<String, String>,
    /// Secrets the adapter reads through `host.secret` (contract 0.3.0 on); only this
    /// endpoint's own, and only those its adapter's manifest asks for.
    pub secrets: BTreeMap<String, String>,
    /// What the operator granted it (data directory, TCP and HTTP destinations); its
    /// sandbox allows these within what the adapter asks for.
    pub grants: Grants,
    /// Preopened as `/data` inside the sandbox; nothing else of the filesystem is visible.
    pub data_dir: PathBuf,
    /// Deadline of each call.
    pub call_timeout: Duration,
    /// Linear-memory cap of each instance.
    pub memory_cap: u64,
}

/// Never shows a secret's value: only which secrets the endpoint has.
impl std::fmt::Debug for EndpointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSpec")
            .field("name", &self.name)
            .field("adapter", &self.adapter)
            .field("settings", &self.settings)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .field("data_dir", &self.data_dir)
            .field("call_timeout", &self.call_timeout)
            .field("memory_cap", &self.memory_cap)
            .finish()
    }
}

/// A reserved setting the host reads itself (`timeout`, `memory`) is malformed: the
/// operator's input, so callers turn it into an invalid-request refusal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("endpoint {endpoint}: setting {setting}: {reason}")]
pub struct BadSetting {
    /// The endpoint being configured.
    pub endpoint: String,
    /// The setting's key.
    pub setting: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl EndpointSpec {
    /// The endpoint with default limits, reading them from the reserved settings
    /// `timeout` (`30s`, `500ms`) and `memory` (`256MiB`) where given.
    pub fn new(
        name: &str,
        adapter: &str,
        settings: BTreeMap<String, String>,
        data_dir: PathBuf,
    ) -> Result<Self, BadSetting> {
        let bad = |setting: &'static str, reason: String| BadSetting {
            endpoint: name.to_string(),
            setting,
            reason,
        };
        let call_timeout = match settings.get("timeout") {
            Some(raw) => crate::units::parse_duration(raw).map_err(|e| bad("timeout", e))?,
            None => DEFAULT_CALL_TIMEOUT,
        };
        let memory_cap = match settings.get("memory") {
            Some(raw) => crate::units::parse_size(raw).map_err(|e| bad("memory", e))?,
            None => DEFAULT_MEMORY_CAP,
        };
        if !(1024 * 1024..=MAX_MEMORY_CAP).contains(&memory_cap) {
            return Err(bad(
                "memory",
                format!("must be between 1MiB and {}MiB", MAX_MEMORY_CAP >> 20),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            adapter: adapter.to_string(),
            settings,
            secrets: BTreeMap::new(),
            grants: Grants::default(),
            data_dir,
            call_timeout,
            memory_cap,
        })
    }
}

impl EndpointSpec {
    /// What a sandbox of this endpoint running an adapter that asks for `requested` allows.
    pub fn effective(&self, requested: &Requested) -> Effective {
        let names: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        capabilities::effective(requested, &self.grants, &names)
    }
}
