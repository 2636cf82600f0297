//! One sandboxed instance of an adapter for one job step, and the plumbing every call shares:
//! arm the deadline, call, turn traps and caps into errors naming endpoint and call.

use std::sync::Arc;

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::loader::LoadedAdapter;
use super::store::StoreState;
use super::translate::IntoHost;
use crate::contract::{AdapterError, data_path, hypervisor, storage_array};
use crate::engine::ports::{CallError, CallErrorKind, CallResult};

/// A fresh instance of an endpoint's adapter. Dropped at the end of the step; an instance
/// that trapped refuses further calls.
pub struct Session {
    pub(crate) store: Store<StoreState>,
    pub(crate) instance: Instance,
    pub(crate) adapter: Arc<LoadedAdapter>,
    pub(crate) hypervisor: Option<hypervisor::Guest>,
    pub(crate) storage_array: Option<storage_array::Guest>,
    pub(crate) data_path: Option<data_path::Guest>,
    broken: Option<String>,
    /// When the call in flight was armed, for the per-call metrics.
    armed_at: std::time::Instant,
}

impl Session {
    pub(crate) fn new(
        store: Store<StoreState>,
        instance: Instance,
        adapter: Arc<LoadedAdapter>,
    ) -> Self {
        Self {
            store,
            instance,
            adapter,
            hypervisor: None,
            storage_array: None,
            data_path: None,
            broken: None,
            armed_at: std::time::Instant::now(),
        }
    }

    /// Endpoint name.
    pub fn endpoint_name(&self) -> &str {
        &self.store.data().endpoint.name
    }

    fn error(&self, call: &'static str, kind: CallErrorKind) -> CallError {
        CallError {
            endpoint: self.endpoint_name().to_string(),
            call,
            kind,
        }
    }

    /// Checks the instance is usable, loads the interface the call needs, sets the deadline.
    pub(crate) fn arm(&mut self, call: &'static str, interface: Interface) -> CallResult<()> {
        if let Some(reason) = &self.broken {
            let message = format!("instance unusable after an earlier failure ({reason})");
            return Err(self.error(call, CallErrorKind::Host(message)));
        }
        let loaded = match interface {
            Interface::Hypervisor if self.hypervisor.is_none() => {
                self.adapter.hypervisor_indices.as_ref().map(|i| {
                    i.load(&mut self.store, &self.instance)
                        .map(|g| self.hypervisor = Some(g))
                })
            }
            Interface::StorageArray if self.storage_array.is_none() => {
                self.adapter.storage_array_indices.as_ref().map(|i| {
                    i.load(&mut self.store, &self.instance)
                        .map(|g| self.storage_array = Some(g))
                })
            }
            Interface::DataPath if self.data_path.is_none() => Some(
                self.adapter
                    .data_path_indices
                    .load(&mut self.store, &self.instance)
                    .map(|g| self.data_path = Some(g)),
            ),
            _ => Some(Ok(())),
        };
        match loaded {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(self.error(
                    call,
                    CallErrorKind::Host(format!("adapter does not match the contract: {e}")),
                ));
            }
            None => {
                let message = format!(
                    "adapter {} is a {}, not a {interface:?}",
                    self.adapter.name, self.adapter.kind
                );
                return Err(self.error(call, CallErrorKind::Host(message)));
            }
        }
        let timeout = self.store.data().endpoint.call_timeout;
        self.store
            .set_epoch_deadline(super::deadline_ticks(timeout));
        self.armed_at = std::time::Instant::now();
        Ok(())
    }

    /// Turns the outcome of a guest call into the call's result.
    pub(crate) fn settle<T: IntoHost>(
        &mut self,
        call: &'static str,
        outcome: wasmtime::Result<Result<T, AdapterError>>,
    ) -> CallResult<T::Host> {
        let result = match outcome {
            Ok(Ok(value)) => Ok(value.into_host()),
            Ok(Err(adapter_error)) => {
                Err(self.error(call, CallErrorKind::Adapter(adapter_error.into_host())))
            }
            Err(failure) => Err(self.fail(call, failure)),
        };
        self.count(call, result.is_ok());
        result
    }

    /// Like [`settle`](Self::settle) for calls that cannot return an adapter error.
    pub(crate) fn settle_plain<T>(
        &mut self,
        call: &'static str,
        outcome: wasmtime::Result<T>,
    ) -> CallResult<T> {
        let result = outcome.map_err(|failure| self.fail(call, failure));
        self.count(call, result.is_ok());
        result
    }

    /// Counts a finished call (since it was armed) in the process's call metrics.
    fn count(&self, call: &'static str, ok: bool) {
        super::metrics::record(self.endpoint_name(), call, ok, self.armed_at.elapsed());
    }

    fn fail(&mut self, call: &'static str, failure: wasmtime::Error) -> CallError {
        let endpoint = &self.store.data().endpoint;
        let kind = if self.store.data().memory_cap_hit() {
            CallErrorKind::MemoryCap(endpoint.memory_cap)
        } else if failure.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            CallErrorKind::Timeout(endpoint.call_timeout)
        } else {
            CallErrorKind::Trap(format!("{failure:#}").replace('\n', " "))
        };
        let error = self.error(call, kind);
        tracing::warn!(endpoint = %error.endpoint, call, "adapter instance failed: {}", error.kind);
        self.broken = Some(error.kind.to_string());
        error
    }
}

/// The contract interface a call belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Interface {
    Hypervisor,
    StorageArray,
    DataPath,
}

/// Calls one guest function: `guest_call!(self, Interface::X, field, "call-name", |guest, store| guest.call_x(store, ...))`.
macro_rules! guest_call {
    ($session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {{
        let session: &mut $crate::runtime::Session = $session;
        session.arm($name, $iface)?;
        let outcome = {
            let $guest = session.$field.as_ref().expect("interface loaded by arm");
            let $store = &mut session.store;
            $call.await
        };
        session.settle($name, outcome)
    }};
    (plain $session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {{
        let session: &mut $crate::runtime::Session = $session;
        session.arm($name, $iface)?;
        let outcome = {
            let $guest = session.$field.as_ref().expect("interface loaded by arm");
            let $store = &mut session.store;
            $call.await
        };
        session.settle_plain($name, outcome)
    }};
}
pub(crate) use guest_call;
