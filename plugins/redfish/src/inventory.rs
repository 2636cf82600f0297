//! A system as the contract's `Inventory`: only what the BMC reports. A field it does not
//! report, a sub-resource it answers 404/501 for (sushy: Processors, SimpleStorage), a zero
//! count and an empty list all stay `None`, never an invented value.

use tidemark_sdk::{AdapterResult, Cpu, Firmware, Inventory, MachineDisk, MachineNic, PowerState};

use crate::client::Client;
use crate::model::{
    Collection, ComputerSystem, Drive, EthernetInterface, Processor, SimpleStorage, Storage,
};
use crate::system::{self, named};

/// What the BMC reports of machine `id`.
pub fn get(client: &Client, id: &str) -> AdapterResult<Inventory> {
    let (_, sys) = system::get(client, id)?;
    Ok(Inventory {
        name: text(&sys.name),
        manufacturer: text(&sys.manufacturer),
        model: text(&sys.model),
        serial: text(&sys.serial_number),
        cpus: cpus(client, id, &sys)?,
        memory: memory(&sys),
        nics: nics(client, id, &sys)?,
        disks: disks(client, id, &sys)?,
        power: power(sys.power_state.as_deref()),
        firmware: firmware(&sys),
    })
}

/// A non-blank string.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `On`/`Off` as the contract's states; transitional states (`PoweringOn`…) are unknown.
pub fn power(state: Option<&str>) -> Option<PowerState> {
    match state {
        Some("On") => Some(PowerState::On),
        Some("Off") => Some(PowerState::Off),
        _ => None,
    }
}

/// The firmware's boot mode as the Boot settings report it (`UEFI`, `Legacy`).
fn firmware(sys: &ComputerSystem) -> Option<Firmware> {
    match sys.boot.as_ref()?.mode.as_deref()? {
        "UEFI" => Some(Firmware::Uefi),
        "Legacy" => Some(Firmware::Bios),
        _ => None,
    }
}

/// Memory in bytes from `MemorySummary.TotalSystemMemoryGiB`; none or zero is unknown.
pub fn memory(sys: &ComputerSystem) -> Option<u64> {
    let gib = sys.memory_summary.as_ref()?.total_gib?;
    (gib.is_finite() && gib > 0.0).then(|| (gib * (1u64 << 30) as f64).round() as u64)
}

/// The CPUs: each Processor of type CPU where the BMC lists them, else as many as
/// `ProcessorSummary.Count` says with only the summary's model known.
fn cpus(client: &Client, id: &str, sys: &ComputerSystem) -> AdapterResult<Option<Vec<Cpu>>> {
    if let Some(path) = sys.processors.as_ref().and_then(|l| l.id.as_deref()) {
        let what = format!("the processors of {}", named(id));
        if let Some(list) = client.get_optional::<Collection>(path, &what)? {
            let mut out = Vec::new();
            for member in list.paths() {
                let Some(p) = client.get_optional::<Processor>(&member, &what)? else {
                    continue;
                };
                if p.processor_type.as_deref().is_some_and(|t| t != "CPU") {
                    continue;
                }
                out.push(Cpu {
                    model: text(&p.model),
                    cores: p.total_cores.filter(|&n| n > 0),
                    threads: p.total_threads.filter(|&n| n > 0),
                });
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
    let Some(summary) = &sys.processor_summary else {
        return Ok(None);
    };
    Ok(summary.count.filter(|&n| n > 0).map(|n| {
        (0..n)
            .map(|_| Cpu {
                model: text(&summary.model),
                cores: None,
                threads: None,
            })
            .collect()
    }))
}

/// A MAC in the contract's form (lower case, colon separated), from `:`/`-` separated or
/// bare hex; anything else is unknown.
pub fn mac(raw: &str) -> Option<String> {
    let hex: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    let joined = pairs.join(":");
    (joined != "00:00:00:00:00:00").then_some(joined)
}

/// The NICs from `EthernetInterfaces` (MAC from `MACAddress`, else `PermanentMACAddress`).
fn nics(client: &Client, id: &str, sys: &ComputerSystem) -> AdapterResult<Option<Vec<MachineNic>>> {
    let Some(path) = sys
        .ethernet_interfaces
        .as_ref()
        .and_then(|l| l.id.as_deref())
    else {
        return Ok(None);
    };
    let what = format!("the network interfaces of {}", named(id));
    let Some(list) = client.get_optional::<Collection>(path, &what)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for member in list.paths() {
        let Some(nic) = client.get_optional::<EthernetInterface>(&member, &what)? else {
            continue;
        };
        out.push(MachineNic {
            id: text(&nic.id),
            mac: nic
                .mac
                .as_deref()
                .and_then(mac)
                .or_else(|| nic.permanent_mac.as_deref().and_then(mac)),
            speed_mbps: nic.speed_mbps.filter(|&n| n > 0),
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The disks from `Storage` → `Drives`, else from `SimpleStorage` devices.
fn disks(
    client: &Client,
    id: &str,
    sys: &ComputerSystem,
) -> AdapterResult<Option<Vec<MachineDisk>>> {
    let what = format!("the storage of {}", named(id));
    let mut out = Vec::new();
    if let Some(path) = sys.storage.as_ref().and_then(|l| l.id.as_deref())
        && let Some(list) = client.get_optional::<Collection>(path, &what)?
    {
        for member in list.paths() {
            let Some(storage) = client.get_optional::<Storage>(&member, &what)? else {
                continue;
            };
            for drive in storage.drives.iter().filter_map(|d| d.id.as_deref()) {
                let Some(d) = client.get_optional::<Drive>(drive, &what)? else {
                    continue;
                };
                out.push(MachineDisk {
                    id: text(&d.id),
                    capacity: d.capacity_bytes.filter(|&n| n > 0),
                    model: text(&d.model),
                    serial: text(&d.serial_number),
                });
            }
        }
    }
    if out.is_empty()
        && let Some(path) = sys.simple_storage.as_ref().and_then(|l| l.id.as_deref())
        && let Some(list) = client.get_optional::<Collection>(path, &what)?
    {
        for member in list.paths() {
            let Some(simple) = client.get_optional::<SimpleStorage>(&member, &what)? else {
                continue;
            };
            for d in simple.devices {
                out.push(MachineDisk {
                    id: text(&d.name),
                    capacity: d.capacity_bytes.filter(|&n| n > 0),
                    model: text(&d.model),
                    serial: None,
                });
            }
        }
    }
    Ok((!out.is_empty()).then_some(out))
}
