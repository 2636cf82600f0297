//! Finding systems: the service root's Systems link, its members, and one system by id (the
//! last path segment of its `@odata.id`; on sushy-tools the system's UUID).

use tidemark_sdk::{AdapterError, AdapterResult};

use crate::client::Client;
use crate::model::{Collection, ComputerSystem, ServiceRoot};

/// The systems collection's path, from the service root.
fn systems_path(client: &Client) -> AdapterResult<String> {
    let root_url = client.settings.service_root.clone();
    let root: ServiceRoot = client.get(&root_url, "the Redfish service root")?;
    root.systems.and_then(|l| l.id).ok_or_else(|| {
        AdapterError::Unsupported(
            "the BMC's service root has no Systems collection: it manages no machines".into(),
        )
    })
}

/// The last segment of a resource path: how a machine is named.
pub fn id_of(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// The ids of the machines behind the BMC, in its order, each once.
pub fn list(client: &Client) -> AdapterResult<Vec<String>> {
    let path = systems_path(client)?;
    let systems: Collection = client.get(&path, "the Systems collection")?;
    let mut ids: Vec<String> = Vec::new();
    for member in systems.paths() {
        let id = id_of(&member).to_string();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// How messages name a machine.
pub fn named(id: &str) -> String {
    format!("machine '{id}'")
}

/// One machine: its path (after any redirect, its own `@odata.id`) and the resource.
/// `not-found` naming it when the BMC has no such system.
pub fn get(client: &Client, id: &str) -> AdapterResult<(String, ComputerSystem)> {
    let bad = id.is_empty()
        || id == "."
        || id == ".."
        || id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "/?#%\\".contains(c));
    if bad {
        return Err(AdapterError::NotFound(format!(
            "{} was not found on the BMC: not a Redfish system id",
            named(id)
        )));
    }
    let path = format!("{}/{id}", systems_path(client)?.trim_end_matches('/'));
    let system: ComputerSystem = client.get(&path, &named(id))?;
    let own = system
        .odata_id
        .clone()
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    Ok((own, system))
}

/// The machine at `path` again (polls and read-backs), named `id` in messages.
pub fn reread(client: &Client, path: &str, id: &str) -> AdapterResult<ComputerSystem> {
    client.get(path, &named(id))
}
