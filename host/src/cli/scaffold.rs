//! `tidemark adapter new NAME --kind storage-array`: a new adapter project that builds
//! offline and passes the conformance suite as generated. The adapter is
//! `plugins/template-array` (built and conformance-tested with the rest of the tree, so what
//! is written here always works); the SDK and the contract's WIT files are embedded in the
//! binary and written beside the project (`vendor/`) unless `--sdk` names a checkout, and
//! the workspace's `Cargo.lock` pins the same crate versions this tree builds with.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::Outcome;

/// The template adapter's source.
const TEMPLATE_ARRAY: &str = include_str!("../../../plugins/template-array/src/lib.rs");
/// The lock file of this tree: the project resolves to the same versions, offline.
const LOCK: &str = include_str!("../../../Cargo.lock");
/// The SDK's sources (its `Cargo.toml` is written by [`sdk_manifest`]: the tree's uses
/// workspace inheritance).
const SDK_FILES: &[(&str, &str)] = &[
    (
        "src/bindings.rs",
        include_str!("../../../sdk/src/bindings.rs"),
    ),
    (
        "src/data_path.rs",
        include_str!("../../../sdk/src/data_path.rs"),
    ),
    ("src/dns.rs", include_str!("../../../sdk/src/dns.rs")),
    ("src/errors.rs", include_str!("../../../sdk/src/errors.rs")),
    ("src/host.rs", include_str!("../../../sdk/src/host.rs")),
    ("src/http.rs", include_str!("../../../sdk/src/http.rs")),
    (
        "src/hypervisor.rs",
        include_str!("../../../sdk/src/hypervisor.rs"),
    ),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    (
        "src/machine.rs",
        include_str!("../../../sdk/src/machine.rs"),
    ),
    ("src/net.rs", include_str!("../../../sdk/src/net.rs")),
    (
        "src/records.rs",
        include_str!("../../../sdk/src/records.rs"),
    ),
    (
        "src/storage_array.rs",
        include_str!("../../../sdk/src/storage_array.rs"),
    ),
];
/// The contract the SDK builds its bindings from.
const WIT_FILES: &[(&str, &str)] = &[
    (
        "adapter.wit",
        include_str!("../../../wit/since_v0.3.0/adapter.wit"),
    ),
    (
        "cloud.wit",
        include_str!("../../../wit/since_v0.3.0/cloud.wit"),
    ),
    (
        "data-path.wit",
        include_str!("../../../wit/since_v0.3.0/data-path.wit"),
    ),
    ("dns.wit", include_str!("../../../wit/since_v0.3.0/dns.wit")),
    (
        "host.wit",
        include_str!("../../../wit/since_v0.3.0/host.wit"),
    ),
    (
        "hypervisor.wit",
        include_str!("../../../wit/since_v0.3.0/hypervisor.wit"),
    ),
    (
        "machine.wit",
        include_str!("../../../wit/since_v0.3.0/machine.wit"),
    ),
    (
        "storage-array.wit",
        include_str!("../../../wit/since_v0.3.0/storage-array.wit"),
    ),
    (
        "types.wit",
        include_str!("../../../wit/since_v0.3.0/types.wit"),
    ),
    (
        "worlds.wit",
        include_str!("../../../wit/since_v0.3.0/worlds.wit"),
    ),
];

/// What `adapter new` is asked for.
pub struct NewAdapter {
    pub name: String,
    pub kind: String,
    pub lang: String,
    pub sdk: Option<PathBuf>,
    pub dir: PathBuf,
}

/// A crate name: lower-case letters, digits and `-`, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let fine = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !fine {
        bail!(
            "adapter name {name:?}: use 1-64 lower-case letters, digits and '-', starting with a letter"
        );
    }
    Ok(())
}

/// The SDK's manifest outside this workspace.
fn sdk_manifest() -> String {
    format!(
        r#"[package]
name = "tidemark-sdk"
description = "Write Tidemark adapters (vendored by tidemark adapter new)"
version = "{version}"
edition = "2024"
license = "Apache-2.0"

[dependencies]
wit-bindgen = {{ version = "0.61", default-features = false, features = ["macros", "realloc", "std"] }}
wasip2 = "2"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[features]
default = ["hypervisor"]
hypervisor = []
storage-array = []
dns = []
machine = []
"#,
        version = env!("CARGO_PKG_VERSION")
    )
}

/// The adapter's manifest: its own workspace, the SDK at `sdk_path`.
fn adapter_manifest(name: &str, sdk_path: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
tidemark-sdk = {{ path = "{sdk_path}", default-features = false, features = ["storage-array"] }}
serde = {{ version = "1", features = ["derive"] }}

# A project of its own, even inside another workspace's directory.
[workspace]

[profile.release]
opt-level = "s"
"#
    )
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes the project; answers where it is and the commands to build and test it.
pub fn run(new: NewAdapter) -> anyhow::Result<Outcome> {
    check_name(&new.name)?;
    match (new.kind.as_str(), new.lang.as_str()) {
        ("storage-array", "rust") => {}
        ("hypervisor", _) => bail!("--kind hypervisor is not written yet; --kind storage-array is"),
        (_, "python") => bail!("--lang python is not written yet; --lang rust is"),
        (kind, lang) => bail!("unknown --kind {kind} or --lang {lang}"),
    }
    let root = new.dir.join(&new.name);
    if root.exists() {
        bail!(
            "{} exists already; choose another name or --dir",
            root.display()
        );
    }
    let sdk_path = match &new.sdk {
        Some(checkout) => {
            let sdk = checkout.join("sdk");
            if !sdk.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk {}: no sdk/Cargo.toml there (give a Tidemark checkout)",
                    checkout.display()
                );
            }
            std::fs::canonicalize(&sdk)?.display().to_string()
        }
        None => {
            let vendor = root.join("vendor");
            write(&vendor.join("tidemark-sdk/Cargo.toml"), &sdk_manifest())?;
            for (path, text) in SDK_FILES {
                write(&vendor.join("tidemark-sdk").join(path), text)?;
            }
            for (path, text) in WIT_FILES {
                write(&vendor.join("wit/since_v0.3.0").join(path), text)?;
            }
            "vendor/tidemark-sdk".to_string()
        }
    };
    write(
        &root.join("Cargo.toml"),
        &adapter_manifest(&new.name, &sdk_path),
    )?;
    write(&root.join("Cargo.lock"), LOCK)?;
    write(&root.join("src/lib.rs"), TEMPLATE_ARRAY)?;
    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        new.name.replace('-', "_")
    );
    let build = "cargo build --release --target wasm32-wasip2".to_string();
    let test = format!("tidemark adapter test {wasm}");
    write(
        &root.join("README.md"),
        &format!(
            "# {name}\n\nA Tidemark storage-array adapter. It keeps LUNs as files in its data directory;\nreplace each function in `src/lib.rs` with calls to your array.\n\n```sh\n{build}\n{test}\n```\n",
            name = new.name
        ),
    )?;
    let text = format!(
        "wrote {root} (a storage-array adapter that passes the conformance suite as it is)\n\n  cd {root}\n  {build}\n  {test}",
        root = root.display()
    );
    Ok(Outcome::ok(
        json!({ "project": root.display().to_string(), "build": build, "wasm": wasm, "test": test }),
        text,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SDK source and WIT file is embedded: a file added there without a line here
    /// would make generated projects fail to build.
    #[test]
    fn every_sdk_and_wit_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let listed = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            names
        };
        let sdk: Vec<String> = SDK_FILES
            .iter()
            .map(|(p, _)| p.trim_start_matches("src/").to_string())
            .collect();
        assert_eq!(sdk, listed("sdk/src"));
        let wit: Vec<String> = WIT_FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(wit, listed("wit/since_v0.3.0"));
    }

    #[test]
    fn names_that_are_no_crate_names_are_refused() {
        for bad in ["", "Acme", "1array", "my_array", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("acme-array").unwrap();
    }
}
