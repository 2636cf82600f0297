//! The seed's scenario on systems no one here wrote: a libvirt/QEMU VM (private libvirtd
//! 9.0, QEMU 10 under TCG) with a qcow2 boot disk and a LUN of qemu-storage-daemon mapped
//! physically as its second disk — the disk libvirt cannot snapshot. Through the real
//! binary: write both through the adapters' writers, `snapshot` (libvirt snapshots the
//! qcow2 disk, qsd the LUN: one recovery point), overwrite, `revert`, `copy` through a proxy
//! VM (the LUN snapshot cloned on qsd and mapped to the proxy), an incremental copy that
//! reads only what changed, `restore` as a new libvirt VM with a new qsd LUN, `expire`
//! folding old snapshots away; then libvirt holds the two VMs and the reusable proxy VM and
//! nothing else (no proxy domain of the data path outlives its reader or writer).

use std::time::{Duration, Instant};

use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{Lab, Place, copied_device as device};
use crate::libvirtd::Libvirtd;
use crate::qsd_array::Qsd;
use tidemark::cli::demo::pattern;

const LIBVIRT_WASM: &str = env!("TIDEMARK_LIBVIRT_HYPERVISOR_WASM");
/// The libvirt endpoint's host id (its `host-name` setting).
const HOST: &str = "lv-1";

/// A lab with endpoints `qsd` (the array) and `lv` (libvirt, its SAN qsd's NBD server,
/// its pool in `pool/` of the daemon's directory), its [`Lab::place`] the libvirt host.
pub fn lab_on_real_systems(daemon: &Libvirtd, qsd: &Qsd) -> Lab {
    lab_on_real_systems_via(daemon, qsd, &Via::direct(daemon, qsd))
}

/// Where the endpoints of [`lab_on_real_systems_via`] reach the daemons (a fault proxy in
/// front of them, or the daemons themselves) and what else they are given.
pub struct Via {
    /// libvirtd's port.
    pub libvirt: u16,
    /// qsd's monitor ports.
    pub monitors: Vec<u16>,
    /// More `--setting`/`--grant` arguments for `lv`.
    pub lv_extra: Vec<String>,
    /// More `--setting`/`--grant` arguments for `qsd`.
    pub qsd_extra: Vec<String>,
}

impl Via {
    /// The daemons themselves.
    pub fn direct(daemon: &Libvirtd, qsd: &Qsd) -> Self {
        Self {
            libvirt: daemon.port(),
            monitors: qsd.monitors.clone(),
            lv_extra: Vec::new(),
            qsd_extra: Vec::new(),
        }
    }
}

/// [`lab_on_real_systems`], its endpoints reaching the daemons `via`.
pub fn lab_on_real_systems_via(daemon: &Libvirtd, qsd: &Qsd, via: &Via) -> Lab {
    let mut lab = Lab::empty();
    lab.place = Place {
        hypervisor: Some("lv".into()),
        host: HOST.into(),
        restore_host: HOST.into(),
        proxy_host: Some(HOST.into()),
    };
    qsd.add_endpoint_via(&lab, &via.monitors, &via.qsd_extra);
    lab.array = "qsd".into();
    lab.ok(&["adapter", "add", LIBVIRT_WASM, "--name", "libvirt"]);
    let pool = daemon.make_dir("pool");
    let mut add: Vec<String> = ["endpoint", "add", "lv", "--adapter", "libvirt"]
        .map(String::from)
        .to_vec();
    add.extend(crate::libvirt_hypervisor::args_via(via.libvirt, &pool));
    let san = add.iter_mut().find(|a| a.starts_with("san=")).unwrap();
    *san = format!("san=nbd://127.0.0.1:{}", qsd.nbd);
    add.extend([
        "--setting".into(),
        format!("host-name={HOST}"),
        "--grant".into(),
        format!("tcp=127.0.0.1:{}", qsd.nbd),
    ]);
    add.extend(via.lv_extra.iter().cloned());
    lab.ok(&add.iter().map(String::as_str).collect::<Vec<_>>());
    lab
}

/// Creates VM `name` on the libvirt host: a 64 MiB qcow2 disk `C:` and a 64 MiB physical
/// qsd LUN at each of `luns`.
fn create_vm(lab: &Lab, name: &str, luns: &[&str]) {
    let mut args = vec![
        "lab",
        "vm",
        "create",
        name,
        "--hypervisor",
        "lv",
        "--array",
        "qsd",
        "--host",
        HOST,
        "--disk",
        "C:=64MiB",
    ];
    let specs: Vec<String> = luns.iter().map(|m| format!("{m}=64MiB:physical")).collect();
    for spec in &specs {
        args.extend(["--lun", spec.as_str()]);
    }
    lab.ok(&args);
}

#[test]
fn a_libvirt_vm_with_a_physical_qsd_lun_is_snapshotted_reverted_copied_and_restored() {
    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let Some(qsd) = Qsd::start() else { return };
    let lab = lab_on_real_systems(&daemon, &qsd);
    let pool = daemon.dir().join("pool");
    create_vm(&lab, "app", &["D:"]);
    let boot = pattern(1, 3 << 20);
    let lun = pattern(2, 5 << 20);
    lab.write("app", "C:", 4093, &boot);
    lab.write("app", "D:", 8191, &lun);

    // One recovery point: libvirt snapshots C:, qsd snapshots D: (libvirt cannot).
    let (point, _) = lab.snapshot("app");
    eprintln!("points: {}", lab.ok(&["points", "app"]));
    lab.write("app", "C:", 4093, &pattern(3, 1 << 20));
    lab.write("app", "D:", 8191, &pattern(4, 1 << 20));
    lab.ok(&["revert", "app", &point]);
    assert!(
        lab.read("app", "C:", 4093, boot.len()) == boot,
        "C: not reverted"
    );
    assert!(
        lab.read("app", "D:", 8191, lun.len()) == lun,
        "D: not reverted"
    );

    // A full copy through a proxy VM on the libvirt host, then a small change and an
    // incremental copy that reads about the change alone, on both devices.
    let full = lab.ok(&["copy", "app", "--proxy-host", HOST]);
    for mount in ["C:", "D:"] {
        assert_eq!(device(&full, mount)["how"], "full", "{full}");
    }
    let changed = 300 << 10;
    lab.write("app", "C:", 20 << 20, &pattern(5, changed));
    lab.write("app", "D:", 30 << 20, &pattern(6, changed));
    let incremental = lab.ok(&["copy", "app", "--proxy-host", HOST]);
    for mount in ["C:", "D:"] {
        let d = device(&incremental, mount);
        assert_eq!(d["how"], "incremental", "{d}");
        let read = d["bytes_read"].as_u64().unwrap();
        assert!(
            read >= changed as u64 && read <= changed as u64 + (2 << 20),
            "{mount} read {read} bytes for a {changed}-byte change: {d}"
        );
    }

    // Restore as a new libvirt VM with a new qsd LUN: byte for byte what the copy holds.
    let point = incremental["recovery_point"].as_str().unwrap();
    lab.ok(&["restore", "app", point, "--host", HOST, "--as", "app2"]);
    let mut boot_now = boot.clone();
    boot_now.resize((20 << 20) - 4093 + changed, 0);
    boot_now[(20 << 20) - 4093..].copy_from_slice(&pattern(5, changed));
    assert!(
        lab.read("app2", "C:", 4093, boot_now.len()) == boot_now,
        "restored C: differs"
    );
    let mut lun_now = lun.clone();
    lun_now.resize((30 << 20) - 8191 + changed, 0);
    lun_now[(30 << 20) - 8191..].copy_from_slice(&pattern(6, changed));
    assert!(
        lab.read("app2", "D:", 8191, lun_now.len()) == lun_now,
        "restored D: differs"
    );
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    lab.assert_reconciled();

    // Expiring all but the newest point's snapshots folds their images into the chain
    // above them: fewer images in the pool, the disk unchanged.
    let images = || std::fs::read_dir(&pool).unwrap().count();
    let before = images();
    lab.ok(&["expire", "--keep-snapshots", "1"]);
    let after = images();
    eprintln!("pool images: {before} before expire, {after} after");
    assert!(
        after < before,
        "{before} images before expire, {after} after"
    );
    assert!(
        lab.read("app", "C:", 4093, boot_now.len()) == boot_now,
        "C: changed by folding its snapshots"
    );
    lab.assert_reconciled();

    // Only the two VMs and the copies' proxy VM (kept for the next copy) remain on libvirt.
    let mut client = daemon.connect();
    let mut names: Vec<String> = client
        .list_all_domains(0)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    names.sort();
    assert_eq!(names, ["app", "app2", "tidemark-proxy-app"], "domains left");
    eprintln!("scenario: {:?}", started.elapsed());
}

/// A running VM with one disk and two LUNs: its writes are held (libvirt pauses the domain)
/// across the disk snapshot and the LUN group snapshot, so the point is consistent across
/// hypervisor and array; the job reports how long and how far apart (figures printed, the
/// target — skew within 100 ms — is for the closing note, not asserted on a shared machine).
#[test]
fn a_running_vm_is_paused_across_its_disk_and_lun_snapshots_and_runs_again() {
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let Some(qsd) = Qsd::start() else { return };
    let lab = lab_on_real_systems(&daemon, &qsd);
    create_vm(&lab, "db", &["D:", "E:"]);
    let data = pattern(7, 1 << 20);
    lab.write("db", "C:", 0, &data);
    lab.ok(&["lab", "power", "db", "on"]);
    // Two readers of the running domain at once share its QEMU's one NBD server; each
    // reads the disk, and neither ends the other's export.
    let lab_ref = &lab;
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let lab = lab_ref;
                let out = lab.dir.path().join(format!("read-{i}.bin"));
                scope.spawn(move || {
                    let args = ["lab", "read", "db", "C:", "--offset", "0", "--length"];
                    let mut args: Vec<String> = args.map(String::from).to_vec();
                    args.extend([(1u64 << 20).to_string(), "--out".into()]);
                    args.push(out.display().to_string());
                    lab.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
                    std::fs::read(out).unwrap()
                })
            })
            .collect();
        for r in readers {
            assert!(
                r.join().unwrap() == data,
                "a reader of the running VM read other bytes"
            );
        }
    });
    let started = Instant::now();
    let doc = lab.ok(&["snapshot", "db"]);
    let wall = started.elapsed();
    eprintln!(
        "running VM snapshot: wall {:.0} ms, writes held {} ms, skew {} ms",
        wall.as_secs_f64() * 1000.0,
        doc["writes_held_ms"],
        doc["skew_ms"]
    );
    assert!(doc["writes_held_ms"].as_i64().is_some(), "{doc}");
    assert_eq!(
        crate::copies::step_names(&lab.last_job()),
        [
            "discover",
            "hold-writes",
            "snapshot-virtual-disks",
            "snapshot-luns@qsd",
            "release-writes",
            "record-point"
        ]
    );
    // Running again, on the overlay libvirt switched it to, and the point reverts.
    let mut client = daemon.connect();
    let dom = client.domain_lookup_by_name("db").unwrap();
    assert_eq!(
        client.domain_get_state(&dom).unwrap().0,
        libvirt_rpc::DomainState::Running
    );
    let point = doc["recovery_point"].as_str().unwrap();
    lab.ok(&["revert", "db", point]);
    assert_eq!(lab.ok(&["vm", "show", "db"])["power"], "on");
}

/// What libvirt holds that a job may make: each domain with its snapshot count, and how
/// many volume files the pool has (not their names: deleting a snapshot folds the disk's
/// base into the overlay above it, which goes on under its own name).
fn libvirt_holdings(daemon: &Libvirtd) -> Vec<String> {
    let mut client = daemon.connect();
    let mut held = Vec::new();
    for dom in client.list_all_domains(0).unwrap() {
        let snapshots = client.list_all_snapshots(&dom, 0).unwrap().len();
        held.push(format!("domain {} with {snapshots} snapshots", dom.name));
    }
    held.sort();
    let volumes = crate::copies::files(&daemon.dir().join("pool")).len();
    held.push(format!("{volumes} pool volumes"));
    held
}

/// libvirtd behind a fault proxy answering garbage, cutting answers short, going silent
/// past the call deadline (3 s) and resetting connections, then gone: each is an error
/// naming the endpoint (and, on the data path, the call) within 20 s, never a hang. A job
/// that meets garbage makes nothing; a job interrupted after libvirt snapshotted the disk
/// (qsd's monitors answer garbage at the LUN step) compensates on libvirt, and the daemon's
/// own listing of domains, snapshots and pool volumes proves nothing is left.
#[test]
fn garbage_silence_resets_and_a_dead_libvirtd_are_clear_errors_and_a_broken_job_leaves_nothing() {
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let Some(qsd) = Qsd::start() else { return };
    let lv = FaultProxy::start(daemon.port());
    let monitors: Vec<FaultProxy> = qsd.monitors.iter().map(|p| FaultProxy::start(*p)).collect();
    let via = Via {
        libvirt: lv.port,
        monitors: monitors.iter().map(|m| m.port).collect(),
        lv_extra: vec!["--setting".into(), "timeout=3".into()],
        qsd_extra: vec!["--setting".into(), "timeout=3s".into()],
    };
    let lab = lab_on_real_systems_via(&daemon, &qsd, &via);
    create_vm(&lab, "app", &["D:"]);
    let data = pattern(1, 1 << 20);
    lab.write("app", "C:", 0, &data);
    let (ok, error, _) = lab.endpoint_test("lv");
    assert!(ok, "{error}");
    let limit = Duration::from_secs(20);
    let garbage = b"\x00\x00\x00\x10not libvirt at all".to_vec();
    for fault in [
        Fault::Answer(garbage.clone()),
        Fault::Truncate(40),
        Fault::Delay(Duration::from_secs(30)),
        Fault::Reset,
    ] {
        lv.set(fault.clone());
        let (ok, error, took) = lab.endpoint_test("lv");
        eprintln!("{fault:?}: endpoint test after {took:?}: {error}");
        assert!(!ok && took < limit, "{fault:?}: {error} after {took:?}");
        assert!(error.contains("endpoint lv: "), "{fault:?}: {error}");
        if matches!(fault, Fault::Delay(_)) {
            assert!(error.contains("setting 'timeout'"), "{error}");
        }
        let (ok, text, took) = lab.try_read_head("app", "C:");
        eprintln!("{fault:?}: read after {took:?}: {text}");
        assert!(!ok && took < limit, "{fault:?}: {text} after {took:?}");
        assert!(
            text.contains("endpoint lv: open-reader"),
            "{fault:?}: {text}"
        );
    }
    lv.set(Fault::Pass);
    assert!(lab.read("app", "C:", 0, data.len()) == data);
    let held = libvirt_holdings(&daemon);
    let images = qsd.images_left();

    // A job meeting garbage fails naming the endpoint and makes nothing.
    lv.set(Fault::Answer(garbage.clone()));
    let (ok, text, took) = lab.run_timed(&["snapshot", "app"]);
    eprintln!("snapshot on garbage after {took:?}: {text}");
    assert!(
        !ok && took < limit && text.contains("endpoint lv: "),
        "{text} after {took:?}"
    );
    lv.set(Fault::Pass);
    lab.assert_reconciled();
    assert_eq!(libvirt_holdings(&daemon), held);

    // A job interrupted after libvirt snapshotted the disk compensates there.
    for m in &monitors {
        m.set(Fault::Answer(b"garbage\n".to_vec()));
    }
    let (ok, text, took) = lab.run_timed(&["snapshot", "app"]);
    eprintln!("snapshot with qsd answering garbage after {took:?}: {text}");
    assert!(
        !ok && text.contains("endpoint qsd: snapshot-luns"),
        "{text}"
    );
    for m in &monitors {
        m.set(Fault::Pass);
    }
    let job = lab.last_job();
    assert_eq!(job["state"], "compensated", "{job}");
    let state = |name: &str| {
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].clone())
    };
    // libvirt's snapshot was made, then undone; the LUN step is the one that failed.
    assert_eq!(
        state("snapshot-virtual-disks"),
        Some("compensated".into()),
        "{job}"
    );
    assert_eq!(state("snapshot-luns@qsd"), Some("failed".into()), "{job}");
    lab.assert_reconciled();
    assert_eq!(libvirt_holdings(&daemon), held);
    assert_eq!(qsd.images_left(), images);
    assert!(lab.read("app", "C:", 0, data.len()) == data);

    // The daemon is gone (the proxy still accepts, then closes): named, at once.
    drop(daemon);
    let (ok, error, took) = lab.endpoint_test("lv");
    eprintln!("daemon down after {took:?}: {error}");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(error.contains("lv"), "{error}");
}
