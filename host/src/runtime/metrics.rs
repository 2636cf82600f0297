//! Counters of adapter calls per endpoint and call (count, errors, total latency), for the
//! API's `/metrics`. Process-wide: what this process called.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

pub use crate::model::CallStats;

/// Totals by endpoint, then by call: looked up by `&str`, so counting allocates only the
/// first time an endpoint is seen.
static CALLS: Mutex<BTreeMap<String, BTreeMap<&'static str, CallStats>>> =
    Mutex::new(BTreeMap::new());

/// Counts one finished call.
pub fn record(endpoint: &str, call: &'static str, ok: bool, elapsed: Duration) {
    let mut calls = CALLS.lock().unwrap_or_else(|p| p.into_inner());
    if !calls.contains_key(endpoint) {
        calls.insert(endpoint.to_string(), BTreeMap::new());
    }
    let Some(by_call) = calls.get_mut(endpoint) else {
        return;
    };
    let stats = by_call.entry(call).or_default();
    stats.calls += 1;
    stats.errors += u64::from(!ok);
    stats.seconds += elapsed.as_secs_f64();
}

/// Every (endpoint, call) with its totals.
pub fn snapshot() -> Vec<(String, &'static str, CallStats)> {
    CALLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flat_map(|(e, by_call)| by_call.iter().map(|(c, s)| (e.clone(), *c, *s)))
        .collect()
}

/// Refusals of the sandbox by endpoint, then by kind (`http`, `tcp`, `tcp-bind`, `udp`).
static DENIED: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>> = Mutex::new(BTreeMap::new());

/// Counts one refusal of the sandbox.
pub fn record_denial(endpoint: &str, kind: &'static str) {
    let mut denied = DENIED.lock().unwrap_or_else(|p| p.into_inner());
    *denied
        .entry(endpoint.to_string())
        .or_default()
        .entry(kind)
        .or_default() += 1;
}

/// Every (endpoint, kind) with its count of refusals.
pub fn denied() -> Vec<(String, &'static str, u64)> {
    DENIED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flat_map(|(e, by_kind)| by_kind.iter().map(|(k, n)| (e.clone(), *k, *n)))
        .collect()
}
