//! The powerdns adapter against a real PowerDNS 4.7 (`pdns_server`, sqlite backend) started
//! here on 127.0.0.1: the conformance suite passes on it; a record set through `tidemark dns`
//! is answered by the server's own resolver (`dig`), not only by its API; a CNAME beside an
//! A is a conflict; a wrong API key is `denied` without the key in any output; a server that
//! is down is an error that says so.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::daemons::{self, Daemon};
use crate::harness::{Lab, unpassed};

pub const POWERDNS: &str = env!("TIDEMARK_POWERDNS_WASM");
/// The zone the server is given.
const ZONE: &str = "tidemark.test.";
pub const API_KEY: &str = "pdns-key-7f3a9c";

/// A pdns_server with its API; killed when dropped.
pub struct Pdns {
    _daemon: Daemon,
    /// DNS (UDP and TCP).
    pub dns: u16,
    /// HTTP API.
    pub api: u16,
    pub dir: tempfile::TempDir,
}

impl Pdns {
    /// A started server holding [`ZONE`], or `None` (skipping) where PowerDNS is missing off CI.
    pub fn start() -> Option<Pdns> {
        let program = daemons::program("/usr/sbin/pdns_server")?;
        daemons::program("dig")?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-pdns-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("pdns.sqlite3");
        let schema = std::fs::read("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
            .expect("the sqlite backend's schema (pdns-backend-sqlite3)");
        let mut sqlite = Command::new("sqlite3")
            .arg(&db)
            .stdin(Stdio::piped())
            .spawn()
            .expect("sqlite3");
        use std::io::Write as _;
        sqlite.stdin.take().unwrap().write_all(&schema).unwrap();
        assert!(
            sqlite.wait().unwrap().success(),
            "creating the pdns database"
        );
        let (dns, api) = (daemons::port(), daemons::port());
        let conf = format!(
            "launch=gsqlite3\ngsqlite3-database={db}\nlocal-address=127.0.0.1\nlocal-port={dns}\n\
             socket-dir={dir}\napi=yes\napi-key={API_KEY}\nwebserver=yes\n\
             webserver-address=127.0.0.1\nwebserver-port={api}\nwebserver-allow-from=127.0.0.1/32\n\
             guardian=no\ndaemon=no\ndisable-syslog=yes\nsetuid=\nsetgid=\nsecurity-poll-suffix=\n\
             default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 3600\n",
            db = db.display(),
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("pdns.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("pdns.log")).unwrap();
        let mut command = daemons::command(&program);
        command
            .arg(format!("--config-dir={}", dir.path().display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let daemon = Daemon::start(command, "pdns_server");
        daemons::wait_listening(api, "pdns_server's API", Duration::from_secs(20));
        let pdns = Pdns {
            _daemon: daemon,
            dns,
            api,
            dir,
        };
        let body = format!(r#"{{"name":"{ZONE}","kind":"Native","nameservers":["ns1.{ZONE}"]}}"#);
        let (status, answer) = pdns.call("POST", "/api/v1/servers/localhost/zones", &body);
        assert_eq!(status, 201, "creating zone {ZONE}: {answer}");
        Some(pdns)
    }

    /// One call of the server's API with the right key: (status, body).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args([
                "-H",
                &format!("X-API-Key: {API_KEY}"),
                "-H",
                "Content-Type: application/json",
            ])
            .args(["--data", body])
            .arg(format!("http://127.0.0.1:{}{path}", self.api))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    /// What the server's resolver answers for `name` `kind` (`dig +short`), one value a line.
    pub fn dig(&self, name: &str, kind: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args(["+short", "+tries=1", "+time=2", "@127.0.0.1", "-p"])
            .arg(self.dns.to_string())
            .args([name, kind])
            .output()
            .expect("dig");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
    }

    /// The suite's and `endpoint add`'s arguments for this server, the key in `key_file`.
    pub fn args(&self, key_file: &Path) -> Vec<String> {
        vec![
            "--setting".into(),
            format!("url=http://127.0.0.1:{}", self.api),
            "--grant".into(),
            format!("http=127.0.0.1:{}", self.api),
            "--secret".into(),
            format!("api-key=@{}", key_file.display()),
        ]
    }
}

/// A file holding `key`, for `--secret api-key=@FILE`.
pub fn key_file(dir: &Path, key: &str) -> std::path::PathBuf {
    let path = dir.join(format!("key-{}", key.len()));
    std::fs::write(&path, key).unwrap();
    path
}

fn args_of(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_conformance_suite_passes_on_a_real_powerdns() {
    let Some(pdns) = Pdns::start() else { return };
    let lab = Lab::empty();
    let key = key_file(pdns.dir.path(), API_KEY);
    let mut all = vec![POWERDNS.to_string()];
    all.extend(pdns.args(&key));
    let (code, report) = lab.adapter_test(&args_of(&all));
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));
    assert_eq!(report["kind"], "dns");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["skipped"], 0, "{:#?}", unpassed(&report));
    assert!(report["checks"].as_array().unwrap().len() >= 14);
    // Nothing of the suite's is left in the zone.
    let (_, zone) = pdns.call(
        "GET",
        &format!("/api/v1/servers/localhost/zones/{ZONE}"),
        "",
    );
    assert!(!zone.contains("tmc-"), "records left behind: {zone}");
}

#[test]
fn a_record_set_through_tidemark_is_what_the_resolver_answers() {
    let Some(pdns) = Pdns::start() else { return };
    let lab = Lab::empty();
    let key = key_file(pdns.dir.path(), API_KEY);
    // The adapter file is added as an adapter (named by its stem), then the endpoint uses it.
    lab.ok(&["adapter", "add", POWERDNS]);
    let mut add = vec![
        "endpoint".to_string(),
        "add".into(),
        "dns".into(),
        "--adapter".into(),
        "powerdns".into(),
    ];
    add.extend(pdns.args(&key));
    lab.ok(&args_of(&add));

    let zones = lab.ok(&["dns", "zones", "dns"]);
    assert_eq!(zones["zones"], serde_json::json!([ZONE]));
    let set = lab.ok(&[
        "dns",
        "set",
        "dns",
        "db.tidemark.test",
        "A",
        "192.0.2.7",
        "192.0.2.8",
        "--ttl",
        "60",
    ]);
    assert_eq!(set["name"], "db.tidemark.test.");
    assert_eq!(set["ttl"], 60);
    assert_eq!(
        pdns.dig("db.tidemark.test", "A"),
        ["192.0.2.7", "192.0.2.8"]
    );
    // Repointing replaces, it does not add.
    lab.ok(&[
        "dns",
        "set",
        "dns",
        "db.tidemark.test.",
        "A",
        "198.51.100.9",
        "--ttl",
        "30",
    ]);
    assert_eq!(pdns.dig("db.tidemark.test", "A"), ["198.51.100.9"]);
    let got = lab.ok(&["dns", "get", "dns", "db.tidemark.test", "a"]);
    assert_eq!(got["values"], serde_json::json!(["198.51.100.9"]));

    // A CNAME beside the A is a conflict, and the A stays.
    let (ok, text, _) = lab.run_timed(&[
        "dns",
        "set",
        "dns",
        "db.tidemark.test",
        "CNAME",
        "web.tidemark.test",
    ]);
    assert!(!ok && text.contains("conflict"), "{text}");
    assert_eq!(pdns.dig("db.tidemark.test", "A"), ["198.51.100.9"]);
    // Values not of their kind never reach the server.
    let (ok, text, _) = lab.run_timed(&["dns", "set", "dns", "db.tidemark.test", "A", "not-an-ip"]);
    assert!(
        !ok && text.contains("not-an-ip") && text.contains("IPv4"),
        "{text}"
    );

    lab.ok(&["dns", "delete", "dns", "db.tidemark.test", "A"]);
    assert!(pdns.dig("db.tidemark.test", "A").is_empty());
    lab.ok(&["dns", "delete", "dns", "db.tidemark.test", "A"]);
    let out = lab.run(&["dns", "get", "dns", "db.tidemark.test", "A"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no A record db.tidemark.test."));
}

#[test]
fn a_wrong_key_is_denied_without_showing_it_and_a_dead_server_says_so() {
    let Some(pdns) = Pdns::start() else { return };
    let lab = Lab::empty();
    let wrong = "wrong-key-5d1e0b77";
    let key = key_file(pdns.dir.path(), wrong);
    lab.ok(&["adapter", "add", POWERDNS]);
    let mut add = vec![
        "endpoint".to_string(),
        "add".into(),
        "dns".into(),
        "--adapter".into(),
        "powerdns".into(),
    ];
    add.extend(pdns.args(&key));
    lab.ok(&args_of(&add));
    let (ok, text, _) = lab.run_timed(&["dns", "zones", "dns"]);
    assert!(!ok, "{text}");
    assert!(text.contains("denied"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(API_KEY),
        "a key in the output: {text}"
    );

    // A port nothing listens on: the server is down.
    let dead = daemons::port();
    let key = key_file(pdns.dir.path(), API_KEY);
    let args = [
        "endpoint",
        "add",
        "dns-down",
        "--adapter",
        "powerdns",
        "--setting",
        &format!("url=http://127.0.0.1:{dead}"),
        "--grant",
        &format!("http=127.0.0.1:{dead}"),
        "--secret",
        &format!("api-key=@{}", key.display()),
    ];
    lab.ok(&args);
    let (ok, text, took) = lab.run_timed(&["dns", "get", "dns-down", "db.tidemark.test", "A"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("endpoint dns-down")
            && text.contains("transient")
            && text.contains("ConnectionRefused"),
        "{text}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
