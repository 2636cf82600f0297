//! Tidemark: protects and moves virtual machines, including their physically mapped array
//! LUNs, through sandboxed WebAssembly adapters.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod conformance;
pub mod contract;
pub mod copies;
pub mod data_dir;
pub mod engine;
pub mod logging;
pub mod model;
pub mod names;
pub mod refusal;
pub mod runtime;
pub mod units;

/// The build script's probe for the adapters' target, compiled here only so that its unit
/// tests run with the host's.
#[cfg(test)]
#[path = "../build/wasm_target.rs"]
mod build_wasm_target;
