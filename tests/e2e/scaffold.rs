//! `tidemark adapter new`: the template array passes the conformance suite, and a project
//! written by `adapter new` builds offline with the command it prints and passes the suite
//! as generated; a bad name or an existing directory is refused.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{Lab, unpassed};

const TEMPLATE_ARRAY: &str = env!("TIDEMARK_TEMPLATE_ARRAY_WASM");

#[test]
fn the_template_array_passes_the_conformance_suite() {
    let lab = Lab::empty();
    let (code, report) = lab.adapter_test(&[TEMPLATE_ARRAY]);
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));
    assert!(report["passed"].as_u64().unwrap() >= 70, "{report}");
}

#[test]
fn a_new_project_builds_offline_and_passes_the_suite_as_generated() {
    let lab = Lab::empty();
    let dir = lab.dir.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let made = lab.ok(&["adapter", "new", "acme-array", "--dir", dir_arg]);
    let project = PathBuf::from(made["project"].as_str().unwrap());
    assert_eq!(
        made["build"],
        "cargo build --release --target wasm32-wasip2"
    );

    // The printed command, offline, with a target directory kept between runs.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/tidemark-target"))
        .join("scaffolded");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("running cargo");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/acme_array.wasm");
    let (code, report) = lab.adapter_test(&[wasm.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));

    // Again into the same place: refused, nothing overwritten.
    let again = lab.run(&["adapter", "new", "acme-array", "--dir", dir_arg]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = lab.run(&["adapter", "new", "Acme_Array", "--dir", dir_arg]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lower-case"));
}
