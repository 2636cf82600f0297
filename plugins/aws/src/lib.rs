//! Tidemark adapters for Amazon Web Services. One crate builds one component per feature,
//! each for its own world, all signing with the one [`sigv4`] module:
//!
//! - `route53` → `aws-route53.wasm`, a DNS adapter on Route 53's REST XML API ([`route53`]);
//! - `ec2` → `aws-ec2.wasm`, a cloud adapter, comes with the cloud world.
//!
//! Build one feature at a time: `cargo build --target wasm32-wasip2 --features route53`.

pub mod sigv4;

#[cfg(feature = "route53")]
pub mod route53;
