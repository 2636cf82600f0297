//! Tidemark: protects and moves virtual machines, including their physically mapped array
//! LUNs, through sandboxed WebAssembly adapters.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod contract;
pub mod copies;
pub mod data_dir;
pub mod engine;
pub mod logging;
pub mod names;
pub mod refusal;
pub mod runtime;
pub mod units;
