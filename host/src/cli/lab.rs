//! The bundled lab: `lab init`, `lab vm create`, and guest-style `lab write` / `lab read`.
//! The lab plays the world outside Tidemark: it makes VMs and LUNs on the lab adapters'
//! data directly, and tells Tidemark what it made through the API (endpoints, inventory
//! refresh); a guest's reads and writes are API calls (`/v1/lab/vms/{vm}/devices/{mount}`),
//! streamed. So it works the same whether this command or a server owns the catalog.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use futures::StreamExt as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Outcome;
use super::args::{CreateVm, LabCommand, LabVmCommand};
use super::client::Api;
use super::connect::Connection;
use crate::catalog::VmRecord;
use crate::data_dir::DataDir;
use crate::model::{DeviceSpec, Hardware, LunMapping, MappedLun, NewDisk, VmSpec};

/// The lab's endpoint names (also its adapter names).
pub const LAB_HYPERVISOR: &str = "lab-hypervisor";
/// The lab's endpoint names (also its adapter names).
pub const LAB_ARRAY: &str = "lab-array";

/// Runs a lab command. Making VMs and powering them works on the lab adapters' data
/// directly (the local data directory); a guest's reads and writes need only the API.
pub async fn run(conn: &Connection, command: LabCommand) -> anyhow::Result<Outcome> {
    let api = &conn.api;
    match command {
        LabCommand::Init => {
            let added = init(&*conn.local_data().await?, api).await?;
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
            let vm = create_vm(&*conn.local_data().await?, api, &args).await?;
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
            let ctx = conn.local_data().await?;
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
            let (bytes, sha256) = write_file(api, &vm, &mount, offset, &file).await?;
            let text = format!("wrote {bytes} bytes at offset {offset} of {vm} {mount}");
            Ok(Outcome::ok(
                json!({ "vm": vm, "mount_point": mount, "offset": offset, "bytes": bytes, "sha256": sha256 }),
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
            let (bytes, sha256, text) = match &out {
                Some(path) => {
                    let mut file = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    // `read` names what failed: the device read or the write to the file.
                    let (bytes, sha256) = read(api, &vm, &mount, offset, length, &mut file).await?;
                    let text = format!("read {bytes} bytes into {}", path.display());
                    (bytes, sha256, text)
                }
                None => {
                    // Raw bytes to stdout.
                    let mut stdout = std::io::stdout();
                    let (bytes, sha256) =
                        read(api, &vm, &mount, offset, length, &mut stdout).await?;
                    stdout.flush().context("writing to stdout")?;
                    (bytes, sha256, String::new())
                }
            };
            Ok(Outcome::ok(
                json!({ "vm": vm, "mount_point": mount, "offset": offset, "bytes": bytes, "sha256": sha256 }),
                text,
            ))
        }
    }
}

/// Configures the lab endpoints that are not configured yet; returns those added.
pub async fn init(ctx: &DataDir, api: &Api) -> anyhow::Result<Vec<String>> {
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
                json!({ "name": name, "adapter": name, "settings": {}, "grants": ["data-dir"] }),
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
pub async fn create_vm(ctx: &DataDir, api: &Api, args: &CreateVm) -> anyhow::Result<VmRecord> {
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
            hardware: Hardware {
                cpus: args.cpus,
                memory: args.memory,
                firmware: args.firmware,
                nics: args.nics.clone(),
                ..Hardware::default()
            },
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
fn known(ctx: &DataDir, name: &str) -> anyhow::Result<()> {
    if ctx.catalog.endpoints()?.iter().any(|e| e.name == name) {
        Ok(())
    } else {
        Err(anyhow!(
            "unknown endpoint '{name}' (see `tidemark endpoint list`)"
        ))
    }
}

/// The API path of a VM's device bytes.
fn device_path(vm: &str, mount: &str, offset: u64, length: u64) -> String {
    format!(
        "/v1/lab/vms/{}/devices/{}?offset={offset}&length={length}",
        super::jobs::segment(vm),
        super::jobs::segment(mount)
    )
}

/// Bytes per piece read from a file and sent: the size of the server's data-path calls.
const PIECE: usize = 1 << 20;

/// Files up to this size are read whole and sent in one body.
const WHOLE_BELOW: u64 = 4 << 20;

/// Streams a file into a VM's device at `offset` as its guest would write it, over the API
/// (`PUT /v1/lab/vms/{vm}/devices/{mount}`), never holding it whole; returns the bytes
/// written and their SHA-256. The file is read and hashed on a blocking thread while the
/// request sends what was read.
pub async fn write_file(
    api: &Api,
    vm: &str,
    mount: &str,
    offset: u64,
    file: &Path,
) -> anyhow::Result<(u64, String)> {
    use std::io::Read as _;
    let mut opened =
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let length = opened
        .metadata()
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if length <= WHOLE_BELOW {
        // A small file is cheaper sent whole than through a streamed body.
        let mut data = Vec::with_capacity(length as usize);
        opened
            .read_to_end(&mut data)
            .with_context(|| format!("reading {}", file.display()))?;
        let sha256 = hex::encode(Sha256::digest(&data));
        let length = data.len() as u64;
        let answer = api
            .put_bytes(&device_path(vm, mount, offset, length), data.into(), length)
            .await
            .with_context(|| format!("writing {} to {vm} {mount}", file.display()))?;
        return Ok((answer["bytes"].as_u64().unwrap_or(length), sha256));
    }
    let (pieces, mut received) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let name = file.display().to_string();
    let reading = tokio::task::spawn_blocking(move || {
        let mut hash = Sha256::new();
        loop {
            let mut piece = vec![0u8; PIECE];
            let n = match opened.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = pieces.blocking_send(Err(std::io::Error::new(
                        e.kind(),
                        format!("reading {name}: {e}"),
                    )));
                    break;
                }
            };
            piece.truncate(n);
            hash.update(&piece);
            if pieces.blocking_send(Ok(piece)).is_err() {
                break; // the request ended early; its error is the one to report
            }
        }
        hex::encode(hash.finalize())
    });
    let stream = futures::stream::poll_fn(move |cx| received.poll_recv(cx));
    let answer = api
        .put_bytes(
            &device_path(vm, mount, offset, length),
            reqwest::Body::wrap_stream(stream),
            length,
        )
        .await
        .with_context(|| format!("writing {} to {vm} {mount}", file.display()))?;
    let sha256 = reading.await.context("reading the file")?;
    Ok((answer["bytes"].as_u64().unwrap_or(length), sha256))
}

/// Writes bytes into a VM's device at `offset` as its guest would, over the API.
pub async fn write(
    api: &Api,
    vm: &str,
    mount: &str,
    offset: u64,
    data: Vec<u8>,
) -> anyhow::Result<()> {
    let length = data.len() as u64;
    api.put_bytes(&device_path(vm, mount, offset, length), data.into(), length)
        .await
        .with_context(|| format!("writing {length} bytes at {offset} of {vm} {mount}"))?;
    Ok(())
}

/// Reads `length` bytes at `offset` of a VM's device as its guest would, over the API
/// (`GET /v1/lab/vms/{vm}/devices/{mount}`), into `sink` as they arrive; returns the bytes
/// read and their SHA-256. Fewer bytes than asked is an error (the server failed part-way).
pub async fn read(
    api: &Api,
    vm: &str,
    mount: &str,
    offset: u64,
    length: u64,
    sink: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<(u64, String)> {
    let context = || format!("reading {length} bytes at {offset} of {vm} {mount}");
    let response = api
        .get_bytes(&device_path(vm, mount, offset, length))
        .await
        .with_context(context)?;
    let mut body = response.bytes_stream();
    let (mut hash, mut got) = (Sha256::new(), 0u64);
    while let Some(piece) = body.next().await {
        let piece = piece.with_context(context)?;
        hash.update(&piece);
        sink.write_all(&piece).context("writing what was read")?;
        got += piece.len() as u64;
    }
    if got != length {
        bail!("{}: the server sent {got} of them (see its log)", context());
    }
    Ok((got, hex::encode(hash.finalize())))
}

/// Reads `length` bytes at `offset` of a VM's device into memory, over the API.
pub async fn read_bytes(
    api: &Api,
    vm: &str,
    mount: &str,
    offset: u64,
    length: u64,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(length as usize);
    read(api, vm, mount, offset, length, &mut out).await?;
    Ok(out)
}
