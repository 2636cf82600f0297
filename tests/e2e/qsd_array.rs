//! The qsd-array adapter against a real qemu-storage-daemon 10.0.2, started here on
//! 127.0.0.1 with several QMP monitors and nothing else: the adapter creates images, nodes,
//! the NBD server and exports itself over QMP. The conformance suite passes on it and leaves
//! no image behind; a wrong `image-dir` is refused naming the setting.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemons::{self, Daemon};
use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{Lab, copied_device as device, unpassed};
use tidemark::cli::demo::pattern;

const QSD_ARRAY: &str = env!("TIDEMARK_QSD_ARRAY_WASM");

/// A qemu-storage-daemon with `MONITORS` QMP monitors and an image directory; killed when
/// dropped (its directory goes after it).
pub struct Qsd {
    daemon: Option<Daemon>,
    /// Monitor ports.
    pub monitors: Vec<u16>,
    /// Where the adapter's NBD server is to listen.
    pub nbd: u16,
    /// The image directory (the endpoint's data directory).
    pub images: tempfile::TempDir,
}

const MONITORS: usize = 3;

impl Qsd {
    /// Whether qsd is here (off CI a missing one skips, with a note; on CI it fails).
    pub fn available() -> bool {
        daemons::program("qemu-storage-daemon").is_some()
    }

    /// A started daemon, or `None` (skipping) where qsd is missing off CI.
    pub fn start() -> Option<Qsd> {
        let images = tempfile::Builder::new()
            .prefix("tidemark-qsd-")
            .tempdir()
            .expect("tempdir");
        let monitors: Vec<u16> = (0..MONITORS).map(|_| daemons::port()).collect();
        let nbd = daemons::port();
        let mut qsd = Qsd {
            daemon: None,
            monitors,
            nbd,
            images,
        };
        qsd.daemon = Some(qsd.spawn()?);
        Some(qsd)
    }

    fn spawn(&self) -> Option<Daemon> {
        let program = daemons::program("qemu-storage-daemon")?;
        let mut command = daemons::command(&program);
        for (i, port) in self.monitors.iter().enumerate() {
            command
                .arg("--chardev")
                .arg(format!(
                    "socket,id=m{i},host=127.0.0.1,port={port},server=on,wait=off"
                ))
                .arg("--monitor")
                .arg(format!("chardev=m{i}"));
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let daemon = Daemon::start(command, "qemu-storage-daemon");
        let deadline = Instant::now() + Duration::from_secs(20);
        let last = *self.monitors.last().unwrap();
        while TcpStream::connect(("127.0.0.1", last)).is_err() {
            assert!(
                Instant::now() < deadline,
                "qemu-storage-daemon did not listen on {last} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(daemon)
    }

    /// Kills the daemon with SIGKILL and starts a fresh one on the same ports: it knows
    /// nothing of what the last one had open.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.daemon = self.spawn();
    }

    /// Stops the daemon cleanly (SIGTERM: images closed), copies its image directory, and
    /// starts it again: what [`Qsd::restart_from`] brings back.
    pub fn save(&mut self) -> tempfile::TempDir {
        self.stop();
        let saved = tempfile::Builder::new()
            .prefix("tidemark-qsd-saved-")
            .tempdir()
            .expect("tempdir");
        copy_dir(self.dir(), saved.path());
        self.daemon = self.spawn();
        saved
    }

    /// Stops the daemon cleanly, puts back the image directory [`Qsd::save`] copied, and
    /// starts a fresh daemon (which the adapter fills from its records).
    pub fn restart_from(&mut self, saved: &Path) {
        self.stop();
        for entry in std::fs::read_dir(self.dir()).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        copy_dir(saved, self.dir());
        self.daemon = self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.signal("TERM");
            daemon.wait_within(Duration::from_secs(20));
        }
    }

    /// Adds the qsd-array adapter and endpoint `qsd` for this daemon to `lab`.
    pub fn add_endpoint(&self, lab: &Lab) {
        self.add_endpoint_via(lab, &self.monitors, &[]);
    }

    /// [`Qsd::add_endpoint`], reaching the monitors at `monitors` (a fault proxy's), with
    /// `extra` arguments for `endpoint add`.
    pub fn add_endpoint_via(&self, lab: &Lab, monitors: &[u16], extra: &[String]) {
        lab.ok(&["adapter", "add", QSD_ARRAY, "--name", "qsd-array"]);
        let mut add = vec!["endpoint", "add", "qsd", "--adapter", "qsd-array"];
        let args = self.args_via(monitors, self.nbd, self.dir());
        add.extend(args.iter().chain(extra).map(String::as_str));
        lab.ok(&add);
    }

    /// Kills the daemon with SIGKILL, leaving it down.
    pub fn kill(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.signal("KILL");
            drop(daemon);
        }
    }

    /// The image directory's path.
    pub fn dir(&self) -> &Path {
        self.images.path()
    }

    /// `--setting S --grant G …` for `adapter test` or `endpoint add`, reaching qsd
    /// directly.
    pub fn args(&self, image_dir: &Path) -> Vec<String> {
        self.args_via(&self.monitors, self.nbd, image_dir)
    }

    /// The same, reaching the monitors and the NBD server at other ports (a fault proxy's).
    pub fn args_via(&self, monitors: &[u16], nbd: u16, image_dir: &Path) -> Vec<String> {
        let ports: Vec<String> = monitors.iter().map(u16::to_string).collect();
        let mut args = vec![
            "--setting".to_string(),
            format!("qmp=127.0.0.1:{}", ports.join(",")),
            "--setting".into(),
            format!("nbd=127.0.0.1:{nbd}"),
            "--setting".into(),
            format!("image-dir={}", image_dir.display()),
            "--grant".into(),
            format!("data-dir={}", self.dir().display()),
        ];
        for port in monitors.iter().chain([&nbd]) {
            args.extend(["--grant".to_string(), format!("tcp=127.0.0.1:{port}")]);
        }
        args
    }

    /// Image files left in the image directory.
    pub fn images_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir().join("images"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "qcow2"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `cp -a FROM/. TO`.
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .expect("running cp");
    assert!(status.success(), "cp -a {from:?} {to:?} failed");
}

impl Drop for Qsd {
    fn drop(&mut self) {
        self.daemon.take();
    }
}

/// `adapter test` of the qsd array with `args`: exit code and report.
fn suite(lab: &Lab, args: &[String]) -> (Option<i32>, Value) {
    let mut all = vec![QSD_ARRAY];
    all.extend(args.iter().map(String::as_str));
    lab.adapter_test(&all)
}

#[test]
fn the_conformance_suite_passes_on_a_real_qemu_storage_daemon_and_leaves_no_image() {
    let Some(qsd) = Qsd::start() else { return };
    let lab = Lab::empty();
    let (code, report) = suite(&lab, &qsd.args(qsd.dir()));
    assert_eq!(code, Some(0), "{:#?}", unpassed(&report));
    assert_eq!(report["kind"], "storage-array");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["skipped"], 0, "{:#?}", unpassed(&report));
    assert!(report["checks"].as_array().unwrap().len() >= 80);
    let left = qsd.images_left();
    assert!(left.is_empty(), "images left behind: {left:?}");
}

#[test]
fn an_image_dir_qsd_cannot_see_is_refused_naming_the_setting() {
    let Some(qsd) = Qsd::start() else { return };
    let lab = Lab::empty();
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, report) = suite(&lab, &qsd.args(elsewhere.path()));
    assert_ne!(code, Some(0));
    let first = &unpassed(&report)[0];
    assert!(
        first.contains("image-dir") && first.contains("cannot see"),
        "{first}"
    );
}

/// A lab whose VM `app` has its LUNs (`D:` physical, `/data` virtual) on the real qsd array
/// (endpoint `qsd`) and its virtual disk `C:` on the lab hypervisor.
fn lab_with_qsd_lun(qsd: &Qsd) -> Lab {
    let mut lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    qsd.add_endpoint(&lab);
    lab.array = "qsd".into();
    lab.create_vm("app");
    lab
}

#[test]
fn a_physical_lun_on_qsd_is_snapshotted_reverted_copied_and_restored_across_a_daemon_kill() {
    let Some(mut qsd) = Qsd::start() else { return };
    let lab = lab_with_qsd_lun(&qsd);
    let original = pattern(1, 24 << 20);
    lab.write("app", "D:", 4093, &original);
    lab.write("app", "C:", 0, &pattern(2, 1 << 20));

    // Snapshot: the LUN through qsd (the hypervisor cannot), then overwrite and revert.
    let (point, _) = lab.snapshot("app");
    lab.write("app", "D:", 4093, &pattern(3, 1 << 20));
    lab.ok(&["revert", "app", &point]);
    assert!(
        lab.read("app", "D:", 4093, original.len()) == original,
        "D: not reverted"
    );

    let full = lab.ok(&["copy", "app"]);
    let d = device(&full, "D:");
    assert_eq!(d["how"], "full", "{d}");
    assert!(d["bytes_read"].as_u64().unwrap() >= 24 << 20, "{d}");

    // A small change, then qsd dies (SIGKILL) and comes back knowing nothing: the adapter
    // rebuilds nodes and exports from its records, and the next copy is still incremental
    // and exact (allocation depth lives in the images, not in memory).
    let changed = 655 << 10;
    lab.write("app", "D:", 8 << 20, &pattern(4, changed));
    qsd.kill_and_restart();
    let incremental = lab.ok(&["copy", "app"]);
    let d = device(&incremental, "D:");
    assert_eq!(d["how"], "incremental", "{d}");
    let read = d["bytes_read"].as_u64().unwrap();
    assert!(
        read >= changed as u64 && read <= changed as u64 + (1 << 20),
        "D: read {read} bytes for a {changed}-byte change: {d}"
    );

    let point = incremental["recovery_point"].as_str().unwrap();
    lab.ok(&["restore", "app", point, "--host", "esx-b", "--as", "app2"]);
    let mut expected = original.clone();
    let at = (8 << 20) - 4093;
    expected[at..at + changed].copy_from_slice(&pattern(4, changed));
    assert!(
        lab.read("app2", "D:", 4093, expected.len()) == expected,
        "restored D: differs"
    );
    assert!(
        lab.read("app2", "C:", 0, 1 << 20) == pattern(2, 1 << 20),
        "restored C: differs"
    );
    assert_eq!(lab.ok(&["verify", "--all"])["ok"], true);
    lab.assert_reconciled();
}

#[test]
fn garbage_silence_resets_and_a_dead_daemon_are_clear_errors_naming_the_endpoint_never_hangs() {
    let Some(mut qsd) = Qsd::start() else { return };
    let monitors: Vec<FaultProxy> = qsd.monitors.iter().map(|p| FaultProxy::start(*p)).collect();
    let nbd = FaultProxy::start(qsd.nbd);
    let mut lab = Lab::empty();
    lab.ok(&["lab", "init"]);
    lab.ok(&["adapter", "add", QSD_ARRAY, "--name", "qsd-array"]);
    let ports: Vec<u16> = monitors.iter().map(|m| m.port).collect();
    let mut add: Vec<String> = ["endpoint", "add", "qsd", "--adapter", "qsd-array"]
        .map(String::from)
        .to_vec();
    add.extend(qsd.args_via(&ports, nbd.port, qsd.dir()));
    add.extend([
        "--setting".to_string(),
        format!("nbd-listen=127.0.0.1:{}", qsd.nbd),
        "--setting".into(),
        "timeout=3s".into(),
        "--grant".into(),
        format!("tcp=127.0.0.1:{}", qsd.nbd),
    ]);
    lab.ok(&add.iter().map(String::as_str).collect::<Vec<_>>());
    lab.array = "qsd".into();
    lab.create_vm("app");
    lab.write("app", "D:", 0, &pattern(5, 1 << 20));
    let (ok, error, _) = lab.endpoint_test("qsd");
    assert!(ok, "{error}");
    let limit = Duration::from_secs(20);

    // The monitors answer garbage.
    for m in &monitors {
        m.set(Fault::Answer(b"{\"QMP\": not json at all\n".to_vec()));
    }
    let (ok, error, took) = lab.endpoint_test("qsd");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(
        error.contains("qsd") && error.contains("not JSON"),
        "{error}"
    );

    // The monitors' answers stop half-way through their greeting.
    for m in &monitors {
        m.set(Fault::Truncate(40));
    }
    let (ok, error, took) = lab.endpoint_test("qsd");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(
        error.contains("qsd") && error.contains("closed the connection"),
        "{error}"
    );

    // The monitors go silent (every one busy as far as a session can tell).
    for m in &monitors {
        m.set(Fault::Delay(Duration::from_secs(30)));
    }
    let (ok, error, took) = lab.endpoint_test("qsd");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(error.contains("qsd") && error.contains("busy"), "{error}");
    for m in &monitors {
        m.set(Fault::Pass);
    }

    // The data path: NBD answers slower than the call deadline (3 s), then resets.
    nbd.set(Fault::Delay(Duration::from_secs(30)));
    let (ok, text, took) = lab.try_read_head("app", "D:");
    assert!(!ok && took < limit, "{text} after {took:?}");
    assert!(
        text.contains("qsd") && text.contains("open-reader"),
        "{text}"
    );
    nbd.set(Fault::Reset);
    let (ok, text, _) = lab.try_read_head("app", "D:");
    assert!(!ok && text.contains("qsd"), "{text}");
    nbd.set(Fault::Pass);
    assert!(lab.read("app", "D:", 0, 1 << 20) == pattern(5, 1 << 20));

    // A job whose array answers garbage fails naming it and leaves nothing behind.
    for m in &monitors {
        m.set(Fault::Answer(b"garbage\n".to_vec()));
    }
    let out = lab.run(&["snapshot", "app"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("qsd"), "{text}");
    for m in &monitors {
        m.set(Fault::Pass);
    }
    lab.assert_reconciled();
    let inventory = lab.ok(&["inventory", "--endpoint", "qsd"]);
    assert_eq!(
        inventory[0]["snapshots"],
        serde_json::json!([]),
        "{inventory}"
    );
    // One image per LUN (its only layer): the failed job made and left none.
    let luns = inventory[0]["luns"].as_array().unwrap().len();
    assert_eq!(luns, 2, "{inventory}");
    assert_eq!(qsd.images_left().len(), luns, "{:?}", qsd.images_left());

    // The daemon is gone: refused connections, named.
    qsd.kill();
    let (ok, error, took) = lab.endpoint_test("qsd");
    assert!(!ok && took < limit, "{error} after {took:?}");
    assert!(error.contains("qsd"), "{error}");
}
