//! Bad input gets a clear error, the right exit code, and changes nothing.

use crate::harness::{Lab, json};

fn fails(lab: &Lab, args: &[&str], code: i32, needle: &str) {
    let out = lab.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "tidemark {args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "tidemark {args:?}: expected '{needle}' in: {stderr}"
    );
}

#[test]
fn unknown_things_are_named() {
    let lab = Lab::with_vm();
    lab.create_vm("other");
    let (other_point, _) = lab.snapshot("other");
    fails(&lab, &["snapshot", "nope"], 1, "unknown VM 'nope'");
    fails(
        &lab,
        &["revert", "app", "rp-missing"],
        1,
        "unknown recovery point 'rp-missing'",
    );
    fails(
        &lab,
        &["revert", "app", &other_point],
        1,
        "belongs to VM other, not app",
    );
    fails(
        &lab,
        &["inventory", "--endpoint", "nope"],
        1,
        "unknown endpoint 'nope'",
    );
    fails(&lab, &["job", "job-nope"], 1, "unknown job");
    fails(
        &lab,
        &["endpoint", "add", "x", "--adapter", "nope"],
        1,
        "unknown adapter 'nope'",
    );
    // Nothing changed: app has no point, and the only job is the snapshot of `other`.
    assert_eq!(lab.ok(&["points", "app"]).as_array().unwrap().len(), 0);
    assert_eq!(lab.ok(&["jobs"]).as_array().unwrap().len(), 1);
    lab.assert_reconciled();
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    fails(
        &lab,
        &[
            "lab", "vm", "create", "a", "--host", "esx-a", "--disk", "C:=12XB",
        ],
        2,
        "12XB",
    );
    fails(
        &lab,
        &[
            "lab", "vm", "create", "a", "--host", "esx-a", "--disk", "Q=1GiB",
        ],
        2,
        "mount point",
    );
    fails(
        &lab,
        &[
            "lab",
            "vm",
            "create",
            "a",
            "--host",
            "esx-a",
            "--lun",
            "D:=1GiB:sideways",
        ],
        2,
        "sideways",
    );
    fails(
        &lab,
        &["lab", "read", "a", "C:", "--offset", "x", "--length", "1"],
        2,
        "malformed size",
    );
    fails(
        &lab,
        &[
            "endpoint",
            "add",
            "e",
            "--adapter",
            "lab-array",
            "--setting",
            "timeout=soon",
        ],
        1,
        "timeout",
    );
    fails(
        &lab,
        &[
            "lab", "vm", "create", "../evil", "--host", "esx-a", "--disk", "C:=1MiB",
        ],
        1,
        "malformed VM name",
    );
    fails(
        &lab,
        &[
            "lab", "vm", "create", "a", "--host", "esx-z", "--disk", "C:=1MiB",
        ],
        1,
        "esx-z",
    );
    assert_eq!(lab.ok(&["vm", "list"]).as_array().unwrap().len(), 0);
}

#[test]
fn duplicates_are_refused() {
    let lab = Lab::with_vm();
    fails(
        &lab,
        &[
            "lab", "vm", "create", "app", "--host", "esx-b", "--disk", "C:=1MiB",
        ],
        1,
        "exists already",
    );
    fails(
        &lab,
        &[
            "lab", "vm", "create", "b", "--host", "esx-a", "--disk", "C:=1MiB", "--disk", "C:=2MiB",
        ],
        1,
        "given twice",
    );
    fails(
        &lab,
        &["endpoint", "add", "lab-array", "--adapter", "lab-array"],
        1,
        "exists already",
    );
    fails(
        &lab,
        &[
            "lab",
            "write",
            "app",
            "C:",
            "--offset",
            "64MiB",
            "--file",
            "/etc/hostname",
        ],
        1,
        "past the end",
    );
    assert_eq!(lab.ok(&["vm", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn an_adapter_answering_nonsense_is_refused_clearly() {
    let lab = Lab::empty();
    std::fs::create_dir_all(lab.dir.path().join("adapters")).unwrap();
    std::fs::copy(
        env!("TIDEMARK_MISBEHAVING_WASM"),
        lab.dir.path().join("adapters/misbehaving.wasm"),
    )
    .unwrap();
    lab.ok(&[
        "endpoint",
        "add",
        "liar",
        "--adapter",
        "misbehaving",
        "--setting",
        "behavior=nonsense",
    ]);
    let out = lab.run(&["inventory", "--endpoint", "liar"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    let error = doc[0]["error"].as_str().unwrap();
    assert!(
        error.contains("nonsensically") && error.contains("not-a-wwn"),
        "{error}"
    );
}
