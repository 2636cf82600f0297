//! Turns `.wasm` bytes into a ready-to-instantiate adapter: compile (once, cached on disk),
//! check the contract version, find which world it implements, and ask who it is.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use super::bindings::Indices;
use super::store::StoreState;
use crate::contract::{Version, supported_list};
use crate::model::capabilities::{MANIFEST_SECTION, Requested};

pub use crate::model::AdapterKind;

/// An adapter compiled and linked, ready for a fresh instance per job step.
pub struct LoadedAdapter {
    /// Name endpoints refer to (`lab-hypervisor`, or the file stem of an external adapter).
    pub name: String,
    /// Where it came from: `embedded` or the file path.
    pub source: String,
    /// The world it implements.
    pub kind: AdapterKind,
    /// Filled in after the first instantiation (`info` call) at load.
    pub info: crate::model::AdapterInfo,
    pub(crate) pre: InstancePre<StoreState>,
    /// Its exports in the bindings of its contract version.
    pub(crate) indices: Indices,
    /// SHA-256 of its `.wasm`, hex: which build this is.
    pub sha256: String,
    /// When it was added (ms since the epoch; its file's time for one found at start, 0 for
    /// an embedded one): a job uses the newest version added before it started.
    pub loaded_at_ms: i64,
    /// What it asks to reach outside its sandbox, from its manifest section.
    pub requested: Requested,
}

impl LoadedAdapter {
    /// The contract version it was built against.
    pub fn version(&self) -> Version {
        self.indices.version()
    }
}

/// Compiles `wasm`, reusing a precompiled artifact from `cache_dir` when one matches the bytes
/// and this engine's configuration.
pub fn compile(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, wasm).map_err(|e| anyhow!("{e:?}"));
    };
    let path = cache_path(engine, wasm, cache_dir);
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash (part of the file name), inside the host's own data directory.
        // Wasmtime re-checks the header and refuses a mismatch, in which case we recompile.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(component);
        }
    }
    let bytes = engine
        .precompile_component(wasm)
        .map_err(|e| anyhow!("{e:?}"))?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating compile cache {}", cache_dir.display()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    // SAFETY: as above; these are the bytes just produced by this engine.
    unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| anyhow!("{e:?}"))
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn cache_path(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut digest = Sha256::new();
    digest.update(wasm);
    digest.update(engine_hash.finish().to_le_bytes());
    cache_dir.join(format!("{}.cwasm", hex::encode(&digest.finalize()[..16])))
}

/// Checks the contract version the component was built against and which world it
/// implements, from its export names, before anything of it runs. A version this host does
/// not speak is refused naming the versions it does.
pub fn inspect(
    engine: &Engine,
    component: &Component,
    name: &str,
) -> anyhow::Result<(Version, AdapterKind)> {
    let mut ours = Vec::new();
    let mut all = Vec::new();
    for (export, _) in component.component_type().exports(engine) {
        all.push(export.to_string());
        if let Some(rest) = export.strip_prefix("tidemark:adapter/") {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            ours.push((interface.to_string(), version.to_string()));
        }
    }
    if ours.is_empty() {
        bail!(
            "adapter {name} is not a Tidemark adapter: it exports no tidemark:adapter interface \
             (exports: {})",
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        );
    }
    let mut versions: Vec<&str> = ours.iter().map(|(_, v)| v.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    let [version] = versions[..] else {
        bail!(
            "adapter {name} mixes contract versions {}; one version per adapter",
            versions.join(", ")
        );
    };
    let Some(version) = Version::parse(version) else {
        bail!(
            "adapter {name} was built for contract tidemark:adapter@{version}, but this host \
             supports {}; rebuild it with a matching tidemark-sdk",
            supported_list()
        );
    };
    let has = |iface: &str| ours.iter().any(|(i, _)| i == iface);
    let kinds: Vec<AdapterKind> = AdapterKind::ALL
        .into_iter()
        .filter(|kind| has(kind.interface()))
        .collect();
    match kinds[..] {
        [kind] => Ok((version, kind)),
        [] => bail!(
            "adapter {name} exports none of the adapter interfaces ({})",
            AdapterKind::ALL.map(|k| k.interface()).join(", ")
        ),
        _ => bail!(
            "adapter {name} exports {}; one world per adapter",
            kinds
                .iter()
                .map(|k| k.interface())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// Links the component and looks up every export it must have; fails naming what is missing.
pub fn prepare(
    linker: &Linker<StoreState>,
    component: &Component,
    name: &str,
    source: String,
    (version, kind): (Version, AdapterKind),
) -> anyhow::Result<LoadedAdapter> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| anyhow!("adapter {name} cannot be linked: {e:?}"))?;
    let indices = Indices::new(&pre, version, kind)
        .map_err(|e| anyhow!("adapter {name} does not match contract {version}: {e}"))?;
    Ok(LoadedAdapter {
        name: name.to_string(),
        source,
        kind,
        info: crate::model::AdapterInfo::default(),
        pre,
        indices,
        sha256: String::new(),
        loaded_at_ms: 0,
        requested: Requested::without_manifest(),
    })
}

/// What the adapter asks for, from its `tidemark:manifest` custom section (the SDK's
/// `manifest!` puts it into the core module, which the component nests), read before
/// anything of it runs. Without one it asks for a data directory only.
pub fn read_manifest(wasm: &[u8]) -> Result<Requested, String> {
    let mut found: Option<Vec<u8>> = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("reading its sections: {e}"))?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == MANIFEST_SECTION
        {
            if found.is_some() {
                return Err(format!(
                    "it carries two {MANIFEST_SECTION} sections; an adapter declares one manifest"
                ));
            }
            found = Some(section.data().to_vec());
        }
    }
    match found {
        Some(bytes) => Requested::from_manifest(&bytes),
        None => Ok(Requested::without_manifest()),
    }
}
