//! The bundled lab: `lab init`, `lab vm create`, and guest-style `lab write` / `lab read`.
//! The lab plays the world outside Tidemark: it works on the lab adapters' data directly,
//! and tells Tidemark what it made through the API (endpoints, inventory refresh), so it
//! works the same whether this command or a server owns the catalog.

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::{Context as _, anyhow, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Outcome;
use super::args::{CreateVm, LabCommand, LabVmCommand};
use super::client::Api;
use crate::catalog::VmRecord;
use crate::data_dir::Context;
use crate::engine::device_io;
use crate::model::{DeviceSpec, LunMapping, MappedLun, NewDisk, VmSpec};
use crate::units::format_size;

/// The lab's endpoint names (also its adapter names).
pub const LAB_HYPERVISOR: &str = "lab-hypervisor";
/// The lab's endpoint names (also its adapter names).
pub const LAB_ARRAY: &str = "lab-array";

pub async fn run(ctx: &Context, api: &Api, command: LabCommand) -> anyhow::Result<Outcome> {
    match command {
        LabCommand::Init => {
            let added = init(ctx, api).await?;
            let text = if added.is_empty() {
                "lab endpoints already configured".to_string()
            } else {
                format!("added endpoints: {}", added.join(", "))
            };
            Ok(Outcome::ok(
                json!({ "added": added, "endpoints": [LAB_HYPERVISOR, LAB_ARRAY] }),
                text,
            ))
        }
        LabCommand::Vm(LabVmCommand::Create(args)) => {
            let vm = create_vm(ctx, api, &args).await?;
            let text = format!(
                "created VM {} ({}) on {} with {} device(s)",
                vm.name,
                vm.vm_ref,
                vm.host,
                vm.devices.len()
            );
            Ok(Outcome::ok(serde_json::to_value(&vm)?, text))
        }
        LabCommand::Power { vm, state } => {
            let record = ctx
                .catalog
                .vm(&vm)?
                .ok_or_else(|| anyhow!("unknown VM '{vm}' (see `tidemark vm list`)"))?;
            let mut hv = ctx.endpoints().hypervisor(&record.endpoint).await?;
            if state == "on" {
                hv.power_on(&record.vm_ref).await?;
            } else {
                hv.power_off(&record.vm_ref).await?;
            }
            record_vms(api, &record.endpoint, &vm).await?;
            Ok(Outcome::ok(
                json!({ "vm": vm, "power": state }),
                format!("{vm} powered {state}"),
            ))
        }
        LabCommand::Write {
            vm,
            mount,
            offset,
            file,
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            write(ctx, &vm, &mount, offset, &data).await?;
            let text = format!(
                "wrote {} bytes at offset {offset} of {vm} {mount}",
                data.len()
            );
            Ok(Outcome::ok(
                json!({ "vm": vm, "mount_point": mount, "offset": offset, "bytes": data.len(), "sha256": sha256(&data) }),
                text,
            ))
        }
        LabCommand::Read {
            vm,
            mount,
            offset,
            length,
            out,
        } => {
            let data = read(ctx, &vm, &mount, offset, length).await?;
            let doc = json!({ "vm": vm, "mount_point": mount, "offset": offset, "bytes": data.len(), "sha256": sha256(&data) });
            match out {
                Some(path) => {
                    std::fs::write(&path, &data)
                        .with_context(|| format!("writing {}", path.display()))?;
                    Ok(Outcome::ok(
                        doc,
                        format!("read {} bytes into {}", data.len(), path.display()),
                    ))
                }
                None => {
                    // Raw bytes to stdout, unless a JSON document was asked for.
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&data).context("writing to stdout")?;
                    stdout.flush()?;
                    Ok(Outcome::ok(doc, String::new()))
                }
            }
        }
    }
}

/// Hex SHA-256 of bytes, so scripts can compare what was written and read.
pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Configures the lab endpoints that are not configured yet; returns those added.
pub async fn init(ctx: &Context, api: &Api) -> anyhow::Result<Vec<String>> {
    let existing: BTreeSet<String> = ctx
        .catalog
        .endpoints()?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut added = Vec::new();
    for name in [LAB_HYPERVISOR, LAB_ARRAY] {
        if !existing.contains(name) {
            api.post(
                "/v1/endpoints",
                json!({ "name": name, "adapter": name, "settings": {} }),
            )
            .await?;
            added.push(name.to_string());
        }
    }
    Ok(added)
}

/// Creates a VM: LUNs on the array (exposed to the VM's host), then the VM with its virtual
/// disks and the LUNs mapped, then has Tidemark record it (inventory refresh). LUNs made
/// before a failure are removed again.
pub async fn create_vm(ctx: &Context, api: &Api, args: &CreateVm) -> anyhow::Result<VmRecord> {
    crate::names::check_name("VM", &args.name).map_err(anyhow::Error::msg)?;
    if args.disks.is_empty() && args.luns.is_empty() {
        bail!("a VM needs at least one --disk or --lun");
    }
    let mut mounts = BTreeSet::new();
    for mount in args
        .disks
        .iter()
        .map(|d| &d.0)
        .chain(args.luns.iter().map(|l| &l.0))
    {
        if !mounts.insert(mount.clone()) {
            bail!("mount point {mount} is given twice");
        }
    }
    if ctx.catalog.vm(&args.name)?.is_some() {
        bail!("a VM named '{}' exists already", args.name);
    }
    known(ctx, &args.hypervisor)?;
    if !args.luns.is_empty() {
        known(ctx, &args.array)?;
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut hv = ctx.endpoints().hypervisor(&args.hypervisor).await?;
    if !hv.list_hosts().await?.iter().any(|h| h.id == args.host) {
        bail!(
            "endpoint {} has no hypervisor host '{}'",
            args.hypervisor,
            args.host
        );
    }
    let mut created_luns = Vec::new();
    let outcome = async {
        let mut devices: Vec<DeviceSpec> = args
            .disks
            .iter()
            .map(|(mount, size)| {
                DeviceSpec::NewVirtualDisk(NewDisk {
                    capacity: *size,
                    mount_point: mount.clone(),
                })
            })
            .collect();
        if !args.luns.is_empty() {
            let mut array = ctx.endpoints().storage_array(&args.array).await?;
            for (mount, size, mode) in &args.luns {
                let label = mount
                    .trim_matches(|c| c == '/' || c == ':')
                    .replace('/', "-");
                let lun = array
                    .create_lun(
                        &format!("{}-{label}", args.name),
                        *size,
                        &format!("{nonce}:{mount}"),
                    )
                    .await?;
                created_luns.push(lun.wwn.clone());
                array.expose(&lun.wwn, &args.host).await?;
                devices.push(DeviceSpec::MapLun(LunMapping {
                    lun: MappedLun {
                        wwn: lun.wwn,
                        mode: *mode,
                    },
                    capacity: *size,
                    mount_point: mount.clone(),
                }));
            }
        }
        let spec = VmSpec {
            name: args.name.clone(),
            host_id: args.host.clone(),
            devices,
        };
        hv.create_vm(&spec, &format!("{nonce}:vm")).await?;
        record_vms(api, &args.hypervisor, &args.name).await?;
        let record = api
            .get(&format!("/v1/vms/{}", super::jobs::segment(&args.name)))
            .await?;
        anyhow::Ok(serde_json::from_value::<VmRecord>(record)?)
    }
    .await;
    if outcome.is_err()
        && !created_luns.is_empty()
        && let Ok(mut array) = ctx.endpoints().storage_array(&args.array).await
    {
        // Best effort: the original error is what the operator needs to see.
        for wwn in &created_luns {
            let _ = array.unexpose(wwn, &args.host).await;
            let _ = array.delete_lun(wwn).await;
        }
    }
    outcome
}

/// Has Tidemark record the VMs of a hypervisor endpoint; fails unless `vm` is among them.
async fn record_vms(api: &Api, endpoint: &str, vm: &str) -> anyhow::Result<()> {
    let answer = api
        .post(
            "/v1/inventory/refresh",
            json!({ "endpoint": endpoint, "vm": vm }),
        )
        .await?;
    let recorded = ["recorded", "updated"]
        .iter()
        .flat_map(|k| answer[*k].as_array().cloned().unwrap_or_default())
        .any(|n| n == vm);
    if !recorded {
        bail!("Tidemark did not record VM {vm}: {answer}");
    }
    Ok(())
}

/// An endpoint name that must exist.
fn known(ctx: &Context, name: &str) -> anyhow::Result<()> {
    if ctx.catalog.endpoints()?.iter().any(|e| e.name == name) {
        Ok(())
    } else {
        Err(anyhow!(
            "unknown endpoint '{name}' (see `tidemark endpoint list`)"
        ))
    }
}

async fn target(ctx: &Context, vm: &str, mount: &str) -> anyhow::Result<device_io::DeviceTarget> {
    let record = ctx
        .catalog
        .vm(vm)?
        .ok_or_else(|| anyhow!("unknown VM '{vm}' (see `tidemark vm list`)"))?;
    device_io::locate(&ctx.catalog, ctx.endpoints(), &record, mount).await
}

/// Writes bytes into a VM's device as its guest would.
pub async fn write(
    ctx: &Context,
    vm: &str,
    mount: &str,
    offset: u64,
    data: &[u8],
) -> anyhow::Result<()> {
    let target = target(ctx, vm, mount).await?;
    device_io::write(ctx.endpoints(), &target, offset, data)
        .await
        .with_context(|| {
            format!(
                "writing {} at {offset} of {vm} {mount} ({})",
                format_size(data.len() as u64),
                format_size(target.capacity())
            )
        })
}

/// Reads bytes of a VM's device as its guest would.
pub async fn read(
    ctx: &Context,
    vm: &str,
    mount: &str,
    offset: u64,
    length: u64,
) -> anyhow::Result<Vec<u8>> {
    let target = target(ctx, vm, mount).await?;
    device_io::read(ctx.endpoints(), &target, offset, length)
        .await
        .with_context(|| format!("reading {length} bytes at {offset} of {vm} {mount}"))
}
