//! Adapters added, upgraded and removed while a server runs: used at once, versions side
//! by side (new sessions take the newest unless an endpoint pins one), removal refused
//! while an endpoint uses the version, bad files and bodies refused with 4xx.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::api::{Server, parse_response, serve, token};
use crate::harness::{Lab, json};

/// `bytes` with every `from` replaced by `to` (same length, so the component stays valid).
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut found = 0;
    for i in 0..out.len().saturating_sub(from.len() - 1) {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found += 1;
        }
    }
    assert!(found > 0, "nothing to replace");
    out
}

/// `POST path` with raw bytes of `content_type`; (status, JSON body).
fn post_bytes(
    server: &Server,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse_response(&response)
}

fn versions_of(lab: &Lab, name: &str) -> Vec<(String, Vec<String>)> {
    lab.ok(&["adapter", "list"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == name && a["rejected"].is_null())
        .map(|a| {
            let users = a["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            (a["version"].as_str().unwrap().to_string(), users)
        })
        .collect()
}

#[test]
fn adapters_are_added_upgraded_and_removed_while_the_server_runs() {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    let admin = token(&lab, "admin");
    let _server = serve(&lab, &[]);
    let v1 = lab.dir.path().join("frozen.wasm");
    let original = std::fs::read(env!("TIDEMARK_CONTRACT_V0_2_WASM")).unwrap();
    std::fs::write(&v1, &original).unwrap();

    let added = lab.ok(&["adapter", "add", v1.to_str().unwrap()]);
    assert_eq!(added["version"], "0.2.0-frozen", "{added}");
    assert_eq!(added["contract"], "0.2.0", "{added}");
    assert_eq!(added["sha256"].as_str().unwrap().len(), 64, "{added}");
    // The same file again changes nothing.
    lab.ok(&["adapter", "add", v1.to_str().unwrap()]);
    assert_eq!(versions_of(&lab, "frozen").len(), 1);

    // Usable at once by the running server.
    crate::contracts::add_frozen_endpoint(&lab);
    lab.ok(&[
        "endpoint",
        "add",
        "pinned",
        "--adapter",
        "frozen@0.2.0-frozen",
    ]);
    lab.ok(&["inventory", "--endpoint", "old"]);
    assert_eq!(
        versions_of(&lab, "frozen"),
        [(
            "0.2.0-frozen".to_string(),
            vec!["old".to_string(), "pinned".to_string()]
        )]
    );

    // A new version: unpinned endpoints move to it, the pinned one stays.
    let v2 = lab.dir.path().join("frozen-next.wasm");
    std::fs::write(
        &v2,
        replace_all(&original, b"0.2.0-frozen", b"0.2.1-frozen"),
    )
    .unwrap();
    let upgraded = lab.ok(&["adapter", "add", v2.to_str().unwrap(), "--name", "frozen"]);
    assert_eq!(upgraded["version"], "0.2.1-frozen", "{upgraded}");
    assert_eq!(
        versions_of(&lab, "frozen"),
        [
            ("0.2.0-frozen".to_string(), vec!["pinned".to_string()]),
            ("0.2.1-frozen".to_string(), vec!["old".to_string()]),
        ]
    );
    lab.ok(&["inventory", "--endpoint", "old"]);

    // Other bytes under a version already loaded are refused.
    let tampered = replace_all(&original, b"consistency-groups", b"consistency-GROUPS");
    let v1b = lab.dir.path().join("frozen-other.wasm");
    std::fs::write(&v1b, tampered).unwrap();
    let out = lab.run(&["adapter", "add", v1b.to_str().unwrap(), "--name", "frozen"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loaded already with other contents"));

    // Removal is refused while an endpoint uses the version, naming it.
    let out = lab.run(&["adapter", "remove", "frozen@0.2.0-frozen"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pinned"), "{stderr}");
    let out = lab.run(&["adapter", "remove", "lab-array"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ships with Tidemark"));
    lab.ok(&["endpoint", "remove", "pinned"]);
    let removed = lab.ok(&["adapter", "remove", "frozen@0.2.0-frozen"]);
    assert_eq!(
        removed["removed"][0]["version"], "0.2.0-frozen",
        "{removed}"
    );
    assert_eq!(versions_of(&lab, "frozen").len(), 1);
    assert!(
        !lab.dir
            .path()
            .join("adapters/frozen@0.2.0-frozen.wasm")
            .exists(),
        "its file is gone"
    );
    assert!(
        lab.dir
            .path()
            .join("adapters/frozen@0.2.1-frozen.wasm")
            .exists()
    );

    // Bad bodies over HTTP.
    let (status, doc) = post_bytes(
        &_server,
        "/v1/adapters?name=junk",
        &admin,
        "application/wasm",
        b"\0asm garbage",
    );
    assert_eq!(status, 422, "{doc}");
    assert!(
        doc.to_string()
            .contains("not a valid WebAssembly component"),
        "{doc}"
    );
    let (status, _) = post_bytes(
        &_server,
        "/v1/adapters?name=junk",
        &admin,
        "application/json",
        b"{}",
    );
    assert_eq!(status, 415);
    let (status, _) = post_bytes(
        &_server,
        "/v1/adapters?name=../x",
        &admin,
        "application/wasm",
        &original,
    );
    assert!(status == 400 || status == 422, "{status}");
    let viewer = token(&lab, "viewer");
    let (status, _) = post_bytes(
        &_server,
        "/v1/adapters?name=x",
        &viewer,
        "application/wasm",
        &original,
    );
    assert_eq!(status, 403);

    // After a restart the installed version loads from its file.
    drop(_server);
    let listed = json(&lab.run(&["adapter", "list"]));
    assert!(listed.to_string().contains("0.2.1-frozen"), "{listed}");
}

#[test]
fn an_adapter_over_the_size_limit_is_refused_with_413() {
    let lab = Lab::empty();
    let admin = token(&lab, "admin");
    let server = serve(&lab, &[("TIDEMARK_ADAPTER_BODY_LIMIT", "1KiB".to_string())]);
    let original = std::fs::read(env!("TIDEMARK_CONTRACT_V0_2_WASM")).unwrap();
    let (status, doc) = post_bytes(
        &server,
        "/v1/adapters?name=big",
        &admin,
        "application/wasm",
        &original,
    );
    assert_eq!(status, 413, "{doc}");
}

#[test]
fn a_job_finishes_on_the_adapter_version_it_started_on() {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    let admin = token(&lab, "admin");
    let original = std::fs::read(env!("TIDEMARK_CONTRACT_V0_2_WASM")).unwrap();
    let v1 = lab.dir.path().join("frozen.wasm");
    std::fs::write(&v1, &original).unwrap();
    let v2 = lab.dir.path().join("frozen-next.wasm");
    std::fs::write(
        &v2,
        replace_all(&original, b"0.2.0-frozen", b"0.2.1-frozen"),
    )
    .unwrap();
    let server = serve(&lab, &[("TIDEMARK_STEP_DELAY_MS", "700".to_string())]);
    lab.ok(&["adapter", "add", v1.to_str().unwrap()]);
    crate::contracts::add_frozen_endpoint(&lab);
    crate::contracts::create_legacy_vm(&lab);

    let (status, started) = crate::api::start(
        &server,
        &admin,
        serde_json::json!({"kind": "snapshot", "vm": "legacy"}),
        None,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["job"].as_str().unwrap().to_string();
    // Upgraded while the job runs (each of its steps waits 700 ms first).
    lab.ok(&["adapter", "add", v2.to_str().unwrap(), "--name", "frozen"]);
    let out = lab.run(&["adapter", "remove", "frozen@0.2.0-frozen"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&id),
        "removing the version a running job uses is refused naming the job: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finished = crate::api::wait_job(&server, &admin, &id);
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_eq!(
        finished["adapters"]["old"], "frozen@0.2.0-frozen",
        "{finished}"
    );

    let next = lab.ok(&["snapshot", "legacy"]);
    let job = lab.ok(&["job", next["job"].as_str().unwrap()]);
    assert_eq!(job["adapters"]["old"], "frozen@0.2.1-frozen", "{job}");
}
