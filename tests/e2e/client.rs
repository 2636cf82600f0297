//! The CLI as a client of the API: through a server that owns the data directory, through
//! `--server` with a token, and the endpoint and inventory routes it uses.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{http, serve, token, wait_job};
use crate::harness::{Lab, json};

#[test]
fn commands_go_through_the_server_that_owns_the_data_directory() {
    let lab = Lab::with_vm();
    lab.fill("app", 1);
    let server = serve(&lab, &[]);
    // Plain commands on the served data directory: no flag, no token.
    let (point, job) = lab.snapshot("app");
    lab.fill("app", 2);
    let reverted = lab.ok(&["revert", "app", &point]);
    assert_eq!(reverted["state"], "succeeded", "{reverted}");
    lab.assert_holds("app", 1);
    // They were served: the server's audit log has them, made by the local principal.
    let admin = token(&lab, "admin");
    let (status, audit) = http(&server, "GET", "/v1/audit", Some(&admin), None, &[]);
    assert_eq!(status, 200);
    let local_job_starts = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["who"] == "local" && e["path"] == "/v1/jobs" && e["method"] == "POST")
        .count();
    assert_eq!(local_job_starts, 2, "{audit}");
    assert_eq!(lab.ok(&["job", &job])["state"], "succeeded");
    // The served VM list is cached, and a write (a VM made while served) shows at once.
    let names = || -> Vec<String> {
        let (_, vms) = http(&server, "GET", "/v1/vms", Some(&admin), None, &[]);
        vms.as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(), ["app"]);
    assert_eq!(names(), ["app"]);
    lab.create_vm("db");
    assert_eq!(names(), ["app", "db"]);
    // A second server on the same data directory is refused, naming the first.
    let listen = format!("127.0.0.1:{}", crate::daemons::port());
    let second = lab.run(&["serve", "--listen", &listen]);
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("already served by process"), "{message}");
    drop(server);
    // With the server gone, commands run embedded again.
    assert_eq!(lab.ok(&["points", "app"]).as_array().unwrap().len(), 1);
}

#[test]
fn the_server_flag_sends_every_command_with_the_token() {
    let lab = Lab::with_vm();
    let server = serve(&lab, &[]);
    let url = format!("http://{}", server.addr);
    let elsewhere = Lab::empty();
    let with = |token: &str| {
        vec![
            ("TIDEMARK_SERVER", url.clone()),
            ("TIDEMARK_TOKEN", token.to_string()),
        ]
    };
    let viewer = token(&lab, "viewer");
    let operator = token(&lab, "operator");
    // Another data directory, yet the server's VM: the command went to the server.
    let vms = elsewhere.ok_env(&["vm", "list"], &with(&viewer));
    assert_eq!(vms[0]["name"], "app", "{vms}");
    let refused = elsewhere.run_env(&["snapshot", "app"], &with(&viewer));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs operator"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let done = elsewhere.ok_env(&["snapshot", "app"], &with(&operator));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(lab.ok(&["points", "app"]).as_array().unwrap().len(), 1);
    // The flag itself, and the two ways it can go wrong.
    let flagged = elsewhere.run_env(
        &["--server", &url, "jobs"],
        &[("TIDEMARK_TOKEN", viewer.clone())],
    );
    assert!(flagged.status.success());
    assert_eq!(json(&flagged).as_array().unwrap().len(), 1);
    let no_token = elsewhere.run(&["--server", &url, "jobs"]);
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("TIDEMARK_TOKEN"));
    let nowhere = elsewhere.run_env(
        &["--server", "http://127.0.0.1:9", "jobs"],
        &[("TIDEMARK_TOKEN", viewer)],
    );
    assert!(!nowhere.status.success());
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("cannot reach"));
    // Nothing was written where the commands ran.
    assert!(!elsewhere.dir.path().join("catalog.sqlite").exists());
}

#[test]
fn endpoints_and_inventory_are_managed_over_the_api() {
    let lab = Lab::with_vm();
    let server = serve(&lab, &[]);
    let admin = token(&lab, "admin");
    let call = |method: &str, path: &str, body: Option<&str>| {
        http(&server, method, path, Some(&admin), body, &[])
    };
    // Endpoints are the admin's; refreshing inventory the operator's.
    let (operator, viewer) = (token(&lab, "operator"), token(&lab, "viewer"));
    let body = r#"{"name":"e","adapter":"lab-array"}"#;
    let as_role = |t: &str, method: &str, path: &str, body: Option<&str>| {
        http(&server, method, path, Some(t), body, &[]).0
    };
    assert_eq!(as_role(&operator, "POST", "/v1/endpoints", Some(body)), 403);
    assert_eq!(
        as_role(&operator, "DELETE", "/v1/endpoints/lab-array", None),
        403
    );
    assert_eq!(
        as_role(&viewer, "POST", "/v1/inventory/refresh", Some("{}")),
        403
    );
    assert_eq!(as_role(&viewer, "POST", "/v1/copies/gc", None), 403);
    assert_eq!(as_role(&viewer, "GET", "/v1/inventory/hosts", None), 200);
    assert_eq!(
        as_role(&operator, "POST", "/v1/tokens", Some(r#"{"role":"admin"}"#)),
        403
    );
    // Credentials never come back.
    let (status, added) = call(
        "POST",
        "/v1/endpoints",
        Some(
            r#"{"name":"array-2","adapter":"lab-array","settings":{"password":"hunter2","site":"b"},"grants":["data-dir"]}"#,
        ),
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["settings"]["password"], "********");
    assert_eq!(added["settings"]["site"], "b");
    let (_, listed) = call("GET", "/v1/endpoints", None);
    assert!(!listed.to_string().contains("hunter2"), "{listed}");
    let text = lab.run(&["endpoint", "list"]);
    assert!(!String::from_utf8_lossy(&text.stdout).contains("hunter2"));
    // Test, then use it at once (no restart).
    let (status, tested) = call("POST", "/v1/endpoints/array-2/test", None);
    assert_eq!(
        (status, &tested["ok"]),
        (200, &Value::Bool(true)),
        "{tested}"
    );
    let (status, luns) = call("GET", "/v1/inventory/luns?endpoint=array-2", None);
    assert_eq!(status, 200, "{luns}");
    // In use: refused, naming why; unused: removed; unknown: 404.
    let (status, refused) = call("DELETE", "/v1/endpoints/lab-hypervisor", None);
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("VM"));
    assert_eq!(call("DELETE", "/v1/endpoints/array-2", None).0, 200);
    assert_eq!(call("DELETE", "/v1/endpoints/array-2", None).0, 404);
    assert_eq!(call("POST", "/v1/endpoints/array-2/test", None).0, 404);
    // Inventory lists, and a refresh records what the hypervisor has.
    let (_, hosts) = call("GET", "/v1/inventory/hosts", None);
    let host_ids: Vec<&str> = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert!(host_ids.contains(&"esx-a"), "{hosts}");
    let (_, vms) = call("GET", "/v1/inventory/vms", None);
    assert_eq!(vms["items"][0]["name"], "app", "{vms}");
    let (status, refreshed) = call("POST", "/v1/inventory/refresh", Some("{}"));
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["updated"][0], "app", "{refreshed}");
    // An adapter that is not loaded is not found.
    let (status, bad) = call(
        "POST",
        "/v1/endpoints",
        Some(r#"{"name":"x","adapter":"no-such-adapter"}"#),
    );
    assert_eq!(status, 404, "{bad}");
}

#[test]
fn ctrl_c_detaches_from_a_served_job_without_cancelling_it() {
    let lab = Lab::with_vm();
    let server = serve(&lab, &[("TIDEMARK_STEP_DELAY_MS", "400".to_string())]);
    let viewer = token(&lab, "viewer");
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("--data-dir")
        .arg(lab.dir.path())
        .args(["--output", "json", "snapshot", "app"])
        .env_remove("TIDEMARK_SERVER")
        .env_remove("TIDEMARK_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the job exists on the server, interrupt the command.
    let started = Instant::now();
    loop {
        let (_, jobs) = http(&server, "GET", "/v1/jobs", Some(&viewer), None, &[]);
        if jobs["total"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detached"), "{stderr}");
    let doc = json(&out);
    assert_eq!(doc["state"], "running", "{doc}");
    // The job was not cancelled: it finishes on the server.
    let job = wait_job(&server, &viewer, doc["job"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
}
