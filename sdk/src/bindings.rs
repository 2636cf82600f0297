//! Guest bindings of the `tidemark:adapter` contract for the world this build targets.
//!
//! An adapter is one world, chosen by the SDK's cargo feature (`hypervisor` or
//! `storage-array`); the component-type section is emitted by the export macro, in the
//! adapter's own crate.

#[cfg(all(feature = "hypervisor", feature = "storage-array"))]
compile_error!("tidemark-sdk: enable exactly one of the features `hypervisor` and `storage-array`");

#[cfg(not(any(feature = "hypervisor", feature = "storage-array")))]
compile_error!("tidemark-sdk: enable one of the features `hypervisor` and `storage-array`");

/// Bindings of the `hypervisor-adapter` world.
#[cfg(feature = "hypervisor")]
pub mod world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "hypervisor-adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter_world",
        default_bindings_module: "tidemark_sdk::__private::world",
        runtime_path: "tidemark_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `storage-array-adapter` world.
#[cfg(feature = "storage-array")]
pub mod world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "storage-array-adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter_world",
        default_bindings_module: "tidemark_sdk::__private::world",
        runtime_path: "tidemark_sdk::__private::wit_bindgen::rt",
    });
}

pub use world::exports::tidemark::adapter::data_path;
pub use world::tidemark::adapter::host as host_imports;
pub use world::tidemark::adapter::types;
