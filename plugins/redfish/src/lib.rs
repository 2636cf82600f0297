//! A machine (BMC) adapter on Redfish: lists the BMC's systems, reports their inventory
//! without inventing what the BMC does not say, powers them and waits until the state is
//! reached, sets the boot override and reads it back, and inserts or ejects CD virtual
//! media. HTTP Basic with the endpoint's `username` and `password` secrets; settings in
//! [`settings`]. Tested against sushy-tools 2.2.0 (`--fake`), whose quirks are handled where
//! they bite (see [`boot`], [`power`], [`client`]).

pub mod base64;
pub mod boot;
pub mod client;
pub mod errors;
pub mod inventory;
pub mod media;
pub mod model;
pub mod power;
pub mod settings;
pub mod system;
#[cfg(test)]
mod tests;

use tidemark_sdk::{About, AdapterResult, BootDevice, Inventory};

use client::Client;
use power::Goal;
use settings::Settings;

/// The Redfish adapter.
pub struct Redfish;

/// Runs `f` on a client for this endpoint's settings.
fn with_client<T>(f: impl FnOnce(&Client) -> AdapterResult<T>) -> AdapterResult<T> {
    let settings = Settings::read(tidemark_sdk::setting, tidemark_sdk::secret)?;
    f(&Client::new(settings, &tidemark_sdk::http::Wasi))
}

impl tidemark_sdk::Machine for Redfish {
    fn about() -> About {
        About {
            vendor: "Tidemark DMTF Redfish".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "inventory".into(),
                "power".into(),
                "boot-override".into(),
                "virtual-media".into(),
            ],
        }
    }

    fn list_machines() -> AdapterResult<Vec<String>> {
        with_client(system::list)
    }

    fn get_inventory(machine_id: String) -> AdapterResult<Inventory> {
        with_client(|c| inventory::get(c, &machine_id))
    }

    fn power_on(machine_id: String) -> AdapterResult<()> {
        with_client(|c| power::act(c, &machine_id, Goal::On))
    }

    fn power_off(machine_id: String, force: bool) -> AdapterResult<()> {
        with_client(|c| power::act(c, &machine_id, Goal::Off { force }))
    }

    fn reset(machine_id: String) -> AdapterResult<()> {
        with_client(|c| power::act(c, &machine_id, Goal::Reset))
    }

    fn set_boot_override(machine_id: String, device: BootDevice, once: bool) -> AdapterResult<()> {
        with_client(|c| boot::set(c, &machine_id, device, once))
    }

    fn insert_media(machine_id: String, image_url: String) -> AdapterResult<()> {
        // The URL is checked before the settings, so garbage is refused even unconfigured.
        media::check_url(&image_url)?;
        with_client(|c| media::insert(c, &machine_id, &image_url))
    }

    fn eject_media(machine_id: String) -> AdapterResult<()> {
        with_client(|c| media::eject(c, &machine_id))
    }
}

tidemark_sdk::export_machine!(Redfish);
tidemark_sdk::manifest!(r#"{"http": ["*"], "secrets": ["username", "password"]}"#);
