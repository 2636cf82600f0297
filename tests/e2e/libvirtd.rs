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
        let stderr = fs::File::create(path.join("stderr.log")).unwrap();

        // Under a reaper: libvirtd double-forks each QEMU, which then belongs to PID 1, and
        // the sandbox's PID 1 reaps exited children only about once a second; libvirt waits
        // for a stopped QEMU's pid to vanish with the domain locked (1.3 s per stop here,
        // blocking every listing of domains meanwhile). systemd reaps at once.
        let python = daemons::program("python3")?;
        let mut command = daemons::command(&python);
        command
            .args(["-c", REAPER])
            .arg(&runuser)
            .args(["-u", "nobody", "--", "env"])
            .arg(format!("HOME={}", path.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", path.join("run").display()))
            .arg(format!("XDG_CONFIG_HOME={}", path.join("config").display()))
            .arg(format!("XDG_CACHE_HOME={}", path.join("cache").display()))
            .arg(&libvirtd)
            .arg("--listen")
            .arg("--config")
            .arg(&conf)
            .current_dir(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let daemon = Daemon::start(command, "libvirtd");
        let me = Self {
            daemon: Some(daemon),
            port,
            dir: Some(dir),
            path,
            qemu,
            qemu_img,
        };
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "libvirtd did not listen on {port} within 30 s; stderr: {}; log: {}",
                me.read("stderr.log"),
                me.read("libvirtd.log"),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(me)
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
        drop(self.dir.take());
    }
}
