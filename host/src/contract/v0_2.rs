//! Contract 0.2.0, frozen: the bindings of `wit/since_v0.2.0`. Adapters built against it keep
//! working on this host; nothing here changes any more.

wasmtime::component::bindgen!({
    world: "host-view",
    path: "../wit/since_v0.2.0",
    imports: { default: async },
    exports: { default: async },
});

pub use exports::tidemark::adapter::{adapter, data_path, hypervisor, storage_array};
pub use tidemark::adapter::host as host_imports;
pub use tidemark::adapter::types::*;
