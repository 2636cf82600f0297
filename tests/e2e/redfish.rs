//! The redfish adapter against sushy-tools' Redfish emulator (`sushy-emulator --fake`, HTTP
//! Basic with a bcrypt htpasswd) started here on 127.0.0.1: the conformance suite passes on
//! it (power changes land 1–11 s late there, so the adapter polls); `tidemark machine` lists,
//! shows (what the emulator does not report stays unknown, never invented), powers, sets
//! the boot device and inserts media the emulator fetches from 127.0.0.1; a wrong password
//! is `denied` without the password in any output.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemons::{self, Daemon};
use crate::harness::{Lab, unpassed};

pub const REDFISH: &str = env!("TIDEMARK_REDFISH_WASM");
pub const SYSTEM: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
pub const MAC: &str = "00:5c:52:31:3a:9c";
const USER: &str = "tidemark";
pub const PASSWORD: &str = "bmc-pass-61c2e8";

/// The venv `.ci/run` installs sushy-tools into.
fn venv() -> String {
    std::env::var("TIDEMARK_SERVERS_VENV")
        .unwrap_or_else(|_| "/var/tmp/tidemark-servers-venv-sushy-2.2.0".into())
}

/// A running emulator with one fake system; killed when dropped.
pub struct Sushy {
    _daemon: Daemon,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Sushy {
    /// A started emulator, or `None` (skipping) where sushy-tools is missing off CI.
    pub fn start() -> Option<Sushy> {
        let program = daemons::program(&format!("{}/bin/sushy-emulator", venv()))?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-sushy-")
            .tempdir()
            .unwrap();
        let hashed = Command::new(format!("{}/bin/python", venv()))
            .args([
                "-c",
                "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
                PASSWORD,
            ])
            .output()
            .expect("bcrypt in the venv");
        let hashed = String::from_utf8(hashed.stdout).unwrap();
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("{USER}:{}", hashed.trim()),
        )
        .unwrap();
        let port = daemons::port();
        let conf = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
             SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_STATE_DIR = '{dir}/state'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{dir}/htpasswd'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{SYSTEM}', 'name': 'fake', \
             'power_state': 'Off', 'nics': [{{'mac': '{MAC}', 'ip': '172.22.0.100'}}], \
             'external_notifier': False}}]\n",
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("emulator.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("sushy.log")).unwrap();
        let mut command = daemons::command(&program);
        command
            .arg("--config")
            .arg(dir.path().join("emulator.conf"))
            .arg("--fake")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let daemon = Daemon::start(command, "sushy-emulator");
        daemons::wait_listening(port, "sushy-emulator", Duration::from_secs(30));
        Some(Sushy {
            _daemon: daemon,
            port,
            dir,
        })
    }

    /// The suite's and `endpoint add`'s arguments, with `password`.
    pub fn args(&self, password: &str) -> Vec<String> {
        let user = self.dir.path().join("user");
        let pass = self.dir.path().join(format!("password-{}", password.len()));
        std::fs::write(&user, USER).unwrap();
        std::fs::write(&pass, password).unwrap();
        vec![
            "--setting".into(),
            format!("url=http://127.0.0.1:{}", self.port),
            "--grant".into(),
            format!("http=127.0.0.1:{}", self.port),
            "--secret".into(),
            format!("username=@{}", user.display()),
            "--secret".into(),
            format!("password=@{}", pass.display()),
        ]
    }
}

/// Serves `bytes` to every GET on 127.0.0.1 and records what each request was sent.
struct MediaServer {
    port: u16,
    served: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl MediaServer {
    fn start(bytes: Vec<u8>) -> MediaServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                if stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&bytes).is_ok() {
                    log.lock().unwrap().push(bytes.clone());
                }
            }
        });
        MediaServer { port, served }
    }
}

fn args_of(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn endpoint(lab: &Lab, sushy: &Sushy, name: &str, password: &str) {
    let mut add = vec![
        "endpoint".to_string(),
        "add".into(),
        name.into(),
        "--adapter".into(),
        "redfish".into(),
    ];
    add.extend(sushy.args(password));
    lab.ok(&args_of(&add));
}

#[test]
fn the_conformance_suite_passes_on_sushy_tools_redfish_emulator() {
    let Some(sushy) = Sushy::start() else { return };
    let lab = Lab::empty();
    let mut all = vec![REDFISH.to_string()];
    all.extend(sushy.args(PASSWORD));
    let (code, report) = lab.adapter_test(&args_of(&all));
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));
    assert_eq!(report["kind"], "machine");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["skipped"], 0, "{:#?}", unpassed(&report));
}

#[test]
fn machines_are_listed_shown_powered_and_given_media_through_tidemark() {
    let Some(sushy) = Sushy::start() else { return };
    let lab = Lab::empty();
    lab.ok(&["adapter", "add", REDFISH]);
    endpoint(&lab, &sushy, "bmc", PASSWORD);
    let at = format!("bmc:{SYSTEM}");

    let listed = lab.ok(&["machine", "list"]);
    assert_eq!(listed[0]["endpoint"], "bmc");
    assert_eq!(listed[0]["machines"], serde_json::json!([SYSTEM]));

    let shown = lab.ok(&["machine", "show", &at]);
    let inv = &shown["inventory"];
    assert_eq!(inv["nics"][0]["mac"], MAC);
    // The fake driver reports no CPU count and no memory: unknown, never invented.
    assert!(inv["cpus"].is_null(), "{inv}");
    assert!(inv["memory"].is_null(), "{inv}");
    assert_eq!(inv["power"], "Off");

    let on = lab.ok(&["machine", "power", &at, "on"]);
    assert_eq!(on["power"], "On", "{on}");
    lab.ok(&["machine", "boot", &at, "cd"]);
    let (ok, text, _) = lab.run_timed(&["machine", "boot", &at, "floppy"]);
    assert!(!ok && text.contains("floppy"), "{text}");

    let image = tidemark::cli::demo::pattern(11, 256 * 1024);
    let media = MediaServer::start(image.clone());
    let url = format!("http://127.0.0.1:{}/restore.iso", media.port);
    lab.ok(&["machine", "media", &at, "insert", &url]);
    let served = media.served.lock().unwrap().clone();
    assert!(!served.is_empty(), "the emulator never fetched {url}");
    assert!(served.iter().all(|b| *b == image));
    lab.ok(&["machine", "media", &at, "eject"]);

    let off = lab.ok(&["machine", "power", &at, "off", "--force"]);
    assert_eq!(off["power"], "Off", "{off}");

    let (ok, text, _) = lab.run_timed(&["machine", "show", "bmc:no-such-system"]);
    assert!(!ok && text.contains("no-such-system"), "{text}");
    let (ok, text, _) = lab.run_timed(&["machine", "show", "nothing:x"]);
    assert!(
        !ok && text.contains("no machine endpoint 'nothing'"),
        "{text}"
    );
}

#[test]
fn a_wrong_password_is_denied_without_showing_it() {
    let Some(sushy) = Sushy::start() else { return };
    let lab = Lab::empty();
    lab.ok(&["adapter", "add", REDFISH]);
    let wrong = "not-the-password-93be";
    endpoint(&lab, &sushy, "bmc", wrong);
    let (ok, text, _) = lab.run_timed(&["machine", "show", &format!("bmc:{SYSTEM}")]);
    assert!(!ok, "{text}");
    assert!(text.contains("denied"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(PASSWORD),
        "a password in the output: {text}"
    );
}
