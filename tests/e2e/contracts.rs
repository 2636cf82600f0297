//! Contract versions through the binary: an adapter built against the frozen 0.2.0 contract
//! still serves a VM's LUN through snapshot, copy and revert, beside the 0.3.0 lab
//! adapters; 0.3.0 hardware goes from `lab vm create` into the catalog.

use crate::harness::{Lab, json};
use tidemark::cli::demo::pattern;

/// The frozen 0.2.0 array installed as external adapter `frozen`, endpoint `old`.
fn lab_with_frozen_array() -> Lab {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    std::fs::create_dir_all(lab.dir.path().join("adapters")).unwrap();
    std::fs::copy(
        env!("TIDEMARK_CONTRACT_V0_2_WASM"),
        lab.dir.path().join("adapters/frozen.wasm"),
    )
    .unwrap();
    add_frozen_endpoint(&lab);
    lab
}

/// Endpoint `old` on the frozen 0.2.0 adapter `frozen`, granted its data directory (an
/// adapter without a manifest asks for that only).
pub(crate) fn add_frozen_endpoint(lab: &Lab) {
    lab.ok(&[
        "endpoint",
        "add",
        "old",
        "--adapter",
        "frozen",
        "--grant",
        "data-dir",
    ]);
}

/// VM `legacy`: a lab disk, and a physical LUN on array endpoint `old`.
pub(crate) fn create_legacy_vm(lab: &Lab) {
    lab.ok(&[
        "lab",
        "vm",
        "create",
        "legacy",
        "--host",
        "esx-a",
        "--disk",
        "C:=16MiB",
        "--lun",
        "D:=16MiB:physical",
        "--array",
        "old",
    ]);
}

#[test]
fn a_contract_0_2_0_array_serves_snapshot_copy_and_revert() {
    let lab = lab_with_frozen_array();
    let adapters = lab.ok(&["adapters"]);
    let contract_of = |name: &str| {
        adapters
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["contract"].clone())
    };
    assert_eq!(contract_of("frozen"), Some("0.2.0".into()), "{adapters}");
    assert_eq!(contract_of("lab-array"), Some("0.3.0".into()), "{adapters}");

    create_legacy_vm(&lab);
    let first = pattern(1, 300_000);
    lab.write("legacy", "D:", 4093, &first);
    lab.write("legacy", "C:", 0, &first);
    let (point, _) = lab.snapshot("legacy");
    lab.ok(&["copy", "legacy", &point]);
    lab.write("legacy", "D:", 4093, &pattern(2, 300_000));
    lab.ok(&["revert", "legacy", &point]);
    assert!(
        lab.read("legacy", "D:", 4093, first.len()) == first,
        "the 0.2.0 LUN reverted"
    );
    assert!(
        lab.read("legacy", "C:", 0, first.len()) == first,
        "the 0.3.0 disk reverted"
    );
    lab.ok(&["verify", &point]);
    lab.assert_reconciled();
}

#[test]
fn hardware_from_lab_vm_create_is_kept_in_the_catalog() {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    lab.ok(&[
        "lab",
        "vm",
        "create",
        "hw",
        "--host",
        "esx-a",
        "--disk",
        "C:=16MiB",
        "--cpus",
        "2",
        "--memory",
        "4GiB",
        "--nic",
        "52:54:00:AA:00:01@prod",
        "--firmware",
        "uefi",
    ]);
    let vm = lab.ok(&["vm", "show", "hw"]);
    let hardware = &vm["hardware"];
    assert_eq!(hardware["cpus"], 2, "{vm}");
    assert_eq!(hardware["memory"], 4u64 << 30, "{vm}");
    assert_eq!(hardware["firmware"], "uefi", "{vm}");
    assert_eq!(hardware["nics"][0]["mac"], "52:54:00:aa:00:01", "{vm}");
    assert_eq!(hardware["nics"][0]["network"], "prod", "{vm}");
    assert!(
        hardware.get("disk_bus").is_none(),
        "unknown stays absent: {vm}"
    );

    for (flag, value, says) in [
        ("--nic", "52:54:00:aa:00@prod", "malformed MAC"),
        ("--nic", "52:54:00:aa:00:02", "MAC@NETWORK"),
        ("--cpus", "0", "not in 1..=1024"),
        ("--memory", "12KiB", "at least 1MiB"),
        ("--firmware", "coreboot", "bios or uefi"),
    ] {
        let out = lab.run(&[
            "lab", "vm", "create", "bad", "--host", "esx-a", "--disk", "C:=16MiB", flag, value,
        ]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
    let out = lab.run(&["vm", "show", "bad"]);
    assert!(!out.status.success(), "nothing was made: {}", json(&out));
}
