//! `progress` events in a job's event stream: a copy over the API of a device with tens of
//! MiB changed reports well-formed, monotonic, throttled progress between its step's start
//! and end, ending with done == total; resuming after a progress id skips and repeats no
//! step event.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tidemark::cli::demo::pattern;

use crate::api::{job_events, serve, start, token};
use crate::harness::Lab;

/// Bytes changed on C: before the copied snapshot: enough for the copy to outlast the
/// 200 ms throttle interval (it runs at ~350 MB/s here).
const CHANGED: u64 = 192 << 20;

#[test]
fn a_copy_over_the_api_streams_progress_and_resumes_after_a_progress_id() {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    lab.ok(&[
        "lab",
        "vm",
        "create",
        "big",
        "--host",
        "esx-a",
        "--disk",
        "C:=256MiB",
        "--lun",
        "D:=8MiB:physical",
    ]);
    // A first copy creates the copy store; the next one reads only what changes now.
    lab.ok(&["copy", "big"]);
    lab.write("big", "C:", 0, &pattern(4242, CHANGED as usize));
    let (point, _) = lab.snapshot("big");
    let ops = token(&lab, "operator");
    let server = serve(&lab, &[]);
    let (status, started) = start(
        &server,
        &ops,
        json!({"kind": "copy", "vm": "big", "point": point}),
        None,
    );
    assert_eq!(status, 202, "{started}");
    let job = started["job"].as_str().unwrap();
    let events = job_events(&server, &ops, job, None);
    let position = |id: &str| events.iter().position(|(e, _, _)| e == id);
    let (_, last_kind, last) = events.last().unwrap();
    assert_eq!(
        (last_kind.as_str(), &last["state"]),
        ("end", &json!("succeeded"))
    );

    // Every progress event: exact shape, id naming its step, inside its step.
    let mut by_step: BTreeMap<u64, Vec<(u64, &Value)>> = BTreeMap::new();
    for (at, (id, kind, data)) in events.iter().enumerate() {
        if kind != "progress" {
            continue;
        }
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["done", "label", "rate", "seq", "step", "total"],
            "{data}"
        );
        let seq = data["seq"].as_u64().unwrap();
        let n: u64 = id
            .strip_prefix(&format!("{seq}.progress."))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("progress id {id} does not name step {seq}"));
        let started = position(&format!("{seq}.started")).unwrap();
        let ended = position(&format!("{seq}.ended")).unwrap();
        assert!(started < at && at < ended, "{id} outside its step");
        assert_eq!(data["step"], events[started].2["name"], "{data}");
        assert!(data["step"].as_str().unwrap().starts_with("copy-device "));
        by_step.entry(seq).or_default().push((n, data));
    }
    assert_eq!(
        by_step.len(),
        2,
        "one copy-device step per device: {events:?}"
    );
    for updates in by_step.values() {
        let first = updates[0].1;
        for pair in updates.windows(2) {
            let ((n0, a), (n1, b)) = (pair[0], pair[1]);
            assert!(n1 > n0, "ids not increasing: {a} {b}");
            assert!(
                b["done"].as_u64() >= a["done"].as_u64(),
                "not monotonic: {a} {b}"
            );
            assert_eq!(a["total"], b["total"]);
            assert_eq!(a["label"], b["label"]);
        }
        let last = updates.last().unwrap().1;
        assert_eq!(last["done"], last["total"], "{first} .. {last}");
    }
    // C: moved every changed byte, in several reports, at a measured rate.
    let big = by_step
        .values()
        .find(|u| u[0].1["step"] == "copy-device C:")
        .unwrap();
    let last = big.last().unwrap().1;
    assert_eq!(last["total"].as_u64().unwrap(), CHANGED, "{last}");
    assert!(last["rate"].as_u64().unwrap() > 0, "{last}");
    assert!(
        big.len() >= 3,
        "only {} progress events: {big:?}",
        big.len()
    );
    // Throttled: the start, the end, and at most one per 200 ms in between.
    let seconds = CHANGED as f64 / last["rate"].as_u64().unwrap() as f64;
    assert!(
        big.len() as f64 <= 3.0 + seconds / 0.2,
        "{} progress events in {seconds:.2} s",
        big.len()
    );
    eprintln!(
        "C: {} progress events, {} MiB/s",
        big.len(),
        last["rate"].as_u64().unwrap() >> 20
    );

    // Resuming after any progress event of C: continues after C:'s `started`; progress is
    // not journalled, so a finished job's stream has step events only.
    let seq = last["seq"].as_u64().unwrap();
    let after_start = position(&format!("{seq}.started")).unwrap() + 1;
    let expected: Vec<&str> = events[after_start..]
        .iter()
        .filter(|(_, kind, _)| kind != "progress")
        .map(|(id, _, _)| id.as_str())
        .collect();
    for (n, _) in [big[0], *big.last().unwrap()] {
        let from = format!("{seq}.progress.{n}");
        let resumed = job_events(&server, &ops, job, Some(&from));
        let ids: Vec<&str> = resumed.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, expected, "resumed after {from}");
    }
}
