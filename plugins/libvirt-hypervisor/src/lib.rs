//! A hypervisor on libvirt driving QEMU, over libvirt's remote protocol on one granted TCP
//! port (`libvirtd --listen`, `qemu:///session`). VMs are domains (id: the domain's UUID);
//! a qcow2 file disk is a **virtual disk** (id: its target dev), made by the adapter as a
//! volume of the endpoint's `dir` pool; an NBD network disk is a **mapped LUN**, its source
//! built from the `san` setting and named by the LUN's WWN (also its `<serial>`). Mount
//! points, WWNs, mapping modes and idempotency token keys live in the domain's own
//! `<metadata>` (`<tm:devices xmlns:tm="https://tidemark.dev/libvirt/1">`), so nothing is
//! kept beside the daemon; a domain defined outside Tidemark reports its target devs as
//! mount points and its NBD disks as physically mapped LUNs.
//!
//! libvirt cannot snapshot an NBD disk in the guest's own address space, exactly the
//! physical-RDM situation: `snapshot-disks` of such a device is `unsupported`, naming it.
//!
//! Snapshots of virtual disks are external qcow2 chains the adapter keeps itself
//! ([`snapshots`], [`chain`]); the data path is NBD from a paused proxy domain or the
//! running domain's own QEMU ([`datapath`]). Quiesce (no guest agent), the console and
//! networks answer `unsupported`. Settings: see [`settings`].

mod chain;
mod conn;
mod datapath;
mod settings;
mod snapshots;
mod xml;

use libvirt_rpc::{Domain, codes, flags};
use tidemark_sdk::records::token_key;
use tidemark_sdk::{
    About, AdapterError, AdapterResult, ConsoleOutput, Device, DeviceBacking, DeviceRead,
    DeviceSpec, DeviceWrite, Firmware, Hardware, HostInfo, LunMapping, MappedLun, MappingMode,
    NetworkInfo, NewDisk, PowerState, SnapshotRef, VmInfo, VmSpec,
};

use conn::Conn;

/// The host's naming rules, as `invalid`.
mod names {
    use tidemark_sdk::{AdapterError, AdapterResult};

    pub fn check_wwn(wwn: &str) -> AdapterResult<()> {
        tidemark_names::check_wwn(wwn).map_err(|e| AdapterError::Invalid(e.to_string()))
    }

    pub fn check_mount_point(mount: &str) -> AdapterResult<()> {
        tidemark_names::check_mount_point(mount).map_err(|e| AdapterError::Invalid(e.to_string()))
    }

    pub fn check_mac(mac: &str) -> AdapterResult<()> {
        tidemark_names::check_mac(mac).map_err(|e| AdapterError::Invalid(e.to_string()))
    }
}
use xml::{Definition, Disk, Meta, MetaDevice, Source, esc};

struct LibvirtHypervisor;

tidemark_sdk::manifest!(r#"{"tcp": ["*:*"]}"#);
tidemark_sdk::export_hypervisor!(LibvirtHypervisor);

/// The largest disk: a round 64 TiB.
const MAX_CAPACITY: u64 = 64 << 40;
/// Memory of a new VM whose spec leaves it unknown.
const DEFAULT_MEMORY: u64 = 128 << 20;
/// Disk buses a new disk may be put on.
const BUSES: &[&str] = &["virtio", "sata", "scsi", "ide", "usb"];

fn check_token(token: &str) -> AdapterResult<String> {
    if token.is_empty() {
        return Err(AdapterError::Invalid(
            "idempotency token must not be empty".into(),
        ));
    }
    Ok(token_key(token))
}

fn check_capacity(capacity: u64, mount: &str) -> AdapterResult<()> {
    if capacity == 0 || !capacity.is_multiple_of(512) || capacity > MAX_CAPACITY {
        return Err(AdapterError::Invalid(format!(
            "device at {mount}: capacity {capacity} must be a positive multiple of 512 bytes, \
             at most 64 TiB"
        )));
    }
    Ok(())
}

fn check_bus(bus: &str) -> AdapterResult<()> {
    if BUSES.contains(&bus) {
        Ok(())
    } else {
        Err(AdapterError::Invalid(format!(
            "disk bus {bus:?} is not one this adapter puts disks on ({})",
            BUSES.join(", ")
        )))
    }
}

fn check_vm_name(name: &str) -> AdapterResult<()> {
    if name.trim().is_empty()
        || name.len() > 200
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(AdapterError::Invalid(
            "a VM name must have 1 to 200 characters, not all blank, without '/' or control \
             characters"
                .into(),
        ));
    }
    Ok(())
}

/// The host id this endpoint reports.
fn host_id(c: &mut Conn) -> AdapterResult<String> {
    if let Some(h) = &c.settings.host_name {
        return Ok(h.clone());
    }
    c.client
        .get_hostname()
        .map_err(c.err("reading the hostname"))
}

/// Device ids and mount points in use.
fn mounts(def: &Definition) -> Vec<String> {
    def.disks
        .iter()
        .map(|d| {
            def.meta
                .device(&d.dev)
                .map(|m| m.mount.clone())
                .unwrap_or_else(|| format!("/dev/{}", d.dev))
        })
        .collect()
}

/// The devices of a definition. Capacities: what the metadata says for mapped LUNs; the
/// pools' volumes for file disks (libvirt's block info for files in no pool); for an NBD
/// disk defined outside Tidemark, QEMU's view while the domain runs, else the export's own
/// NBD handshake.
fn devices(c: &mut Conn, dom: &Domain, def: &Definition, on: bool) -> AdapterResult<Vec<Device>> {
    let mut vols = None;
    let mut out = Vec::new();
    for disk in &def.disks {
        let meta = def.meta.device(&disk.dev);
        let mount = meta
            .map(|m| m.mount.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("/dev/{}", disk.dev));
        let known = meta.and_then(|m| m.capacity);
        let (backing, capacity) = match &disk.source {
            Source::Nbd(name, server) => {
                let wwn = meta.and_then(|m| m.wwn.clone()).or_else(|| {
                    [Some(name), disk.serial.as_ref()]
                        .into_iter()
                        .flatten()
                        .find(|w| names::check_wwn(w).is_ok())
                        .cloned()
                });
                let capacity = match known {
                    Some(c) => c,
                    None if on => block_capacity(c, dom, &disk.dev)?,
                    None => nbd_size(c, dom, &disk.dev, name, server.as_ref())?,
                };
                let backing = match wwn {
                    Some(wwn) => DeviceBacking::MappedLun(MappedLun {
                        wwn,
                        mode: meta.and_then(|m| m.mode).unwrap_or(MappingMode::Physical),
                    }),
                    // An NBD disk not named by a WWN: no LUN Tidemark could find on an array.
                    None => DeviceBacking::VirtualDisk(match server {
                        Some((h, p)) => format!("nbd://{h}:{p}/{name}"),
                        None => format!("nbd:{name}"),
                    }),
                };
                (backing, capacity)
            }
            Source::File(path) => {
                if vols.is_none() {
                    vols = Some(c.volumes()?);
                }
                let vol = vols.as_ref().and_then(|v| v.get(path)).cloned();
                let capacity = match vol.map(|v| c.client.storage_vol_get_info(&v)) {
                    Some(Ok(info)) => info.capacity,
                    _ => block_capacity(c, dom, &disk.dev)?,
                };
                (DeviceBacking::VirtualDisk(path.clone()), capacity)
            }
            Source::Other(kind) => (
                DeviceBacking::VirtualDisk(format!("{kind}:{}", disk.dev)),
                match known {
                    Some(c) => c,
                    None => block_capacity(c, dom, &disk.dev)?,
                },
            ),
        };
        let mut labels = Vec::new();
        if let Some(bus) = &disk.bus {
            labels.push(("bus".to_string(), bus.clone()));
        }
        out.push(Device {
            id: disk.dev.clone(),
            backing,
            capacity,
            mount_point: mount,
            shared: false,
            labels,
        });
    }
    Ok(out)
}

/// A disk's capacity as libvirt reports it (`virDomainGetBlockInfo`).
fn block_capacity(c: &mut Conn, dom: &Domain, dev: &str) -> AdapterResult<u64> {
    c.client
        .domain_get_block_info(dom, dev)
        .map(|b| b.capacity)
        .map_err(c.err(&format!("sizing disk {dev} of domain {}", dom.name)))
}

/// The size of NBD export `name` on `server`, from its handshake.
fn nbd_size(
    c: &mut Conn,
    dom: &Domain,
    dev: &str,
    name: &str,
    server: Option<&(String, u16)>,
) -> AdapterResult<u64> {
    let Some((host, port)) = server else {
        return Err(AdapterError::Internal(format!(
            "disk {dev} of domain {} is an NBD disk without a server: its capacity is unknown",
            dom.name
        )));
    };
    let address = format!("{host}:{port}");
    let what = format!(
        "sizing NBD disk {dev} of domain {} (export {name:?} at {address})",
        dom.name
    );
    let stream = tidemark_sdk::net::connect(
        &address,
        c.settings.timeout.min(std::time::Duration::from_secs(10)),
    )
    .map_err(|e| match e {
        AdapterError::Transient(m) => AdapterError::Transient(format!("{what}: {m}")),
        AdapterError::Denied(m) => AdapterError::Denied(format!("{what}: {m}")),
        other => other,
    })?;
    let _ = stream.set_read_timeout(Some(c.settings.timeout));
    let client = nbd_client::Client::connect(stream, name, &[])
        .map_err(|e| AdapterError::Transient(format!("{what}: {e}")))?;
    Ok(client.size())
}

/// A domain as the contract's VM.
fn info(c: &mut Conn, dom: &Domain, host: &str) -> AdapterResult<(VmInfo, Definition)> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    let on = c.is_on(dom)?;
    let power = if on { PowerState::On } else { PowerState::Off };
    let devices = devices(c, dom, &def, on)?;
    let vm = VmInfo {
        id: dom.uuid.to_string(),
        name: dom.name.clone(),
        host_id: host.to_string(),
        power,
        devices,
        hardware: Hardware {
            cpus: def.cpus,
            memory: def.memory,
            firmware: def.firmware,
            nics: def.nics.clone(),
            disk_bus: def.disk_bus(),
            guest_os: def.guest_os.clone(),
        },
    };
    Ok((vm, def))
}

fn get(c: &mut Conn, vm_id: &str) -> AdapterResult<(VmInfo, Definition, Domain, String)> {
    let dom = c.domain(vm_id)?;
    let host = host_id(c)?;
    let (vm, def) = info(c, &dom, &host)?;
    Ok((vm, def, dom, host))
}

/// Deletes `POOL/NAME` (gone already is fine).
fn delete_volume(c: &mut Conn, vol: &str) -> AdapterResult<()> {
    let Some((pool, name)) = vol.split_once('/') else {
        return Ok(());
    };
    let pool = match c.client.storage_pool_lookup_by_name(pool) {
        Ok(p) => p,
        Err(e) if e.is(codes::NO_STORAGE_POOL) => return Ok(()),
        Err(e) => return Err(c.err(&format!("looking up pool {pool}"))(e)),
    };
    match c.client.storage_vol_lookup_by_name(&pool, name) {
        Ok(v) => c
            .client
            .storage_vol_delete(&v, 0)
            .map_err(c.err(&format!("deleting volume {vol}"))),
        Err(e) if e.is(codes::NO_STORAGE_VOL) => Ok(()),
        Err(e) => Err(c.err(&format!("looking up volume {vol}"))(e)),
    }
}

fn nic_xml(nic: &tidemark_sdk::Nic) -> AdapterResult<String> {
    names::check_mac(&nic.mac)?;
    if nic.network.is_empty() {
        return Err(AdapterError::Invalid(format!(
            "NIC {} names no network",
            nic.mac
        )));
    }
    let model = nic
        .model
        .as_ref()
        .map(|m| format!("<model type='{}'/>", esc(m)))
        .unwrap_or_default();
    Ok(format!(
        "<interface type='network'><mac address='{}'/><source network='{}'/>{model}</interface>",
        esc(&nic.mac.to_ascii_lowercase()),
        esc(&nic.network)
    ))
}

/// A domain made by create-vm with token key `key`, if there is one.
fn made_by(c: &mut Conn, key: &str) -> AdapterResult<Option<Domain>> {
    for dom in c.domains()? {
        let text = match c.client.domain_get_xml_desc(&dom, flags::xml::INACTIVE) {
            Ok(t) => t,
            Err(e) if e.is(codes::NO_DOMAIN) => continue,
            Err(e) => return Err(c.err(&format!("reading domain {}", dom.name))(e)),
        };
        if text.contains(key)
            && let Ok(def) = Definition::parse(&dom.name, &text)
            && def.meta.made_by.as_deref() == Some(key)
        {
            return Ok(Some(dom));
        }
    }
    Ok(None)
}

/// Redefines `dom` from `text` (its persistent definition changes; a running domain keeps
/// its live one until it stops).
pub(crate) fn redefine(c: &mut Conn, dom: &Domain, text: &str) -> AdapterResult<()> {
    c.client
        .domain_define_xml(text)
        .map(|_| ())
        .map_err(c.err(&format!("redefining domain {}", dom.name)))
}

/// Target devs of a running domain's live definition (which may still hold a disk the
/// persistent one no longer has): a new disk must not take one of them.
fn live_devs(c: &mut Conn, dom: &Domain) -> AdapterResult<Vec<String>> {
    if !c.is_on(dom)? {
        return Ok(Vec::new());
    }
    Ok(c.live(dom)?.disks.into_iter().map(|d| d.dev).collect())
}

/// The device an earlier call with this token key added (its key is in the metadata).
fn device_made_by(vm: &VmInfo, def: &Definition, key: &str) -> Option<AdapterResult<Device>> {
    def.meta
        .devices
        .iter()
        .find(|m| m.made_by.as_deref() == Some(key))
        .map(|m| known_device(vm, &m.dev).cloned())
}

/// A device the VM has, by id: `not-found` otherwise.
fn known_device<'a>(vm: &'a VmInfo, device_id: &str) -> AdapterResult<&'a Device> {
    vm.devices
        .iter()
        .find(|d| d.id == device_id)
        .ok_or_else(|| {
            AdapterError::NotFound(format!("VM {} has no device {device_id:?}", vm.name))
        })
}

impl tidemark_sdk::Hypervisor for LibvirtHypervisor {
    fn about() -> About {
        About {
            vendor: "Tidemark (libvirt/QEMU)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec!["map-luns".into()],
        }
    }

    fn list_hosts() -> AdapterResult<Vec<HostInfo>> {
        let mut c = Conn::open()?;
        let id = host_id(&mut c)?;
        let caps = c
            .client
            .get_capabilities()
            .map_err(c.err("reading capabilities"))?;
        let (cpus, memory) = host_capacity(&caps);
        Ok(vec![HostInfo {
            id: id.clone(),
            name: id,
            cpus,
            memory,
            free_capacity: None,
        }])
    }

    fn list_vms() -> AdapterResult<Vec<VmInfo>> {
        let mut c = Conn::open()?;
        let host = host_id(&mut c)?;
        let mut out = Vec::new();
        for dom in c.domains()? {
            if dom.name.starts_with(datapath::PROXY_PREFIX) {
                continue;
            }
            match info(&mut c, &dom, &host) {
                Ok((vm, _)) => out.push(vm),
                // Undefined between the listing and now.
                Err(AdapterError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn get_vm(vm_id: String) -> AdapterResult<VmInfo> {
        let mut c = Conn::open()?;
        Ok(get(&mut c, &vm_id)?.0)
    }

    fn create_vm(spec: VmSpec, token: String) -> AdapterResult<VmInfo> {
        let key = check_token(&token)?;
        let mut c = Conn::open()?;
        let host = host_id(&mut c)?;
        if let Some(dom) = made_by(&mut c, &key)? {
            return Ok(info(&mut c, &dom, &host)?.0);
        }
        check_vm_name(&spec.name)?;
        if spec.host_id != host {
            return Err(AdapterError::NotFound(format!(
                "no hypervisor host {:?}: this endpoint has host {host}",
                spec.host_id
            )));
        }
        let hw = &spec.hardware;
        let bus = hw.disk_bus.clone().unwrap_or_else(|| "virtio".into());
        check_bus(&bus)?;
        let cpus = hw.cpus.unwrap_or(1);
        if cpus == 0 || cpus > 64 {
            return Err(AdapterError::Invalid(format!(
                "{cpus} vCPUs: this adapter makes VMs of 1 to 64"
            )));
        }
        let memory = hw.memory.unwrap_or(DEFAULT_MEMORY);
        if !((16 << 20)..=(1 << 40)).contains(&memory) {
            return Err(AdapterError::Invalid(format!(
                "memory of {memory} bytes: this adapter makes VMs of 16 MiB to 1 TiB"
            )));
        }
        let mut seen: Vec<String> = Vec::new();
        for d in &spec.devices {
            let (mount, capacity) = match d {
                DeviceSpec::NewVirtualDisk(n) => (&n.mount_point, n.capacity),
                DeviceSpec::MapLun(m) => {
                    names::check_wwn(&m.lun.wwn)?;
                    (&m.mount_point, m.capacity)
                }
            };
            names::check_mount_point(mount)?;
            check_capacity(capacity, mount)?;
            if seen.contains(mount) {
                return Err(AdapterError::Invalid(format!(
                    "two devices at mount point {mount}"
                )));
            }
            seen.push(mount.clone());
        }
        let mut nics = String::new();
        for nic in &hw.nics {
            nics.push_str(&nic_xml(nic)?);
        }
        let san = if spec
            .devices
            .iter()
            .any(|d| matches!(d, DeviceSpec::MapLun(_)))
        {
            Some(c.settings.san()?)
        } else {
            None
        };
        match c.client.domain_lookup_by_name(&spec.name) {
            Ok(_) => {
                return Err(AdapterError::Conflict(format!(
                    "a VM (domain) named {:?} exists already",
                    spec.name
                )));
            }
            Err(e) if e.is(codes::NO_DOMAIN) => {}
            Err(e) => return Err(c.err("looking up a domain by name")(e)),
        }

        let mut meta = Meta {
            made_by: Some(key.clone()),
            ..Default::default()
        };
        let mut disks = String::new();
        let mut made = Vec::new();
        let empty = Definition::parse(&spec.name, "<domain><devices></devices></domain>")?;
        let mut taken = Vec::new();
        let result = (|| -> AdapterResult<()> {
            for (i, d) in spec.devices.iter().enumerate() {
                let dev = empty.free_dev(&bus, &taken);
                taken.push(dev.clone());
                match d {
                    DeviceSpec::NewVirtualDisk(n) => {
                        let (path, vol) = chain::create_volume(
                            &mut c,
                            &format!("tm-{key}-{i}.qcow2"),
                            n.capacity,
                            None,
                        )?;
                        made.push(vol.clone());
                        disks.push_str(&xml::file_disk(&path, &dev, &bus));
                        meta.devices.push(MetaDevice {
                            dev,
                            mount: n.mount_point.clone(),
                            vol: Some(vol),
                            ..Default::default()
                        });
                    }
                    DeviceSpec::MapLun(m) => {
                        let san = san.as_ref().expect("checked above");
                        disks.push_str(&xml::nbd_disk(&m.lun.wwn, san, &dev, &bus));
                        meta.devices.push(MetaDevice {
                            dev,
                            mount: m.mount_point.clone(),
                            wwn: Some(m.lun.wwn.clone()),
                            mode: Some(m.lun.mode),
                            capacity: Some(m.capacity),
                            ..Default::default()
                        });
                    }
                }
            }
            let mut metadata = meta.to_xml();
            if let Some(os) = &hw.guest_os {
                metadata.push_str(&format!(
                    "<libosinfo:libosinfo xmlns:libosinfo=\"{}\"><libosinfo:os id=\"{}\"/></libosinfo:libosinfo>",
                    xml::OSINFO_NS,
                    esc(os)
                ));
            }
            let firmware = match hw.firmware {
                Some(Firmware::Uefi) => " firmware='efi'",
                _ => "",
            };
            let domain = format!(
                "<domain type='qemu'><name>{name}</name>\
                 <memory unit='KiB'>{kib}</memory><vcpu>{cpus}</vcpu>\
                 <metadata>{metadata}</metadata>\
                 <os{firmware}><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
                 <features><acpi/></features>\
                 <devices>{disks}{nics}<memballoon model='none'/></devices></domain>",
                name = esc(&spec.name),
                kib = memory.div_ceil(1024),
            );
            c.client
                .domain_define_xml(&domain)
                .map_err(c.err(&format!("defining domain {}", spec.name)))?;
            Ok(())
        })();
        if let Err(e) = result {
            for vol in &made {
                if let Err(d) = delete_volume(&mut c, vol) {
                    tidemark_sdk::log::warn(&format!("leaving volume {vol} behind: {d:?}"));
                }
            }
            return Err(e);
        }
        let dom = c
            .client
            .domain_lookup_by_name(&spec.name)
            .map_err(c.err("looking up the new domain"))?;
        tidemark_sdk::log::info(&format!("defined domain {} ({})", dom.name, dom.uuid));
        Ok(info(&mut c, &dom, &host)?.0)
    }

    fn delete_vm(vm_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let dom = c.domain(&vm_id)?;
        if c.is_on(&dom)? {
            return Err(AdapterError::Conflict(format!(
                "VM {} is powered on; power it off first",
                dom.name
            )));
        }
        let text = c.definition(&dom)?;
        let def = Definition::parse(&dom.name, &text)?;
        let mut undefine =
            flags::undefine::SNAPSHOTS_METADATA | flags::undefine::CHECKPOINTS_METADATA;
        if def.firmware == Some(Firmware::Uefi) {
            undefine |= flags::undefine::NVRAM;
        }
        c.client
            .domain_undefine(&dom, undefine)
            .map_err(c.err(&format!("undefining domain {}", dom.name)))?;
        chain::release_domain(&mut c, &def)?;
        tidemark_sdk::log::info(&format!("undefined domain {}", dom.name));
        Ok(())
    }

    fn power_on(vm_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let dom = c.domain(&vm_id)?;
        if c.is_on(&dom)? {
            return Ok(());
        }
        c.client
            .domain_create(&dom)
            .map_err(c.err(&format!("starting domain {}", dom.name)))
    }

    fn power_off(vm_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let dom = c.domain(&vm_id)?;
        if !c.is_on(&dom)? {
            return Ok(());
        }
        // A hard stop: a TCG guest without an OS would never answer an ACPI shutdown.
        match c.client.domain_destroy(&dom) {
            Err(e) if e.is(codes::OPERATION_INVALID) => Ok(()),
            other => other.map_err(c.err(&format!("stopping domain {}", dom.name))),
        }
    }

    fn add_disk(vm_id: String, disk: NewDisk, token: String) -> AdapterResult<Device> {
        let key = check_token(&token)?;
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        if let Some(made) = device_made_by(&vm, &def, &key) {
            return made;
        }
        names::check_mount_point(&disk.mount_point)?;
        check_capacity(disk.capacity, &disk.mount_point)?;
        if mounts(&def).contains(&disk.mount_point) {
            return Err(AdapterError::Conflict(format!(
                "VM {} has a device at {} already",
                vm.name, disk.mount_point
            )));
        }
        let bus = def.disk_bus().unwrap_or_else(|| "virtio".into());
        let dev = def.free_dev(&bus, &live_devs(&mut c, &dom)?);
        let (path, vol) =
            chain::create_volume(&mut c, &format!("tm-{key}.qcow2"), disk.capacity, None)?;
        let disk_xml = xml::file_disk(&path, &dev, &bus);
        let mut meta = def.meta.clone();
        meta.devices.push(MetaDevice {
            dev: dev.clone(),
            mount: disk.mount_point.clone(),
            vol: Some(vol.clone()),
            made_by: Some(key),
            ..Default::default()
        });
        let text = c.definition(&dom)?;
        let def = Definition::parse(&dom.name, &text)?;
        if let Err(e) = redefine(
            &mut c,
            &dom,
            &def.edited(&text, Some(&disk_xml), None, &meta),
        ) {
            let _ = delete_volume(&mut c, &vol);
            return Err(e);
        }
        attach_live(&mut c, &dom, &disk_xml, &format!("disk {dev}"))?;
        let (vm, _, _, _) = get(&mut c, &vm_id)?;
        known_device(&vm, &dev).cloned()
    }

    fn map_lun(vm_id: String, mapping: LunMapping, token: String) -> AdapterResult<Device> {
        let key = check_token(&token)?;
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        if let Some(made) = device_made_by(&vm, &def, &key) {
            return made;
        }
        names::check_wwn(&mapping.lun.wwn)?;
        names::check_mount_point(&mapping.mount_point)?;
        check_capacity(mapping.capacity, &mapping.mount_point)?;
        let san = c.settings.san()?;
        if vm
            .devices
            .iter()
            .any(|d| matches!(&d.backing, DeviceBacking::MappedLun(l) if l.wwn == mapping.lun.wwn))
        {
            return Err(AdapterError::Conflict(format!(
                "LUN {} is mapped to VM {} already",
                mapping.lun.wwn, vm.name
            )));
        }
        if mounts(&def).contains(&mapping.mount_point) {
            return Err(AdapterError::Conflict(format!(
                "VM {} has a device at {} already",
                vm.name, mapping.mount_point
            )));
        }
        let bus = def.disk_bus().unwrap_or_else(|| "virtio".into());
        let dev = def.free_dev(&bus, &live_devs(&mut c, &dom)?);
        let disk_xml = xml::nbd_disk(&mapping.lun.wwn, &san, &dev, &bus);
        let mut meta = def.meta.clone();
        meta.devices.push(MetaDevice {
            dev: dev.clone(),
            mount: mapping.mount_point.clone(),
            wwn: Some(mapping.lun.wwn.clone()),
            mode: Some(mapping.lun.mode),
            capacity: Some(mapping.capacity),
            made_by: Some(key),
            ..Default::default()
        });
        let what = format!("LUN {}", mapping.lun.wwn);
        put_disk(&mut c, &vm_id, &dom, &disk_xml, &meta, &dev, &what)
    }

    fn unmap_lun(vm_id: String, wwn: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        let Some(device) = vm
            .devices
            .iter()
            .find(|d| matches!(&d.backing, DeviceBacking::MappedLun(l) if l.wwn == wwn))
        else {
            return Err(AdapterError::NotFound(format!(
                "LUN {wwn:?} is not mapped to VM {}",
                vm.name
            )));
        };
        let disk = def
            .disk(&device.id)
            .ok_or_else(|| AdapterError::Internal(format!("device {} vanished", device.id)))?;
        let mut meta = def.meta.clone();
        meta.devices.retain(|m| m.dev != device.id);
        let text = c.definition(&dom)?;
        let fresh = Definition::parse(&dom.name, &text)?;
        let range = fresh
            .disk(&disk.dev)
            .map(|d| d.range.clone())
            .ok_or_else(|| {
                AdapterError::Conflict(format!("device {} changed meanwhile", device.id))
            })?;
        redefine(&mut c, &dom, &fresh.edited(&text, None, Some(range), &meta))?;
        if c.is_on(&dom)? {
            tidemark_sdk::log::info(&format!(
                "LUN {wwn} ({}) is out of the definition of domain {}; the running domain keeps \
                 it until it stops (a live detach needs the guest to acknowledge the unplug)",
                device.id, dom.name
            ));
        }
        Ok(())
    }

    fn snapshot_disks(
        vm_id: String,
        device_ids: Vec<String>,
        token: String,
    ) -> AdapterResult<Vec<SnapshotRef>> {
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        if device_ids.is_empty() {
            return Err(AdapterError::Invalid(
                "snapshot-disks needs at least one device".into(),
            ));
        }
        check_token(&token)?;
        let mut wanted = Vec::new();
        for id in &device_ids {
            wanted.push(known_device(&vm, id)?);
        }
        for d in &wanted {
            let nbd = def
                .disk(&d.id)
                .is_some_and(|k| matches!(k.source, Source::Nbd(..)));
            let virtual_mode =
                def.meta.device(&d.id).and_then(|m| m.mode) == Some(MappingMode::Virtual);
            if nbd && !virtual_mode {
                let what = match &d.backing {
                    DeviceBacking::MappedLun(lun) => format!("LUN {} mapped physically", lun.wwn),
                    DeviceBacking::VirtualDisk(source) => format!("the NBD export {source}"),
                };
                return Err(AdapterError::Unsupported(format!(
                    "cannot snapshot device {} ({}) of VM {}: it is {what}, a disk libvirt \
                     cannot snapshot; snapshot the LUN on the array that owns it",
                    d.id, d.mount_point, vm.name
                )));
            }
        }
        let key = token_key(&token);
        let devs: Vec<String> = wanted.iter().map(|d| d.id.clone()).collect();
        snapshots::take(&mut c, &vm, &dom, &devs, &key)
    }

    fn revert_disks(vm_id: String, snapshot_ids: Vec<String>, token: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let (vm, _, dom, _) = get(&mut c, &vm_id)?;
        let key = check_token(&token)?;
        if snapshot_ids.is_empty() {
            return Err(AdapterError::Invalid(
                "revert-disks needs at least one snapshot".into(),
            ));
        }
        snapshots::revert(&mut c, &vm, &dom, &snapshot_ids, &key)
    }

    fn delete_snapshot(vm_id: String, snapshot_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let (vm, _, dom, _) = get(&mut c, &vm_id)?;
        snapshots::delete(&mut c, &vm, &dom, &snapshot_id)
    }

    fn list_snapshots(vm_id: String) -> AdapterResult<Vec<SnapshotRef>> {
        let mut c = Conn::open()?;
        let (_, def, ..) = get(&mut c, &vm_id)?;
        Ok(def.meta.snapshots.iter().map(snapshots::as_ref).collect())
    }

    fn attach_snapshot(
        vm_id: String,
        source_vm_id: String,
        snapshot_id: String,
        mount_point: String,
        token: String,
    ) -> AdapterResult<Device> {
        let key = check_token(&token)?;
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        if let Some(made) = device_made_by(&vm, &def, &key) {
            return made;
        }
        let (source, source_def, ..) = get(&mut c, &source_vm_id)?;
        let snap = source_def
            .meta
            .snapshot(&snapshot_id)
            .cloned()
            .ok_or_else(|| no_snapshot(&source, &snapshot_id))?;
        names::check_mount_point(&mount_point)?;
        if mounts(&def).contains(&mount_point) {
            return Err(AdapterError::Conflict(format!(
                "VM {} has a device at {mount_point} already",
                vm.name
            )));
        }
        let bus = def.disk_bus().unwrap_or_else(|| "virtio".into());
        let dev = def.free_dev(&bus, &live_devs(&mut c, &dom)?);
        let disk_xml = xml::file_disk_with(&snap.layer, &dev, &bus, "<readonly/>");
        let mut meta = def.meta.clone();
        meta.devices.push(MetaDevice {
            dev: dev.clone(),
            mount: mount_point,
            made_by: Some(key),
            ..Default::default()
        });
        let what = format!("snapshot {snapshot_id}");
        put_disk(&mut c, &vm_id, &dom, &disk_xml, &meta, &dev, &what)
    }

    fn detach_disk(vm_id: String, device_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        known_device(&vm, &device_id)?;
        let text = c.definition(&dom)?;
        let fresh = Definition::parse(&dom.name, &text)?;
        let disk = fresh.disk(&device_id).cloned().ok_or_else(|| {
            AdapterError::Conflict(format!("device {device_id} changed meanwhile"))
        })?;
        let own = def.meta.device(&device_id).is_some_and(|m| m.vol.is_some());
        let mut meta = fresh.meta.clone();
        meta.devices.retain(|m| m.dev != device_id);
        // The disk's snapshots go with it.
        let mut released: Vec<String> = Vec::new();
        meta.snapshots.retain(|s| {
            let mine = s.dev == device_id;
            if mine {
                released.push(s.layer.clone());
            }
            !mine
        });
        if own && let Source::File(p) = &disk.source {
            released.push(p.clone());
        }
        redefine(
            &mut c,
            &dom,
            &fresh.edited(&text, None, Some(disk.range.clone()), &meta),
        )?;
        if vm.power == PowerState::On {
            tidemark_sdk::log::info(&format!(
                "device {device_id} is out of the definition of domain {}; the running domain \
                 keeps it until it stops (a live detach needs the guest to acknowledge it)",
                dom.name
            ));
            return Ok(());
        }
        chain::sweep(&mut c, &released)
    }

    fn open_reader(
        vm_id: String,
        device_id: String,
        snapshot_id: Option<String>,
    ) -> AdapterResult<Box<dyn DeviceRead>> {
        let mut c = Conn::open()?;
        let (vm, def, dom, _) = get(&mut c, &vm_id)?;
        known_device(&vm, &device_id)?;
        let disk = def
            .disk(&device_id)
            .ok_or_else(|| AdapterError::Internal(format!("device {device_id} vanished")))?;
        let snaps = def.meta.snapshots.clone();
        // (image, libvirt index of the live source when read through the running domain)
        let (path, running) = match (&disk.source, snapshot_id) {
            (Source::Nbd(name, server), None) => {
                let (address, export) = nbd_target(&vm, &device_id, name, server.as_ref())?;
                let target = datapath::ReadTarget::Nbd(address, export);
                return Ok(Box::new(datapath::DiskReader::open(
                    c,
                    target,
                    Vec::new(),
                    snaps,
                    &device_id,
                )?));
            }
            (Source::File(_), Some(id)) => {
                let snap = def
                    .meta
                    .snapshot(&id)
                    .filter(|s| s.dev == device_id)
                    .ok_or_else(|| no_snapshot(&vm, &id))?;
                (snap.layer.clone(), None)
            }
            (_, Some(id)) => return Err(no_snapshot(&vm, &id)),
            (Source::File(p), None) if vm.power == PowerState::On => {
                let live = c.live(&dom)?;
                match live.disk(&device_id) {
                    Some(Disk {
                        source: Source::File(p),
                        index: Some(index),
                        ..
                    }) => (p.clone(), Some(*index)),
                    _ => {
                        return Err(AdapterError::Internal(format!(
                            "the live definition of running VM {} gives disk {device_id} no \
                             file source with an index (libvirt without -blockdev?)",
                            vm.name
                        )));
                    }
                }
            }
            (Source::File(p), None) => (p.clone(), None),
            (Source::Other(kind), None) => {
                return Err(AdapterError::Unsupported(format!(
                    "device {device_id} of VM {} is a {kind} disk: this adapter reads qcow2 \
                     files and NBD disks",
                    vm.name
                )));
            }
        };
        let chain = chain::chain_of(&mut c, &path)?;
        let target = match running {
            Some(index) => datapath::ReadTarget::Running(dom, index),
            None => datapath::ReadTarget::Image(&path),
        };
        Ok(Box::new(datapath::DiskReader::open(
            c, target, chain, snaps, &device_id,
        )?))
    }

    fn open_writer(vm_id: String, device_id: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        let mut c = Conn::open()?;
        let (vm, def, ..) = get(&mut c, &vm_id)?;
        known_device(&vm, &device_id)?;
        let disk = def
            .disk(&device_id)
            .ok_or_else(|| AdapterError::Internal(format!("device {device_id} vanished")))?;
        if disk.readonly {
            return Err(AdapterError::Conflict(format!(
                "device {device_id} of VM {} is read-only (an attached snapshot)",
                vm.name
            )));
        }
        match &disk.source {
            Source::Nbd(name, server) => {
                let (address, export) = nbd_target(&vm, &device_id, name, server.as_ref())?;
                Ok(Box::new(datapath::DiskWriter::lun(
                    &address,
                    &export,
                    c.settings.timeout,
                )?))
            }
            Source::File(p) => {
                if vm.power == PowerState::On {
                    return Err(AdapterError::Conflict(format!(
                        "VM {} is powered on: its disk {device_id} is written by the guest \
                         alone; power it off first",
                        vm.name
                    )));
                }
                let what = format!("disk {device_id} of VM {}", vm.name);
                let mut path = p.clone();
                let mut conn = c;
                // A snapshot or revert may move the disk between reading its source and
                // opening it; once the writer holds the image, none can. Open again on
                // the image it moved to (a few times: each move is a finished call).
                for _ in 0..8 {
                    let writer = datapath::DiskWriter::image(conn, &path, what.clone())?;
                    conn = Conn::open()?;
                    let (_, now, ..) = get(&mut conn, &vm_id)?;
                    match now.disk(&device_id).map(|d| &d.source) {
                        Some(Source::File(q)) if *q == path => return Ok(Box::new(writer)),
                        Some(Source::File(q)) => path = q.clone(),
                        _ => break,
                    }
                }
                Err(AdapterError::Transient(format!(
                    "disk {device_id} of VM {} kept moving to new images while its writer \
                     opened (snapshots or reverts); open it again",
                    vm.name
                )))
            }
            Source::Other(kind) => Err(AdapterError::Unsupported(format!(
                "device {device_id} of VM {} is a {kind} disk: this adapter writes qcow2 files \
                 and NBD disks",
                vm.name
            ))),
        }
    }

    /// Holds the guest's writes by pausing its vCPUs (no guest agent here): crash-consistent
    /// across the VM's disks and its LUNs on an array, not application-consistent.
    fn quiesce(vm_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let dom = c.domain(&vm_id)?;
        use libvirt_rpc::DomainState as S;
        let (state, _) = c
            .client
            .domain_get_state(&dom)
            .map_err(c.err(&format!("reading the state of domain {}", dom.name)))?;
        if state != S::Running && state != S::Blocked {
            // Off, or paused by someone else: nothing writes, and nothing is ours to resume.
            return Ok(());
        }
        // Marked first: a crash between the two leaves a mark on a running domain, which
        // unquiesce clears, never a paused domain nobody resumes.
        set_held(&mut c, &dom, true)?;
        match c.client.domain_suspend(&dom) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = set_held(&mut c, &dom, false);
                Err(c.err(&format!("pausing domain {}", dom.name))(e))
            }
        }
    }

    fn unquiesce(vm_id: String) -> AdapterResult<()> {
        let mut c = Conn::open()?;
        let dom = c.domain(&vm_id)?;
        let def = Definition::parse(&dom.name, &c.definition(&dom)?)?;
        if !def.meta.held {
            return Ok(());
        }
        match c.client.domain_resume(&dom) {
            // Not paused (any more): nothing to resume.
            Err(e) if e.is(codes::OPERATION_INVALID) => {}
            other => other.map_err(c.err(&format!("resuming domain {}", dom.name)))?,
        }
        set_held(&mut c, &dom, false)
    }

    fn read_console(vm_id: String, from: u64) -> AdapterResult<ConsoleOutput> {
        let _ = from;
        Err(AdapterError::Unsupported(format!(
            "the console of VM {vm_id}: not read by this adapter"
        )))
    }

    fn create_network(name: String, isolated: bool, token: String) -> AdapterResult<NetworkInfo> {
        let _ = (isolated, token);
        Err(AdapterError::Unsupported(format!(
            "create-network {name}: this adapter does not manage libvirt networks"
        )))
    }

    fn delete_network(network_id: String) -> AdapterResult<()> {
        Err(AdapterError::Unsupported(format!(
            "delete-network {network_id}: this adapter does not manage libvirt networks"
        )))
    }
}

/// Records in the metadata whether the adapter holds the domain paused.
fn set_held(c: &mut Conn, dom: &Domain, held: bool) -> AdapterResult<()> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    let mut meta = def.meta.clone();
    meta.held = held;
    redefine(c, dom, &def.with_sources(&text, &[], &meta))
}

/// A snapshot id the VM does not have.
pub(crate) fn no_snapshot(vm: &VmInfo, id: &str) -> AdapterError {
    AdapterError::NotFound(format!("VM {} has no snapshot {id:?}", vm.name))
}

/// Where an NBD disk's bytes are: its server (or the SAN's) and export.
fn nbd_target(
    vm: &VmInfo,
    dev: &str,
    name: &str,
    server: Option<&(String, u16)>,
) -> AdapterResult<(String, String)> {
    match server {
        Some((h, p)) => Ok((format!("{h}:{p}"), name.to_string())),
        None => Err(AdapterError::Unsupported(format!(
            "device {dev} of VM {} is an NBD disk without a server",
            vm.name
        ))),
    }
}

/// Puts `disk_xml` (target `dev`) into the domain's definition with `meta`, and into the
/// running domain too: the device as the VM reports it now.
fn put_disk(
    c: &mut Conn,
    vm_id: &str,
    dom: &Domain,
    disk_xml: &str,
    meta: &Meta,
    dev: &str,
    what: &str,
) -> AdapterResult<Device> {
    let text = c.definition(dom)?;
    let def = Definition::parse(&dom.name, &text)?;
    redefine(c, dom, &def.edited(&text, Some(disk_xml), None, meta))?;
    attach_live(c, dom, disk_xml, what)?;
    let (vm, ..) = get(c, vm_id)?;
    known_device(&vm, dev).cloned()
}

/// Attaches `disk_xml` to a running domain too (its definition has it already); a refusal
/// is logged, the disk appearing when the domain next starts.
fn attach_live(c: &mut Conn, dom: &Domain, disk_xml: &str, what: &str) -> AdapterResult<()> {
    if c.is_on(dom)?
        && let Err(e) = c
            .client
            .domain_attach_device(dom, disk_xml, flags::device::LIVE)
    {
        tidemark_sdk::log::warn(&format!(
            "{what} is in the definition of running domain {} but did not attach live ({e}); \
             it appears when the domain next starts",
            dom.name
        ));
    }
    Ok(())
}

/// Logical CPUs and memory (bytes) of the host from its capabilities' NUMA topology.
fn host_capacity(caps: &str) -> (Option<u32>, Option<u64>) {
    let Ok(doc) = roxmltree::Document::parse(caps) else {
        return (None, None);
    };
    let mut cpus: Option<u32> = None;
    let mut memory: Option<u64> = None;
    for cell in doc
        .descendants()
        .filter(|n| n.has_tag_name("cell") && n.parent().is_some_and(|p| p.has_tag_name("cells")))
    {
        for c in cell.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "memory" => {
                    let kib = c.text().and_then(|t| t.trim().parse::<u64>().ok());
                    let factor = match c.attribute("unit").unwrap_or("KiB") {
                        "KiB" | "k" => 1024,
                        "MiB" | "M" => 1 << 20,
                        "GiB" | "G" => 1 << 30,
                        "b" | "bytes" => 1,
                        _ => 0,
                    };
                    if let Some(k) = kib
                        && factor > 0
                    {
                        memory = Some(memory.unwrap_or(0) + k * factor);
                    }
                }
                "cpus" => {
                    if let Some(n) = c.attribute("num").and_then(|n| n.parse::<u32>().ok()) {
                        cpus = Some(cpus.unwrap_or(0) + n);
                    }
                }
                _ => {}
            }
        }
    }
    (cpus, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_capacity_sums_the_numa_cells_and_leaves_the_unknown_unknown() {
        let caps = "<capabilities><host><topology><cells num='2'>\
            <cell id='0'><memory unit='KiB'>1024</memory><cpus num='2'/></cell>\
            <cell id='1'><memory unit='KiB'>2048</memory><cpus num='4'/></cell>\
            </cells></topology></host></capabilities>";
        assert_eq!(host_capacity(caps), (Some(6), Some(3 << 20)));
        assert_eq!(
            host_capacity("<capabilities><host/></capabilities>"),
            (None, None)
        );
        assert_eq!(host_capacity("not xml"), (None, None));
    }

    #[test]
    fn garbage_xml_is_internal_naming_the_domain() {
        for garbage in ["", "<domain", "<pool/>", "<domain><name>x</name></domain>"] {
            match Definition::parse("app7", garbage) {
                Err(AdapterError::Internal(m)) => assert!(m.contains("app7"), "{m}"),
                other => panic!("{garbage:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn libvirt_errors_map_to_the_contract() {
        let remote = |code| {
            libvirt_rpc::Error::from(libvirt_rpc::RemoteError {
                code,
                domain: 10,
                message: Some("m".into()),
                level: 2,
                dom: None,
                str1: None,
                str2: None,
                str3: None,
                int1: 0,
                int2: 0,
                net: None,
            })
        };
        let map = |e| conn::map_error(e, "127.0.0.1:1", "doing");
        assert!(matches!(
            map(remote(codes::NO_DOMAIN)),
            AdapterError::NotFound(_)
        ));
        assert!(matches!(
            map(remote(codes::OPERATION_INVALID)),
            AdapterError::Conflict(_)
        ));
        assert!(matches!(
            map(remote(codes::INTERNAL_ERROR)),
            AdapterError::Internal(_)
        ));
        let io = libvirt_rpc::Error::Io(std::io::Error::other("reset"));
        match map(io) {
            AdapterError::Transient(m) => assert!(m.contains("127.0.0.1:1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
