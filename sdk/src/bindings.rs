//! Guest bindings of the `tidemark:adapter` contract for the world this build targets.
//!
//! An adapter is one world, chosen by the SDK's cargo feature (`hypervisor`,
//! `storage-array`, `dns` or `machine`); the component-type section is emitted by the export macro, in the
//! adapter's own crate.

#[cfg(any(
    all(feature = "hypervisor", feature = "storage-array"),
    all(feature = "hypervisor", feature = "dns"),
    all(feature = "hypervisor", feature = "machine"),
    all(feature = "storage-array", feature = "dns"),
    all(feature = "storage-array", feature = "machine"),
    all(feature = "dns", feature = "machine"),
))]
compile_error!(
    "tidemark-sdk: enable exactly one of the features `hypervisor`, `storage-array`, `dns` and `machine`"
);

#[cfg(not(any(
    feature = "hypervisor",
    feature = "storage-array",
    feature = "dns",
    feature = "machine"
)))]
compile_error!(
    "tidemark-sdk: enable one of the features `hypervisor`, `storage-array`, `dns` and `machine`"
);

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

/// Bindings of the `dns-adapter` world.
#[cfg(feature = "dns")]
pub mod world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "dns-adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter_world",
        default_bindings_module: "tidemark_sdk::__private::world",
        runtime_path: "tidemark_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `machine-adapter` world.
#[cfg(feature = "machine")]
pub mod world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "machine-adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter_world",
        default_bindings_module: "tidemark_sdk::__private::world",
        runtime_path: "tidemark_sdk::__private::wit_bindgen::rt",
    });
}

/// Worlds that move device bytes export `data-path`; dns and machine adapters do not.
#[cfg(any(feature = "hypervisor", feature = "storage-array"))]
pub use world::exports::tidemark::adapter::data_path;
pub use world::tidemark::adapter::host as host_imports;
pub use world::tidemark::adapter::types;
