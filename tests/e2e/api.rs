//! The admin API end to end: a real `tidemark serve` process on 127.0.0.1 with the lab
//! adapters, driven over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemons::{self, Daemon};
use crate::harness::Lab;

/// A running `tidemark serve`; its process group is killed when dropped.
pub(crate) struct Server {
    pub(crate) daemon: Daemon,
    pub(crate) addr: String,
}

impl Server {
    /// Sends SIGTERM; returns how the server exited (it must within 10 s).
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        self.daemon.signal("TERM");
        self.daemon.wait_within(Duration::from_secs(10))
    }
}

/// `tidemark serve` on the lab, on a port of its own.
pub(crate) fn serve(lab: &Lab, env: &[(&str, String)]) -> Server {
    let listen = format!("127.0.0.1:{}", daemons::port());
    serve_with(lab, &["--listen", &listen], env, "http")
}

/// `tidemark serve ARGS` on the lab as a daemon; waits for its "serving on SCHEME://ADDR"
/// line.
pub(crate) fn serve_with(lab: &Lab, args: &[&str], env: &[(&str, String)], scheme: &str) -> Server {
    let binary = daemons::program(env!("CARGO_BIN_EXE_tidemark"))
        .expect("cargo builds the tidemark binary for its tests");
    let mut command = daemons::command(&binary);
    command
        .arg("--data-dir")
        .arg(lab.dir.path())
        .arg("serve")
        .args(args)
        .env_remove("TIDEMARK_CRASH_AFTER_STEP")
        .env_remove("TIDEMARK_FAIL_STEP")
        .env_remove("TIDEMARK_STEP_DELAY_MS")
        .env_remove("TIDEMARK_SERVER")
        .env_remove("TIDEMARK_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut daemon = Daemon::start(command, "tidemark serve");
    let prefix = format!("tidemark serving on {scheme}://");
    // Log lines (with RUST_LOG=debug) may come first; the address line is the one wanted.
    let mut line = String::new();
    let mut stderr = BufReader::new(daemon.stderr().expect("piped stderr"));
    for _ in 0..1_000 {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 || line.starts_with(&prefix) {
            break;
        }
    }
    let addr = line
        .trim()
        .strip_prefix(&prefix)
        .unwrap_or_default()
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected first line: {line}"
    );
    Server { daemon, addr }
}

/// One HTTP/1.1 request; returns (status, JSON body).
pub(crate) fn http(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        server.addr
    );
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse_response(&response)
}

/// (status, JSON body) of a whole HTTP/1.1 response (`Connection: close`).
pub(crate) fn parse_response(response: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

pub(crate) fn token(lab: &Lab, role: &str) -> String {
    lab.ok(&["token", "create", "--role", role, "--name", role])["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until a job is finished; returns it.
pub(crate) fn wait_job(server: &Server, token: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, job) = http(
            server,
            "GET",
            &format!("/v1/jobs/{id}"),
            Some(token),
            None,
            &[],
        );
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" && job["state"] != "compensating" {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {id} never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn start(
    server: &Server,
    token: &str,
    request: Value,
    key: Option<&str>,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    http(
        server,
        "POST",
        "/v1/jobs",
        Some(token),
        Some(&request.to_string()),
        &headers,
    )
}

#[test]
fn snapshot_and_revert_over_http_restore_every_byte() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    lab.fill("app", 1);
    let server = serve(&lab, &[]);
    let (status, started) = start(
        &server,
        &ops,
        json!({"kind": "snapshot", "vm": "app"}),
        None,
    );
    assert_eq!(status, 202, "{started}");
    let job = wait_job(&server, &ops, started["job"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let point = job["result"]["recovery_point"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, points) = http(&server, "GET", "/v1/vms/app/points", Some(&ops), None, &[]);
    assert_eq!(status, 200);
    assert_eq!(points[0]["id"], point.as_str());

    lab.fill("app", 2);
    let (status, started) = start(
        &server,
        &ops,
        json!({"kind": "revert", "vm": "app", "point": point}),
        None,
    );
    assert_eq!(status, 202, "{started}");
    let job = wait_job(&server, &ops, started["job"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    lab.assert_holds("app", 1);
}

#[test]
fn every_route_class_checks_the_token_and_its_role() {
    let lab = Lab::with_vm();
    let (viewer, operator, admin) = (
        token(&lab, "viewer"),
        token(&lab, "operator"),
        token(&lab, "admin"),
    );
    let server = serve(&lab, &[]);
    let read = |t: Option<&str>| http(&server, "GET", "/v1/vms", t, None, &[]).0;
    let run = |t: Option<&str>| {
        http(
            &server,
            "POST",
            "/v1/jobs",
            t,
            Some(r#"{"kind":"snapshot","vm":"nope"}"#),
            &[],
        )
        .0
    };
    let manage = |t: Option<&str>| http(&server, "GET", "/v1/tokens", t, None, &[]).0;
    for (who, t, expect) in [
        ("nobody", None, [401, 401, 401]),
        ("a bad token", Some("tmk_0000"), [401, 401, 401]),
        ("viewer", Some(viewer.as_str()), [200, 403, 403]),
        // An operator may start jobs: the unknown VM then makes it a 404, not a 403.
        ("operator", Some(operator.as_str()), [200, 404, 403]),
        ("admin", Some(admin.as_str()), [200, 404, 200]),
    ] {
        assert_eq!([read(t), run(t), manage(t)], expect, "{who}");
    }
    for path in [
        "/healthz",
        "/readyz",
        "/v1/jobs",
        "/v1/adapters",
        "/v1/endpoints",
    ] {
        assert_eq!(http(&server, "GET", path, None, None, &[]).0, 401, "{path}");
    }
    // State-changing requests are audited, who and outcome; tokens never appear.
    let (status, audit) = http(&server, "GET", "/v1/audit", Some(&admin), None, &[]);
    assert_eq!(status, 200);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["who"] == "operator" && a["status"] == 404),
        "{audit}"
    );
    let (_, tokens) = http(&server, "GET", "/v1/tokens", Some(&admin), None, &[]);
    assert!(
        !tokens.to_string().contains(&admin[4..]),
        "a token leaked: {tokens}"
    );
}

#[test]
fn the_same_idempotency_key_gives_the_same_job() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    let server = serve(&lab, &[]);
    let request = json!({"kind": "snapshot", "vm": "app"});
    let (first_status, first) = start(&server, &ops, request.clone(), Some("nightly-1"));
    let (second_status, second) = start(&server, &ops, request, Some("nightly-1"));
    assert_eq!((first_status, second_status), (202, 200));
    assert_eq!(first["job"], second["job"]);
    wait_job(&server, &ops, first["job"].as_str().unwrap());
    let (_, jobs) = http(
        &server,
        "GET",
        "/v1/jobs?kind=snapshot",
        Some(&ops),
        None,
        &[],
    );
    assert_eq!(jobs["total"], 1, "{jobs}");
    let (status, _) = start(
        &server,
        &ops,
        json!({"kind": "snapshot", "vm": "other"}),
        Some("nightly-1"),
    );
    assert_eq!(status, 409);
}

#[test]
fn a_killed_server_finishes_the_job_when_it_starts_again() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    lab.fill("app", 1);
    let mut server = serve(&lab, &[("TIDEMARK_CRASH_AFTER_STEP", "2".to_string())]);
    let (status, started) = start(
        &server,
        &ops,
        json!({"kind": "snapshot", "vm": "app"}),
        None,
    );
    assert_eq!(status, 202);
    // The server aborts right after step 2 is recorded, as a kill -9 would stop it.
    let died = server.daemon.wait();
    assert!(!died.success());
    let server = serve(&lab, &[]);
    let job = wait_job(&server, &ops, started["job"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    drop(server);
    lab.assert_reconciled();
}

#[test]
fn bad_requests_get_4xx_and_never_a_5xx() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    let server = serve(&lab, &[]);
    let big = format!(
        "{{\"kind\":\"snapshot\",\"vm\":\"{}\"}}",
        "a".repeat(200_000)
    );
    for (method, path, body, expect) in [
        ("POST", "/v1/jobs", "{\"kind\":", 400),
        ("POST", "/v1/jobs", "[]", 422),
        ("POST", "/v1/jobs", "{\"kind\":\"snapshot\",\"vm\":3}", 422),
        (
            "POST",
            "/v1/jobs",
            "{\"kind\":\"format-disk\",\"vm\":\"app\"}",
            422,
        ),
        (
            "POST",
            "/v1/jobs",
            "{\"kind\":\"snapshot\",\"vm\":\"app\",\"extra\":1}",
            422,
        ),
        ("POST", "/v1/jobs", big.as_str(), 413),
        (
            "POST",
            "/v1/jobs",
            "{\"kind\":\"revert\",\"vm\":\"app\",\"point\":\"rp-nope\"}",
            404,
        ),
        ("GET", "/v1/jobs/job-nope", "", 404),
        ("GET", "/v1/vms/..%2F..%2Fetc%2Fpasswd", "", 404),
        ("GET", "/v1/points/%00", "", 404),
        ("GET", "/v1/jobs?limit=0", "", 400),
        ("GET", "/v1/jobs?limit=abc", "", 400),
        ("GET", "/v1/jobs?state=sideways", "", 400),
        ("GET", "/v1/nothing-here", "", 404),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let (status, doc) = http(&server, method, path, Some(&ops), body, &[]);
        assert_eq!(status, expect, "{method} {path}: {doc}");
        assert!(
            doc["error"].is_string() && doc["message"].is_string(),
            "{method} {path}: {doc}"
        );
    }
    // Still serving, and nothing was recorded.
    let (status, jobs) = http(&server, "GET", "/v1/jobs", Some(&ops), None, &[]);
    assert_eq!(status, 200);
    assert_eq!(jobs["total"], 0, "{jobs}");
}

#[test]
fn a_cancelled_job_compensates_and_metrics_count_it() {
    let lab = Lab::with_vm();
    let (ops, viewer) = (token(&lab, "operator"), token(&lab, "viewer"));
    // A snapshot job stopped after its second step, as a crash would leave it.
    let out = lab.run_env(
        &["snapshot", "app"],
        &[("TIDEMARK_CRASH_AFTER_STEP", "2".to_string())],
    );
    assert!(!out.status.success());
    let id = lab.last_job()["id"].as_str().unwrap().to_string();
    assert_eq!(lab.ok(&["job", "cancel", &id])["cancel_requested"], true);
    // The server resumes it at start; it stops before its next step and compensates.
    let server = serve(&lab, &[]);
    let job = wait_job(&server, &ops, &id);
    assert_eq!(job["state"], "compensated", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("cancelled"),
        "{job}"
    );
    lab.assert_reconciled();
    // Cancelling a finished job is a conflict; an unknown one is not found.
    let cancel = |t: &str, id: &str| {
        http(
            &server,
            "POST",
            &format!("/v1/jobs/{id}/cancel"),
            Some(t),
            Some(""),
            &[],
        )
        .0
    };
    assert_eq!(cancel(&ops, &id), 409);
    assert_eq!(cancel(&ops, "job-nope"), 404);
    assert_eq!(cancel(&viewer, &id), 403);

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("tidemark_jobs{state=\"compensated\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tidemark_step_duration_seconds_count{step=\"discover\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "tidemark_adapter_calls_total{endpoint=\"lab-hypervisor\",call=\"delete-snapshot\"} 1"
        ),
        "{text}"
    );
}

/// A job's event stream (read to its end), optionally resumed: (id, event, data) each.
pub(crate) fn job_events(
    server: &Server,
    token: &str,
    job: &str,
    last: Option<&str>,
) -> Vec<(String, String, Value)> {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let resume = last.map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
    write!(
        stream,
        "GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{resume}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    // Each event is one chunk that starts with its id line (other lines are chunk sizes).
    let mut events: Vec<(String, String, Value)> = Vec::new();
    for line in text.lines() {
        let field = |name: &str| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        if let Some(id) = field("id") {
            events.push((id, String::new(), Value::Null));
        } else if let (Some(kind), Some(last)) = (field("event"), events.last_mut()) {
            last.1 = kind;
        } else if let (Some(data), Some(last)) = (field("data"), events.last_mut()) {
            last.2 = serde_json::from_str(&data).unwrap_or(Value::Null);
        }
    }
    events
}

/// The ids of a job's event stream (read to its end), optionally resumed.
fn event_ids(server: &Server, token: &str, job: &str, last: Option<&str>) -> Vec<String> {
    job_events(server, token, job, last)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect()
}

#[test]
fn job_events_stream_every_step_and_resume_from_the_last_event_id() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    let server = serve(&lab, &[]);
    let (_, started) = start(
        &server,
        &ops,
        json!({"kind": "snapshot", "vm": "app"}),
        None,
    );
    let job = started["job"].as_str().unwrap();
    let ids = event_ids(&server, &ops, job, None);
    let expected: Vec<String> = (1..=4)
        .flat_map(|s| [format!("{s}.started"), format!("{s}.ended")])
        .chain(["end".to_string()])
        .collect();
    assert_eq!(ids, expected);
    let resumed = event_ids(&server, &ops, job, Some("2.ended"));
    assert_eq!(resumed, expected[4..].to_vec());
    assert_eq!(
        http(
            &server,
            "GET",
            "/v1/jobs/job-nope/events",
            Some(&ops),
            None,
            &[]
        )
        .0,
        404
    );
    // The inventory asks the adapters: the array holds the point's two LUN snapshots.
    let (status, inventory) = http(
        &server,
        "GET",
        "/v1/inventory?endpoint=lab-array",
        Some(&ops),
        None,
        &[],
    );
    assert_eq!(status, 200, "{inventory}");
    assert_eq!(
        inventory[0]["snapshots"].as_array().unwrap().len(),
        2,
        "{inventory}"
    );
    let unknown = http(
        &server,
        "GET",
        "/v1/inventory?endpoint=nope",
        Some(&ops),
        None,
        &[],
    );
    assert_eq!(unknown.0, 404);
}

#[test]
fn the_openapi_document_is_served_to_every_role_and_only_with_a_token() {
    let lab = Lab::with_vm();
    let viewer = token(&lab, "viewer");
    let server = serve(&lab, &[]);
    let (status, doc) = http(&server, "GET", "/v1/openapi.json", Some(&viewer), None, &[]);
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let start = &doc["paths"]["/v1/jobs"]["post"];
    assert!(start["requestBody"].is_object(), "{start}");
    for status in ["202", "401", "403", "409", "413", "422", "429"] {
        assert!(
            start["responses"][status].is_object(),
            "no {status}: {start}"
        );
    }
    let (status, _) = http(&server, "GET", "/v1/openapi.json", None, None, &[]);
    assert_eq!(status, 401);
}

#[test]
fn lab_device_bytes_stream_over_the_api_past_the_body_limit() {
    let lab = Lab::with_vm();
    let ops = token(&lab, "operator");
    let viewer = token(&lab, "viewer");
    let admin = token(&lab, "admin");
    let server = serve(&lab, &[("TIDEMARK_BODY_LIMIT", "1KiB".to_string())]);
    // 3 MiB and 5 bytes (several data-path pieces, the last one short) at an unaligned
    // offset, through the server that owns the data directory, far past its body limit.
    let data = tidemark::cli::demo::pattern(77, (3 << 20) + 5);
    let file = lab.dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let written = lab.ok(&[
        "lab",
        "write",
        "app",
        "/data",
        "--offset",
        "4093",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(written["bytes"], data.len(), "{written}");
    let back = lab.dir.path().join("back.bin");
    let read = lab.ok(&[
        "lab",
        "read",
        "app",
        "/data",
        "--offset",
        "4093",
        "--length",
        &data.len().to_string(),
        "--out",
        back.to_str().unwrap(),
    ]);
    assert_eq!(read["sha256"], written["sha256"], "{read}");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes read back differ"
    );
    // It went through the server: the write is in its audit log.
    let (_, audit) = http(&server, "GET", "/v1/audit", Some(&admin), None, &[]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["method"] == "PUT"
                && a["path"] == "/v1/lab/vms/app/devices/%2Fdata"
                && a["status"] == 200),
        "{audit}"
    );
    let device = |mount: &str, query: &str| format!("/v1/lab/vms/app/devices/{mount}?{query}");
    for (method, path, token, body, expect) in [
        // The guest's bytes are an operator's business, reads included.
        ("GET", device("C:", "offset=0&length=4"), &viewer, "", 403),
        (
            "PUT",
            device("C:", "offset=0&length=4"),
            &viewer,
            "abcd",
            403,
        ),
        ("GET", device("C:", "offset=0&length=4"), &ops, "", 200),
        (
            "GET",
            "/v1/lab/vms/nope/devices/C:?offset=0&length=4".to_string(),
            &ops,
            "",
            404,
        ),
        ("GET", device("E:", "offset=0&length=4"), &ops, "", 404),
        (
            "GET",
            device("C:", "offset=67108860&length=5"),
            &ops,
            "",
            422,
        ),
        (
            "GET",
            device("C:", "offset=18446744073709551615&length=2"),
            &ops,
            "",
            422,
        ),
        ("GET", device("C:", "offset=-1&length=4"), &ops, "", 400),
        ("GET", device("C:", "offset=0"), &ops, "", 400),
        // The body must be exactly `length` bytes; nothing is written otherwise.
        ("PUT", device("C:", "offset=0&length=5"), &ops, "abcd", 422),
        (
            "PUT",
            device("C:", "offset=67108862&length=4"),
            &ops,
            "abcd",
            422,
        ),
        ("PUT", device("C:", "offset=8&length=4"), &ops, "abcd", 200),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let (status, doc) = http(&server, method, &path, Some(token.as_str()), body, &[]);
        assert_eq!(status, expect, "{method} {path}: {doc}");
        if expect != 200 {
            assert!(doc["message"].is_string(), "{method} {path}: {doc}");
        }
    }
    assert_eq!(lab.read("app", "C:", 8, 4), b"abcd");
}

#[test]
fn refusals_are_typed_and_a_failure_of_the_host_is_no_4xx() {
    let lab = Lab::with_vm();
    let admin = token(&lab, "admin");
    let server = serve(&lab, &[]);
    for (path, body, expect) in [
        ("/v1/tokens", r#"{"role":"root"}"#, 422),
        ("/v1/tokens", r#"{"role":"viewer","name":"../x"}"#, 422),
        ("/v1/tokens", r#"{"role":"viewer","name":"admin"}"#, 409),
        (
            "/v1/endpoints",
            r#"{"name":"x","adapter":"lab-array","settings":{"timeout":"soon"}}"#,
            422,
        ),
        (
            "/v1/endpoints",
            r#"{"name":"x","adapter":"lab-array","settings":{"memory":"1KiB"}}"#,
            422,
        ),
        (
            "/v1/endpoints",
            r#"{"name":"lab-array","adapter":"lab-array"}"#,
            409,
        ),
    ] {
        let (status, doc) = http(&server, "POST", path, Some(&admin), Some(body), &[]);
        assert_eq!(status, expect, "{path} {body}: {doc}");
    }
}
