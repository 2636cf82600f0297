//! Capabilities end to end: an adapter reaches a TCP or HTTP server only where its endpoint
//! is granted (and its manifest asks); a refused attempt fails the call as `denied` naming
//! the endpoint and the address, and is counted in `/metrics`; a secret reaches only its
//! own endpoint, is rotated without a restart, and its value appears nowhere — not in any
//! answer, output, log line, the audit log, or any file of the data directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::api::{http, serve, token};
use crate::daemons;
use crate::harness::{Lab, json};

/// A lab with the misbehaving test adapter added (it probes TCP, HTTP and secrets).
fn lab_with_prober() -> Lab {
    let lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    lab.ok(&[
        "adapter",
        "add",
        env!("TIDEMARK_MISBEHAVING_WASM"),
        "--name",
        "prober",
    ]);
    lab
}

/// A server on a free port answering each connection with `reply(request line)`, in a
/// thread for the rest of the test process.
fn answering(reply: fn(&str) -> String) -> u16 {
    let port = daemons::port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            // The rest of an HTTP request's head, so the answer follows it.
            if line.contains("HTTP/1.1") {
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
            }
            let _ = reader.get_mut().write_all(reply(&line).as_bytes());
        }
    });
    port
}

fn pong(_: &str) -> String {
    "pong\n".into()
}

fn hello(_: &str) -> String {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".into()
}

/// The name of the one host the prober reports on `endpoint` (what its probe found).
fn probed(lab: &Lab, endpoint: &str) -> String {
    let report = lab.ok(&["inventory", "--endpoint", endpoint]);
    report[0]["hosts"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host in {report}"))
        .to_string()
}

/// `endpoint test NAME`: fails (exit 1), and its error.
fn refused(lab: &Lab, endpoint: &str) -> String {
    let out = lab.run(&["endpoint", "test", endpoint]);
    assert_eq!(out.status.code(), Some(1));
    let answer = json(&out);
    assert_eq!(answer["ok"], false, "{answer}");
    answer["error"].as_str().unwrap().to_string()
}

/// `endpoint add NAME --adapter prober --setting behavior=B [--setting S] [--grant G]...`.
fn add_prober(lab: &Lab, name: &str, behavior: &str, setting: &str, grants: &[&str]) -> Value {
    let behavior = format!("behavior={behavior}");
    let mut args = vec![
        "endpoint",
        "add",
        name,
        "--adapter",
        "prober",
        "--setting",
        &behavior,
        "--setting",
        setting,
    ];
    for grant in grants {
        args.extend(["--grant", grant]);
    }
    lab.ok(&args)
}

#[test]
fn tcp_reaches_a_granted_address_only_and_a_refusal_names_endpoint_and_address() {
    let lab = lab_with_prober();
    let port = answering(pong);
    let target = format!("127.0.0.1:{port}");
    let setting = format!("target={target}");
    let grant = format!("tcp={target}");
    let other = format!("tcp=127.0.0.1:{}", daemons::port());
    let added = add_prober(&lab, "granted", "tcp", &setting, &[&grant]);
    assert_eq!(added["grants"], serde_json::json!([grant]), "{added}");
    assert_eq!(probed(&lab, "granted"), "pong");
    add_prober(&lab, "bare", "tcp", &setting, &[]);
    add_prober(&lab, "elsewhere", "tcp", &setting, &[&other]);
    for endpoint in ["bare", "elsewhere"] {
        let error = refused(&lab, endpoint);
        for part in ["denied", endpoint, &format!("tcp to {target}")] {
            assert!(error.contains(part), "{endpoint}: {error}");
        }
    }
}

#[test]
fn http_reaches_a_granted_host_only_and_refusals_are_counted() {
    let lab = lab_with_prober();
    let port = answering(hello);
    let url = format!("url=http://127.0.0.1:{port}/status");
    let grant = format!("http=127.0.0.1:{port}");
    add_prober(&lab, "web", "http", &url, &[&grant]);
    add_prober(&lab, "offweb", "http", &url, &["http=example.com"]);
    let viewer = token(&lab, "viewer");
    let server = serve(&lab, &[]);
    // Through the running server: the same process serves the calls and the metrics.
    assert_eq!(probed(&lab, "web"), "200 hello");
    let error = refused(&lab, "offweb");
    for part in ["denied", "offweb", &format!("http to 127.0.0.1:{port}")] {
        assert!(error.contains(part), "{error}");
    }
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("tidemark_adapter_denied_total{endpoint=\"offweb\",kind=\"http\"} 1"),
        "{text}"
    );
    assert!(!text.contains("endpoint=\"web\",kind=\"http\""), "{text}");
}

#[test]
fn endpoint_add_reports_what_is_requested_but_not_granted_and_granted_but_not_requested() {
    let lab = lab_with_prober();
    // As people read it (text output).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("--data-dir")
        .arg(lab.dir.path())
        .args([
            "endpoint",
            "add",
            "half",
            "--adapter",
            "lab-array",
            "--grant",
            "tcp=127.0.0.1:9",
        ])
        .env_remove("TIDEMARK_SERVER")
        .env_remove("TIDEMARK_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "requested by the adapter but not granted (calls needing it will be denied): data-dir"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "granted but not requested by the adapter (not given to it): tcp=127.0.0.1:9"
        ),
        "{text}"
    );
    let listed = lab.ok(&["endpoint", "list"]);
    let half = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "half")
        .unwrap();
    assert_eq!(half["access"]["effective"], serde_json::json!([]), "{half}");
    for (bad, says) in [
        (&["--grant", "tcp=127.0.0.1"][..], "give a port"),
        (&["--grant", "ftp=x"], "expected http=HOST[:PORT]"),
        (&["--secret", "token=hunter2"], "not on the command line"),
        (
            &["--secret", "token=@/nonexistent/file"],
            "cannot read /nonexistent/file",
        ),
        (
            &["--secret", "token=env:TIDEMARK_TEST_UNSET_VARIABLE"],
            "is not set",
        ),
        (&["--secret", "bad/name=@/etc/hostname"], "secret name"),
    ] {
        let mut args = vec!["endpoint", "add", "bad", "--adapter", "prober"];
        args.extend_from_slice(bad);
        let out = lab.run(&args);
        assert!(!out.status.success(), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad:?}: {err}");
        assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
        assert!(
            !err.contains("hunter2"),
            "a refused secret is repeated: {err}"
        );
    }
    assert!(
        lab.ok(&["endpoint", "list"])
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "bad")
    );
}

/// Runs a command (with extra environment), keeps its output, returns its JSON.
type Runner<'a> = dyn FnMut(&[&str], &[(&str, String)]) -> Value + 'a;

/// FNV-1a 64 of a value, as the prober reports a secret it read.
fn fnv(value: &str) -> String {
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("fnv:{hash:016x}")
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_secret_reaches_only_its_endpoint_is_rotated_live_and_is_never_shown() {
    let lab = lab_with_prober();
    let (first, second) = ("first-Secret-5e1f0c", "second-Secret-77ab21");
    // Beside the data directory, not in it (the data directory is searched for the value).
    let file = std::path::PathBuf::from(format!("{}.secret", lab.dir.path().display()));
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let from_file = format!("token=@{}", file.display());
    let mut outputs: Vec<Output> = Vec::new();
    let mut run = |args: &[&str], env: &[(&str, String)]| {
        let out = lab.run_env(args, env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = json(&out);
        outputs.push(out);
        doc
    };
    let added = run(
        &[
            "endpoint",
            "add",
            "owner",
            "--adapter",
            "prober",
            "--setting",
            "behavior=secret",
            "--secret",
            &from_file,
        ],
        &[],
    );
    assert_eq!(added["secrets"], serde_json::json!(["token"]), "{added}");
    // Asks for `token`, which only `owner` has.
    run(
        &[
            "endpoint",
            "add",
            "other",
            "--adapter",
            "prober",
            "--setting",
            "behavior=secret",
        ],
        &[],
    );
    // Has `unasked` and asks for it, but the prober's manifest does not name it.
    run(
        &[
            "endpoint",
            "add",
            "unasked",
            "--adapter",
            "prober",
            "--setting",
            "behavior=secret",
            "--setting",
            "secret=unasked",
            "--secret",
            "unasked=env:TIDEMARK_TEST_SECRET",
        ],
        &[("TIDEMARK_TEST_SECRET", second.to_string())],
    );
    let viewer = token(&lab, "viewer");
    let admin = token(&lab, "admin");
    let mut server = serve(&lab, &[("RUST_LOG", "tidemark=debug".to_string())]);
    let name = |run: &mut Runner, endpoint: &str| {
        run(&["inventory", "--endpoint", endpoint], &[])[0]["hosts"][0]["name"].clone()
    };
    assert_eq!(name(&mut run, "owner"), fnv(first));
    // Another endpoint's adapter asks for the same name and gets nothing; a secret its
    // manifest does not ask for is not given either.
    assert_eq!(name(&mut run, "other"), "none");
    assert_eq!(name(&mut run, "unasked"), "none");
    // Rotation reaches the next session of the running server.
    std::fs::write(&file, second).unwrap();
    let rotated = run(&["endpoint", "secret", "owner", &from_file], &[]);
    assert_eq!(
        rotated["secrets"],
        serde_json::json!(["token"]),
        "{rotated}"
    );
    assert_eq!(name(&mut run, "owner"), fnv(second));
    let listed = run(&["endpoint", "list"], &[]);
    let (_, api_list) = http(&server, "GET", "/v1/endpoints", Some(&viewer), None, &[]);
    let (_, audit) = http(&server, "GET", "/v1/audit", Some(&admin), None, &[]);
    server.terminate();
    let mut log = String::new();
    server
        .daemon
        .stderr()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    for value in [first, second] {
        for out in &outputs {
            assert!(!String::from_utf8_lossy(&out.stdout).contains(value));
            assert!(!String::from_utf8_lossy(&out.stderr).contains(value));
        }
        for doc in [&listed, &api_list, &audit] {
            assert!(!doc.to_string().contains(value), "{doc}");
        }
        assert!(!log.contains(value), "the server's log shows a secret");
        let holding = files_holding(lab.dir.path(), value.as_bytes());
        assert!(holding.is_empty(), "{value} in {holding:?}");
    }
    assert!(
        audit.to_string().contains("/v1/endpoints/owner/secrets"),
        "{audit}"
    );
    let _ = std::fs::remove_file(&file);
}
