//! The libvirt-hypervisor adapter against a real private libvirtd 9.0 with QEMU 10 under
//! TCG (tests/e2e/libvirtd.rs), through the real binary: `endpoint add`, `inventory`,
//! `endpoint test`, and the conformance suite (`adapter test`) for the calls the CLI has
//! no verb for: lifecycle, disks, LUN mappings, snapshots (external chains), revert, the
//! data path (NBD from paused proxy domains).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Lab;
use crate::libvirtd::Libvirtd;

const WASM: &str = env!("TIDEMARK_LIBVIRT_HYPERVISOR_WASM");

/// NBD ports of the data path per endpoint (one per open reader or writer).
const DATA_PORTS: usize = 4;

/// `--setting`/`--grant` pairs for an endpoint on `daemon`, its pool `tidemark` in `pool`,
/// with [`DATA_PORTS`] fresh ports for the data path.
pub fn args(daemon: &Libvirtd, pool: &Path) -> Vec<String> {
    args_via(daemon.port(), pool)
}

/// [`args`], reaching libvirtd at `libvirt` (a fault proxy's port, or the daemon's).
pub fn args_via(libvirt: u16, pool: &Path) -> Vec<String> {
    let ports: Vec<u16> = (0..DATA_PORTS).map(|_| crate::daemons::port()).collect();
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut out = vec![
        "--setting".into(),
        format!("libvirt=127.0.0.1:{libvirt}"),
        "--setting".into(),
        "pool=tidemark".into(),
        "--setting".into(),
        format!("pool-path={}", pool.display()),
        "--setting".into(),
        "san=nbd://127.0.0.1:1".into(),
        "--grant".into(),
        format!("tcp=127.0.0.1:{libvirt}"),
        "--setting".into(),
        format!("nbd=127.0.0.1:{}", list.join(",")),
    ];
    for p in ports {
        out.extend(["--grant".into(), format!("tcp=127.0.0.1:{p}")]);
    }
    out
}

/// A lab with the adapter added as `libvirt` and endpoint `name` with `args`.
fn lab_with_endpoint(name: &str, args: &[String]) -> Lab {
    let lab = Lab::empty();
    lab.ok(&["adapter", "add", WASM, "--name", "libvirt"]);
    let mut add: Vec<&str> = vec!["endpoint", "add", name, "--adapter", "libvirt"];
    add.extend(args.iter().map(String::as_str));
    lab.ok(&add);
    lab
}

/// The WWN the outside domain's NBD disk is exported under.
const LUN: &str = "naa.60014051234567890abcdef012345678";

/// A domain as an administrator would define it, outside Tidemark: a qcow2 disk in a pool
/// of its own, an NBD disk, a NIC.
fn outside_domain(qemu: &Path, disk: &Path, loose: &Path, nbd_port: u16) -> String {
    format!(
        "<domain type='qemu'>\
           <name>outside</name>\
           <memory unit='MiB'>96</memory>\
           <vcpu>2</vcpu>\
           <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
           <features><acpi/></features>\
           <devices>\
             <emulator>{qemu}</emulator>\
             <disk type='file' device='disk'>\
               <driver name='qemu' type='qcow2'/>\
               <source file='{disk}'/>\
               <target dev='vda' bus='virtio'/>\
             </disk>\
             <disk type='network' device='disk'>\
               <driver name='qemu' type='raw'/>\
               <source protocol='nbd' name='{LUN}'><host name='127.0.0.1' port='{nbd_port}'/></source>\
               <target dev='vdb' bus='virtio'/>\
               <serial>{LUN}</serial>\
             </disk>\
             <disk type='file' device='disk'>\
               <driver name='qemu' type='qcow2'/>\
               <source file='{loose}'/>\
               <target dev='vdc' bus='virtio'/>\
             </disk>\
             <interface type='network'>\
               <mac address='52:54:00:12:34:56'/>\
               <source network='default'/>\
               <model type='virtio'/>\
             </interface>\
             <memballoon model='none'/>\
           </devices>\
         </domain>",
        qemu = qemu.display(),
        disk = disk.display(),
        loose = loose.display(),
    )
}

#[test]
fn a_domain_defined_outside_tidemark_shows_in_inventory_with_its_devices_and_hardware() {
    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    // The administrator's own pool, holding the domain's qcow2 disk.
    let images = daemon.make_dir("images");
    let disk = images.join("outside.qcow2");
    daemon.qcow2(&disk, "16M");
    // A disk in no pool at all (sized through libvirt's block info).
    let loose = daemon.make_dir("loose").join("loose.qcow2");
    daemon.qcow2(&loose, "8M");
    // The SAN: qemu-nbd exporting a 32 MiB image under the LUN's WWN.
    let lun = images.join("lun.qcow2");
    daemon.qcow2(&lun, "32M");
    let nbd_port = crate::daemons::port();
    let Some(qemu_nbd) = crate::daemons::program("qemu-nbd") else {
        return;
    };
    let mut command = crate::daemons::command(&qemu_nbd);
    command
        .args(["-t", "-f", "qcow2", "-b", "127.0.0.1", "-x", LUN, "-p"])
        .arg(nbd_port.to_string())
        .arg(&lun)
        .stdout(std::process::Stdio::null());
    let _nbd = crate::daemons::Daemon::start(command, "qemu-nbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", nbd_port)).is_err() {
        assert!(Instant::now() < deadline, "qemu-nbd did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = daemon.connect();
    let pool = client
        .storage_pool_define_xml(
            &format!(
                "<pool type='dir'><name>images</name><target><path>{}</path></target></pool>",
                images.display()
            ),
            0,
        )
        .unwrap();
    client.storage_pool_create(&pool, 0).unwrap();
    let dom = client
        .domain_define_xml(&outside_domain(daemon.qemu(), &disk, &loose, nbd_port))
        .unwrap();

    let mut endpoint = args(&daemon, &daemon.make_dir("pool"));
    endpoint.extend(["--grant".into(), format!("tcp=127.0.0.1:{nbd_port}")]);
    let lab = lab_with_endpoint("lv", &endpoint);
    let (ok, error, _) = lab.endpoint_test("lv");
    assert!(ok, "{error}");
    let inventory = lab.ok(&["inventory", "--endpoint", "lv"]);
    eprintln!("{inventory:#}");
    let endpoint = &inventory[0];
    assert_eq!(endpoint["endpoint"], "lv", "{inventory:#}");
    assert_eq!(endpoint["kind"], "hypervisor", "{inventory:#}");
    let hostname = client.get_hostname().unwrap();
    let host = &endpoint["hosts"][0];
    assert_eq!(host["id"], hostname, "{host:#}");
    assert!(host["cpus"].as_u64().unwrap() >= 1, "{host:#}");
    assert!(host["memory"].as_u64().unwrap() >= 1 << 30, "{host:#}");
    let vm = endpoint["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "outside")
        .unwrap_or_else(|| panic!("no domain 'outside' in {inventory:#}"));
    assert_eq!(vm["id"], dom.uuid.to_string(), "{vm:#}");
    assert_eq!(vm["host_id"], hostname, "{vm:#}");
    assert_eq!(vm["power"], "Off", "{vm:#}");
    let hw = &vm["hardware"];
    assert_eq!(hw["cpus"], 2, "{hw:#}");
    assert_eq!(hw["memory"], 96u64 << 20, "{hw:#}");
    assert_eq!(hw["firmware"], "bios", "{hw:#}");
    assert_eq!(hw["disk_bus"], "virtio", "{hw:#}");
    assert!(
        hw.get("guest_os").is_none_or(Value::is_null),
        "never invented: {hw:#}"
    );
    let nics = hw["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "{hw:#}");
    assert_eq!(nics[0]["mac"], "52:54:00:12:34:56");
    assert_eq!(nics[0]["network"], "default");
    assert_eq!(nics[0]["model"], "virtio");

    let devices: BTreeMap<&str, &Value> = vm["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d))
        .collect();
    assert_eq!(devices.len(), 3, "{vm:#}");
    let vdc = devices["vdc"];
    assert_eq!(vdc["capacity"], 8u64 << 20, "{vdc:#}");
    assert_eq!(vdc["mount_point"], "/dev/vdc", "{vdc:#}");
    let vda = devices["vda"];
    assert_eq!(vda["mount_point"], "/dev/vda", "{vda:#}");
    assert_eq!(vda["capacity"], 16u64 << 20, "{vda:#}");
    assert_eq!(
        vda["backing"]["VirtualDisk"],
        disk.display().to_string(),
        "{vda:#}"
    );
    let vdb = devices["vdb"];
    assert_eq!(vdb["mount_point"], "/dev/vdb", "{vdb:#}");
    assert_eq!(vdb["capacity"], 32u64 << 20, "{vdb:#}");
    assert_eq!(
        vdb["backing"]["MappedLun"],
        serde_json::json!({"wwn": LUN, "mode": "physical"}),
        "{vdb:#}"
    );

    // Running (the NIC on user networking: the session daemon has no network 'default'):
    // power on, the NBD disk sized by QEMU now, the same devices.
    let xml = outside_domain(daemon.qemu(), &disk, &loose, nbd_port)
        .replace("<interface type='network'>", "<interface type='user'>");
    let xml = xml.replace("<source network='default'/>", "").replace(
        "<name>outside</name>",
        &format!("<name>outside</name><uuid>{}</uuid>", dom.uuid),
    );
    client.domain_define_xml(&xml).unwrap();
    client.domain_create(&dom).unwrap();
    let inventory = lab.ok(&["inventory", "--endpoint", "lv"]);
    let vm = &inventory[0]["vms"][0];
    assert_eq!(vm["power"], "On", "{vm:#}");
    let nic = &vm["hardware"]["nics"][0];
    assert_eq!(nic["network"], "user", "{nic:#}");
    let capacities: Vec<&Value> = vm["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["capacity"])
        .collect();
    assert_eq!(capacities, [16u64 << 20, 32 << 20, 8 << 20], "{vm:#}");
    client.domain_destroy(&dom).unwrap();
    client.connect_close().unwrap();
    eprintln!("outside-domain test: {:?}", started.elapsed());
}

/// `adapter test` of the adapter with `args`: exit code and report.
fn suite(lab: &Lab, args: &[String]) -> (Option<i32>, Value) {
    let mut all = vec![WASM];
    all.extend(args.iter().map(String::as_str));
    lab.adapter_test(&all)
}

#[test]
fn bad_settings_and_a_daemon_that_is_down_are_clear_errors_naming_the_endpoint() {
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let limit = Duration::from_secs(30);
    let pool = daemon.make_dir("pool");

    // A malformed address: invalid, naming the setting.
    let lab = lab_with_endpoint(
        "lv-bad",
        &[
            "--setting".into(),
            "libvirt=nowhere".into(),
            "--grant".into(),
            format!("tcp=127.0.0.1:{}", daemon.port()),
        ],
    );
    let (ok, error, took) = lab.endpoint_test("lv-bad");
    eprintln!("malformed address: {error}");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(
        error.contains("lv-bad") && error.contains("'libvirt'"),
        "{error}"
    );

    // No address at all.
    let lab = lab_with_endpoint("lv-none", &["--setting".into(), "pool=x".into()]);
    let (ok, error, _) = lab.endpoint_test("lv-none");
    eprintln!("no address: {error}");
    assert!(!ok, "{error}");
    assert!(
        error.contains("lv-none") && error.contains("'libvirt'"),
        "{error}"
    );

    // A port not granted to the endpoint: the sandbox refuses it.
    let lab = lab_with_endpoint(
        "lv-grant",
        &[
            "--setting".into(),
            format!("libvirt=127.0.0.1:{}", daemon.port()),
        ],
    );
    let (ok, error, _) = lab.endpoint_test("lv-grant");
    eprintln!("not granted: {error}");
    assert!(!ok, "{error}");
    assert!(error.contains("lv-grant"), "{error}");

    // A pool that does not exist and no `pool-path` to define it: the creating checks
    // fail naming both settings; nothing is made.
    let mut no_pool = args(&daemon, &pool);
    no_pool.retain(|a| !a.starts_with("pool-path="));
    let at = no_pool.iter().position(|a| a == "pool=tidemark").unwrap();
    no_pool[at] = "pool=nope".into();
    no_pool.remove(at + 1); // the dangling --setting of pool-path
    let (code, report) = suite(&Lab::empty(), &no_pool);
    assert_ne!(code, Some(0));
    let create = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "h.basic.create")
        .unwrap();
    let reason = create["reason"].to_string();
    eprintln!("no pool: {reason}");
    assert!(
        reason.contains("'pool'") && reason.contains("'pool-path'") && reason.contains("nope"),
        "{create:#}"
    );
    assert!(daemon.connect().list_all_domains(0).unwrap().is_empty());

    // A working endpoint, then the daemon goes away.
    let lab = lab_with_endpoint("lv", &args(&daemon, &pool));
    let (ok, error, _) = lab.endpoint_test("lv");
    assert!(ok, "{error}");
    let port = daemon.port();
    drop(daemon);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let (ok, error, took) = lab.endpoint_test("lv");
    eprintln!("daemon down ({took:?}): {error}");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(
        error.contains("lv") && error.contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
    let out = lab.run(&["inventory", "--endpoint", "lv"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

/// The conformance suite with the qsd array beside the hypervisor (its NBD server the
/// SAN): every check, mapped LUNs included, passes, and nothing is left on either daemon.
#[test]
fn every_conformance_check_passes_with_the_qsd_array_as_the_san_and_nothing_is_left() {
    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let Some(qsd) = crate::qsd_array::Qsd::start() else {
        return;
    };
    let lab = Lab::empty();
    qsd.add_endpoint(&lab);
    let pool_dir = daemon.make_dir("pool");
    let mut all = args(&daemon, &pool_dir);
    let san = all
        .iter_mut()
        .find(|a| a.starts_with("san="))
        .expect("a san setting");
    *san = format!("san=nbd://127.0.0.1:{}", qsd.nbd);
    all.extend([
        "--grant".into(),
        format!("tcp=127.0.0.1:{}", qsd.nbd),
        "--array".into(),
        "qsd".into(),
    ]);
    let (code, report) = suite(&lab, &all);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut missed = Vec::new();
    let mut slowest: Vec<(u64, &str)> = Vec::new();
    for c in report["checks"].as_array().unwrap() {
        let (id, outcome) = (c["id"].as_str().unwrap(), c["outcome"].as_str().unwrap());
        *tally.entry(outcome).or_default() += 1;
        slowest.push((c["ms"].as_u64().unwrap_or(0), id));
        if outcome != "passed" {
            missed.push(format!("{id}: {outcome} {}", c["reason"]));
        }
    }
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    eprintln!(
        "with --array: exit {code:?}, {tally:?}; slowest {:?}",
        &slowest[..5]
    );
    assert!(missed.is_empty(), "checks not passed: {missed:#?}");
    assert_eq!(code, Some(0), "adapter test exit code");

    // Nothing left: no domain (proxies included), no volume or file in the pool, no qsd
    // image.
    let mut client = daemon.connect();
    assert!(client.list_all_domains(0).unwrap().is_empty());
    let pool = client.storage_pool_lookup_by_name("tidemark").unwrap();
    client.storage_pool_refresh(&pool).unwrap();
    let left = client.list_all_volumes(&pool).unwrap();
    assert!(left.is_empty(), "volumes left behind: {left:?}");
    let files: Vec<_> = std::fs::read_dir(&pool_dir).unwrap().flatten().collect();
    assert!(files.is_empty(), "files left behind: {files:?}");
    assert!(qsd.images_left().is_empty(), "{:?}", qsd.images_left());
    eprintln!("conformance with the array: {:?}", started.elapsed());
}

/// qemu-nbd exporting a fresh `size` qcow2 under `name` on a new port: the SAN's stand-in.
fn nbd_export(daemon: &Libvirtd, name: &str, size: &str) -> Option<(crate::daemons::Daemon, u16)> {
    let qemu_nbd = crate::daemons::program("qemu-nbd")?;
    let image = daemon.make_dir("san").join(format!("{name}.qcow2"));
    daemon.qcow2(&image, size);
    let port = crate::daemons::port();
    let mut command = crate::daemons::command(&qemu_nbd);
    command
        .args([
            "-t",
            "-e",
            "4",
            "-f",
            "qcow2",
            "-b",
            "127.0.0.1",
            "-x",
            name,
            "-p",
        ])
        .arg(port.to_string())
        .arg(&image)
        .stdout(std::process::Stdio::null());
    let server = crate::daemons::Daemon::start(command, "qemu-nbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "qemu-nbd did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, port))
}

#[test]
fn the_engine_creates_runs_grows_maps_unmaps_and_deletes_a_domain() {
    use tidemark::model::{
        DeviceBacking, DeviceSpec, Hardware, LunMapping, MappedLun, MappingMode, NewDisk,
        PowerState, VmSpec,
    };

    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let wwn = "naa.60014059876543210fedcba987654321";
    let Some((_san, san_port)) = nbd_export(&daemon, wwn, "32M") else {
        return;
    };
    let pool_dir = daemon.make_dir("pool");
    let mut endpoint = args(&daemon, &pool_dir);
    let san = endpoint.iter_mut().find(|a| a.starts_with("san=")).unwrap();
    *san = format!("san=nbd://127.0.0.1:{san_port}");
    let lab = lab_with_endpoint("lv", &endpoint);
    let mut client = daemon.connect();
    let host = client.get_hostname().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tidemark::data_dir::DataDir::open(lab.dir.path())
            .await
            .unwrap();
        let mut h = dir.engine.endpoints.hypervisor("lv").await.unwrap();
        let spec = VmSpec {
            name: "made".into(),
            host_id: host.clone(),
            devices: vec![
                DeviceSpec::NewVirtualDisk(NewDisk {
                    capacity: 8 << 20,
                    mount_point: "/".into(),
                }),
                DeviceSpec::MapLun(LunMapping {
                    lun: MappedLun {
                        wwn: wwn.into(),
                        mode: MappingMode::Physical,
                    },
                    capacity: 32 << 20,
                    mount_point: "/san".into(),
                }),
            ],
            hardware: Hardware {
                cpus: Some(2),
                memory: Some(96 << 20),
                guest_os: Some("http://debian.org/debian/12".into()),
                ..Default::default()
            },
        };
        let vm = h.create_vm(&spec, "tok-1").await.unwrap();
        assert_eq!(h.create_vm(&spec, "tok-1").await.unwrap(), vm, "same token");
        assert_eq!(vm.power, PowerState::Off);
        assert_eq!(vm.hardware.cpus, Some(2));
        assert_eq!(vm.hardware.memory, Some(96 << 20));
        assert_eq!(vm.hardware.disk_bus.as_deref(), Some("virtio"));
        assert_eq!(
            vm.hardware.guest_os.as_deref(),
            Some("http://debian.org/debian/12")
        );
        let mounts: Vec<(&str, u64)> = vm
            .devices
            .iter()
            .map(|d| (d.mount_point.as_str(), d.capacity))
            .collect();
        assert_eq!(mounts, [("/", 8 << 20), ("/san", 32 << 20)], "{vm:#?}");

        // What libvirt holds: a TCG domain with ACPI, no graphics, the metadata, the serial.
        let dom = client.domain_lookup_by_name("made").unwrap();
        let xml = client.domain_get_xml_desc(&dom, 0).unwrap();
        for want in [
            "<domain type='qemu'",
            "<acpi/>",
            "https://tidemark.dev/libvirt/1",
            &format!("<serial>{wwn}</serial>"),
            &format!("port='{san_port}'"),
        ] {
            assert!(xml.contains(want), "no {want} in {xml}");
        }
        assert!(!xml.contains("<graphics"), "{xml}");

        // Running: the LUN's bytes come from the SAN; a disk added and a LUN mapped go in
        // live; an unmapped LUN leaves the definition and stays live until the stop.
        h.power_on(&vm.id).await.unwrap();
        assert_eq!(h.get_vm(&vm.id).await.unwrap().power, PowerState::On);
        let added = h
            .add_disk(
                &vm.id,
                &NewDisk {
                    capacity: 4 << 20,
                    mount_point: "/more".into(),
                },
                "tok-2",
            )
            .await
            .unwrap();
        assert_eq!(
            h.add_disk(
                &vm.id,
                &NewDisk {
                    capacity: 4 << 20,
                    mount_point: "/more".into(),
                },
                "tok-2",
            )
            .await
            .unwrap(),
            added
        );
        let live = client.domain_get_xml_desc(&dom, 0).unwrap();
        assert!(
            live.contains(&format!("dev='{}'", added.id)),
            "not attached live: {live}"
        );
        h.unmap_lun(&vm.id, wwn).await.unwrap();
        let got = h.get_vm(&vm.id).await.unwrap();
        assert!(
            !got.devices
                .iter()
                .any(|d| matches!(d.backing, DeviceBacking::MappedLun(_))),
            "{got:#?}"
        );
        let live = client.domain_get_xml_desc(&dom, 0).unwrap();
        assert!(live.contains(wwn), "the running domain keeps the LUN");
        let mapped = h
            .map_lun(
                &vm.id,
                &LunMapping {
                    lun: MappedLun {
                        wwn: wwn.into(),
                        mode: MappingMode::Virtual,
                    },
                    capacity: 32 << 20,
                    mount_point: "/san2".into(),
                },
                "tok-3",
            )
            .await;
        // A new target dev, not the one the unmapped LUN still holds live.
        let mapped = mapped.unwrap();
        assert_ne!(mapped.id, "vdb", "{mapped:?}");
        let live = client.domain_get_xml_desc(&dom, 0).unwrap();
        assert!(
            live.contains(&format!("dev='{}'", mapped.id)),
            "not mapped live: {live}"
        );
        let got = h.get_vm(&vm.id).await.unwrap();
        assert!(
            got.devices.iter().any(|d| d.mount_point == "/san2"),
            "{got:#?}"
        );
        let refused = h.delete_vm(&vm.id).await.unwrap_err();
        assert!(refused.to_string().contains("powered on"), "{refused}");
        h.power_off(&vm.id).await.unwrap();
        h.power_off(&vm.id).await.unwrap();
        assert_eq!(h.get_vm(&vm.id).await.unwrap().power, PowerState::Off);

        h.delete_vm(&vm.id).await.unwrap();
        let gone = h.get_vm(&vm.id).await.unwrap_err();
        assert!(gone.to_string().contains("not found"), "{gone}");
    });
    assert!(client.list_all_domains(0).unwrap().is_empty());
    let pool = client.storage_pool_lookup_by_name("tidemark").unwrap();
    client.storage_pool_refresh(&pool).unwrap();
    assert!(client.list_all_volumes(&pool).unwrap().is_empty());
    // The LUN is the SAN's: its image is still there.
    assert!(
        daemon
            .dir()
            .join("san")
            .join(format!("{wwn}.qcow2"))
            .exists()
    );
    eprintln!("engine lifecycle test: {:?}", started.elapsed());
}
