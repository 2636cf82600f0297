//! The boot override: PATCH `Boot` on the system, checked against what the BMC allows
//! before, and read back after.
//!
//! sushy-tools accepts any target without validation and keeps `BootSourceOverrideEnabled`
//! `Continuous` whatever was asked. So the adapter refuses a target the BMC does not list
//! in `BootSourceOverrideTarget@Redfish.AllowableValues` itself, fails when the target read
//! back differs from the one asked (the BMC did not do it), and only warns when `Enabled`
//! differs: the machine still boots from the device asked, but maybe more than once.

use serde_json::json;
use tidemark_sdk::{AdapterError, AdapterResult, BootDevice};

use crate::client::Client;
use crate::system::{self, named};

/// The Redfish `BootSourceOverrideTarget` of a device.
pub fn target_of(device: BootDevice) -> &'static str {
    match device {
        BootDevice::None => "None",
        BootDevice::Pxe => "Pxe",
        BootDevice::Cd => "Cd",
        BootDevice::Hdd => "Hdd",
        BootDevice::Usb => "Usb",
        BootDevice::BiosSetup => "BiosSetup",
    }
}

/// The contract's name of a device, for messages.
fn word(device: BootDevice) -> &'static str {
    match device {
        BootDevice::None => "none",
        BootDevice::Pxe => "pxe",
        BootDevice::Cd => "cd",
        BootDevice::Hdd => "hdd",
        BootDevice::Usb => "usb",
        BootDevice::BiosSetup => "bios-setup",
    }
}

/// Sets machine `id` to boot from `device` next time (`once`) or until changed; `none`
/// clears the override (`Enabled: Disabled`).
pub fn set(client: &Client, id: &str, device: BootDevice, once: bool) -> AdapterResult<()> {
    let (path, sys) = system::get(client, id)?;
    let boot = sys.boot.ok_or_else(|| {
        AdapterError::Unsupported(format!(
            "{}: the BMC reports no Boot settings to override",
            named(id)
        ))
    })?;
    let target = target_of(device);
    let clearing = device == BootDevice::None;
    // `None` means "no override": BMCs rarely list it among the targets, yet take it.
    if !clearing
        && let Some(allowed) = &boot.allowed_targets
        && !allowed.iter().any(|a| a == target)
    {
        return Err(AdapterError::Invalid(format!(
            "{} cannot boot from {} (Redfish {target}): the BMC allows {}",
            named(id),
            word(device),
            if allowed.is_empty() {
                "no boot targets".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    let enabled = match (clearing, once) {
        (true, _) => "Disabled",
        (false, true) => "Once",
        (false, false) => "Continuous",
    };
    let mut body = json!({ "BootSourceOverrideTarget": target });
    match &boot.allowed_enabled {
        Some(allowed) if !allowed.iter().any(|a| a == enabled) => {
            if !clearing {
                return Err(AdapterError::Invalid(format!(
                    "{}: the BMC allows boot override {}, not {enabled}",
                    named(id),
                    allowed.join(", ")
                )));
            }
        }
        _ => body["BootSourceOverrideEnabled"] = json!(enabled),
    }
    client.patch(
        &path,
        &json!({ "Boot": body }),
        &format!("the boot override of {}", named(id)),
    )?;

    let back = system::reread(client, &path, id)?.boot.unwrap_or_default();
    let target_back = back.target.as_deref().unwrap_or("nothing");
    let enabled_back = back.enabled.as_deref().unwrap_or("nothing");
    if clearing {
        if target_back == "None" || enabled_back == "Disabled" {
            return Ok(());
        }
        return Err(AdapterError::Internal(format!(
            "{}: the BMC accepted clearing the boot override but still reports {target_back} ({enabled_back})",
            named(id)
        )));
    }
    if target_back != target {
        return Err(AdapterError::Internal(format!(
            "{}: the BMC accepted boot target {target} but reports {target_back} afterwards",
            named(id)
        )));
    }
    if enabled_back != enabled {
        client.warn(&format!(
            "{}: boot override {enabled} was asked but the BMC reports {enabled_back}; it boots from {target} and may keep doing so after the next boot",
            named(id)
        ));
    }
    Ok(())
}
