//! Turns `.wasm` bytes into a ready-to-instantiate adapter: compile (once, cached on disk),
//! check the contract version, find which world it implements, and ask who it is.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use super::store::StoreState;
use crate::contract::{
    self, CONTRACT_VERSION, adapter, contract_compatible, data_path, hypervisor, storage_array,
};

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
    pub info: contract::AdapterInfo,
    pub(crate) pre: InstancePre<StoreState>,
    pub(crate) adapter_indices: adapter::GuestIndices,
    pub(crate) data_path_indices: data_path::GuestIndices,
    pub(crate) hypervisor_indices: Option<hypervisor::GuestIndices>,
    pub(crate) storage_array_indices: Option<storage_array::GuestIndices>,
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
/// implements, from its export names, before anything of it runs.
pub fn inspect(engine: &Engine, component: &Component, name: &str) -> anyhow::Result<AdapterKind> {
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
    if let Some((_, version)) = ours.iter().find(|(_, v)| !contract_compatible(v)) {
        bail!(
            "adapter {name} was built for contract tidemark:adapter@{version}, but this host \
             speaks tidemark:adapter@{CONTRACT_VERSION}; rebuild it with a matching tidemark-sdk"
        );
    }
    let has = |iface: &str| ours.iter().any(|(i, _)| i == iface);
    match (has("hypervisor"), has("storage-array")) {
        (true, false) => Ok(AdapterKind::Hypervisor),
        (false, true) => Ok(AdapterKind::StorageArray),
        (true, true) => {
            bail!("adapter {name} exports both hypervisor and storage-array; one world per adapter")
        }
        (false, false) => bail!(
            "adapter {name} exports neither tidemark:adapter/hypervisor nor tidemark:adapter/storage-array"
        ),
    }
}

/// Links the component and looks up every export it must have; fails naming what is missing.
pub fn prepare(
    linker: &Linker<StoreState>,
    component: &Component,
    name: &str,
    source: String,
    kind: AdapterKind,
) -> anyhow::Result<LoadedAdapter> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| anyhow!("adapter {name} cannot be linked: {e:?}"))?;
    let wrap = |e: wasmtime::Error| anyhow!("adapter {name} does not match the contract: {e}");
    let adapter_indices = adapter::GuestIndices::new(&pre).map_err(wrap)?;
    let data_path_indices = data_path::GuestIndices::new(&pre).map_err(wrap)?;
    let (hypervisor_indices, storage_array_indices) = match kind {
        AdapterKind::Hypervisor => (
            Some(hypervisor::GuestIndices::new(&pre).map_err(wrap)?),
            None,
        ),
        AdapterKind::StorageArray => (
            None,
            Some(storage_array::GuestIndices::new(&pre).map_err(wrap)?),
        ),
    };
    Ok(LoadedAdapter {
        name: name.to_string(),
        source,
        kind,
        info: contract::AdapterInfo {
            contract: String::new(),
            vendor: String::new(),
            version: String::new(),
            capabilities: Vec::new(),
        },
        pre,
        adapter_indices,
        data_path_indices,
        hypervisor_indices,
        storage_array_indices,
    })
}
