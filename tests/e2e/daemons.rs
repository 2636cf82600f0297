//! Daemons a test starts (`tidemark serve` now; databases and more servers later), handled
//! one way for all of them:
//!
//! - **ports** come from one allocator per test process ([`port`]): 20000-32000, below
//!   Linux's ephemeral range (32768-60999) so no outgoing connection holds one, each checked
//!   free by binding it, and never the same port twice in one process, so tests running in
//!   parallel never race for a port;
//! - each daemon runs in its own session (`setsid`), so it and whatever it starts form one
//!   process group, which [`Daemon`] kills by its PID when dropped: a failing test leaves
//!   nothing running;
//! - a daemon's program must exist: elsewhere a missing one skips the test with a note,
//!   but with `CI=true` it fails the test ([`program`]), so CI never passes by skipping.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The ports daemons are given.
pub const PORTS: RangeInclusive<u16> = 20000..=32000;

/// Hands out ports of a range, each once, each free (bound and released) when handed out.
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    state: Mutex<Allocation>,
}

struct Allocation {
    /// Where the next search starts.
    next: u16,
    /// Every port handed out so far.
    handed: BTreeSet<u16>,
}

impl PortAllocator {
    /// An allocator over `range`, starting its search at `start` (clamped into the range).
    pub fn new(range: RangeInclusive<u16>, start: u16) -> Self {
        let next = start.clamp(*range.start(), *range.end());
        Self {
            range,
            state: Mutex::new(Allocation {
                next,
                handed: BTreeSet::new(),
            }),
        }
    }

    /// A port not handed out before whose loopback address could be bound just now.
    /// Panics, naming the range, when none is left.
    pub fn allocate(&self) -> u16 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (low, high) = (*self.range.start(), *self.range.end());
        let size = u32::from(high - low) + 1;
        for step in 0..size {
            let port = low + ((u32::from(state.next - low) + step) % size) as u16;
            if state.handed.contains(&port) || !is_free(port) {
                continue;
            }
            state.handed.insert(port);
            state.next = if port == high { low } else { port + 1 };
            return port;
        }
        panic!("no free port left in {low}-{high} for this test process");
    }
}

/// Whether 127.0.0.1:`port` can be bound now.
fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free port for a daemon, from the one allocator of this test process. Processes
/// running at once start their searches at different places of the range (by PID).
pub fn port() -> u16 {
    static ALLOCATOR: OnceLock<PortAllocator> = OnceLock::new();
    ALLOCATOR
        .get_or_init(|| {
            let span = u64::from(PORTS.end() - PORTS.start()) + 1;
            let start = *PORTS.start() + (u64::from(std::process::id()) * 211 % span) as u16;
            PortAllocator::new(PORTS, start)
        })
        .allocate()
}

/// Whether this runs on CI (`CI=true`), where nothing may be skipped.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The daemon program at `path` (a path, or a name looked up in `PATH`): `None` if it is
/// missing, after a note saying the test is skipped, except on CI, where a missing program
/// fails the test.
pub fn program(path: &str) -> Option<PathBuf> {
    match (find(path), on_ci()) {
        (Some(found), _) => Some(found),
        (None, true) => panic!("{path} is missing, and with CI=true a test never skips"),
        (None, false) => {
            eprintln!("skipping: {path} is missing (with CI=true this fails)");
            None
        }
    }
}

/// `path` if it names a file, else the first `PATH` entry holding a file of that name.
fn find(path: &str) -> Option<PathBuf> {
    if path.contains('/') {
        return Path::new(path).is_file().then(|| PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.is_file())
}

/// A command that runs `program` as a daemon: in a session of its own (`setsid`, which
/// execs in place, so the PID is the program's and it leads its process group). Add
/// arguments, environment and stdio, then [`Daemon::start`] it.
pub fn command(program: &Path) -> Command {
    let mut command = Command::new("setsid");
    command.arg(program);
    command
}

/// A running daemon; its whole process group is killed when it is dropped.
pub struct Daemon {
    child: Child,
    name: String,
}

impl Daemon {
    /// Starts a [`command`]; `name` says what it is in messages.
    pub fn start(mut command: Command, name: &str) -> Self {
        assert_eq!(
            command.get_program(),
            "setsid",
            "daemons start through daemons::command, in a session of their own"
        );
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            child,
            name: name.to_string(),
        }
    }

    /// Its PID, also its process group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its piped stderr (kept open while the daemon runs: a daemon writing to a closed
    /// pipe may fail).
    pub fn stderr(&mut self) -> Option<&mut std::process::ChildStderr> {
        self.child.stderr.as_mut()
    }

    /// Sends `signal` (e.g. `TERM`, `INT`) to the daemon itself.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.name));
        assert!(sent.success(), "kill -{signal} {} failed", self.name);
    }

    /// Waits for it to exit by itself.
    pub fn wait(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name))
    }

    /// How it exited, waiting at most `limit` (panics past it).
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The group: the daemon and anything it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid())])
            .status();
        let _ = self.child.wait();
    }
}

/// Waits until 127.0.0.1:`port` accepts connections; panics naming `name` past `limit`.
pub fn wait_listening(port: u16, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more (a stopped daemon's
/// socket is gone); panics past `limit` naming `name` and what `ss` says listens there.
pub fn wait_closed(port: u16, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
        if Instant::now() >= deadline {
            let listening = Command::new("ss")
                .args(["-ltnp", &format!("sport = :{port}")])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("{port} still accepts {limit:?} after {name} was stopped: {listening}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_in_range_and_never_handed_twice() {
        let allocator = PortAllocator::new(PORTS, 31990);
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let port = allocator.allocate();
            assert!(PORTS.contains(&port), "{port}");
            assert!(seen.insert(port), "{port} handed out twice");
            assert!(is_free(port), "{port} was handed out but is taken");
        }
        // The search wrapped from the end of the range to its start.
        assert!(seen.iter().any(|p| *p < 20100) && seen.iter().any(|p| *p >= 31990));
    }

    #[test]
    fn a_bound_port_is_skipped_and_an_exhausted_range_says_so() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = listener.local_addr().unwrap().port();
        let allocator = PortAllocator::new(busy..=busy, busy);
        let exhausted = std::panic::catch_unwind(|| allocator.allocate());
        let message = *exhausted.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("no free port left"), "{message}");
        drop(listener);
        // Free now, handed out once, never again.
        let allocator = PortAllocator::new(busy..=busy, busy);
        assert_eq!(allocator.allocate(), busy);
        assert!(std::panic::catch_unwind(|| allocator.allocate()).is_err());
    }

    #[test]
    fn the_process_allocator_hands_distinct_ports_across_threads() {
        let ports: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..5).map(|_| port()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }

    /// (process group, session) of a process, from /proc.
    fn group_and_session(pid: u32) -> Option<(u32, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After "pid (comm) state": ppid, pgrp, session.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    }

    /// Live (not zombie) processes of a process group.
    fn group_members(group: u32) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
                !zombie && group_and_session(*pid).is_some_and(|(g, _)| g == group)
            })
            .collect()
    }

    #[test]
    fn a_daemon_leads_its_own_session_and_dropping_it_kills_its_children() {
        let sh = program("sh").expect("sh");
        let mut command = command(&sh);
        command.args(["-c", "sleep 600 & sleep 600"]);
        let daemon = Daemon::start(command, "sh");
        let pid = daemon.pid();
        let start = Instant::now();
        while group_members(pid).len() < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the shell never started its sleeps"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            group_and_session(pid),
            Some((pid, pid)),
            "setsid ran in place"
        );
        drop(daemon);
        let start = Instant::now();
        while !group_members(pid).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "left running: {:?}",
                group_members(pid)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_missing_program_is_found_missing() {
        assert!(find("sh").is_some());
        assert!(find("/bin/sh").is_some());
        assert!(find("no-such-daemon-anywhere").is_none());
        assert!(find("/nonexistent/tidemark").is_none());
        // Here CI decides between skipping and failing.
        let missing = std::panic::catch_unwind(|| program("no-such-daemon-anywhere"));
        match (on_ci(), missing) {
            (true, Err(_)) | (false, Ok(None)) => {}
            (ci, other) => panic!("CI={ci}: {:?}", other.map_err(|_| "panicked")),
        }
    }
}
