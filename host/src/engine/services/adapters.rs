//! Adapters added, listed and removed while the server runs. An endpoint uses the version
//! its reference resolves to now (`NAME`: the newest; `NAME@VERSION`: that one), so a new
//! version is used by the next session of every unpinned endpoint, and a version an
//! endpoint uses cannot be removed.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::engine::ports::AdapterAdmin;
use crate::model::{AdapterSummary, RejectedAdapter};
use crate::refusal::Refusal;

/// One loaded adapter version and the endpoints whose sessions use it now.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterListing {
    #[serde(flatten)]
    pub adapter: AdapterSummary,
    /// Endpoints that resolve to this version.
    pub endpoints: Vec<String>,
}

/// Every loaded adapter version with its users, and the files refused at start.
pub fn list(
    catalog: &Catalog,
    admin: &dyn AdapterAdmin,
) -> anyhow::Result<(Vec<AdapterListing>, Vec<RejectedAdapter>)> {
    let endpoints = catalog.endpoints()?;
    let resolved: Vec<(String, Option<AdapterSummary>)> = endpoints
        .iter()
        .map(|e| (e.name.clone(), admin.resolve(&e.adapter).ok()))
        .collect();
    let listings = admin
        .adapters()
        .into_iter()
        .map(|adapter| {
            let endpoints = resolved
                .iter()
                .filter(|(_, used)| {
                    used.as_ref()
                        .is_some_and(|u| u.name == adapter.name && u.version == adapter.version)
                })
                .map(|(name, _)| name.clone())
                .collect();
            AdapterListing { adapter, endpoints }
        })
        .collect();
    Ok((listings, admin.rejected()))
}

/// Removes an adapter (every version, or one); a conflict naming the endpoints while any
/// endpoint uses a version that would go. Returns what was removed.
pub fn remove(
    catalog: &Catalog,
    admin: &dyn AdapterAdmin,
    name: &str,
    version: Option<&str>,
) -> anyhow::Result<Vec<AdapterSummary>> {
    let reference = match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_string(),
    };
    if admin.resolve(&reference)?.source == "embedded" {
        return Err(Refusal::conflict(format!(
            "adapter {name} ships with Tidemark and cannot be removed"
        )));
    }
    let (listings, _) = list(catalog, admin)?;
    let users: Vec<String> = listings
        .iter()
        .filter(|l| l.adapter.name == name && version.is_none_or(|v| l.adapter.version == v))
        .flat_map(|l| {
            l.endpoints
                .iter()
                .map(|e| format!("{e} (version {})", l.adapter.version))
        })
        .collect();
    if !users.is_empty() {
        return Err(Refusal::conflict(format!(
            "adapter {reference} is used by endpoint(s) {}; remove them or pin them to another version first",
            users.join(", ")
        )));
    }
    // A running job keeps the version that was newest when it started, whether or not it
    // has reached the endpoint yet.
    let endpoints = catalog.endpoints()?;
    let mut jobs: Vec<String> = Vec::new();
    for job in catalog.unfinished_job_ids()? {
        let Some(started) = catalog.job_created_at(&job)? else {
            continue;
        };
        let pinned = catalog.job_record_adapters(&job)?;
        for endpoint in &endpoints {
            let used = match pinned.get(&endpoint.name) {
                Some(adapter) => adapter.clone(),
                None => match admin.resolve_as_of(&endpoint.adapter, started) {
                    Ok(a) => format!("{}@{}", a.name, a.version),
                    Err(_) => continue,
                },
            };
            let (n, v) = used.split_once('@').unwrap_or((used.as_str(), ""));
            if n == name && version.is_none_or(|want| want == v) {
                jobs.push(format!("{job} (on {used})"));
            }
        }
    }
    jobs.dedup();
    if !jobs.is_empty() {
        return Err(Refusal::conflict(format!(
            "adapter {reference} runs unfinished job(s) {}; let them finish first",
            jobs.join(", ")
        )));
    }
    admin.uninstall(name, version)
}
