//! A QMP client: JSON lines over one of qemu-storage-daemon's monitor sockets. Each
//! monitor serves one client at a time, so a session tries the endpoint's monitors in turn
//! and takes the first that greets it; all busy is `transient`. Events arriving between
//! replies are kept, so a caller can wait for one (`BLOCK_EXPORT_DELETED`) after its command.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidemark_sdk::{AdapterError, AdapterResult};

use crate::settings::Monitors;

/// How long a monitor may take to greet before it counts as busy (serving another session).
const GREETING_WAIT: Duration = Duration::from_millis(400);
/// How long one command may take to answer.
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// The longest line a monitor may send (a `query-named-block-nodes` of many nodes is big).
const MAX_LINE: usize = 64 << 20;

/// An error QMP answered a command with: its class and description.
#[derive(Debug, Clone)]
pub struct QmpError {
    /// `GenericError`, `DeviceNotFound`, …
    pub class: String,
    /// What qsd said.
    pub desc: String,
}

/// One connected, capability-negotiated monitor.
pub struct Qmp {
    reader: BufReader<TcpStream>,
    address: String,
    next_id: u64,
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to the first free monitor of `monitors`, starting at a different one per
    /// call so concurrent sessions spread over them.
    pub fn connect(monitors: &Monitors) -> AdapterResult<Qmp> {
        let count = monitors.ports.len();
        let start = (tidemark_sdk::now_ms() as usize) % count.max(1);
        let mut busy = Vec::new();
        for i in 0..count {
            let port = monitors.ports[(start + i) % count];
            let address = format!("{}:{port}", monitors.host);
            match Qmp::open(&address)? {
                Some(qmp) => return Ok(qmp),
                None => busy.push(address),
            }
        }
        Err(AdapterError::Transient(format!(
            "every QMP monitor of qemu-storage-daemon is busy ({}); retry, or start it with more monitors",
            busy.join(", ")
        )))
    }

    /// Opens one monitor; `None` if it does not greet in time (serving someone else).
    fn open(address: &str) -> AdapterResult<Option<Qmp>> {
        let stream = tidemark_sdk::net::connect(address, Duration::from_secs(3))?;
        let io = |e: std::io::Error| AdapterError::Transient(format!("QMP monitor {address}: {e}"));
        stream.set_read_timeout(Some(GREETING_WAIT)).map_err(|e| {
            io(std::io::Error::new(
                e.kind(),
                format!("setting a read timeout: {e}"),
            ))
        })?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            address: address.to_string(),
            next_id: 1,
            events: Vec::new(),
        };
        // Events of other sessions' jobs may come ahead of the greeting: skip them.
        let greeting = loop {
            match qmp.read_message() {
                Ok(v) if v.get("event").is_some() => continue,
                Ok(v) => break v,
                Err(Wait::TimedOut) => return Ok(None),
                Err(Wait::Failed(e)) => return Err(e),
            }
        };
        if greeting.get("QMP").is_none() {
            return Err(qmp.garbage(&format!("a greeting without \"QMP\": {greeting}")));
        }
        qmp.reader
            .get_ref()
            .set_read_timeout(Some(REPLY_WAIT))
            .map_err(io)?;
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(Some(qmp))
    }

    /// Runs a command; its `return` value, or its error as `QmpError` (the caller decides
    /// what that means for the contract). Transport failures and garbage are adapter errors.
    pub fn try_execute(
        &mut self,
        command: &str,
        arguments: Value,
    ) -> AdapterResult<Result<Value, QmpError>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({ "execute": command, "arguments": arguments, "id": id }).to_string();
        line.push('\n');
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| self.transport(command, &e.to_string()))?;
        loop {
            let message = match self.read_message() {
                Ok(m) => m,
                Err(Wait::TimedOut) => {
                    return Err(AdapterError::Transient(format!(
                        "qemu-storage-daemon at {} did not answer {command} within {} s",
                        self.address,
                        REPLY_WAIT.as_secs()
                    )));
                }
                Err(Wait::Failed(e)) => return Err(e),
            };
            if message.get("event").is_some() {
                self.events.push(message);
                continue;
            }
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                return Err(
                    self.garbage(&format!("a reply to {command} without its id: {message}"))
                );
            }
            if let Some(value) = message.get("return") {
                return Ok(Ok(value.clone()));
            }
            if let Some(error) = message.get("error") {
                let text = |k: &str| {
                    error
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                return Ok(Err(QmpError {
                    class: text("class"),
                    desc: text("desc"),
                }));
            }
            return Err(self.garbage(&format!(
                "a reply to {command} with neither return nor error: {message}"
            )));
        }
    }

    /// Runs a command that must succeed; a QMP error is `internal`, naming the command.
    pub fn execute(&mut self, command: &str, arguments: Value) -> AdapterResult<Value> {
        self.try_execute(command, arguments)?.map_err(|e| {
            AdapterError::Internal(format!(
                "qemu-storage-daemon refused {command}: {} ({})",
                e.desc, e.class
            ))
        })
    }

    /// Starts a job with `command` (its arguments carry `job-id`) and waits until it
    /// concludes; a job that ends in error is `internal` with qsd's reason. The job is
    /// dismissed either way, here: a command that takes `auto-dismiss` must be given
    /// `false`, or its outcome may vanish before it is read.
    pub fn run_job(
        &mut self,
        command: &str,
        mut arguments: Value,
        what: &str,
    ) -> AdapterResult<()> {
        let job_id = format!("tm-{}", lab_common::random_hex(12));
        arguments["job-id"] = json!(job_id);
        self.execute(command, arguments)?;
        let deadline = Instant::now() + REPLY_WAIT * 4;
        loop {
            let jobs = self.execute("query-jobs", json!({}))?;
            let job = jobs
                .as_array()
                .and_then(|all| all.iter().find(|j| j["id"] == json!(job_id)))
                .cloned();
            let Some(job) = job else {
                return Err(AdapterError::Internal(format!(
                    "{what}: job {job_id} vanished from query-jobs"
                )));
            };
            if job["status"] == "concluded" {
                let _ = self.execute("job-dismiss", json!({ "id": job_id }));
                return match job.get("error").and_then(Value::as_str) {
                    Some(error) => Err(AdapterError::Internal(format!("{what}: {error}"))),
                    None => Ok(()),
                };
            }
            if Instant::now() > deadline {
                let _ = self.execute("job-cancel", json!({ "id": job_id }));
                return Err(AdapterError::Transient(format!(
                    "{what}: job {job_id} still {} after {} s",
                    job["status"],
                    (REPLY_WAIT * 4).as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for an event named `name` whose `data` satisfies `matches`, seen already or
    /// arriving within `timeout`.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> AdapterResult<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["event"] == name && matches(&e["data"]))
            {
                return Ok(self.events.remove(i));
            }
            if Instant::now() > deadline {
                return Err(AdapterError::Transient(format!(
                    "qemu-storage-daemon at {} sent no {name} within {} ms",
                    self.address,
                    timeout.as_millis()
                )));
            }
            // A cheap command flushes events that arrived meanwhile into `events`.
            self.execute("query-version", json!({}))?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn read_message(&mut self) -> Result<Value, Wait> {
        let mut line = Vec::new();
        loop {
            let buffered = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Wait::TimedOut);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Wait::Failed(self.transport("reading", &e.to_string()))),
            };
            if buffered.is_empty() {
                return Err(Wait::Failed(
                    self.transport("reading", "the monitor closed the connection"),
                ));
            }
            let (taken, done) = match buffered.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffered.len(), false),
            };
            line.extend_from_slice(&buffered[..taken]);
            self.reader.consume(taken);
            if line.len() > MAX_LINE {
                return Err(Wait::Failed(self.garbage("a line longer than 64 MiB")));
            }
            if done {
                break;
            }
        }
        serde_json::from_slice(&line).map_err(|e| {
            Wait::Failed(self.garbage(&format!(
                "a line that is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            )))
        })
    }

    fn transport(&self, doing: &str, e: &str) -> AdapterError {
        AdapterError::Transient(format!(
            "QMP monitor of qemu-storage-daemon at {} ({doing}): {e}",
            self.address
        ))
    }

    fn garbage(&self, what: &str) -> AdapterError {
        AdapterError::Internal(format!("QMP monitor at {} sent {what}", self.address))
    }
}

/// Why a read of a message ended without one.
enum Wait {
    TimedOut,
    Failed(AdapterError),
}
