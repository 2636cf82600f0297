//! Who may write a data directory. `tidemark serve` owns it alone (an exclusive flock on
//! `owner.lock`) and publishes where it listens in `server.json`, with a token for local
//! commands in `server.token` (0600: whoever can read the data directory can read the catalog
//! anyway). Embedded commands hold the lock shared, so a server never starts under them; a
//! command that finds the lock held by a server goes through that server's API instead. The
//! kernel drops the lock when a process dies, so a `kill -9` never leaves the directory owned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};
use serde::{Deserialize, Serialize};

use crate::copies::{LockMode, LockWait, flock_file};

/// The lock file inside the data directory.
const LOCK_FILE: &str = "owner.lock";
/// Where a serving process says where it listens.
const SERVER_FILE: &str = "server.json";
/// The token local commands use to talk to the serving process.
const TOKEN_FILE: &str = "server.token";

/// A held claim on a data directory; dropping it releases the claim.
pub struct Claim {
    _lock: File,
}

/// What a serving process publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Base URL of the API, e.g. `http://127.0.0.1:7480`.
    pub url: String,
    /// The serving process.
    pub pid: u32,
    /// With HTTPS: the server's certificate file, whose certificates local commands trust
    /// (so it should hold the issuing CA too, or be self-signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// How a command may use a data directory.
pub enum Access {
    /// No server owns it: run embedded while holding the shared claim.
    Embedded(Claim),
    /// A server owns it: talk to it with the token it left for local commands.
    Served { server: ServerInfo, token: String },
}

fn open_root(data_dir: &Path) -> anyhow::Result<Dir> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    Dir::open_ambient_dir(data_dir, ambient_authority())
        .with_context(|| format!("opening the data directory {}", data_dir.display()))
}

/// Claims the data directory for an embedded command, or finds the server that owns it.
pub fn access(data_dir: &Path) -> anyhow::Result<Access> {
    let root = open_root(data_dir)?;
    // A server publishes its address only after it holds the lock, so retry briefly while a
    // starting server is between the two.
    for _ in 0..50 {
        if let Some(lock) = flock_file(&root, LOCK_FILE, LockMode::Shared, LockWait::NoWait)
            .with_context(|| lock_context(data_dir))?
        {
            return Ok(Access::Embedded(Claim { _lock: lock }));
        }
        if let Some(server) = read_server(&root)? {
            let token = root.read_to_string(TOKEN_FILE).with_context(|| {
                format!(
                    "reading {} (written by the server that owns the data directory)",
                    data_dir.join(TOKEN_FILE).display()
                )
            })?;
            return Ok(Access::Served {
                server,
                token: token.trim().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the data directory {} is locked by another process that published no server address; try again",
        data_dir.display()
    )
}

/// Claims the data directory alone for `serve`: fails if another server owns it, waits for
/// embedded commands still running on it.
pub fn claim_for_server(data_dir: &Path) -> anyhow::Result<Claim> {
    let root = open_root(data_dir)?;
    if let Some(lock) = flock_file(&root, LOCK_FILE, LockMode::Exclusive, LockWait::NoWait)
        .with_context(|| lock_context(data_dir))?
    {
        return Ok(Claim { _lock: lock });
    }
    if let Some(server) = read_server(&root)?.filter(|s| process_alive(s.pid)) {
        bail!(
            "the data directory {} is already served by process {} at {}",
            data_dir.display(),
            server.pid,
            server.url
        );
    }
    eprintln!("waiting for commands running on this data directory to finish");
    let lock = flock_file(&root, LOCK_FILE, LockMode::Exclusive, LockWait::Forever)
        .with_context(|| lock_context(data_dir))?
        .context("the data directory lock could not be taken")?;
    Ok(Claim { _lock: lock })
}

/// Says where this server listens and leaves a token for local commands. Written through
/// a temporary file and a rename so a reader never sees half a file.
pub fn publish(data_dir: &Path, server: &ServerInfo, token: &str) -> anyhow::Result<()> {
    let root = open_root(data_dir)?;
    write_private(&root, TOKEN_FILE, token.as_bytes())?;
    write_private(
        &root,
        SERVER_FILE,
        serde_json::to_string(server)?.as_bytes(),
    )
    .with_context(|| format!("publishing {}", data_dir.join(SERVER_FILE).display()))
}

/// Removes what [`publish`] wrote (at a clean shutdown; after a crash the stale files are
/// ignored because the lock is free).
pub fn withdraw(data_dir: &Path) {
    if let Ok(root) = open_root(data_dir) {
        let _ = root.remove_file(SERVER_FILE);
        let _ = root.remove_file(TOKEN_FILE);
    }
}

fn write_private(root: &Dir, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temporary = format!("{name}.tmp");
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = root
        .open_with(&temporary, &options)
        .with_context(|| format!("writing {temporary}"))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {temporary}"))?;
    root.rename(&temporary, root, name)
        .with_context(|| format!("renaming {temporary} to {name}"))
}

fn read_server(root: &Dir) -> anyhow::Result<Option<ServerInfo>> {
    match root.read_to_string(SERVER_FILE) {
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("reading server.json in the data directory"),
    }
}

/// Whether a process still runs (a crashed server's `server.json` is stale).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn lock_context(data_dir: &Path) -> String {
    format!(
        "locking {}",
        PathBuf::from(data_dir).join(LOCK_FILE).display()
    )
}
