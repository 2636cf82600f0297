//! Virtual media: the machine's CD/DVD device (through the system's `VirtualMedia` link, else
//! its managers'), `InsertMedia` of an http(s) URL the BMC fetches itself, `EjectMedia`, each
//! read back.

use serde_json::json;
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::client::Client;
use crate::model::{Collection, ComputerSystem, Manager, VirtualMedia};
use crate::system::{self, named};

/// Refuses anything but an http(s) URL with a host and no spaces or control characters,
/// before the BMC sees it.
pub fn check_url(url: &str) -> AdapterResult<()> {
    let bad = |why: &str| AdapterError::Invalid(format!("media URL '{url}' {why}"));
    if url.is_empty() {
        return Err(AdapterError::Invalid("the media URL is empty".into()));
    }
    if url.len() > 2048 {
        return Err(bad("is longer than 2048 characters"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\^`{|}".contains(c))
    {
        return Err(bad("contains spaces, control or unsafe characters"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL the BMC can fetch"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("has no host"));
    }
    Ok(())
}

/// Whether a device takes CD/DVD images: `MediaTypes` says so, or, where it lists none,
/// its id is `Cd`/`CD`/`DVD`.
fn is_cd(device: &VirtualMedia) -> bool {
    match &device.media_types {
        Some(types) => types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("CD") || t.eq_ignore_ascii_case("DVD")),
        None => device
            .id
            .as_deref()
            .is_some_and(|i| i.eq_ignore_ascii_case("cd") || i.eq_ignore_ascii_case("dvd")),
    }
}

/// The virtual media collection of the machine: its own link, else its first manager's.
fn collection(client: &Client, id: &str, sys: &ComputerSystem) -> AdapterResult<String> {
    if let Some(path) = sys.virtual_media.as_ref().and_then(|l| l.id.clone()) {
        return Ok(path);
    }
    let managers = sys.links.as_ref().map(|l| l.managed_by.as_slice());
    for manager in managers.unwrap_or_default() {
        let Some(path) = manager.id.as_deref() else {
            continue;
        };
        let what = format!("the manager of {}", named(id));
        if let Some(m) = client.get_optional::<Manager>(path, &what)?
            && let Some(vm) = m.virtual_media.and_then(|l| l.id)
        {
            return Ok(vm);
        }
    }
    Err(AdapterError::Unsupported(format!(
        "{}: the BMC offers no virtual media",
        named(id)
    )))
}

/// The machine's CD/DVD virtual media device, with its path.
pub fn cd_device(client: &Client, id: &str) -> AdapterResult<(String, VirtualMedia)> {
    let (_, sys) = system::get(client, id)?;
    let path = collection(client, id, &sys)?;
    let what = format!("the virtual media of {}", named(id));
    let list: Collection = client.get(&path, &what)?;
    let mut seen = Vec::new();
    for member in list.paths() {
        let Some(device) = client.get_optional::<VirtualMedia>(&member, &what)? else {
            continue;
        };
        if is_cd(&device) {
            let own = device
                .odata_id
                .clone()
                .filter(|p| p.starts_with('/'))
                .unwrap_or(member);
            return Ok((own, device));
        }
        seen.push(format!(
            "{} ({})",
            device.id.as_deref().unwrap_or("?"),
            device.media_types.unwrap_or_default().join(", ")
        ));
    }
    Err(AdapterError::Unsupported(format!(
        "{}: the BMC has no CD/DVD virtual media device (it has {})",
        named(id),
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join("; ")
        }
    )))
}

/// The target of an action of a device, or `unsupported`.
fn target(
    id: &str,
    device: &VirtualMedia,
    pick: fn(&crate::model::MediaActions) -> Option<&crate::model::Action>,
    name: &str,
) -> AdapterResult<String> {
    device
        .actions
        .as_ref()
        .and_then(pick)
        .and_then(|a| a.target.clone())
        .ok_or_else(|| {
            AdapterError::Unsupported(format!(
                "{}: the BMC's CD device advertises no {name} action",
                named(id)
            ))
        })
}

/// Whether the device holds an image now.
fn holds_image(device: &VirtualMedia) -> bool {
    match device.inserted {
        Some(inserted) => inserted,
        None => device.image.as_deref().is_some_and(|i| !i.is_empty()),
    }
}

/// Inserts the image at `url` into machine `id`'s CD device, ejecting what it held first
/// (the same URL may now serve another image), and reads it back.
pub fn insert(client: &Client, id: &str, url: &str) -> AdapterResult<()> {
    check_url(url)?;
    let (path, device) = cd_device(client, id)?;
    if holds_image(&device) {
        eject_device(client, id, &path, &device)?;
    }
    let insert = target(
        id,
        &device,
        |a| a.insert.as_ref(),
        "VirtualMedia.InsertMedia",
    )?;
    client.post(
        &insert,
        &json!({ "Image": url, "Inserted": true, "WriteProtected": true }),
        &format!("inserting media into {}", named(id)),
    )?;
    let back: VirtualMedia = client.get(&path, &format!("the CD device of {}", named(id)))?;
    if back.inserted == Some(false) {
        return Err(AdapterError::Internal(format!(
            "{}: the BMC accepted the media but reports nothing inserted afterwards",
            named(id)
        )));
    }
    match back.image.as_deref() {
        Some(image) if image != url => Err(AdapterError::Internal(format!(
            "{}: the BMC accepted {url} but reports image '{image}' afterwards",
            named(id)
        ))),
        _ => Ok(()),
    }
}

/// Ejects machine `id`'s CD media; nothing inserted is success.
pub fn eject(client: &Client, id: &str) -> AdapterResult<()> {
    let (path, device) = cd_device(client, id)?;
    if !holds_image(&device) {
        return Ok(());
    }
    eject_device(client, id, &path, &device)
}

fn eject_device(client: &Client, id: &str, path: &str, device: &VirtualMedia) -> AdapterResult<()> {
    let eject = target(id, device, |a| a.eject.as_ref(), "VirtualMedia.EjectMedia")?;
    client.post(
        &eject,
        &json!({}),
        &format!("ejecting media from {}", named(id)),
    )?;
    let back: VirtualMedia = client.get(path, &format!("the CD device of {}", named(id)))?;
    if holds_image(&back) {
        return Err(AdapterError::Internal(format!(
            "{}: the BMC accepted the eject but still reports image '{}' inserted",
            named(id),
            back.image.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}
