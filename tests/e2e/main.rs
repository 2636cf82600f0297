//! End-to-end tests: they drive the built `tidemark` binary, which runs the real lab Wasm
//! adapters, on a fresh data directory each.

mod adapters_live;
mod api;
mod aws_route53;
mod bad_input;
mod client;
mod conformance;
mod contracts;
mod copies;
mod copy_store;
mod daemons;
mod fault_proxy;
mod grants;
mod harness;
mod http_faults;
mod libvirt_hypervisor;
mod libvirt_rpc;
mod libvirtd;
mod matrix;
mod nbd_client;
mod powerdns;
mod progress_events;
mod qsd_array;
mod real_scenario;
mod redfish;
mod scaffold;
mod snapshot_revert;
mod tls;
