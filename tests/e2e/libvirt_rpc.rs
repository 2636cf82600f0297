//! The `libvirt-rpc` crate against a real private libvirtd 9.0 (tests/e2e/libvirtd.rs)
//! with QEMU 10 under TCG: connection, domains, an external disk-only snapshot, a `dir`
//! storage pool with a backing volume, libvirt's errors, and a server answering garbage.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use libvirt_rpc::{Client, Domain, DomainState, Error, ProtocolError, StoragePool, codes, flags};

use crate::libvirtd::Libvirtd;

/// A TCG domain (`type='qemu'`; `<acpi/>` is required: without it libvirt 9.0 passes
/// `-no-acpi`, which QEMU 10 removed) with one qcow2 disk and no network.
fn domain_xml(name: &str, qemu: &Path, disk: &Path) -> String {
    format!(
        "<domain type='qemu'>\
           <name>{name}</name>\
           <memory unit='MiB'>64</memory>\
           <vcpu>1</vcpu>\
           <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
           <features><acpi/></features>\
           <devices>\
             <emulator>{qemu}</emulator>\
             <disk type='file' device='disk'>\
               <driver name='qemu' type='qcow2'/>\
               <source file='{disk}'/>\
               <target dev='vda' bus='virtio'/>\
             </disk>\
             <memballoon model='none'/>\
           </devices>\
         </domain>",
        qemu = qemu.display(),
        disk = disk.display(),
    )
}

/// A private daemon with domain `name` defined on a fresh 16 MiB qcow2 disk in `vm/`: the
/// daemon, a client, the domain and the disk's path (`None`: skipping off CI).
fn daemon_with_domain(name: &str) -> Option<(Libvirtd, Client<TcpStream>, Domain, PathBuf)> {
    let daemon = Libvirtd::start()?;
    let disk = daemon.make_dir("vm").join("disk.qcow2");
    daemon.qcow2(&disk, "16M");
    let mut client = daemon.connect();
    let dom = client
        .domain_define_xml(&domain_xml(name, daemon.qemu(), &disk))
        .unwrap();
    Some((daemon, client, dom, disk))
}

fn wait_for_state<S: Read + Write>(
    client: &mut Client<S>,
    dom: &libvirt_rpc::Domain,
    want: DomainState,
) {
    let start = Instant::now();
    loop {
        let (state, _) = client.domain_get_state(dom).unwrap();
        if state == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} stayed {state:?}, expected {want:?}",
            dom.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connects_and_reports_version_hostname_and_capabilities() {
    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let mut client = daemon.connect();
    // QEMU 10.0.2 and libvirt 9.0.0, as major * 1,000,000 + minor * 1,000 + release.
    let version = client.get_version().unwrap();
    assert_eq!(version / 1_000_000, 10, "hypervisor version {version}");
    let lib = client.get_lib_version().unwrap();
    assert_eq!(lib / 1_000_000, 9, "libvirt version {lib}");
    let hostname = client.get_hostname().unwrap();
    let ours = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        !hostname.is_empty() && hostname.starts_with(ours.trim()),
        "{hostname} vs {ours}"
    );
    let caps = client.get_capabilities().unwrap();
    assert!(caps.contains("<capabilities>"), "{caps}");
    assert!(caps.contains("<domain type='qemu'"), "TCG offered: {caps}");
    assert!(client.list_all_domains(0).unwrap().is_empty());
    assert!(client.list_all_storage_pools(0).unwrap().is_empty());
    client.connect_close().unwrap();

    // The TCP listener serves the session daemon only: `qemu:///system` is refused.
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, daemon.port())).unwrap();
    let refused = match Client::open(stream, "qemu:///system") {
        Err(e) => e,
        Ok(_) => panic!("qemu:///system opened on the private daemon"),
    };
    assert!(matches!(refused, Error::Libvirt(_)), "{refused}");
    eprintln!("qemu:///system: {refused}");
    // virsh reaches the same daemon as qemu+tcp://127.0.0.1:PORT/session.
    if let Some(virsh) = crate::daemons::program("virsh") {
        let out = Command::new(virsh)
            .args(["-c", &daemon.virsh_uri(), "version"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("QEMU 10"), "{text}");
    }
    eprintln!("connect test: {:?}", started.elapsed());
}

#[test]
fn a_tcg_domain_is_defined_started_paused_destroyed_and_undefined() {
    let started = Instant::now();
    let Some((daemon, mut client, dom, disk)) = daemon_with_domain("t1") else {
        return;
    };
    assert_eq!((dom.name.as_str(), dom.id), ("t1", -1));
    assert_eq!(client.domain_lookup_by_name("t1").unwrap(), dom);
    assert_eq!(client.domain_lookup_by_uuid(&dom.uuid).unwrap(), dom);
    let xml = client.domain_get_xml_desc(&dom, 0).unwrap();
    assert!(xml.contains("<domain type='qemu'>"), "{xml}");
    assert!(xml.contains(&dom.uuid.to_string()), "{xml}");
    assert!(xml.contains(&disk.display().to_string()), "{xml}");
    assert_eq!(
        client.domain_get_state(&dom).unwrap().0,
        DomainState::Shutoff
    );
    assert_eq!(
        client
            .list_all_domains(flags::list_domains::INACTIVE)
            .unwrap(),
        vec![dom.clone()]
    );

    let t = Instant::now();
    let running = client.domain_create_with_flags(&dom, 0).unwrap();
    eprintln!("domain start: {:?}", t.elapsed());
    assert!(running.id > 0, "{running:?}");
    assert_eq!(
        client.domain_get_state(&dom).unwrap().0,
        DomainState::Running
    );
    let info = client.domain_get_info(&running).unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_eq!((info.max_mem, info.nr_virt_cpu), (64 * 1024, 1));
    assert_eq!(
        client
            .list_all_domains(flags::list_domains::ACTIVE)
            .unwrap(),
        vec![running.clone()]
    );
    let live = client.domain_get_xml_desc(&running, 0).unwrap();
    assert!(live.contains("<domain type='qemu' id="), "{live}");

    // A second disk attached live and to the persistent definition, then detached from
    // the definition (a live detach needs the guest's consent; this guest has no OS).
    let extra = disk.with_file_name("extra.qcow2");
    daemon.qcow2(&extra, "16M");
    let disk_xml = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        extra.display()
    );
    client
        .domain_attach_device(
            &running,
            &disk_xml,
            flags::device::LIVE | flags::device::CONFIG,
        )
        .unwrap();
    let live = client.domain_get_xml_desc(&running, 0).unwrap();
    assert!(live.contains("<target dev='vdb'"), "{live}");
    client
        .domain_detach_device(&running, &disk_xml, flags::device::CONFIG)
        .unwrap();
    let config = client
        .domain_get_xml_desc(&running, flags::xml::INACTIVE)
        .unwrap();
    assert!(!config.contains("<target dev='vdb'"), "{config}");
    assert!(
        client
            .domain_get_xml_desc(&running, 0)
            .unwrap()
            .contains("<target dev='vdb'")
    );

    // An ACPI shutdown request is accepted (nothing in the guest acts on it).
    client.domain_shutdown(&running).unwrap();
    client.domain_destroy(&running).unwrap();
    assert_eq!(
        client.domain_get_state(&dom).unwrap().0,
        DomainState::Shutoff
    );

    // Started paused, then destroyed.
    let paused = client
        .domain_create_with_flags(&dom, flags::create::PAUSED)
        .unwrap();
    assert_eq!(
        client.domain_get_state(&paused).unwrap().0,
        DomainState::Paused
    );
    client.domain_destroy(&paused).unwrap();

    // Plain create (start) works too.
    client.domain_create(&dom).unwrap();
    wait_for_state(&mut client, &dom, DomainState::Running);
    client.domain_destroy(&dom).unwrap();

    client.domain_undefine(&dom, 0).unwrap();
    let gone = client.domain_lookup_by_name("t1").unwrap_err();
    assert!(gone.is(codes::NO_DOMAIN), "{gone}");
    assert!(client.list_all_domains(0).unwrap().is_empty());
    eprintln!("domain lifecycle test: {:?}", started.elapsed());
}

#[test]
fn a_disk_only_external_snapshot_of_a_running_domain_is_listed_and_committed_back() {
    let started = Instant::now();
    let Some((_daemon, mut client, dom, disk)) = daemon_with_domain("snap") else {
        return;
    };
    let overlay = disk.with_file_name("disk.s1");
    let dom = client.domain_create_with_flags(&dom, 0).unwrap();

    let t = Instant::now();
    let snap = client
        .snapshot_create_xml(
            &dom,
            &format!(
                "<domainsnapshot><name>s1</name><disks>\
                   <disk name='vda' snapshot='external'><source file='{}'/></disk>\
                 </disks></domainsnapshot>",
                overlay.display()
            ),
            flags::snapshot_create::DISK_ONLY | flags::snapshot_create::ATOMIC,
        )
        .unwrap();
    eprintln!("external snapshot: {:?}", t.elapsed());
    assert_eq!(snap.name, "s1");
    assert_eq!(snap.dom.name, "snap");
    assert!(overlay.exists(), "the overlay was made");
    let listed = client.list_all_snapshots(&dom, 0).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );
    assert_eq!(client.snapshot_lookup_by_name(&dom, "s1").unwrap(), snap);
    let xml = client.snapshot_get_xml_desc(&snap, 0).unwrap();
    assert!(xml.contains("<name>s1</name>"), "{xml}");
    assert!(xml.contains("<state>disk-snapshot</state>"), "{xml}");
    assert!(xml.contains("snapshot='external'"), "{xml}");
    let live = client.domain_get_xml_desc(&dom, 0).unwrap();
    assert!(
        live.contains(&format!("<source file='{}'", overlay.display())),
        "the domain writes to the overlay now: {live}"
    );
    let unknown = client.snapshot_lookup_by_name(&dom, "s9").unwrap_err();
    assert!(unknown.is(codes::NO_DOMAIN_SNAPSHOT), "{unknown}");

    // libvirt 9.0 cannot revert to an external snapshot.
    let revert = client.snapshot_revert(&snap, 0).unwrap_err();
    eprintln!("revert to the external snapshot: {revert}");
    assert!(
        matches!(&revert, Error::Libvirt(e) if e.message.as_deref().unwrap_or("").contains("external")),
        "{revert}"
    );

    // The overlay is committed back into the base (active commit), then pivoted to it.
    let t = Instant::now();
    client
        .block_commit(&dom, "vda", None, None, 0, flags::block_commit::ACTIVE)
        .unwrap();
    let start = Instant::now();
    loop {
        let job = client.block_job_info(&dom, "vda").unwrap();
        let job = job.expect("the commit job runs until pivoted");
        if job.end > 0 && job.cur == job.end {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{job:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // cur == end says the copy caught up; libvirt may still refuse the pivot until QEMU
    // reports the job ready ("not ready for pivot yet"): ask again until it takes.
    loop {
        match client.block_job_abort(&dom, "vda", flags::block_job_abort::PIVOT) {
            Ok(_) => break,
            Err(e) if e.to_string().contains("not ready for pivot") => {
                assert!(start.elapsed() < Duration::from_secs(60), "{e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("pivot: {e}"),
        }
    }
    eprintln!("active commit + pivot: {:?}", t.elapsed());
    let start = Instant::now();
    while client.block_job_info(&dom, "vda").unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = client.domain_get_xml_desc(&dom, 0).unwrap();
    assert!(
        live.contains(&format!("<source file='{}'", disk.display())),
        "back on the base: {live}"
    );

    client.domain_destroy(&dom).unwrap();
    client
        .snapshot_delete(&snap, flags::snapshot_delete::METADATA_ONLY)
        .unwrap();
    assert!(client.list_all_snapshots(&dom, 0).unwrap().is_empty());
    client
        .domain_undefine(&dom, flags::undefine::SNAPSHOTS_METADATA)
        .unwrap();
    eprintln!("snapshot test: {:?}", started.elapsed());
}

fn qemu_img_info(path: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["info", "-U"])
        .arg(path)
        .output()
        .expect("qemu-img info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_dir_pool_holds_a_volume_a_volume_backed_by_it_and_a_copy() {
    let started = Instant::now();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let dir = daemon.make_dir("pool");
    let mut client = daemon.connect();
    let defined = client
        .storage_pool_define_xml(
            &format!(
                "<pool type='dir'><name>p1</name><target><path>{}</path></target></pool>",
                dir.display()
            ),
            0,
        )
        .unwrap();
    client.storage_pool_create(&defined, 0).unwrap();
    let pool: StoragePool = client.storage_pool_lookup_by_name("p1").unwrap();
    assert_eq!(pool, defined);
    assert_eq!(
        client.list_all_storage_pools(0).unwrap(),
        vec![pool.clone()]
    );

    let base = client
        .storage_vol_create_xml(
            &pool,
            "<volume><name>base.qcow2</name><capacity unit='MiB'>16</capacity>\
             <target><format type='qcow2'/></target></volume>",
            0,
        )
        .unwrap();
    let base_path = client.storage_vol_get_path(&base).unwrap();
    assert_eq!(Path::new(&base_path), dir.join("base.qcow2"));
    assert_eq!(
        (base.pool.as_str(), base.key.as_str()),
        ("p1", base_path.as_str())
    );
    let info = client.storage_vol_get_info(&base).unwrap();
    assert_eq!((info.kind, info.capacity), (0, 16 << 20));

    // A qcow2 volume over the first: what an external snapshot or a linked clone is.
    let top = client
        .storage_vol_create_xml(
            &pool,
            &format!(
                "<volume><name>top.qcow2</name><capacity unit='MiB'>16</capacity>\
                 <target><format type='qcow2'/></target>\
                 <backingStore><path>{base_path}</path><format type='qcow2'/></backingStore>\
                 </volume>"
            ),
            0,
        )
        .unwrap();
    let top_path = client.storage_vol_get_path(&top).unwrap();
    let top_xml = client.storage_vol_get_xml_desc(&top).unwrap();
    assert!(
        top_xml.contains("<backingStore>") && top_xml.contains(&base_path),
        "{top_xml}"
    );
    let image = qemu_img_info(Path::new(&top_path));
    assert!(
        image.contains(&format!("backing file: {base_path}")),
        "{image}"
    );
    assert!(image.contains("backing file format: qcow2"), "{image}");

    // A full copy of the base.
    let copy = client
        .storage_vol_create_xml_from(
            &pool,
            "<volume><name>copy.qcow2</name><capacity unit='MiB'>16</capacity>\
             <target><format type='qcow2'/></target></volume>",
            &base,
            0,
        )
        .unwrap();
    client.storage_pool_refresh(&pool).unwrap();
    let mut names: Vec<String> = client
        .list_all_volumes(&pool)
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.sort();
    assert_eq!(names, ["base.qcow2", "copy.qcow2", "top.qcow2"]);
    assert_eq!(
        client
            .storage_vol_lookup_by_name(&pool, "top.qcow2")
            .unwrap(),
        top
    );

    for vol in [&top, &copy, &base] {
        client
            .storage_vol_delete(vol, flags::vol_delete::NORMAL)
            .unwrap();
    }
    assert!(client.list_all_volumes(&pool).unwrap().is_empty());
    assert!(!Path::new(&top_path).exists() && !Path::new(&base_path).exists());
    let missing = client
        .storage_vol_lookup_by_name(&pool, "base.qcow2")
        .unwrap_err();
    assert!(missing.is(codes::NO_STORAGE_VOL), "{missing}");
    client.storage_pool_destroy(&pool).unwrap();
    client.storage_pool_undefine(&pool).unwrap();
    let gone = client.storage_pool_lookup_by_name("p1").unwrap_err();
    assert!(gone.is(codes::NO_STORAGE_POOL), "{gone}");
    eprintln!("storage test: {:?}", started.elapsed());
}

#[test]
fn an_unknown_domain_is_libvirts_error_with_its_code_and_message() {
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let mut client = daemon.connect();
    let err = client.domain_lookup_by_name("no-such-vm").unwrap_err();
    match &err {
        Error::Libvirt(e) => {
            assert_eq!(e.code, codes::NO_DOMAIN, "{e:?}");
            let message = e.message.as_deref().unwrap_or_default();
            assert!(message.contains("no-such-vm"), "{message}");
            assert_eq!(e.level, 2, "VIR_ERR_ERROR");
        }
        other => panic!("expected libvirt's error, got {other:?}"),
    }
    assert!(err.to_string().contains("libvirt error 42"), "{err}");
    // The connection stays usable.
    assert!(!client.get_hostname().unwrap().is_empty());
    let uuid = libvirt_rpc::Uuid([0x5a; 16]);
    assert!(
        client
            .domain_lookup_by_uuid(&uuid)
            .unwrap_err()
            .is(codes::NO_DOMAIN)
    );
}

/// A server on 127.0.0.1 that answers the first call with `junk`, then keeps the
/// connection open for `hold` (a client relying on the server to close would hang).
fn junk_server(junk: Vec<u8>, hold: Duration) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(&junk);
        std::thread::sleep(hold);
    });
    port
}

fn connect_to_junk(junk: Vec<u8>) -> (Error, Duration) {
    let port = junk_server(junk, Duration::from_secs(20));
    let start = Instant::now();
    let result = Client::connect_tcp(
        (Ipv4Addr::LOCALHOST, port),
        "qemu:///session",
        Duration::from_secs(2),
    );
    match result {
        Ok(_) => panic!("a junk server was accepted"),
        Err(e) => (e, start.elapsed()),
    }
}

#[test]
fn a_server_answering_garbage_is_an_error_not_a_hang_or_a_panic() {
    // An HTTP answer: its first four bytes read as a 1.2 GB length.
    let (err, took) = connect_to_junk(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::FrameTooLarge { len: 0x4854_5450 })
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A well-formed frame of another program.
    let mut frame = 28u32.to_be_bytes().to_vec();
    for word in [0x1234_5678u32, 1, 66, 1, 1, 0] {
        frame.extend_from_slice(&word.to_be_bytes());
    }
    let (err, _) = connect_to_junk(frame.clone());
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::WrongProgram {
                program: 0x1234_5678
            })
        ),
        "{err}"
    );

    // A reply to a serial never sent.
    frame[4..8].copy_from_slice(&libvirt_rpc::REMOTE_PROGRAM.to_be_bytes());
    frame[20..24].copy_from_slice(&77u32.to_be_bytes());
    let (err, _) = connect_to_junk(frame.clone());
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::UnknownSerial {
                serial: 77,
                expected: 1
            })
        ),
        "{err}"
    );

    // A reply whose auth list claims a million entries in four bytes.
    frame[20..24].copy_from_slice(&1u32.to_be_bytes());
    frame[0..4].copy_from_slice(&32u32.to_be_bytes());
    frame.extend_from_slice(&1_000_000u32.to_be_bytes());
    let (err, _) = connect_to_junk(frame);
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::Xdr { procedure: 66, .. })
        ),
        "{err}"
    );

    // Half a frame, then silence with the connection open: the read timeout ends it.
    let (err, took) = connect_to_junk(vec![0, 0, 0, 100, 0x20]);
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn stopping_the_daemon_leaves_nothing_running() {
    let Some((daemon, mut client, dom, _)) = daemon_with_domain("left") else {
        return;
    };
    client.domain_create_with_flags(&dom, 0).unwrap();
    // libvirtd, runuser, virtlogd and QEMU, the last two in sessions of their own.
    let before = daemon.processes();
    let ps = |pids: &[u32]| {
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let out = Command::new("ps")
            .args(["-o", "pid,pgid,sid,user,comm", "-p", &list.join(",")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = ps(&before);
    eprintln!("the daemon's processes:\n{shown}");
    assert!(shown.contains("qemu-system"), "{shown}");
    assert!(shown.contains("libvirtd"), "{shown}");
    let dir = daemon.dir().to_path_buf();
    drop(client);
    drop(daemon);
    let alive: Vec<u32> = before
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        })
        .collect();
    assert!(alive.is_empty(), "still running: {}", ps(&alive));
    // `ps` agrees: nothing mentions the directory.
    let out = Command::new("ps")
        .args(["-eo", "stat,args"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let live: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()) && !l.starts_with('Z'))
        .collect();
    assert!(live.is_empty(), "{live:?}");
    assert!(!dir.exists());
}

#[test]
fn a_checkpoint_and_a_pull_backup_expose_the_disk_and_its_changes_over_nbd() {
    let started = Instant::now();
    let Some((_daemon, mut client, dom, disk)) = daemon_with_domain("cbt") else {
        return;
    };
    let dom = client.domain_create_with_flags(&dom, 0).unwrap();

    let cp = client
        .checkpoint_create_xml(
            &dom,
            "<domaincheckpoint><name>cp1</name>\
             <disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>",
            0,
        )
        .unwrap();
    assert_eq!((cp.name.as_str(), cp.dom.name.as_str()), ("cp1", "cbt"));
    assert_eq!(client.checkpoint_lookup_by_name(&dom, "cp1").unwrap(), cp);
    let listed = client.list_all_checkpoints(&dom, 0).unwrap();
    assert_eq!(listed, vec![cp.clone()]);
    let cp_xml = client.checkpoint_get_xml_desc(&cp, 0).unwrap();
    assert!(cp_xml.contains("checkpoint='bitmap'"), "{cp_xml}");

    // A pull-mode backup of what changed since cp1, served over NBD on 127.0.0.1.
    let port = crate::daemons::port();
    let scratch = disk.with_file_name("scratch.qcow2");
    let backup_xml = format!(
        "<domainbackup mode='pull'><incremental>cp1</incremental>\
         <server transport='tcp' name='127.0.0.1' port='{port}'/>\
         <disks><disk name='vda' backup='yes' type='file'>\
         <scratch file='{}'/></disk></disks></domainbackup>",
        scratch.display()
    );
    client.backup_begin(&dom, &backup_xml, None, 0).unwrap();
    let desc = client.backup_get_xml_desc(&dom).unwrap();
    assert!(
        desc.contains("mode='pull'") && desc.contains(&format!("port='{port}'")),
        "{desc}"
    );
    let bitmap = "qemu:dirty-bitmap:backup-vda";
    let mut nbd = nbd_client::Client::connect_tcp(("127.0.0.1", port), "vda", &[bitmap])
        .expect("the backup's NBD export");
    assert_eq!(nbd.size(), 16 << 20);
    assert!(nbd.has_context(bitmap));
    // Nothing was written since cp1.
    assert!(nbd.dirty(bitmap, 0, 16 << 20).unwrap().is_empty());
    drop(nbd);
    client.domain_abort_job(&dom).unwrap();
    // The job ends asynchronously after the abort.
    let start = Instant::now();
    let no_backup = loop {
        match client.backup_get_xml_desc(&dom) {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the backup never ended"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    eprintln!("after the abort ({:?}): {no_backup}", start.elapsed());
    assert!(no_backup.is(codes::NO_DOMAIN_BACKUP), "{no_backup}");

    client.checkpoint_delete(&cp, 0).unwrap();
    assert!(client.list_all_checkpoints(&dom, 0).unwrap().is_empty());
    client.domain_destroy(&dom).unwrap();
    client
        .domain_undefine(&dom, flags::undefine::CHECKPOINTS_METADATA)
        .unwrap();
    eprintln!("checkpoint + backup test: {:?}", started.elapsed());
}

#[test]
fn a_transient_paused_domain_answers_qmp_suspends_resumes_and_goes_with_its_connection() {
    let Some((daemon, mut client, dom, disk)) = daemon_with_domain("t5") else {
        return;
    };
    // Suspend and resume a running domain.
    client.domain_create(&dom).unwrap();
    wait_for_state(&mut client, &dom, DomainState::Running);
    client.domain_suspend(&dom).unwrap();
    wait_for_state(&mut client, &dom, DomainState::Paused);
    client.domain_resume(&dom).unwrap();
    wait_for_state(&mut client, &dom, DomainState::Running);
    client.domain_destroy(&dom).unwrap();

    // A transient domain started paused with AUTODESTROY: QMP through the QEMU program.
    let mut other = daemon.connect();
    let xml = domain_xml("t5-proxy", daemon.qemu(), &disk);
    let proxy = other
        .domain_create_xml(&xml, flags::create::PAUSED | flags::create::AUTODESTROY)
        .unwrap();
    let status = other
        .qemu_monitor_command(&proxy, r#"{"execute":"query-status"}"#)
        .unwrap();
    // Started paused: QEMU reports it as not running ("prelaunch").
    assert!(status.contains(r#""running":false"#), "{status}");
    // A QMP error is an answer, not a call error.
    let bad = other
        .qemu_monitor_command(&proxy, r#"{"execute":"no-such-command"}"#)
        .unwrap();
    assert!(bad.contains("CommandNotFound"), "{bad}");
    // A monitor command of a domain that is not running is libvirt's error.
    let err = other
        .qemu_monitor_command(&dom, r#"{"execute":"query-status"}"#)
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::OPERATION_INVALID), "{err}");
    assert!(client.domain_lookup_by_name("t5-proxy").is_ok());
    other.connect_close().unwrap();
    drop(other);
    let start = Instant::now();
    while client.domain_lookup_by_name("t5-proxy").is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the AUTODESTROY domain outlived its connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
