//! Every workflow on the in-process fakes: what it does, that its dry run names the steps its
//! journal then shows, and that a failure anywhere is compensated.

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::engine_over;
use super::fakes::{ARRAY, FakeSystems, HV};
use crate::catalog::{EndpointRecord, JobRecord, JobState};
use crate::copies::CopyStore;
use crate::engine::discover::vm_record;
use crate::engine::ports::Endpoints;
use crate::engine::workflows::copy::CopyArgs;
use crate::engine::workflows::restore::RestoreArgs;
use crate::engine::workflows::restore_device::RestoreDeviceArgs;
use crate::engine::workflows::revert::RevertArgs;
use crate::engine::workflows::snapshot::SnapshotArgs;
use crate::engine::{Engine, JobRequest};
use crate::model::PowerState;

/// Large enough that restoring a device takes several writes.
const SIZE: usize = 5 * 512 * 1024;

struct Lab {
    systems: FakeSystems,
    engine: Engine,
    vm_id: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn new() -> Self {
        let systems = FakeSystems::default();
        let vm_id = systems.vm_with_disk_and_lun("app", SIZE, 1);
        let (engine, dir) = engine_over(&systems);
        let info = systems
            .hypervisor(HV)
            .await
            .unwrap()
            .get_vm(&vm_id)
            .await
            .unwrap();
        for (name, adapter) in [(HV, "lab-hypervisor"), (ARRAY, "lab-array")] {
            engine
                .catalog
                .add_endpoint(
                    &EndpointRecord {
                        name: name.into(),
                        adapter: adapter.into(),
                        settings: Default::default(),
                        grants: Default::default(),
                        created_at: 0,
                    },
                    &[],
                )
                .unwrap();
        }
        engine
            .catalog
            .upsert_vm(&vm_record("app", HV, &info))
            .unwrap();
        Self {
            systems,
            engine,
            vm_id,
            _dir: dir,
        }
    }

    /// Runs a request after checking that its dry run names the steps the journal shows.
    async fn run(&self, request: JobRequest) -> JobRecord {
        let plan = self
            .engine
            .dry_run(&request)
            .await
            .expect("the request checks out");
        let jobs_before = self.engine.catalog.unfinished_job_ids().unwrap().len();
        let job = self.engine.run(&request).await.expect("the job ran");
        assert_eq!(jobs_before, 0);
        if job.state == JobState::Succeeded {
            let names: Vec<&str> = job.steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(plan.steps, names, "dry run vs journal of {}", job.kind);
        }
        job
    }

    async fn snapshot(&self) -> String {
        let job = self
            .run(JobRequest::Snapshot(SnapshotArgs { vm: "app".into() }))
            .await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        job.result.as_ref().unwrap()["recovery_point"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A point of the VM, snapshotted and copied.
    async fn copied_point(&self) -> String {
        let point = self.snapshot().await;
        let copy = self
            .run(JobRequest::Copy(CopyArgs {
                vm: "app".into(),
                point: point.clone(),
                proxy_host: None,
            }))
            .await;
        assert_eq!(copy.state, JobState::Succeeded, "{copy:?}");
        point
    }

    /// Flips one byte inside the stored blob of the last chunk of `point`'s copy of the
    /// device at `mount`, as a disk fault would: the copy is damaged near its end, so a
    /// restore has written most of the device when it finds out.
    fn damage_last_chunk(&self, point: &str, mount: &str) {
        let point = self
            .engine
            .catalog
            .point(point)
            .unwrap()
            .expect("the point");
        let device = point
            .snapshots
            .iter()
            .find(|s| s.mount_point == mount)
            .expect("the device");
        let copy = point.copy_of(&device.device_ref).expect("its copy");
        let root = self._dir.path().join("copies");
        let dir = Dir::open_ambient_dir(&root, ambient_authority()).unwrap();
        let store = CopyStore::open(dir, None).unwrap();
        let manifest = store.read_manifest(&copy.copy).unwrap();
        let last = manifest.entries().last().and_then(|e| e.id()).copied();
        let (key, offset, len) = store
            .blob_location(&last.expect("a data chunk"))
            .unwrap()
            .expect("the chunk is indexed");
        let path = root.join(key);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize + len / 2] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
    }

    fn holds(&self, fill: u8) -> bool {
        self.systems
            .contents(&self.vm_id)
            .values()
            .all(|bytes| bytes.iter().all(|b| *b == fill))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_takes_one_point_of_both_device_kinds() {
    let lab = Lab::new().await;
    let point = lab.snapshot().await;
    let recorded = lab.engine.catalog.point(&point).unwrap().unwrap();
    assert_eq!(recorded.snapshots.len(), 2);
    assert_eq!(lab.systems.census(), (1, 1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_leaves_no_snapshot_and_no_point() {
    let lab = Lab::new().await;
    lab.systems.fail("snapshot-luns", 0);
    let job = lab
        .run(JobRequest::Snapshot(SnapshotArgs { vm: "app".into() }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    assert_eq!(
        lab.systems.census(),
        (1, 0, 1, 0),
        "the disk snapshot was deleted"
    );
    assert!(lab.engine.catalog.points("app").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_brings_back_the_point_and_powers_the_vm_on_again() {
    let lab = Lab::new().await;
    let point = lab.snapshot().await;
    lab.systems.fill(&lab.vm_id, 2);
    let job = lab
        .run(JobRequest::Revert(RevertArgs {
            vm: "app".into(),
            point,
        }))
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert!(lab.holds(1));
    assert_eq!(lab.systems.power(&lab.vm_id), PowerState::On);
    assert_eq!(
        lab.systems.census(),
        (1, 1, 1, 1),
        "safety snapshots released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_failing_halfway_puts_every_device_back() {
    let lab = Lab::new().await;
    let point = lab.snapshot().await;
    lab.systems.fill(&lab.vm_id, 2);
    lab.systems.fail("revert-lun", 0);
    let job = lab
        .run(JobRequest::Revert(RevertArgs {
            vm: "app".into(),
            point,
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    assert!(
        lab.holds(2),
        "the disk reverted before the LUN failed is put back"
    );
    assert_eq!(lab.systems.power(&lab.vm_id), PowerState::On);
    assert_eq!(
        lab.systems.census(),
        (1, 1, 1, 1),
        "safety snapshots deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_then_restore_rebuilds_the_vm_from_copies_alone() {
    let lab = Lab::new().await;
    let point = lab.snapshot().await;
    let copy = lab
        .run(JobRequest::Copy(CopyArgs {
            vm: "app".into(),
            point: point.clone(),
            proxy_host: None,
        }))
        .await;
    assert_eq!(copy.state, JobState::Succeeded, "{copy:?}");
    let (vms, _, luns, _) = lab.systems.census();
    assert_eq!((vms, luns), (2, 1), "the proxy VM stays, the clone is gone");
    let restore = lab
        .run(JobRequest::Restore(RestoreArgs {
            vm: "app".into(),
            point,
            host: "esx-b".into(),
            name: None,
            array: None,
        }))
        .await;
    assert_eq!(restore.state, JobState::Succeeded, "{restore:?}");
    let restored = lab.systems.vm_id("app-restored").expect("the new VM");
    let contents = lab.systems.contents(&restored);
    assert_eq!(contents.len(), 2);
    assert!(
        contents
            .values()
            .all(|b| b.len() == SIZE && b.iter().all(|x| *x == 1))
    );
    assert_eq!(lab.systems.power(&restored), PowerState::On);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_failing_while_mapping_leaves_no_clone_and_an_empty_proxy() {
    let lab = Lab::new().await;
    let point = lab.snapshot().await;
    lab.systems.fail("map-lun", 0);
    let job = lab
        .run(JobRequest::Copy(CopyArgs {
            vm: "app".into(),
            point,
            proxy_host: None,
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    let (vms, _, luns, _) = lab.systems.census();
    assert_eq!((vms, luns), (1, 1), "proxy VM and clone were removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_failing_late_deletes_the_new_vm_and_luns() {
    let lab = Lab::new().await;
    let point = lab.copied_point().await;
    let before = lab.systems.census();
    lab.systems.fail("power-on", 0);
    let job = lab
        .run(JobRequest::Restore(RestoreArgs {
            vm: "app".into(),
            point,
            host: "esx-b".into(),
            name: Some("dr".into()),
            array: None,
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    assert_eq!(lab.systems.census(), before);
    assert!(lab.engine.catalog.vm("dr").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_device_writes_one_device_back_in_place() {
    let lab = Lab::new().await;
    let point = lab.copied_point().await;
    lab.systems.fill(&lab.vm_id, 3);
    let job = lab
        .run(JobRequest::RestoreDevice(RestoreDeviceArgs {
            vm: "app".into(),
            point,
            device: "D:".into(),
        }))
        .await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let contents = lab.systems.contents(&lab.vm_id);
    assert!(contents["D:"].iter().all(|b| *b == 1));
    assert!(contents["C:"].iter().all(|b| *b == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_device_failing_while_writing_reverts_to_the_safety_snapshot() {
    let lab = Lab::new().await;
    let point = lab.copied_point().await;
    lab.systems.fill(&lab.vm_id, 3);
    // Let one write through, then fail: the LUN is half written when the step fails.
    lab.systems.fail("write", 1);
    let job = lab
        .run(JobRequest::RestoreDevice(RestoreDeviceArgs {
            vm: "app".into(),
            point,
            device: "D:".into(),
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    assert!(lab.holds(3), "the half-written LUN is back as it was");
    assert_eq!(lab.systems.power(&lab.vm_id), PowerState::On);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_device_from_a_damaged_pack_reverts_to_the_safety_snapshot() {
    let lab = Lab::new().await;
    lab.systems.fill_distinct(&lab.vm_id);
    let point = lab.copied_point().await;
    lab.damage_last_chunk(&point, "D:");
    lab.systems.fill(&lab.vm_id, 3);
    let writes_before = lab.systems.world().calls.get("write").copied().unwrap_or(0);
    let job = lab
        .run(JobRequest::RestoreDevice(RestoreDeviceArgs {
            vm: "app".into(),
            point,
            device: "D:".into(),
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    let error = format!("{job:?}");
    assert!(error.contains("authentication failed"), "{error}");
    // No pre-read pass: the damage is found while writing, after earlier runs were written.
    let writes = lab.systems.world().calls.get("write").copied().unwrap_or(0);
    assert!(
        writes > writes_before,
        "the restore wrote before it met the damage"
    );
    assert!(lab.holds(3), "the half-written LUN is back as it was");
    assert_eq!(lab.systems.power(&lab.vm_id), PowerState::On);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_a_damaged_pack_deletes_the_new_vm_and_luns() {
    let lab = Lab::new().await;
    lab.systems.fill_distinct(&lab.vm_id);
    let point = lab.copied_point().await;
    lab.damage_last_chunk(&point, "D:");
    let before = lab.systems.census();
    let job = lab
        .run(JobRequest::Restore(RestoreArgs {
            vm: "app".into(),
            point,
            host: "esx-b".into(),
            name: Some("dr".into()),
            array: None,
        }))
        .await;
    assert_eq!(job.state, JobState::Compensated, "{job:?}");
    assert!(format!("{job:?}").contains("authentication failed"));
    assert_eq!(lab.systems.census(), before);
    assert!(lab.engine.catalog.vm("dr").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_closes_its_progress_channel_so_followers_wake_at_once() {
    let lab = Lab::new().await;
    let request = JobRequest::Snapshot(SnapshotArgs { vm: "app".into() });
    let (id, planned) = lab.engine.submit(&request).unwrap();
    let mut rx = lab.engine.subscribe_progress(&id);
    let job = lab.engine.run_job(&id, planned).await.unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    loop {
        match rx.try_recv() {
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(e, tokio::sync::broadcast::error::TryRecvError::Closed);
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_any_job_exists() {
    let lab = Lab::new().await;
    for request in [
        JobRequest::Snapshot(SnapshotArgs { vm: "nope".into() }),
        JobRequest::Revert(RevertArgs {
            vm: "app".into(),
            point: "rp-nope".into(),
        }),
        JobRequest::RestoreDevice(RestoreDeviceArgs {
            vm: "app".into(),
            point: "rp-nope".into(),
            device: "D:".into(),
        }),
    ] {
        let error = lab.engine.submit(&request).err().expect("refused");
        assert!(crate::refusal::Refusal::find(&error).is_some(), "{error:#}");
    }
    assert!(lab.engine.catalog.unfinished_job_ids().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_being_run_is_never_driven_a_second_time_at_once() {
    let lab = Lab::new().await;
    let request = JobRequest::Snapshot(SnapshotArgs { vm: "app".into() });
    let (id, planned) = lab.engine.submit(&request).unwrap();
    // While something in this process drives the job (as a request's task does), a resume
    // listing it as unfinished (a server's start racing that request) leaves it alone, and
    // a second runner is refused.
    let running = lab.engine.claim(&id).expect("the first claim");
    let resumed = lab.engine.resume_jobs(vec![id.clone()]).await.unwrap();
    assert!(
        resumed.is_empty(),
        "resume drove a running job: {resumed:?}"
    );
    let again = crate::engine::PlannedJob(planned.0.clone());
    let refused = format!("{:#}", lab.engine.run_job(&id, again).await.unwrap_err());
    assert!(refused.contains("already running"), "{refused}");
    assert!(lab.engine.job(&id).unwrap().steps.is_empty(), "no step ran");
    drop(running);
    assert_eq!(
        lab.engine.run_job(&id, planned).await.unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(lab.systems.census(), (1, 1, 1, 1));
}
