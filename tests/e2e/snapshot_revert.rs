//! Write → snapshot → overwrite → revert → byte-for-byte equal, across all device kinds.

use crate::harness::Lab;

#[test]
fn revert_restores_every_device_to_older_and_newer_points() {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    let (first, _) = lab.snapshot("app");
    lab.fill("app", 2);
    let (second, _) = lab.snapshot("app");
    lab.fill("app", 3);
    lab.assert_holds("app", 3);

    lab.ok(&["revert", "app", &first]);
    lab.assert_holds("app", 1);
    lab.ok(&["revert", "app", &second]);
    lab.assert_holds("app", 2);
    lab.assert_reconciled();

    let points = lab.ok(&["points", "app"]);
    assert_eq!(points.as_array().unwrap().len(), 2);
}

#[test]
fn the_physical_lun_is_snapshotted_by_the_array_not_the_hypervisor() {
    let lab = Lab::with_vm();
    let (point, _) = lab.snapshot("app");
    let points = lab.ok(&["points", "app"]);
    let snaps = points[0]["snapshots"].as_array().unwrap();
    assert_eq!(points[0]["id"], point.as_str());
    let by_mount = |m: &str| {
        snaps
            .iter()
            .find(|s| s["mount_point"] == m)
            .unwrap_or_else(|| panic!("no snapshot of {m}"))
    };
    assert_eq!(by_mount("C:")["endpoint"], "lab-hypervisor");
    assert_eq!(by_mount("C:")["device_kind"], "virtual-disk");
    assert_eq!(by_mount("D:")["endpoint"], "lab-array");
    assert_eq!(by_mount("D:")["device_kind"], "mapped-lun");
    assert_eq!(by_mount("D:")["mode"], "physical");
    assert_eq!(by_mount("/data")["endpoint"], "lab-array");
    // The LUNs on one array were snapshotted in one group call.
    let job = lab.last_job();
    let names: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "discover",
            "snapshot-virtual-disks",
            "snapshot-luns@lab-array",
            "record-point"
        ]
    );
    // The array really holds both LUN snapshots, the hypervisor only the disk's.
    let inventory = lab.ok(&["inventory"]);
    let count = |e: &str| {
        inventory
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["endpoint"] == e)
            .unwrap()["snapshots"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("lab-hypervisor"), 1);
    assert_eq!(count("lab-array"), 2);
}

#[test]
fn revert_of_a_running_vm_powers_it_off_and_on_again() {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    let (point, _) = lab.snapshot("app");
    lab.ok(&["lab", "power", "app", "on"]);
    lab.fill("app", 2);
    lab.ok(&["revert", "app", &point]);
    lab.assert_holds("app", 1);
    assert_eq!(lab.ok(&["vm", "show", "app"])["power"], "on");
    lab.assert_reconciled();
}
