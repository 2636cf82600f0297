//! The aws-route53 adapter against a real moto 5.2.5 (`moto_server`) started here on
//! 127.0.0.1 with signature checks on: the first three requests (unchecked) create an IAM
//! user with an allow-all inline policy and its access key, and every request after is
//! checked against that key. The conformance suite passes on it; a record set through
//! `tidemark dns` is what Route 53's own API then lists; a CNAME beside an A is a conflict
//! (moto would take it: the adapter refuses it); a wrong secret is `denied` without any
//! secret in any output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemons::{self, Daemon};
use crate::harness::{Lab, unpassed};

pub const AWS_ROUTE53: &str = env!("TIDEMARK_AWS_ROUTE53_WASM");
/// The hosted zone the server is given.
const ZONE: &str = "tidemark.test.";
/// The SHA-256 of an empty body. Sent as `x-amz-content-sha256` on every GET: moto 5.2.5
/// checks a GET's signature against a hash of its query (or headers) without it.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The venv `.ci/run` installs moto into.
fn venv() -> String {
    std::env::var("TIDEMARK_MOTO_VENV")
        .unwrap_or_else(|_| "/var/tmp/tidemark-moto-venv-5.2.5".into())
}

/// The text between `open` and `close` in `text`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// A moto server with signature checks on, an IAM user's key and [`ZONE`]; killed when
/// dropped.
pub struct Moto {
    _daemon: Daemon,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The hosted zone's id, without `/hostedzone/`.
    pub zone_id: String,
}

impl Moto {
    /// A started server, or `None` (skipping) where moto is missing off CI.
    pub fn start() -> Option<Moto> {
        let program = daemons::program(&format!("{}/bin/moto_server", venv()))?;
        daemons::program("curl")?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-moto-")
            .tempdir()
            .unwrap();
        let port = daemons::port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let mut command = daemons::command(&program);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Requests after the first three are checked against IAM's keys.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let daemon = Daemon::start(command, "moto_server");
        daemons::wait_listening(port, "moto_server", Duration::from_secs(30));

        // The three unchecked requests; signed all the same, since moto routes by the
        // credential scope's service.
        let iam = |form: &[&str]| {
            let (status, body) = curl(port, "iam", "BOOTSTRAP:bootstrap", "POST", "/", form, None);
            assert_eq!(status, 200, "IAM {form:?}: {body}");
            body
        };
        iam(&["Action=CreateUser", "UserName=tidemark"]);
        iam(&[
            "Action=PutUserPolicy",
            "UserName=tidemark",
            "PolicyName=all",
            r#"PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ]);
        let key = iam(&["Action=CreateAccessKey", "UserName=tidemark"]);
        let access_key_id = between(&key, "<AccessKeyId>", "</AccessKeyId>")
            .expect("an access key id")
            .to_string();
        let secret_access_key = between(&key, "<SecretAccessKey>", "</SecretAccessKey>")
            .expect("a secret access key")
            .to_string();
        let mut moto = Moto {
            _daemon: daemon,
            port,
            dir,
            access_key_id,
            secret_access_key,
            zone_id: String::new(),
        };
        let create = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateHostedZoneRequest \
             xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>{ZONE}</Name>\
             <CallerReference>tidemark-e2e</CallerReference></CreateHostedZoneRequest>"
        );
        let (status, body) = moto.route53("POST", "/2013-04-01/hostedzone", Some(&create));
        assert_eq!(status, 201, "creating zone {ZONE}: {body}");
        moto.zone_id = between(&body, "<Id>/hostedzone/", "</Id>")
            .expect("the zone's id")
            .to_string();
        Some(moto)
    }

    /// One Route 53 call signed with the user's key: (status, body). `path` carries its
    /// query parameters sorted by name (curl 7.88 signs them in the order given).
    pub fn route53(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let user = format!("{}:{}", self.access_key_id, self.secret_access_key);
        curl(self.port, "route53", &user, method, path, &[], body)
    }

    /// The record sets of `name` and `rtype` as Route 53 lists them (its XML), the first set
    /// only if it is that one.
    pub fn record_sets(&self, name: &str, rtype: &str) -> String {
        let (status, body) = self.route53(
            "GET",
            &format!(
                "/2013-04-01/hostedzone/{}/rrset?maxitems=1&name={name}&type={rtype}",
                self.zone_id
            ),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let set = between(&body, "<ResourceRecordSet>", "</ResourceRecordSet>").unwrap_or("");
        let wanted = format!("<Name>{name}</Name><Type>{rtype}</Type>");
        if set.starts_with(&wanted) {
            set.to_string()
        } else {
            String::new()
        }
    }

    /// Every record set of the zone (its XML).
    pub fn zone(&self) -> String {
        let path = format!("/2013-04-01/hostedzone/{}/rrset", self.zone_id);
        let (status, body) = self.route53("GET", &path, None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The suite's and `endpoint add`'s arguments for this server, the secret given in
    /// `secret_file`.
    pub fn args(&self, key_file: &Path, secret_file: &Path) -> Vec<String> {
        vec![
            "--setting".into(),
            format!("url=http://127.0.0.1:{}", self.port),
            "--grant".into(),
            format!("http=127.0.0.1:{}", self.port),
            "--secret".into(),
            format!("access-key-id=@{}", key_file.display()),
            "--secret".into(),
            format!("secret-access-key=@{}", secret_file.display()),
        ]
    }

    /// Files holding the key id and `secret`, for `--secret NAME=@FILE`.
    pub fn key_files(&self, secret: &str) -> (PathBuf, PathBuf) {
        let key = self.dir.path().join("access-key-id");
        std::fs::write(&key, &self.access_key_id).unwrap();
        let path = self.dir.path().join(format!("secret-{}", secret.len()));
        std::fs::write(&path, secret).unwrap();
        (key, path)
    }
}

/// `method http://127.0.0.1:PORT{path}` signed by curl for `service` as `user` (`AK:SK`),
/// with `form` fields (url-encoded, IAM's query API) or an XML `body`: (status, body).
fn curl(
    port: u16,
    service: &str,
    user: &str,
    method: &str,
    path: &str,
    form: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .args(["--aws-sigv4", &format!("aws:amz:us-east-1:{service}")])
        .args(["--user", user]);
    for field in form {
        command.args(["--data-urlencode", field]);
    }
    if !form.is_empty() {
        command.args(["--data-urlencode", "Version=2010-05-08"]);
    }
    match body {
        Some(xml) => {
            command.args(["-H", "Content-Type: text/xml", "--data-binary", xml]);
        }
        None if form.is_empty() => {
            command.args(["-H", &format!("x-amz-content-sha256: {EMPTY_SHA256}")]);
        }
        None => {}
    }
    let out = command
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn args_of(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `endpoint add dns --adapter aws-route53` with `secret` as the secret access key.
fn add_endpoint(lab: &Lab, moto: &Moto, secret: &str) {
    lab.ok(&["adapter", "add", AWS_ROUTE53]);
    let (key, secret) = moto.key_files(secret);
    let mut add = vec![
        "endpoint".to_string(),
        "add".into(),
        "dns".into(),
        "--adapter".into(),
        "aws-route53".into(),
    ];
    add.extend(moto.args(&key, &secret));
    lab.ok(&args_of(&add));
}

#[test]
fn the_conformance_suite_passes_on_a_real_moto_route53() {
    let Some(moto) = Moto::start() else { return };
    let lab = Lab::empty();
    let (key, secret) = moto.key_files(&moto.secret_access_key);
    let mut all = vec![AWS_ROUTE53.to_string()];
    all.extend(moto.args(&key, &secret));
    let (code, report) = lab.adapter_test(&args_of(&all));
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));
    assert_eq!(report["kind"], "dns");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["skipped"], 0, "{:#?}", unpassed(&report));
    assert!(report["checks"].as_array().unwrap().len() >= 14);
    // Nothing of the suite's is left in the zone.
    let zone = moto.zone();
    assert!(!zone.contains("tmc-"), "records left behind: {zone}");
}

#[test]
fn a_record_set_through_tidemark_is_what_route53_lists() {
    let Some(moto) = Moto::start() else { return };
    let lab = Lab::empty();
    add_endpoint(&lab, &moto, &moto.secret_access_key);

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
    let held = moto.record_sets("db.tidemark.test.", "A");
    assert!(
        held.contains("<TTL>60</TTL>")
            && held.contains("<Value>192.0.2.7</Value>")
            && held.contains("<Value>192.0.2.8</Value>"),
        "{held}"
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
    let held = moto.record_sets("db.tidemark.test.", "A");
    assert!(
        held.contains("<TTL>30</TTL>")
            && held.contains("198.51.100.9")
            && !held.contains("192.0.2.7"),
        "{held}"
    );
    let got = lab.ok(&["dns", "get", "dns", "db.tidemark.test", "a"]);
    assert_eq!(got["values"], serde_json::json!(["198.51.100.9"]));

    // A CNAME beside the A is a conflict (moto alone would take it), and the A stays.
    let (ok, text, _) = lab.run_timed(&[
        "dns",
        "set",
        "dns",
        "db.tidemark.test",
        "CNAME",
        "web.tidemark.test",
    ]);
    assert!(!ok && text.contains("conflict"), "{text}");
    assert!(moto.record_sets("db.tidemark.test.", "CNAME").is_empty());
    assert!(
        moto.record_sets("db.tidemark.test.", "A")
            .contains("198.51.100.9")
    );
    // Values not of their kind never reach the server.
    let (ok, text, _) = lab.run_timed(&["dns", "set", "dns", "db.tidemark.test", "A", "not-an-ip"]);
    assert!(
        !ok && text.contains("not-an-ip") && text.contains("IPv4"),
        "{text}"
    );

    lab.ok(&["dns", "delete", "dns", "db.tidemark.test", "A"]);
    assert!(moto.record_sets("db.tidemark.test.", "A").is_empty());
    lab.ok(&["dns", "delete", "dns", "db.tidemark.test", "A"]);
    let out = lab.run(&["dns", "get", "dns", "db.tidemark.test", "A"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no A record db.tidemark.test."));
}

#[test]
fn a_wrong_secret_is_denied_without_showing_any_secret() {
    let Some(moto) = Moto::start() else { return };
    let lab = Lab::empty();
    let wrong = "wrong/secret+5d1e0b77aaaaaaaaaaaaaaaaaaaaaaa";
    add_endpoint(&lab, &moto, wrong);
    let (ok, text, _) = lab.run_timed(&["dns", "zones", "dns"]);
    assert!(!ok, "{text}");
    assert!(text.contains("denied"), "{text}");
    assert!(
        text.contains("secret-access-key"),
        "names the secret to check: {text}"
    );
    for secret in [
        wrong,
        moto.secret_access_key.as_str(),
        moto.access_key_id.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in the output: {text}");
    }
    // Signature checks are on: moto itself refuses that secret.
    let user = format!("{}:{wrong}", moto.access_key_id);
    let (status, body) = curl(
        moto.port,
        "route53",
        &user,
        "GET",
        "/2013-04-01/hostedzone",
        &[],
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}
