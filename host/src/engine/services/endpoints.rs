//! Configuring endpoints while the server runs: the checks, the catalog record and the
//! runtime's view change together, so an endpoint is either fully usable or not there.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, EndpointRecord, now_ms};
use crate::engine::ports::AdapterAdmin;
use crate::refusal::Refusal;

/// Checks and records a new endpoint and makes it usable at once. A malformed name or
/// setting is invalid, an unknown adapter not found, a taken name a conflict; on any
/// refusal nothing is recorded.
pub fn add(
    catalog: &Catalog,
    admin: &dyn AdapterAdmin,
    name: String,
    adapter: String,
    settings: BTreeMap<String, String>,
) -> anyhow::Result<EndpointRecord> {
    let record = EndpointRecord {
        name,
        adapter,
        settings,
        created_at: now_ms(),
    };
    // An unknown adapter (404) is the answer before anything about the settings.
    admin.check(&record)?;
    if record.settings.keys().any(|k| k.is_empty()) {
        return Err(Refusal::invalid("a setting has an empty key"));
    }
    catalog.add_endpoint(&record)?;
    if let Err(e) = admin.configure(&record) {
        // Recorded but not usable (its directory could not be made): take the record back
        // so a retry starts clean.
        if let Err(undo) = catalog.remove_endpoint(&record.name) {
            tracing::warn!(endpoint = %record.name, "could not take back the endpoint record: {undo:#}");
        }
        return Err(e);
    }
    Ok(record)
}

/// Removes an endpoint when nothing depends on it (a conflict naming what does); whether it
/// existed. Its private data directory is kept.
pub fn remove(catalog: &Catalog, admin: &dyn AdapterAdmin, name: &str) -> anyhow::Result<bool> {
    let removed = catalog.remove_endpoint(name)?;
    if removed {
        admin.unconfigure(name);
    }
    Ok(removed)
}
