//! Builds the bundled adapters for `wasm32-wasip2` so that `cargo build` alone produces a
//! binary that carries them. Like wasmtime's test-programs artifacts, it runs a nested cargo
//! with its own target directory (no lock contention with the outer build) and one
//! invocation per adapter (each picks its SDK world by feature, so features must not unify).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/wasm_target.rs"]
mod wasm_target;

/// (package, features picking its component, file name in OUT_DIR, env var naming its path
/// for tests). A crate building several components (one per world) has a row for each.
const ADAPTERS: &[(&str, &str, &str, &str)] = &[
    (
        "lab-hypervisor",
        "",
        "lab_hypervisor.wasm",
        "TIDEMARK_LAB_HYPERVISOR_WASM",
    ),
    ("lab-array", "", "lab_array.wasm", "TIDEMARK_LAB_ARRAY_WASM"),
    ("qsd-array", "", "qsd_array.wasm", "TIDEMARK_QSD_ARRAY_WASM"),
    (
        "template-array",
        "",
        "template_array.wasm",
        "TIDEMARK_TEMPLATE_ARRAY_WASM",
    ),
    (
        "libvirt-hypervisor",
        "",
        "libvirt_hypervisor.wasm",
        "TIDEMARK_LIBVIRT_HYPERVISOR_WASM",
    ),
    ("powerdns", "", "powerdns.wasm", "TIDEMARK_POWERDNS_WASM"),
    ("redfish", "", "redfish.wasm", "TIDEMARK_REDFISH_WASM"),
    (
        "aws",
        "route53",
        "aws-route53.wasm",
        "TIDEMARK_AWS_ROUTE53_WASM",
    ),
    (
        "misbehaving",
        "",
        "misbehaving.wasm",
        "TIDEMARK_MISBEHAVING_WASM",
    ),
    (
        "contract-v0-2",
        "",
        "contract_v0_2.wasm",
        "TIDEMARK_CONTRACT_V0_2_WASM",
    ),
    (
        "broken-array",
        "",
        "broken_array.wasm",
        "TIDEMARK_BROKEN_ARRAY_WASM",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-adapters"),
        None => root.join("target").join("wasm-adapters"),
    };
    for watched in ["wit", "sdk", "plugins", "tests/adapters", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed=build/wasm_target.rs");
    ensure_wasm_target();
    for (package, features, file, env_name) in ADAPTERS {
        let built = build_adapter(&root, &target_dir, package, features);
        let dest = out_dir.join(file);
        std::fs::copy(&built, &dest)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), dest.display()));
        println!("cargo:rustc-env={env_name}={}", dest.display());
    }
}

/// Stops the build at once, naming the command to run, when the adapters' target is missing
/// and cannot be added (rather than failing minutes later inside the nested build).
fn ensure_wasm_target() {
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    let checked = wasm_target::sysroot_of(&rustc).and_then(|sysroot| {
        let rustup = wasm_target::find_rustup(env::var_os("PATH").as_deref());
        wasm_target::ensure_target(
            &sysroot,
            wasm_target::WASM_TARGET,
            rustup.as_deref(),
            wasm_target::RUSTUP_LIMIT,
        )
    });
    if let Err(why) = checked {
        eprintln!("error: {why}");
        std::process::exit(1);
    }
}

fn build_adapter(root: &Path, target_dir: &Path, package: &str, features: &str) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--package",
            package,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if !features.is_empty() {
        command.args(["--features", features]);
    }
    // Flags meant for the host build (clippy's wrapper, host rustflags) must not leak into
    // the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CLIPPY_ARGS",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build adapter {package}: {e}"));
    assert!(
        status.success(),
        "building adapter {package} (features '{features}') for wasm32-wasip2 failed"
    );
    target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
