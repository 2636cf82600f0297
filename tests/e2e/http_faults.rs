//! The HTTP adapters (powerdns, redfish) behind the fault proxy, in front of their real
//! servers: a server that answers 500, answers HTML where JSON was expected, throttles (503
//! with `Retry-After`) or drops the connection gives a clear error naming what happened —
//! never a trap, a hang or a wrong answer — and once the server is back the same command
//! answers what the server holds.

use std::time::Duration;

use crate::fault_proxy::{Fault, FaultProxy, http_response};
use crate::harness::Lab;
use crate::powerdns::{self, Pdns};
use crate::redfish::Sushy;

/// The faults every HTTP adapter must survive, each with a word its error must contain.
fn faults() -> Vec<(&'static str, Fault, &'static [&'static str])> {
    vec![
        (
            "500",
            Fault::Answer(http_response(
                "500 Internal Server Error",
                &[("Content-Type", "application/json")],
                r#"{"error": "backend exploded"}"#,
            )),
            &["500"],
        ),
        (
            "html instead of json",
            Fault::Answer(http_response(
                "200 OK",
                &[("Content-Type", "text/html")],
                "<html><body>login portal</body></html>",
            )),
            &["JSON", "json"],
        ),
        (
            "throttled",
            Fault::Answer(http_response(
                "503 Service Unavailable",
                &[("Retry-After", "1"), ("Content-Type", "text/plain")],
                "slow down",
            )),
            &["503", "unavailable"],
        ),
        (
            "connection reset",
            Fault::Reset,
            &["unavailable", "onnection"],
        ),
    ]
}

/// `args` (an endpoint's settings and grants) pointed at `proxy` instead of `port`.
fn through(args: Vec<String>, port: u16, proxy: u16) -> Vec<String> {
    let (real, relayed) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{proxy}"));
    args.into_iter()
        .map(|a| a.replace(&real, &relayed))
        .collect()
}

/// Adds endpoint `name` of `adapter` with `args`.
fn add_endpoint(lab: &Lab, adapter_file: &str, adapter: &str, name: &str, args: &[String]) {
    lab.ok(&["adapter", "add", adapter_file]);
    let mut add = vec!["endpoint", "add", name, "--adapter", adapter];
    add.extend(args.iter().map(String::as_str));
    lab.ok(&add);
}

/// Runs `command` under every fault: it fails in under 30 s, says what happened, and shows
/// no trap or panic; `check` then sees the server's truth once the proxy passes bytes again.
fn survives_every_fault(lab: &Lab, proxy: &FaultProxy, command: &[&str], check: &dyn Fn()) {
    for (what, fault, words) in faults() {
        proxy.set(fault);
        let (ok, text, took) = lab.run_timed(command);
        assert!(!ok, "{what}: {command:?} succeeded: {text}");
        assert!(
            words.iter().any(|w| text.contains(w)),
            "{what}: the error says none of {words:?}: {text}"
        );
        for bad in ["panicked", "trap", "wasm backtrace"] {
            assert!(!text.contains(bad), "{what}: {bad} in {text}");
        }
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        eprintln!("{what} ({took:?}): {}", text.trim());
        proxy.set(Fault::Pass);
        check();
    }
}

#[test]
fn powerdns_behind_a_failing_server_errs_clearly_and_loses_nothing() {
    let Some(pdns) = Pdns::start() else { return };
    let proxy = FaultProxy::start(pdns.api);
    let lab = Lab::empty();
    let key = powerdns::key_file(pdns.dir.path(), powerdns::API_KEY);
    let args = through(pdns.args(&key), pdns.api, proxy.port);
    add_endpoint(&lab, powerdns::POWERDNS, "powerdns", "dns", &args);
    let name = "app.tidemark.test";
    lab.ok(&["dns", "set", "dns", name, "A", "192.0.2.44"]);
    let holds = || {
        assert_eq!(pdns.dig(name, "A"), ["192.0.2.44"]);
        let got = lab.ok(&["dns", "get", "dns", name, "A"]);
        assert_eq!(got["values"], serde_json::json!(["192.0.2.44"]));
    };
    survives_every_fault(&lab, &proxy, &["dns", "get", "dns", name, "A"], &holds);
    // A change refused by a failing server leaves the record as it was.
    survives_every_fault(
        &lab,
        &proxy,
        &["dns", "set", "dns", name, "A", "198.51.100.1"],
        &holds,
    );
}

#[test]
fn redfish_behind_a_failing_bmc_errs_clearly() {
    let Some(sushy) = Sushy::start() else { return };
    let proxy = FaultProxy::start(sushy.port);
    let lab = Lab::empty();
    let args = through(sushy.args(crate::redfish::PASSWORD), sushy.port, proxy.port);
    add_endpoint(&lab, crate::redfish::REDFISH, "redfish", "bmc", &args);
    let at = format!("bmc:{}", crate::redfish::SYSTEM);
    let shown = || {
        let shown = lab.ok(&["machine", "show", &at]);
        assert_eq!(shown["inventory"]["nics"][0]["mac"], crate::redfish::MAC);
    };
    shown();
    survives_every_fault(&lab, &proxy, &["machine", "show", &at], &shown);
    survives_every_fault(&lab, &proxy, &["machine", "list"], &shown);
}
