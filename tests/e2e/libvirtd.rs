//! A private libvirtd for tests: libvirt 9.0's session daemon run as `nobody` in a
//! directory of its own, listening on TCP 127.0.0.1 without authentication, never the
//! system daemon and never a system path.
//!
//! [`Libvirtd::start`] makes the directory (owned by `nobody`), writes `libvirtd.conf`
//! (`listen_tcp`, `listen_addr = "127.0.0.1"`, `tcp_port` from [`daemons::port`],
//! `auth_tcp = "none"`, sockets and log inside the directory) and starts
//! `runuser -u nobody -- env HOME=DIR XDG_*=DIR/... libvirtd --listen --config DIR/libvirtd.conf`
//! under [`daemons::command`], then waits for the port to answer. As `nobody` with those
//! variables the daemon keeps its configuration, domains, pools, logs and sockets under
//! the directory (`qemu:///session`).
//!
//! Stopping is more than killing the process group: libvirtd starts `virtlogd` and each
//! domain's `qemu-system-x86_64` as daemons of their own (their own sessions and process
//! groups), so a group kill leaves them running. Dropping a [`Libvirtd`] kills the group,
//! then every process whose environment has `HOME=DIR` (what this daemon started, and
//! only that: the directory is new), and waits until none is left before the directory
//! goes.

use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libvirt_rpc::flags;

use crate::daemons::{self, Daemon};

/// The URI the TCP listener serves (virsh's `qemu+tcp://127.0.0.1:PORT/session`), as
/// `REMOTE_PROC_CONNECT_OPEN` takes it.
pub const SESSION_URI: &str = "qemu:///session";

/// Runs its arguments as a child and reaps every process orphaned below it
/// (`PR_SET_CHILD_SUBREAPER`) as soon as it exits; ends when the child does, passing on
/// SIGTERM.
const REAPER: &str = r#"
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if pid == child:
        break
"#;

/// A running private libvirtd; stopped, with everything it started, when dropped.
pub struct Libvirtd {
    daemon: Option<Daemon>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    qemu: PathBuf,
    qemu_img: PathBuf,
    /// python3 (the reaper), runuser, libvirtd.
    programs: [PathBuf; 3],
}

/// `nobody`'s uid and gid, from `/etc/passwd`.
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// Gives `path` to `nobody`.
pub fn give_to_nobody(path: &Path) {
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown nobody {}: {e}", path.display()));
}

impl Libvirtd {
    /// A fresh daemon, or `None` (skipping, with a note) where libvirtd, runuser or QEMU
    /// is missing off CI.
    pub fn start() -> Option<Self> {
        let libvirtd = daemons::program("libvirtd")?;
        let runuser = daemons::program("runuser")?;
        let qemu = daemons::program("qemu-system-x86_64")?;
        let qemu_img = daemons::program("qemu-img")?;
        // Short: QEMU's monitor sockets live below it and a socket path has 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("tm-lv-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "config", "cache"] {
            fs::create_dir(path.join(sub)).unwrap();
            give_to_nobody(&path.join(sub));
        }
        give_to_nobody(&path);
        let port = daemons::port();
        let conf = path.join("libvirtd.conf");
        fs::write(
            &conf,
            format!(
                "listen_tls = 0\n\
                 listen_tcp = 1\n\
                 listen_addr = \"127.0.0.1\"\n\
                 tcp_port = \"{port}\"\n\
                 auth_tcp = \"none\"\n\
                 auth_unix_rw = \"none\"\n\
                 unix_sock_dir = \"{run}\"\n\
                 log_outputs = \"3:file:{log}\"\n",
                run = path.join("run").display(),
                log = path.join("libvirtd.log").display(),
            ),
        )
        .unwrap();
        give_to_nobody(&conf);
        let python = daemons::program("python3")?;
        let mut me = Self {
            daemon: None,
            port,
            dir: Some(dir),
            path,
            qemu,
            qemu_img,
            programs: [python, runuser, libvirtd],
        };
        me.spawn();
        Some(me)
    }

    /// Starts the daemon on its directory and port; waits until the port answers.
    fn spawn(&mut self) {
        let [python, runuser, libvirtd] = &self.programs;
        let path = &self.path;
        let stderr = fs::File::create(path.join("stderr.log")).unwrap();
        // Under a reaper: libvirtd double-forks each QEMU, which then belongs to PID 1, and
        // the sandbox's PID 1 reaps exited children only about once a second; libvirt waits
        // for a stopped QEMU's pid to vanish with the domain locked (1.3 s per stop here,
        // blocking every listing of domains meanwhile). systemd reaps at once.
        let mut command = daemons::command(python);
        command
            .args(["-c", REAPER])
            .arg(runuser)
            .args(["-u", "nobody", "--", "env"])
            .arg(format!("HOME={}", path.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", path.join("run").display()))
            .arg(format!("XDG_CONFIG_HOME={}", path.join("config").display()))
            .arg(format!("XDG_CACHE_HOME={}", path.join("cache").display()))
            .arg(libvirtd)
            .arg("--listen")
            .arg("--config")
            .arg(path.join("libvirtd.conf"))
            .current_dir(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        self.daemon = Some(Daemon::start(command, "libvirtd"));
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "libvirtd did not listen on {} within 30 s; stderr: {}; log: {}",
                self.port,
                self.read("stderr.log"),
                self.read("libvirtd.log"),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon and everything it started (QEMU, virtlogd); the directory stays.
    fn stop(&mut self) {
        let group = self.daemon.as_ref().map(|d| d.pid());
        // The daemon's group first (runuser and libvirtd), so nothing new is started.
        drop(self.daemon.take());
        let start = Instant::now();
        loop {
            let left = processes_of(&self.path, group);
            if left.is_empty() {
                break;
            }
            for pid in &left {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            if start.elapsed() > Duration::from_secs(10) {
                if !std::thread::panicking() {
                    panic!("left running after libvirtd was stopped: {left:?}");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its processes are gone; the listening socket goes with the last of them, which
        // under load can be a moment after `kill` returned.
        if !std::thread::panicking() {
            daemons::wait_closed(self.port, "libvirtd", Duration::from_secs(10));
        }
    }

    /// Stops the domains that run (`destroy`: QEMU closes its images) and then the daemon,
    /// and copies what it keeps (domain and pool definitions, the images under its
    /// directory) with the names of those domains. The daemon stays down: a domain with
    /// a mapped LUN can start only once the array exports the LUN again, so the caller
    /// brings the array up and then calls [`Libvirtd::start_saved`].
    pub fn stop_and_save(&mut self) -> Saved {
        let mut client = self.connect();
        // Persistent ones only: the data path's transient proxies end with their connection.
        let running: Vec<String> = client
            .list_all_domains(flags::list_domains::ACTIVE | flags::list_domains::PERSISTENT)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        for name in &running {
            let dom = client.domain_lookup_by_name(name).unwrap();
            client
                .domain_destroy(&dom)
                .unwrap_or_else(|e| panic!("stopping {name}: {e}"));
        }
        drop(client);
        self.stop();
        let dir = tempfile::Builder::new()
            .prefix("tm-lv-saved-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        for entry in self.kept() {
            copy_into(&entry, dir.path());
        }
        Saved { dir, running }
    }

    /// Stops the daemon and everything it runs and puts back what
    /// [`Libvirtd::stop_and_save`] copied (nothing of the runtime state); the daemon stays
    /// down until [`Libvirtd::start_saved`].
    pub fn put_back(&mut self, saved: &Saved) {
        self.stop();
        for entry in self.kept() {
            remove(&entry);
        }
        for entry in fs::read_dir(self.path.join("run")).unwrap().flatten() {
            remove(&entry.path());
        }
        for entry in fs::read_dir(saved.dir.path()).unwrap().flatten() {
            copy_into(&entry.path(), &self.path);
        }
    }

    /// Starts the daemon and the domains that ran when it was saved (fresh boots: their
    /// disks are what was saved).
    pub fn start_saved(&mut self, saved: &Saved) {
        self.spawn();
        let mut client = self.connect();
        for name in &saved.running {
            let dom = client.domain_lookup_by_name(name).unwrap();
            client
                .domain_create(&dom)
                .unwrap_or_else(|e| panic!("starting {name} again: {e}; log: {}", self.log()));
        }
    }

    /// What a save keeps: everything in the directory but the runtime state, the cache
    /// and the daemon's own files.
    fn kept(&self) -> Vec<PathBuf> {
        let skip = [
            "run",
            "cache",
            "libvirtd.conf",
            "libvirtd.log",
            "stderr.log",
        ];
        fs::read_dir(&self.path)
            .unwrap()
            .flatten()
            .filter(|e| !skip.iter().any(|s| e.file_name() == *s))
            .map(|e| e.path())
            .collect()
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path.join(name)).unwrap_or_default()
    }

    /// Its TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The daemon's directory (its `HOME`).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The URI for `virsh -c` against this daemon.
    pub fn virsh_uri(&self) -> String {
        format!("qemu+tcp://127.0.0.1:{}/session", self.port)
    }

    /// The QEMU binary (for a domain's `<emulator>`).
    pub fn qemu(&self) -> &Path {
        &self.qemu
    }

    /// A new directory `name` under the daemon's, owned by `nobody` (for images).
    pub fn make_dir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).unwrap();
        give_to_nobody(&dir);
        dir
    }

    /// A qcow2 image of `size` (`16M`) at `path`, owned by `nobody`.
    pub fn qcow2(&self, path: &Path, size: &str) {
        let out = Command::new(&self.qemu_img)
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(size)
            .output()
            .expect("qemu-img");
        assert!(
            out.status.success(),
            "qemu-img create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        give_to_nobody(path);
    }

    /// A connection over the remote protocol, `qemu:///session` opened.
    pub fn connect(&self) -> libvirt_rpc::Client<TcpStream> {
        libvirt_rpc::Client::connect_tcp(
            (Ipv4Addr::LOCALHOST, self.port()),
            SESSION_URI,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| {
            panic!(
                "connecting to libvirtd on {}: {e}; its log: {}",
                self.port(),
                self.log()
            )
        })
    }

    /// Live (not zombie) processes this daemon started: its group, and every process
    /// whose environment has its `HOME`.
    pub fn processes(&self) -> Vec<u32> {
        processes_of(&self.path, self.daemon.as_ref().map(|d| d.pid()))
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        self.read("libvirtd.log")
    }
}

/// Live processes of group `group` or with `HOME=home` in their environment.
fn processes_of(home: &Path, group: Option<u32>) -> Vec<u32> {
    let wanted = format!("HOME={}", home.display());
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let in_group = group.is_some_and(|g| fields.get(2) == Some(&g.to_string().as_str()));
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let ours = env.split(|b| *b == 0).any(|var| var == wanted.as_bytes());
        if in_group || ours {
            found.push(pid);
        }
    }
    found
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        self.stop();
        drop(self.dir.take());
    }
}

/// A daemon's state as [`Libvirtd::stop_and_save`] kept it.
pub struct Saved {
    dir: tempfile::TempDir,
    running: Vec<String>,
}

/// `cp -a FROM INTO/` (owners kept: the daemon runs as `nobody`).
fn copy_into(from: &Path, into: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(into)
        .status()
        .expect("running cp");
    assert!(status.success(), "cp -a {from:?} {into:?} failed");
}

fn remove(path: &Path) {
    let gone = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    gone.unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
}
