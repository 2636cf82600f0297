//! Contract 0.3.0, the current one: the bindings of `wit/since_v0.3.0` (hardware, secrets,
//! and the cloud, dns and machine worlds).

wasmtime::component::bindgen!({
    world: "host-view",
    path: "../wit/since_v0.3.0",
    imports: { default: async },
    exports: { default: async },
});

pub use exports::tidemark::adapter::{
    adapter, cloud, data_path, dns, hypervisor, machine, storage_array,
};
pub use tidemark::adapter::host as host_imports;
pub use tidemark::adapter::types::*;
