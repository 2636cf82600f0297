//! Configuring endpoints while the server runs: the checks, the catalog record (with its
//! sealed secrets) and the runtime's view change together, so an endpoint is either fully
//! usable or not there.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, EndpointRecord, now_ms};
use crate::engine::ports::{AdapterAdmin, SecretVault};
use crate::model::capabilities::{self, GrantReport, Grants};
use crate::refusal::Refusal;

/// An endpoint to add, as the API and the CLI give it.
pub struct NewEndpoint {
    pub name: String,
    pub adapter: String,
    pub settings: BTreeMap<String, String>,
    pub grants: Grants,
    /// Secret values by name (the CLI resolved `@FILE` and `env:VAR`; never logged).
    pub secrets: BTreeMap<String, String>,
}

/// An endpoint as added: its record, the names of its secrets, and how its grants meet
/// what its adapter asks for.
pub struct Configured {
    pub record: EndpointRecord,
    pub secrets: Vec<String>,
    pub report: GrantReport,
}

/// Checks and records a new endpoint and makes it usable at once. A malformed name,
/// setting, grant or secret is invalid, an unknown adapter not found, a taken name a
/// conflict; on any refusal nothing is recorded.
pub fn add(
    catalog: &Catalog,
    admin: &dyn AdapterAdmin,
    vault: &dyn SecretVault,
    new: NewEndpoint,
) -> anyhow::Result<Configured> {
    let record = EndpointRecord {
        name: new.name,
        adapter: new.adapter,
        settings: new.settings,
        grants: new.grants,
        created_at: now_ms(),
    };
    // An unknown adapter (404) is the answer before anything about the settings.
    admin.check(&record)?;
    if record.settings.keys().any(|k| k.is_empty()) {
        return Err(Refusal::invalid("a setting has an empty key"));
    }
    let sealed = seal_all(vault, &record.name, &new.secrets)?;
    catalog.add_endpoint(&record, &sealed)?;
    if let Err(e) = admin.configure(&record, new.secrets.clone()) {
        // Recorded but not usable (its directory could not be made): take the record back
        // so a retry starts clean.
        if let Err(undo) = catalog.remove_endpoint(&record.name) {
            tracing::warn!(endpoint = %record.name, "could not take back the endpoint record: {undo:#}");
        }
        return Err(e);
    }
    configured(admin, record, new.secrets.keys().cloned().collect())
}

/// Sets (adds or replaces) and removes secrets of an endpoint; sessions opened afterwards
/// see the new values, without a restart. Unknown endpoint: not found. An empty change is
/// a no-op that answers with the endpoint as it is (a PUT may be repeated).
pub fn update_secrets(
    catalog: &Catalog,
    admin: &dyn AdapterAdmin,
    vault: &dyn SecretVault,
    endpoint: &str,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
) -> anyhow::Result<Configured> {
    let Some(record) = catalog
        .endpoints()?
        .into_iter()
        .find(|e| e.name == endpoint)
    else {
        return Err(Refusal::not_found(format!("unknown endpoint '{endpoint}'")));
    };
    for name in &remove {
        capabilities::check_secret_name(name).map_err(Refusal::invalid)?;
    }
    let sealed = seal_all(vault, endpoint, &set)?;
    if !catalog.update_secrets(endpoint, &sealed, &remove)? {
        return Err(Refusal::not_found(format!("unknown endpoint '{endpoint}'")));
    }
    let secrets = open_all(catalog, vault, endpoint)?;
    let names = secrets.keys().cloned().collect();
    admin.configure(&record, secrets)?;
    configured(admin, record, names)
}

/// The plaintext secrets of an endpoint, for its sandbox.
pub fn open_all(
    catalog: &Catalog,
    vault: &dyn SecretVault,
    endpoint: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    catalog
        .sealed_secrets(endpoint)?
        .into_iter()
        .map(|(name, sealed)| Ok((name.clone(), vault.open(endpoint, &name, &sealed)?)))
        .collect()
}

/// How an endpoint's grants and secrets meet what its adapter asks for.
pub fn report(
    admin: &dyn AdapterAdmin,
    record: &EndpointRecord,
    secret_names: &[String],
) -> anyhow::Result<GrantReport> {
    let adapter = admin.resolve(&record.adapter)?;
    let names: Vec<&str> = secret_names.iter().map(String::as_str).collect();
    Ok(capabilities::report(
        &adapter.requested,
        &record.grants,
        &names,
    ))
}

fn configured(
    admin: &dyn AdapterAdmin,
    record: EndpointRecord,
    secrets: Vec<String>,
) -> anyhow::Result<Configured> {
    let report = report(admin, &record, &secrets)?;
    Ok(Configured {
        record,
        secrets,
        report,
    })
}

/// Checks the secrets' names and values and seals each.
fn seal_all(
    vault: &dyn SecretVault,
    endpoint: &str,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    secrets
        .iter()
        .map(|(name, value)| {
            capabilities::check_secret_name(name).map_err(Refusal::invalid)?;
            if value.is_empty() {
                return Err(Refusal::invalid(format!("secret {name} is empty")));
            }
            if value.len() > 64 * 1024 {
                return Err(Refusal::invalid(format!(
                    "secret {name} is {} bytes; at most 64 KiB",
                    value.len()
                )));
            }
            Ok((name.clone(), vault.seal(endpoint, name, value)?))
        })
        .collect()
}

/// Removes an endpoint when nothing depends on it (a conflict naming what does); whether it
/// existed. Its private data directory is kept; its secrets are deleted with it.
pub fn remove(catalog: &Catalog, admin: &dyn AdapterAdmin, name: &str) -> anyhow::Result<bool> {
    let removed = catalog.remove_endpoint(name)?;
    if removed {
        admin.unconfigure(name);
    }
    Ok(removed)
}
