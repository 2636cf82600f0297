//! What the adapters themselves report, and how it differs from the catalog.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog::{Catalog, MAPPED_LUN, VIRTUAL_DISK};
use crate::engine::ports::Endpoints;
use crate::model::AdapterKind;
use crate::model::{HostInfo, LunInfo, SnapshotRef, VmInfo};

/// One endpoint's view of its system.
/// The contract's records (generated from WIT) are described as plain objects.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointInventory {
    pub endpoint: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub hosts: Option<Vec<HostInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub vms: Option<Vec<VmInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub luns: Option<Vec<LunInfo>>,
    #[schema(value_type = Vec<Object>)]
    pub snapshots: Vec<SnapshotRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

async fn hypervisor_inventory(
    endpoints: &dyn Endpoints,
    name: &str,
) -> anyhow::Result<EndpointInventory> {
    let mut hv = endpoints.hypervisor(name).await?;
    let hosts = hv.list_hosts().await?;
    let vms = hv.list_vms().await?;
    for vm in &vms {
        super::discover::validate_vm(name, vm)?;
    }
    let mut snapshots = Vec::new();
    for vm in &vms {
        snapshots.extend(hv.list_snapshots(&vm.id).await?);
    }
    Ok(EndpointInventory {
        endpoint: name.into(),
        kind: AdapterKind::Hypervisor.to_string(),
        hosts: Some(hosts),
        vms: Some(vms),
        luns: None,
        snapshots,
        error: None,
    })
}

async fn array_inventory(
    endpoints: &dyn Endpoints,
    name: &str,
) -> anyhow::Result<EndpointInventory> {
    let mut sa = endpoints.storage_array(name).await?;
    let luns = sa.list_luns().await?;
    let snapshots = sa.list_snapshots().await?;
    Ok(EndpointInventory {
        endpoint: name.into(),
        kind: AdapterKind::StorageArray.to_string(),
        hosts: None,
        vms: None,
        luns: Some(luns),
        snapshots,
        error: None,
    })
}

/// Asks each endpoint (or the one named) for what it has; an endpoint that fails is
/// reported with its error, not fatal.
pub async fn inventory(
    endpoints: &dyn Endpoints,
    hypervisors: &[String],
    arrays: &[String],
) -> Vec<EndpointInventory> {
    let mut out = Vec::new();
    for (name, is_hv) in hypervisors
        .iter()
        .map(|n| (n, true))
        .chain(arrays.iter().map(|n| (n, false)))
    {
        let result = if is_hv {
            hypervisor_inventory(endpoints, name).await
        } else {
            array_inventory(endpoints, name).await
        };
        out.push(result.unwrap_or_else(|e| {
            EndpointInventory {
                endpoint: name.clone(),
                kind: if is_hv {
                    AdapterKind::Hypervisor
                } else {
                    AdapterKind::StorageArray
                }
                .to_string(),
                hosts: None,
                vms: None,
                luns: None,
                snapshots: Vec::new(),
                error: Some(format!("{e:#}")),
            }
        }));
    }
    out
}

/// A difference between the catalog and what an adapter reports.
#[derive(Debug, Serialize, PartialEq)]
pub struct Finding {
    /// `orphan-snapshot` (on the adapter, unknown to the catalog), `missing-snapshot` (in
    /// the catalog, gone from the adapter), `missing-vm`, `unfinished-job`,
    /// `proxy-leftover` (a proxy VM with devices still attached), `orphan-clone` (a copy
    /// job's LUN clone left behind), `unreachable-endpoint`.
    pub kind: String,
    pub endpoint: String,
    pub detail: String,
}

/// Compares the catalog's recovery points with the snapshots the adapters hold, for the
/// VMs and LUNs the catalog tracks.
pub async fn reconcile(
    catalog: &Catalog,
    endpoints: &dyn Endpoints,
    hypervisors: &[String],
    arrays: &[String],
) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let finding = |kind: &str, endpoint: &str, detail: String| Finding {
        kind: kind.into(),
        endpoint: endpoint.into(),
        detail,
    };
    for job in catalog.unfinished_job_ids()? {
        findings.push(finding(
            "unfinished-job",
            "",
            format!("job {job} is unfinished; run `tidemark resume`"),
        ));
    }
    let vms = catalog.vms()?;
    for name in hypervisors {
        let known: BTreeSet<String> = catalog
            .snapshot_refs_on(name)?
            .into_iter()
            .filter(|(_, r)| r.device_kind == VIRTUAL_DISK)
            .map(|(_, r)| r.snapshot)
            .collect();
        let mut held = BTreeSet::new();
        let mut hv = match endpoints.hypervisor(name).await {
            Ok(hv) => hv,
            Err(e) => {
                findings.push(finding("unreachable-endpoint", name, format!("{e:#}")));
                continue;
            }
        };
        match hv.list_vms().await {
            Ok(all) => {
                for proxy in all.iter().filter(|v| {
                    v.name
                        .starts_with(crate::engine::workflows::copy::PROXY_PREFIX)
                        && !v.devices.is_empty()
                }) {
                    let mounts: Vec<&str> = proxy
                        .devices
                        .iter()
                        .map(|d| d.mount_point.as_str())
                        .collect();
                    findings.push(finding(
                        "proxy-leftover",
                        name,
                        format!(
                            "proxy VM {} still has device(s) attached at {}",
                            proxy.name,
                            mounts.join(", ")
                        ),
                    ));
                }
            }
            Err(e) => findings.push(finding("unreachable-endpoint", name, e.to_string())),
        }
        for vm in vms.iter().filter(|v| &v.endpoint == name) {
            match hv.list_snapshots(&vm.vm_ref).await {
                Ok(snaps) => {
                    for s in snaps {
                        if !known.contains(&s.id) {
                            findings.push(finding(
                                "orphan-snapshot",
                                name,
                                format!(
                                    "snapshot {} of VM {} device {} is in no recovery point",
                                    s.id, vm.name, s.source
                                ),
                            ));
                        }
                        held.insert(s.id);
                    }
                }
                Err(e) if e.is_not_found() => findings.push(finding(
                    "missing-vm",
                    name,
                    format!("VM {} ({}) is gone from the hypervisor", vm.name, vm.vm_ref),
                )),
                Err(e) => findings.push(finding("unreachable-endpoint", name, e.to_string())),
            }
        }
        for id in known.difference(&held) {
            findings.push(finding(
                "missing-snapshot",
                name,
                format!("snapshot {id} of a recovery point is gone from the hypervisor"),
            ));
        }
    }
    let tracked_luns: BTreeSet<String> = vms
        .iter()
        .flat_map(|v| v.devices.iter())
        .filter(|d| d.kind == MAPPED_LUN)
        .filter_map(|d| d.wwn.clone())
        .collect();
    for name in arrays {
        let known: BTreeSet<String> = catalog
            .snapshot_refs_on(name)?
            .into_iter()
            .map(|(_, r)| r.snapshot)
            .collect();
        let mut sa = match endpoints.storage_array(name).await {
            Ok(sa) => sa,
            Err(e) => {
                findings.push(finding("unreachable-endpoint", name, format!("{e:#}")));
                continue;
            }
        };
        match sa.list_luns().await {
            Ok(luns) => {
                for lun in luns.iter().filter(|l| {
                    l.name
                        .starts_with(crate::engine::workflows::copy::CLONE_PREFIX)
                }) {
                    findings.push(finding(
                        "orphan-clone",
                        name,
                        format!(
                            "LUN {} ({}) is a copy job's clone left behind",
                            lun.wwn, lun.name
                        ),
                    ));
                }
            }
            Err(e) => findings.push(finding("unreachable-endpoint", name, e.to_string())),
        }
        let snaps = sa.list_snapshots().await.map_err(anyhow::Error::from);
        let snaps = match snaps {
            Ok(s) => s,
            Err(e) => {
                findings.push(finding("unreachable-endpoint", name, format!("{e:#}")));
                continue;
            }
        };
        let held: BTreeSet<String> = snaps.iter().map(|s| s.id.clone()).collect();
        for s in snaps
            .iter()
            .filter(|s| tracked_luns.contains(&s.source) && !known.contains(&s.id))
        {
            findings.push(finding(
                "orphan-snapshot",
                name,
                format!(
                    "snapshot {} of LUN {} is in no recovery point",
                    s.id, s.source
                ),
            ));
        }
        for id in known.difference(&held) {
            findings.push(finding(
                "missing-snapshot",
                name,
                format!("snapshot {id} of a recovery point is gone from the array"),
            ));
        }
    }
    Ok(findings)
}
