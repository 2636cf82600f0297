//! The sandbox holds against real misbehaving Wasm adapters, bad adapter files are refused
//! without taking the host down, and the lab hypervisor behaves like a hypervisor (refuses
//! physically mapped LUNs, idempotent by token, copy-on-write snapshots) through the runtime.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tidemark::contract::Version;
use tidemark::engine::ports::{CallError, CallErrorKind, DataPath, Hypervisor};
use tidemark::model::capabilities::Grants;
use tidemark::model::{
    AdapterError, DeviceBacking, DeviceSpec, LunMapping, MappedLun, MappingMode, NewDisk, VmDevice,
    VmInfo, VmSpec,
};
use tidemark::runtime::{EndpointSpec, Runtime, Session};

const MISBEHAVING_WASM: &str = env!("TIDEMARK_MISBEHAVING_WASM");
const LAB_HYPERVISOR_WASM: &str = env!("TIDEMARK_LAB_HYPERVISOR_WASM");
const LAB_ARRAY_WASM: &str = env!("TIDEMARK_LAB_ARRAY_WASM");
const CONTRACT_V0_2_WASM: &str = env!("TIDEMARK_CONTRACT_V0_2_WASM");

/// A made-up WWN (`naa.6` and 31 hex digits) no array owns; the hypervisor only records it.
const LUN_WWN: &str = "naa.6000c29a1b2c3d4e5f60718293a4b5c7";
const MIB: u64 = 1 << 20;

/// A runtime over a temp adapters dir, and a temp root for endpoint data dirs. The temp
/// dirs live as long as the fixture so sessions never lose their preopened directory.
struct Fixture {
    runtime: Runtime,
    data_root: TempDir,
    _adapters_dir: TempDir,
}

impl Fixture {
    /// The misbehaving adapter installed as `misbehaving.wasm`, plus `extra` files.
    async fn new(extra: &[(&str, Vec<u8>)]) -> Self {
        let adapters_dir = tempfile::tempdir().expect("adapters tempdir");
        let misbehaving = std::fs::read(MISBEHAVING_WASM).expect("reading the misbehaving adapter");
        std::fs::write(adapters_dir.path().join("misbehaving.wasm"), misbehaving).unwrap();
        for (file, bytes) in extra {
            std::fs::write(adapters_dir.path().join(file), bytes).unwrap();
        }
        let runtime = Runtime::new(Some(adapters_dir.path()), None)
            .await
            .expect("the runtime starts even with bad adapter files");
        Self {
            runtime,
            data_root: tempfile::tempdir().expect("data tempdir"),
            _adapters_dir: adapters_dir,
        }
    }

    /// A fresh session on endpoint `name` of `adapter`, with its own data dir under the root.
    async fn open(&self, name: &str, adapter: &str, settings: &[(&str, &str)]) -> Session {
        let settings: BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let data_dir = self.data_root.path().join(name);
        std::fs::create_dir_all(&data_dir).expect("endpoint data dir");
        let spec = EndpointSpec {
            // Its data directory, as `lab init` grants it; the network is not granted.
            grants: Grants {
                data_dir: true,
                ..Grants::default()
            },
            ..EndpointSpec::new(name, adapter, settings, data_dir).expect("endpoint spec")
        };
        self.runtime
            .open(Arc::new(spec))
            .await
            .expect("opening a session")
    }

    /// A session on the misbehaving adapter doing `behavior` in `list-hosts`.
    async fn misbehaving(&self, name: &str, behavior: &str, limits: &[(&str, &str)]) -> Session {
        let mut settings = vec![("behavior", behavior)];
        settings.extend_from_slice(limits);
        self.open(name, "misbehaving", &settings).await
    }

    /// A session on the embedded lab hypervisor (same data dir for the same name, so state
    /// persists across sessions as it does across job steps).
    async fn lab(&self) -> Session {
        self.open("lab-hv", "lab-hypervisor", &[]).await
    }
}

/// The error must name the endpoint and the call, in its fields and in its message.
fn assert_names(error: &CallError, endpoint: &str, call: &str) {
    assert_eq!(error.endpoint, endpoint, "{error}");
    assert_eq!(error.call, call, "{error}");
    let message = error.to_string();
    assert!(
        message.contains(endpoint),
        "message does not name the endpoint: {message}"
    );
    assert!(
        message.contains(call),
        "message does not name the call: {message}"
    );
}

/// `list-hosts` must fail; returns the error (fails the test if the adapter answered).
async fn list_hosts_error(session: &mut Session) -> CallError {
    match Hypervisor::list_hosts(session).await {
        Ok(hosts) => panic!("list-hosts should have failed but returned {hosts:?}"),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_loop_is_interrupted_at_its_deadline_and_the_host_keeps_working() {
    let fixture = Fixture::new(&[]).await;
    let deadline = Duration::from_secs(1);
    let mut session = fixture
        .misbehaving("spinner", "loop", &[("timeout", "1s")])
        .await;

    let started = Instant::now();
    let error = list_hosts_error(&mut session).await;
    let elapsed = started.elapsed();

    assert_eq!(error.kind, CallErrorKind::Timeout(deadline), "{error}");
    assert_names(&error, "spinner", "list-hosts");
    assert!(
        elapsed <= deadline + Duration::from_secs(1),
        "the runaway call took {elapsed:?} to be stopped (deadline {deadline:?})"
    );

    let again = list_hosts_error(&mut session).await;
    assert_names(&again, "spinner", "list-hosts");
    match &again.kind {
        CallErrorKind::Host(message) => assert!(
            message.contains("unusable") && message.contains("deadline"),
            "refusal should say the instance is unusable and why: {message}"
        ),
        other => panic!("a broken session must refuse further calls, got {other:?}"),
    }

    let mut healthy = fixture
        .misbehaving("spinner", "none", &[("timeout", "1s")])
        .await;
    let hosts = Hypervisor::list_hosts(&mut healthy)
        .await
        .expect("a fresh session works");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].id, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_allocation_hits_the_memory_cap() {
    let fixture = Fixture::new(&[]).await;
    let mut session = fixture
        .misbehaving("hoarder", "alloc", &[("memory", "32MiB")])
        .await;

    let error = list_hosts_error(&mut session).await;

    assert_eq!(error.kind, CallErrorKind::MemoryCap(32 * MIB), "{error}");
    assert_names(&error, "hoarder", "list-hosts");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_adapter_is_a_trap() {
    let fixture = Fixture::new(&[]).await;
    let mut session = fixture.misbehaving("panicker", "trap", &[]).await;

    let error = list_hosts_error(&mut session).await;

    assert!(
        matches!(error.kind, CallErrorKind::Trap(_)),
        "expected a trap, got {error}"
    );
    assert_names(&error, "panicker", "list-hosts");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adapter_cannot_read_outside_its_data_dir() {
    let fixture = Fixture::new(&[]).await;
    let mut session = fixture.misbehaving("burglar", "escape", &[]).await;

    let error = list_hosts_error(&mut session).await;

    assert_names(&error, "burglar", "list-hosts");
    match &error.kind {
        CallErrorKind::Adapter(AdapterError::Denied(message)) => {
            assert!(message.starts_with("sandbox held"), "{message}")
        }
        other => panic!("expected the adapter to report it was denied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_adapter_files_are_rejected_and_the_rest_still_load() {
    let misbehaving = std::fs::read(MISBEHAVING_WASM).unwrap();
    let future = replace_all(&misbehaving, b"@0.3.0", b"@0.9.0");
    assert_ne!(
        future, misbehaving,
        "the adapter should name its contract version"
    );
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let fixture = Fixture::new(&[("garbage.wasm", garbage), ("future.wasm", future)]).await;

    let all_rejected = fixture.runtime.rejected();
    let rejected: BTreeMap<&str, &str> = all_rejected
        .iter()
        .map(|(name, reason)| (name.as_str(), reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let garbage_reason = rejected.get("garbage").expect("garbage.wasm is rejected");
    assert!(garbage_reason.contains("garbage"), "{garbage_reason}");
    let future_reason = rejected.get("future").expect("future.wasm is rejected");
    assert!(
        future_reason.contains("future")
            && future_reason.contains("0.9.0")
            && future_reason.contains("supports 0.2.0, 0.3.0"),
        "{future_reason}"
    );

    for loaded in ["misbehaving", "lab-hypervisor", "lab-array"] {
        fixture
            .runtime
            .adapter(loaded)
            .expect("the other adapters still load");
    }
    let mut session = fixture.misbehaving("survivor", "none", &[]).await;
    Hypervisor::list_hosts(&mut session)
        .await
        .expect("the good adapter works");
}

/// `haystack` with every occurrence of `from` replaced by `to` (same length, so offsets and
/// section sizes in a binary stay valid).
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn bundled_adapter_paths_exist() {
    for path in [
        MISBEHAVING_WASM,
        LAB_HYPERVISOR_WASM,
        LAB_ARRAY_WASM,
        CONTRACT_V0_2_WASM,
    ] {
        assert!(Path::new(path).is_file(), "{path} was not built");
    }
}

/// A VM spec with a 1 MiB virtual disk at `C:` and, optionally, a physically mapped LUN at `D:`.
fn vm_spec(name: &str, with_lun: bool) -> VmSpec {
    let mut devices = vec![DeviceSpec::NewVirtualDisk(NewDisk {
        capacity: MIB,
        mount_point: "C:".into(),
    })];
    if with_lun {
        devices.push(DeviceSpec::MapLun(LunMapping {
            lun: MappedLun {
                wwn: LUN_WWN.into(),
                mode: MappingMode::Physical,
            },
            capacity: 8 * MIB,
            mount_point: "D:".into(),
        }));
    }
    VmSpec {
        hardware: Default::default(),
        name: name.into(),
        host_id: "esx-a".into(),
        devices,
    }
}

/// The VM's device mounted at `mount`.
fn device_at<'a>(vm: &'a VmInfo, mount: &str) -> &'a VmDevice {
    vm.devices
        .iter()
        .find(|d| d.mount_point == mount)
        .unwrap_or_else(|| panic!("VM {} has no device at {mount}: {:?}", vm.name, vm.devices))
}

#[tokio::test(flavor = "multi_thread")]
async fn lab_hypervisor_refuses_to_snapshot_a_physically_mapped_lun() {
    assert_eq!(LUN_WWN.len(), "naa.".len() + 32, "naa.6 and 31 hex digits");
    let fixture = Fixture::new(&[]).await;
    let mut hv = fixture.lab().await;
    let vm = hv
        .create_vm(&vm_spec("db-1", true), "create-db-1")
        .await
        .unwrap();
    let disk = device_at(&vm, "C:").id.clone();
    let lun = device_at(&vm, "D:");
    assert!(
        matches!(&lun.backing, DeviceBacking::MappedLun(m) if m.wwn == LUN_WWN && m.mode == MappingMode::Physical),
        "{lun:?}"
    );

    let error = hv
        .snapshot_disks(&vm.id, std::slice::from_ref(&lun.id), "snap-lun")
        .await
        .expect_err("a physically mapped LUN cannot be snapshotted by the hypervisor");
    assert_names(&error, "lab-hv", "snapshot-disks");
    match &error.kind {
        CallErrorKind::Adapter(AdapterError::Unsupported(message)) => {
            assert!(message.contains("physical"), "{message}")
        }
        other => panic!("expected unsupported, got {other:?}"),
    }

    let snapshots = hv
        .snapshot_disks(&vm.id, std::slice::from_ref(&disk), "snap-disk")
        .await
        .unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].source, disk);

    let mut later = fixture.lab().await;
    let all = later.list_snapshots(&vm.id).await.unwrap();
    assert_eq!(
        all, snapshots,
        "the refused call must leave no snapshot behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_vm_and_snapshot_disks_are_idempotent_by_token() {
    let fixture = Fixture::new(&[]).await;
    let mut hv = fixture.lab().await;
    let first = hv
        .create_vm(&vm_spec("web-1", false), "create-web-1")
        .await
        .unwrap();
    let mut retry = fixture.lab().await;
    let second = retry
        .create_vm(&vm_spec("web-1", false), "create-web-1")
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(retry.list_vms().await.unwrap().len(), 1);

    let disk = vec![device_at(&first, "C:").id.clone()];
    let snap = hv
        .snapshot_disks(&first.id, &disk, "snap-web-1")
        .await
        .unwrap();
    let again = retry
        .snapshot_disks(&first.id, &disk, "snap-web-1")
        .await
        .unwrap();
    let ids = |refs: &[tidemark::model::SnapshotRef]| {
        refs.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&snap), ids(&again));
    assert_eq!(retry.list_snapshots(&first.id).await.unwrap().len(), 1);
}

/// `len` bytes of a pattern that differs per `seed` and never repeats on a block boundary.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 97 + 1) as u8
        })
        .collect()
}

/// Writes `data` at `offset` of the VM's device through the adapter, flushed and closed.
async fn write_through(hv: &mut Session, vm_id: &str, device: &str, offset: u64, data: &[u8]) {
    let writer = hv.open_writer(vm_id, device).await.unwrap();
    hv.write(&writer, offset, data).await.unwrap();
    hv.flush(&writer).await.unwrap();
    hv.close_writer(writer).await.unwrap();
}

/// The whole device (or one of its snapshots) read through the adapter.
async fn read_through(
    hv: &mut Session,
    vm_id: &str,
    device: &str,
    snapshot: Option<&str>,
) -> Vec<u8> {
    let reader = hv.open_reader(vm_id, device, snapshot).await.unwrap();
    let size = hv.reader_size(&reader).await.unwrap();
    let bytes = hv.read(&reader, 0, size).await.unwrap();
    hv.close_reader(reader).await.unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn data_written_through_the_adapter_reads_back_and_snapshots_are_copy_on_write() {
    let fixture = Fixture::new(&[]).await;
    let mut hv = fixture.lab().await;
    let vm = hv
        .create_vm(&vm_spec("files-1", false), "create-files-1")
        .await
        .unwrap();
    let disk = device_at(&vm, "C:").id.clone();

    // Unaligned, crossing three 4 KiB block boundaries.
    let offset = 3 * 4096 - 100;
    let before = pattern(1, 3 * 4096 + 200);
    write_through(&mut hv, &vm.id, &disk, offset as u64, &before).await;
    let snapshot = hv
        .snapshot_disks(&vm.id, std::slice::from_ref(&disk), "snap-files-1")
        .await
        .unwrap();
    // Overwrite part of the same range, shifted, so old and new blocks interleave.
    let after_offset = offset + 2048;
    let after = pattern(2, 4096 + 1);
    write_through(&mut hv, &vm.id, &disk, after_offset as u64, &after).await;

    let mut expected_snapshot = vec![0u8; MIB as usize];
    expected_snapshot[offset..offset + before.len()].copy_from_slice(&before);
    let mut expected_head = expected_snapshot.clone();
    expected_head[after_offset..after_offset + after.len()].copy_from_slice(&after);

    let mut reader_session = fixture.lab().await;
    let snap_bytes = read_through(&mut reader_session, &vm.id, &disk, Some(&snapshot[0].id)).await;
    let head_bytes = read_through(&mut reader_session, &vm.id, &disk, None).await;
    assert!(
        snap_bytes == expected_snapshot,
        "the snapshot does not hold the bytes written before it"
    );
    assert!(
        head_bytes == expected_head,
        "the head does not hold the bytes written last"
    );
}

/// An adapter built against the frozen contract 0.2.0 loads beside 0.3.0 ones and does
/// everything a storage array could do in 0.2.0, through the same ports.
#[tokio::test(flavor = "multi_thread")]
async fn a_contract_0_2_0_adapter_still_works() {
    use tidemark::engine::ports::StorageArray;
    let frozen = std::fs::read(CONTRACT_V0_2_WASM).unwrap();
    let fixture = Fixture::new(&[("frozen.wasm", frozen)]).await;
    assert!(
        fixture.runtime.rejected().is_empty(),
        "{:?}",
        fixture.runtime.rejected()
    );
    let loaded = fixture
        .runtime
        .adapter("frozen")
        .expect("the 0.2.0 adapter loads");
    assert_eq!(loaded.version(), Version::V0_2);
    assert_eq!(loaded.info.contract, "0.2.0");
    let lab = fixture.runtime.adapter("lab-array").unwrap();
    assert_eq!(
        lab.version(),
        Version::V0_3,
        "the lab adapters speak the current contract"
    );

    let mut array = fixture.open("old-array", "frozen", &[]).await;
    let lun = array.create_lun("db-data", 4 * MIB, "tok-1").await.unwrap();
    let again = array.create_lun("db-data", 4 * MIB, "tok-1").await.unwrap();
    assert_eq!(lun, again, "the same token returns the same LUN");
    assert_eq!(
        array.list_luns().await.unwrap().len(),
        1,
        "and makes no second"
    );
    array.expose(&lun.wwn, "esx-a").await.unwrap();
    assert_eq!(array.get_lun(&lun.wwn).await.unwrap().exposed_to, ["esx-a"]);

    let before = vec![0xa5u8; 64 * 1024];
    let writer = StorageArray::open_writer(&mut array, &lun.wwn)
        .await
        .unwrap();
    array.write(&writer, MIB, &before).await.unwrap();
    array.flush(&writer).await.unwrap();
    array.close_writer(writer).await.unwrap();
    let snaps = array
        .snapshot_luns(std::slice::from_ref(&lun.wwn), "snap-1")
        .await
        .unwrap();
    assert_eq!(snaps.len(), 1);

    // A new session (as a later job step would open) sees the same array.
    let mut array = fixture.open("old-array", "frozen", &[]).await;
    let writer = StorageArray::open_writer(&mut array, &lun.wwn)
        .await
        .unwrap();
    array.write(&writer, MIB, &[0x11; 64 * 1024]).await.unwrap();
    array.close_writer(writer).await.unwrap();
    let reader = StorageArray::open_reader(&mut array, &lun.wwn, Some(&snaps[0].id))
        .await
        .unwrap();
    assert_eq!(array.reader_size(&reader).await.unwrap(), 4 * MIB);
    assert_eq!(array.read(&reader, MIB, 64 * 1024).await.unwrap(), before);
    let changed = array
        .changed_extents(&reader, &snaps[0].id)
        .await
        .unwrap_err();
    assert!(changed.is_unsupported(), "{changed}");
    array.close_reader(reader).await.unwrap();

    array
        .revert_lun(&lun.wwn, &snaps[0].id, "revert-1")
        .await
        .unwrap();
    let clone = array
        .clone_snapshot(&snaps[0].id, "db-clone", "clone-1")
        .await
        .unwrap();
    for wwn in [&lun.wwn, &clone.wwn] {
        let reader = StorageArray::open_reader(&mut array, wwn, None)
            .await
            .unwrap();
        assert_eq!(
            array.read(&reader, MIB, 64 * 1024).await.unwrap(),
            before,
            "{wwn}"
        );
        array.close_reader(reader).await.unwrap();
    }
    let refused = array.delete_lun(&lun.wwn).await.unwrap_err();
    assert!(
        matches!(
            refused.kind,
            CallErrorKind::Adapter(AdapterError::Conflict(_))
        ),
        "{refused}"
    );
    let missing = array
        .get_lun("naa.60000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

/// A 0.3.0 hypervisor reports hardware and host capacity as unknown when it does not know
/// them, and answers the calls 0.3.0 added (here: `unsupported`, which is allowed).
#[tokio::test(flavor = "multi_thread")]
async fn a_contract_0_3_0_hypervisor_answers_the_new_calls() {
    let fixture = Fixture::new(&[]).await;
    let mut hv = fixture.lab().await;
    let hosts = hv.list_hosts().await.unwrap();
    assert!(
        hosts
            .iter()
            .all(|h| h.cpus.is_none() && h.free_capacity.is_none())
    );
    let mut spec = vm_spec("hw01", false);
    spec.hardware.cpus = Some(4);
    spec.hardware.memory = Some(8 << 30);
    spec.hardware.firmware = Some(tidemark::model::Firmware::Uefi);
    spec.hardware.nics = vec![tidemark::model::Nic {
        mac: "52:54:00:AB:cd:01".into(),
        network: "prod".into(),
        model: Some("virtio".into()),
    }];
    let vm = hv.create_vm(&spec, "hw-token").await.unwrap();
    let seen = hv.get_vm(&vm.id).await.unwrap();
    assert_eq!(seen.hardware.cpus, Some(4));
    assert_eq!(seen.hardware.memory, Some(8 << 30));
    assert_eq!(
        seen.hardware.firmware,
        Some(tidemark::model::Firmware::Uefi)
    );
    assert_eq!(
        seen.hardware.nics[0].mac, "52:54:00:ab:cd:01",
        "MACs are kept lower case"
    );
    assert_eq!(
        seen.hardware.disk_bus, None,
        "what was not given stays unknown"
    );
    let quiesce = hv.quiesce(&vm.id).await.unwrap_err();
    assert!(quiesce.is_unsupported(), "{quiesce}");

    spec.name = "hw02".into();
    spec.hardware.cpus = Some(0);
    let refused = hv.create_vm(&spec, "hw-token-2").await.unwrap_err();
    assert!(
        matches!(&refused.kind, CallErrorKind::Adapter(AdapterError::Invalid(m)) if m.contains("vCPU")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_not_granted_its_data_directory_sees_none() {
    let fixture = Fixture::new(&[]).await;
    let data_dir = fixture.data_root.path().join("ungranted");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("planted"), b"must stay unseen").unwrap();
    let spec = EndpointSpec::new("ungranted", "lab-hypervisor", BTreeMap::new(), data_dir)
        .expect("endpoint spec");
    let mut hv = fixture.runtime.open(Arc::new(spec)).await.unwrap();
    let error = hv
        .create_vm(&vm_spec("nodata", false), "t-nodata")
        .await
        .unwrap_err();
    assert!(
        format!("{error}").contains("no preopened directory"),
        "{error}"
    );
}
