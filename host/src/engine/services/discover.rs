//! Discovery: what a VM looks like now, checked for sense, with the array that owns each
//! mapped LUN, and remembered in the catalog.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DeviceRecord, MAPPED_LUN, VIRTUAL_DISK, VmRecord};
use crate::engine::ports::Endpoints;
use crate::model::{DeviceBacking, VmInfo};
use crate::names::{check_mac, check_mount_point, check_wwn};

/// A VM as discovered, with the owner of every mapped LUN (WWN → array endpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovered {
    pub vm: VmInfo,
    pub lun_owners: BTreeMap<String, String>,
}

/// Refuses an adapter's VM description that makes no sense, naming every problem.
pub fn validate_vm(endpoint: &str, vm: &VmInfo) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if vm.id.trim().is_empty() {
        problems.push("empty VM id".to_string());
    }
    if vm.name.trim().is_empty() {
        problems.push("empty VM name".to_string());
    }
    let mut ids = BTreeSet::new();
    let mut mounts = BTreeSet::new();
    for d in &vm.devices {
        if d.id.is_empty() || !ids.insert(d.id.clone()) {
            problems.push(format!("device id '{}' empty or repeated", d.id));
        }
        if let Err(e) = check_mount_point(&d.mount_point) {
            problems.push(format!("device {}: {e}", d.id));
        } else if !mounts.insert(d.mount_point.clone()) {
            problems.push(format!("mount point {} used twice", d.mount_point));
        }
        if d.capacity == 0 {
            problems.push(format!("device {} has capacity 0", d.id));
        }
        if let DeviceBacking::MappedLun(lun) = &d.backing
            && let Err(e) = check_wwn(&lun.wwn)
        {
            problems.push(format!("device {}: {e}", d.id));
        }
    }
    let hardware = &vm.hardware;
    if hardware.cpus == Some(0) {
        problems.push("0 vCPUs".to_string());
    }
    if hardware.memory == Some(0) {
        problems.push("0 bytes of memory".to_string());
    }
    let mut macs = BTreeSet::new();
    for nic in &hardware.nics {
        if let Err(e) = check_mac(&nic.mac) {
            problems.push(format!("NIC: {e}"));
        } else if !macs.insert(nic.mac.to_ascii_lowercase()) {
            problems.push(format!("MAC {} used twice", nic.mac));
        }
        if nic.network.trim().is_empty() {
            problems.push(format!("NIC {} on a network with no name", nic.mac));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "endpoint {endpoint} described VM '{}' nonsensically: {}",
            vm.id,
            problems.join("; ")
        )
    }
}

/// The array endpoint that owns a LUN: the catalog's memory, else ask every array (as real
/// systems match an RDM to its LUN by NAA id) and remember the answer.
pub async fn lun_owner(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    wwn: &str,
) -> anyhow::Result<String> {
    if let Some(owner) = catalog.lun_owner(wwn)? {
        return Ok(owner);
    }
    let owner = find_lun_owner(endpoints, wwn).await?;
    catalog.set_lun_owner(wwn, &owner)?;
    Ok(owner)
}

/// Asks every array endpoint whether it owns `wwn`, writing nothing (a dry run's plan asks
/// this too).
pub async fn find_lun_owner(endpoints: &dyn Endpoints, wwn: &str) -> anyhow::Result<String> {
    let arrays = endpoints.storage_array_names();
    let mut failures = Vec::new();
    for name in &arrays {
        let outcome = match endpoints.storage_array(name).await {
            Ok(mut array) => array.get_lun(wwn).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => return Ok(name.clone()),
            Err(e)
                if e.downcast_ref::<crate::engine::ports::CallError>()
                    .is_some_and(|c| c.is_not_found()) => {}
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    let asked = if arrays.is_empty() {
        "no array endpoints are configured".to_string()
    } else {
        format!("asked {}", arrays.join(", "))
    };
    let mut message = format!("no array endpoint owns LUN {wwn} ({asked})");
    if !failures.is_empty() {
        message.push_str(&format!("; failures: {}", failures.join("; ")));
    }
    Err(anyhow!(message))
}

/// Asks the hypervisor for the VM, checks it, resolves LUN owners, updates the catalog.
pub async fn discover(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    vm: &VmRecord,
) -> anyhow::Result<Discovered> {
    let mut hv = endpoints.hypervisor(&vm.endpoint).await?;
    let info = hv.get_vm(&vm.vm_ref).await?;
    validate_vm(&vm.endpoint, &info)?;
    let mut lun_owners = BTreeMap::new();
    for device in &info.devices {
        if let DeviceBacking::MappedLun(lun) = &device.backing {
            lun_owners.insert(
                lun.wwn.clone(),
                lun_owner(catalog, endpoints, &lun.wwn).await?,
            );
        }
    }
    catalog.upsert_vm(&vm_record(&vm.name, &vm.endpoint, &info))?;
    Ok(Discovered {
        vm: info,
        lun_owners,
    })
}

/// The catalog's record of a VM as the hypervisor describes it.
pub fn vm_record(name: &str, endpoint: &str, info: &VmInfo) -> VmRecord {
    VmRecord {
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        vm_ref: info.id.clone(),
        host: info.host_id.clone(),
        power: info.power.to_string(),
        hardware: info.hardware.clone(),
        devices: info
            .devices
            .iter()
            .map(|d| {
                let (kind, disk_ref, wwn, mode) = match &d.backing {
                    DeviceBacking::VirtualDisk(disk) => {
                        (VIRTUAL_DISK, Some(disk.clone()), None, None)
                    }
                    DeviceBacking::MappedLun(lun) => (
                        MAPPED_LUN,
                        None,
                        Some(lun.wwn.clone()),
                        Some(lun.mode.to_string()),
                    ),
                };
                DeviceRecord {
                    device_ref: d.id.clone(),
                    mount_point: d.mount_point.clone(),
                    kind: kind.to_string(),
                    disk_ref,
                    wwn,
                    mode,
                    capacity: d.capacity,
                }
            })
            .collect(),
    }
}
