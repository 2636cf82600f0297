//! The exports of one adapter in the bindings of its contract version: the indices found at
//! load ([`Indices`]) and the interfaces loaded into a session on first use ([`Guests`]).
//! One macro writes both for each version from the list of its kind-specific interfaces, so
//! adding a version is one line here.

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use super::store::StoreState;
use crate::contract::Version;
use crate::model::AdapterKind;

/// The contract interface a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "cloud calls come with their port")]
pub(crate) enum Interface {
    Hypervisor,
    StorageArray,
    Cloud,
    Dns,
    Machine,
    DataPath,
}

/// Whether adapters of a kind export `data-path` (dns and machine adapters move no bytes).
pub(crate) fn has_data_path(kind: AdapterKind) -> bool {
    matches!(
        kind,
        AdapterKind::Hypervisor | AdapterKind::StorageArray | AdapterKind::Cloud
    )
}

macro_rules! version_bindings {
    ($version:ident { $($field:ident: $kind:ident),* $(,)? }) => {
        /// The bindings of one contract version.
        pub(crate) mod $version {
            use super::*;
            use crate::contract::$version as wit;

            /// Where each export the adapter's kind needs lives in the component.
            pub(crate) struct Indices {
                pub(crate) adapter: wit::adapter::GuestIndices,
                pub(crate) data_path: Option<wit::data_path::GuestIndices>,
                $(pub(crate) $field: Option<wit::$field::GuestIndices>,)*
            }

            impl Indices {
                /// Finds every export an adapter of `kind` must have; an error names what
                /// is missing or mistyped.
                pub(crate) fn new(
                    pre: &InstancePre<StoreState>,
                    kind: AdapterKind,
                ) -> wasmtime::Result<Self> {
                    Ok(Self {
                        adapter: wit::adapter::GuestIndices::new(pre)?,
                        data_path: if has_data_path(kind) {
                            Some(wit::data_path::GuestIndices::new(pre)?)
                        } else {
                            None
                        },
                        $($field: if kind == AdapterKind::$kind {
                            Some(wit::$field::GuestIndices::new(pre)?)
                        } else {
                            None
                        },)*
                    })
                }
            }

            /// The interfaces a session has used so far.
            #[derive(Default)]
            pub(crate) struct Guests {
                pub(crate) data_path: Option<wit::data_path::Guest>,
                $(pub(crate) $field: Option<wit::$field::Guest>,)*
            }

            impl Guests {
                /// Loads `interface` unless loaded; `Ok(false)` when the adapter has none.
                pub(crate) fn load(
                    &mut self,
                    indices: &Indices,
                    store: &mut Store<StoreState>,
                    instance: &Instance,
                    interface: Interface,
                ) -> wasmtime::Result<bool> {
                    match interface {
                        Interface::DataPath => {
                            if self.data_path.is_none() {
                                let Some(found) = &indices.data_path else {
                                    return Ok(false);
                                };
                                self.data_path = Some(found.load(store, instance)?);
                            }
                            Ok(true)
                        }
                        $(Interface::$kind => {
                            if self.$field.is_none() {
                                let Some(found) = &indices.$field else {
                                    return Ok(false);
                                };
                                self.$field = Some(found.load(store, instance)?);
                            }
                            Ok(true)
                        })*
                        #[allow(unreachable_patterns)]
                        _ => Ok(false),
                    }
                }
            }
        }
    };
}

version_bindings!(v0_2 {
    hypervisor: Hypervisor,
    storage_array: StorageArray,
});
version_bindings!(v0_3 {
    hypervisor: Hypervisor,
    storage_array: StorageArray,
    cloud: Cloud,
    dns: Dns,
    machine: Machine,
});

/// An adapter's export indices in the bindings of its version.
#[allow(
    clippy::large_enum_variant,
    reason = "one per loaded adapter, made once and never moved on a hot path"
)]
pub(crate) enum Indices {
    V0_2(v0_2::Indices),
    V0_3(v0_3::Indices),
}

impl Indices {
    /// The indices of an adapter of `version` and `kind`.
    pub(crate) fn new(
        pre: &InstancePre<StoreState>,
        version: Version,
        kind: AdapterKind,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            Version::V0_2 => Indices::V0_2(v0_2::Indices::new(pre, kind)?),
            Version::V0_3 => Indices::V0_3(v0_3::Indices::new(pre, kind)?),
        })
    }

    /// The version these bindings are of.
    pub(crate) fn version(&self) -> Version {
        match self {
            Indices::V0_2(_) => Version::V0_2,
            Indices::V0_3(_) => Version::V0_3,
        }
    }
}

/// A session's loaded interfaces, in the bindings of its adapter's version.
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, inside the session; boxing would add an allocation per step"
)]
pub(crate) enum Guests {
    V0_2(v0_2::Guests),
    V0_3(v0_3::Guests),
}

impl Guests {
    /// Nothing loaded yet, for an adapter with these indices.
    pub(crate) fn for_indices(indices: &Indices) -> Self {
        match indices {
            Indices::V0_2(_) => Guests::V0_2(Default::default()),
            Indices::V0_3(_) => Guests::V0_3(Default::default()),
        }
    }

    /// Loads `interface` unless loaded; `Ok(false)` when the adapter has none.
    pub(crate) fn load(
        &mut self,
        indices: &Indices,
        store: &mut Store<StoreState>,
        instance: &Instance,
        interface: Interface,
    ) -> wasmtime::Result<bool> {
        match (self, indices) {
            (Guests::V0_2(g), Indices::V0_2(i)) => g.load(i, store, instance, interface),
            (Guests::V0_3(g), Indices::V0_3(i)) => g.load(i, store, instance, interface),
            _ => Err(wasmtime::format_err!(
                "a session's bindings do not match its adapter's version"
            )),
        }
    }
}
