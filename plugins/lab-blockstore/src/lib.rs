//! Thin copy-on-write block volumes for the lab hypervisor and lab storage-array adapters.
//!
//! A volume is a tree of layers (like qcow2 backing chains): the head layer takes writes,
//! a snapshot freezes the head and starts a new one (metadata only), a revert starts a new
//! head on top of a snapshot's layer. Each layer is a sparse data file (blocks at their own
//! offset) plus a block bitmap; `volume.json` ties them together and is replaced
//! atomically, so a killed process leaves at worst orphan files, cleaned up later.
//!
//! All I/O goes through [`Storage`]: [`StdStorage`] natively, `WasiStorage` inside a
//! WASI 0.2 component.

#![warn(missing_docs)]

mod bitmap;
mod chain;
mod error;
mod meta;
mod storage;
mod store;
mod writer;

#[cfg(not(target_os = "wasi"))]
mod std_storage;
#[cfg(target_os = "wasi")]
mod wasi_storage;

pub use chain::{Extent, MAX_READ, Reader};
pub use error::{Error, Result};
pub use storage::{Storage, StorageFile, check_path, read_json, write_json};
pub use store::{BlockStore, SnapshotInfo, VolumeInfo};
pub use writer::Writer;

#[cfg(not(target_os = "wasi"))]
pub use std_storage::{StdFile, StdStorage};
#[cfg(target_os = "wasi")]
pub use wasi_storage::{WasiFile, WasiStorage};

/// Allocation granularity of every volume, in bytes.
pub const BLOCK_SIZE: u64 = meta::BLOCK_SIZE;
