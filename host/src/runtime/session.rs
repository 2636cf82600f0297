//! One sandboxed instance of an adapter for one job step, and the plumbing every call shares:
//! arm the deadline, call, turn traps and caps into errors naming endpoint and call.

use std::sync::Arc;

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::bindings::{Guests, Interface};
use super::loader::LoadedAdapter;
use super::store::StoreState;
use super::translate::IntoHost;
use crate::engine::ports::{CallError, CallErrorKind, CallResult};
use crate::model::AdapterError;

/// A fresh instance of an endpoint's adapter. Dropped at the end of the step; an instance
/// that trapped refuses further calls.
pub struct Session {
    pub(crate) store: Store<StoreState>,
    pub(crate) instance: Instance,
    pub(crate) adapter: Arc<LoadedAdapter>,
    /// The interfaces loaded so far, in the bindings of the adapter's contract version.
    pub(crate) guests: Guests,
    broken: Option<String>,
    /// When the call in flight was armed, for the per-call metrics.
    armed_at: std::time::Instant,
    /// A wall-clock limit of the call in flight, for an instance that may wait on the
    /// network (the epoch deadline interrupts running code, not a wait in the host).
    pub(crate) wall_limit: Option<std::time::Duration>,
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
            guests: Guests::for_indices(&adapter.indices),
            adapter,
            broken: None,
            armed_at: std::time::Instant::now(),
            wall_limit: None,
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
        match self.guests.load(
            &self.adapter.indices,
            &mut self.store,
            &self.instance,
            interface,
        ) {
            Ok(true) => {}
            Ok(false) => {
                let message = format!(
                    "adapter {} is a {} adapter, which has no {interface:?} interface",
                    self.adapter.name, self.adapter.kind
                );
                return Err(self.error(call, CallErrorKind::Host(message)));
            }
            Err(e) => {
                return Err(self.error(
                    call,
                    CallErrorKind::Host(format!("adapter does not match the contract: {e}")),
                ));
            }
        }
        let timeout = self.store.data().endpoint.call_timeout;
        self.store
            .set_epoch_deadline(super::deadline_ticks(timeout));
        self.wall_limit = self
            .store
            .data()
            .networked()
            .then(|| timeout + 2 * super::EPOCH_TICK);
        self.armed_at = std::time::Instant::now();
        Ok(())
    }

    /// Turns the outcome of a guest call into the call's result.
    pub(crate) fn settle<T: IntoHost, E: IntoHost<Host = AdapterError>>(
        &mut self,
        call: &'static str,
        outcome: wasmtime::Result<Result<T, E>>,
    ) -> CallResult<T::Host> {
        let result = match outcome {
            Ok(Ok(value)) => Ok(value.into_host()),
            Ok(Err(adapter_error)) => {
                Err(self.error(call, CallErrorKind::Adapter(adapter_error.into_host())))
            }
            Err(failure) => Err(self.fail(call, failure)),
        };
        let result = self.with_denials(call, result);
        self.count(call, result.is_ok());
        result
    }

    /// A call that failed after the sandbox refused it something fails as `denied`, naming
    /// the endpoint and every refused address (the adapter's own error may hide why); one
    /// that succeeded anyway stands (each refusal was logged and counted when it happened).
    fn with_denials<T>(&mut self, call: &'static str, result: CallResult<T>) -> CallResult<T> {
        let denials = self.store.data_mut().take_denials();
        match result {
            Err(error) if !denials.is_empty() => {
                let endpoint = self.endpoint_name().to_string();
                let refused = denials
                    .iter()
                    .map(|d| format!("{} to {}", d.kind, d.address))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "the sandbox refused {refused}: not granted to endpoint {endpoint} (grant \
                     it with --grant http=HOST[:PORT] or --grant tcp=HOST:PORT); the adapter \
                     then answered: {}",
                    error.kind
                );
                Err(self.error(call, CallErrorKind::Adapter(AdapterError::Denied(message))))
            }
            other => other,
        }
    }

    /// Like [`settle`](Self::settle) for calls that cannot return an adapter error.
    pub(crate) fn settle_plain<T>(
        &mut self,
        call: &'static str,
        outcome: wasmtime::Result<T>,
    ) -> CallResult<T> {
        let result = outcome.map_err(|failure| self.fail(call, failure));
        let result = self.with_denials(call, result);
        self.count(call, result.is_ok());
        result
    }

    /// The answer to a call that the adapter's contract version does not have: `unsupported`,
    /// as an adapter that cannot do it would say, so callers fall back the same way.
    pub(crate) fn not_in_version(&mut self, call: &'static str, since: &str) -> CallError {
        let message = format!(
            "adapter {} speaks contract {}, which has no {call} (added in {since})",
            self.adapter.name,
            self.adapter.indices.version()
        );
        self.count(call, false);
        self.error(
            call,
            CallErrorKind::Adapter(AdapterError::Unsupported(message)),
        )
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

/// Awaits a guest call, within `limit` if one is set; past it the call fails as a deadline
/// (and the instance is thrown away, as after an epoch interrupt).
pub(crate) async fn bounded<T>(
    limit: Option<std::time::Duration>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match limit {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(wasmtime::Error::from(Trap::Interrupt)),
        },
    }
}

/// Calls one guest function in the bindings of the adapter's version:
/// `guest_call!(self, Interface::X, field, "call-name", |guest, store| guest.call_x(store, ...))`.
/// The call expression is written once and type-checked against each version's bindings;
/// arguments in host types go through `FromHost::from_host`, which picks the version's type.
/// `plain` is for calls without an adapter error; `since v0_3` for calls a 0.2.0 adapter
/// lacks (it answers `unsupported`).
macro_rules! guest_call {
    (@arm $session:ident, $guests:ident, $field:ident, $name:literal, $settle:ident, |$guest:ident, $store:ident| $call:expr) => {{
        let outcome = {
            let limit = $session.wall_limit;
            let $guest = $guests.$field.as_ref().expect("interface loaded by arm");
            let $store = &mut $session.store;
            $crate::runtime::session::bounded(limit, $call).await
        };
        $session.$settle($name, outcome)
    }};
    (@any $settle:ident, $session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {{
        let session: &mut $crate::runtime::Session = $session;
        session.arm($name, $iface)?;
        match &session.guests {
            $crate::runtime::bindings::Guests::V0_2(guests) => {
                guest_call!(@arm session, guests, $field, $name, $settle, |$guest, $store| $call)
            }
            $crate::runtime::bindings::Guests::V0_3(guests) => {
                guest_call!(@arm session, guests, $field, $name, $settle, |$guest, $store| $call)
            }
        }
    }};
    (plain $session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {
        guest_call!(@any settle_plain, $session, $iface, $field, $name, |$guest, $store| $call)
    };
    (since v0_3 $session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {{
        let session: &mut $crate::runtime::Session = $session;
        session.arm($name, $iface)?;
        match &session.guests {
            $crate::runtime::bindings::Guests::V0_2(_) => Err(session.not_in_version($name, "0.3.0")),
            $crate::runtime::bindings::Guests::V0_3(guests) => {
                guest_call!(@arm session, guests, $field, $name, settle, |$guest, $store| $call)
            }
        }
    }};
    ($session:expr, $iface:expr, $field:ident, $name:literal, |$guest:ident, $store:ident| $call:expr) => {
        guest_call!(@any settle, $session, $iface, $field, $name, |$guest, $store| $call)
    };
}
pub(crate) use guest_call;
