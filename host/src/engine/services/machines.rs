//! Physical machines behind BMC endpoints, outside jobs: listing them, their inventory (what
//! the migrate planner reads for V2P), power, boot override and virtual media, as `tidemark
//! machine …` and `/v1/machines` offer them. Each call opens one session and ends with it.

use serde::Serialize;

use crate::engine::ports::{Endpoints, Machine};
use crate::model::{AdapterKind, BootDevice, MachineInventory};
use crate::refusal::Refusal;

/// A machine as `ENDPOINT:SYSTEM` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRef {
    pub endpoint: String,
    pub machine: String,
}

impl std::str::FromStr for MachineRef {
    type Err = String;
    /// `ENDPOINT:SYSTEM`; the machine id may itself hold colons, the endpoint name cannot.
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.split_once(':') {
            Some((endpoint, machine)) if !endpoint.is_empty() && !machine.is_empty() => {
                Ok(MachineRef {
                    endpoint: endpoint.to_string(),
                    machine: machine.to_string(),
                })
            }
            _ => Err(format!(
                "'{raw}' is not ENDPOINT:SYSTEM (see `tidemark machine list`)"
            )),
        }
    }
}

impl std::fmt::Display for MachineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.machine)
    }
}

/// What one machine endpoint answered to a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointMachines {
    pub endpoint: String,
    /// Machine ids, when the endpoint answered.
    pub machines: Option<Vec<String>>,
    /// Why it did not.
    pub error: Option<String>,
}

/// What to do with a machine's power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    On,
    Off,
    Reset,
}

impl std::str::FromStr for PowerAction {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "on" => Ok(PowerAction::On),
            "off" => Ok(PowerAction::Off),
            "reset" => Ok(PowerAction::Reset),
            other => Err(format!(
                "power action must be on, off or reset, not '{other}'"
            )),
        }
    }
}

/// A session on a machine endpoint; an unknown one is a not-found refusal naming the
/// machine endpoints there are.
pub async fn session(
    endpoints: &dyn Endpoints,
    endpoint: &str,
) -> anyhow::Result<Box<dyn Machine>> {
    let known = endpoints.names_of(AdapterKind::Machine);
    if !known.iter().any(|n| n == endpoint) {
        return Err(Refusal::not_found(format!(
            "no machine endpoint '{endpoint}' (machine endpoints: {})",
            listed(&known)
        )));
    }
    endpoints.machine(endpoint).await
}

/// Names for a message, `none` when there are none.
pub(crate) fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The machines of every machine endpoint (or of the one named), each endpoint's error
/// reported beside the others' answers.
pub async fn list(
    endpoints: &dyn Endpoints,
    only: Option<&str>,
) -> anyhow::Result<Vec<EndpointMachines>> {
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        None => endpoints.names_of(AdapterKind::Machine),
    };
    let mut out = Vec::new();
    for endpoint in names {
        let mut session = session(endpoints, &endpoint).await?;
        let (machines, error) = match session.list_machines().await {
            Ok(ids) => (Some(ids), None),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(EndpointMachines {
            endpoint,
            machines,
            error,
        });
    }
    Ok(out)
}

/// What the BMC reports of the machine.
pub async fn show(endpoints: &dyn Endpoints, at: &MachineRef) -> anyhow::Result<MachineInventory> {
    let mut session = session(endpoints, &at.endpoint).await?;
    Ok(session.get_inventory(&at.machine).await?)
}

/// Carries out `action`, then answers the inventory as the BMC reports it afterwards.
pub async fn power(
    endpoints: &dyn Endpoints,
    at: &MachineRef,
    action: PowerAction,
    force: bool,
) -> anyhow::Result<MachineInventory> {
    let mut session = session(endpoints, &at.endpoint).await?;
    match action {
        PowerAction::On => session.power_on(&at.machine).await?,
        PowerAction::Off => session.power_off(&at.machine, force).await?,
        PowerAction::Reset => session.reset(&at.machine).await?,
    }
    Ok(session.get_inventory(&at.machine).await?)
}

/// Sets the boot override.
pub async fn boot(
    endpoints: &dyn Endpoints,
    at: &MachineRef,
    device: BootDevice,
    once: bool,
) -> anyhow::Result<()> {
    let mut session = session(endpoints, &at.endpoint).await?;
    Ok(session.set_boot_override(&at.machine, device, once).await?)
}

/// Inserts the image at `url` as virtual media, or ejects it (`url` absent).
pub async fn media(
    endpoints: &dyn Endpoints,
    at: &MachineRef,
    url: Option<&str>,
) -> anyhow::Result<()> {
    let mut session = session(endpoints, &at.endpoint).await?;
    match url {
        Some(url) => session.insert_media(&at.machine, url).await?,
        None => session.eject_media(&at.machine).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_refs_split_at_the_first_colon() {
        let at: MachineRef = "bmc:27946b59:x".parse().unwrap();
        assert_eq!(
            (at.endpoint.as_str(), at.machine.as_str()),
            ("bmc", "27946b59:x")
        );
        assert!(
            "bmc"
                .parse::<MachineRef>()
                .unwrap_err()
                .contains("ENDPOINT:SYSTEM")
        );
        assert!(":x".parse::<MachineRef>().is_err());
        assert!("bmc:".parse::<MachineRef>().is_err());
    }
}
