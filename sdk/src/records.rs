//! What an adapter keeps in its data directory (`/data`, granted as `data-dir`): small JSON
//! records, one file per object so sessions changing different objects never overwrite each
//! other, each written whole or not at all; and the idempotency tokens of creating calls.
//!
//! The contract asks every creating call to return its first result when repeated with the
//! same token, also after a crash between creating the thing and answering. Keep the token's
//! [`token_key`] *in* what you create (a field of its record, a tag on the system's object)
//! and look there first; [`Records::remember`] is the fast path on top of that:
//!
//! ```ignore
//! let records = tidemark_sdk::records::Records::open()?;
//! if let Some(id) = records.recall::<String>(&token)? { return get(&id); }
//! if let Some(made) = find_tagged(&token_key(&token))? { records.remember(&token, &made.id)?; return Ok(made); }
//! let made = create(name, token_key(&token))?;   // the key goes into what is made
//! records.remember(&token, &made.id)?;
//! ```

use std::io::ErrorKind;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AdapterError, AdapterResult};

/// Where the host preopens an endpoint's data directory.
pub const DATA_DIR: &str = "/data";

/// A file-name-safe key for an idempotency token (two independent 64-bit FNV-1a hashes):
/// what an adapter stores in the things it creates.
pub fn token_key(token: &str) -> String {
    let fnv = |seed: u64| {
        token
            .bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf29ce484222325),
        fnv(0x84222325cbf29ce4)
    )
}

/// `n` random hex digits from the WASI random source: ids for what an adapter creates
/// (and the names of its temporary files).
pub fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n + 16);
    while out.len() < n {
        out.push_str(&format!(
            "{:016x}",
            wasip2::random::random::get_random_u64()
        ));
    }
    out.truncate(n);
    out
}

/// JSON records under the data directory: `KIND/NAME.json`.
#[derive(Debug, Clone)]
pub struct Records {
    root: PathBuf,
}

fn io_error(what: &str, path: &std::path::Path, e: std::io::Error) -> AdapterError {
    AdapterError::Internal(format!("{what} {}: {e}", path.display()))
}

/// A kind or name: one path component of letters, digits, `-`, `_`, `.` (not `.`/`..`).
fn check_part(part: &str) -> AdapterResult<()> {
    let fine = !part.is_empty()
        && part.len() <= 200
        && part != "."
        && part != ".."
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(AdapterError::Invalid(format!(
            "{part:?} cannot name a record (letters, digits, '-', '_', '.')"
        )))
    }
}

impl Records {
    /// The records in the endpoint's data directory; `internal` naming the missing grant
    /// when the host preopened none.
    pub fn open() -> AdapterResult<Records> {
        Records::at(DATA_DIR)
    }

    /// Records under another preopened directory.
    pub fn at(root: &str) -> AdapterResult<Records> {
        let root = PathBuf::from(root);
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Records { root }),
            _ => Err(AdapterError::Internal(format!(
                "no data directory at {}: the endpoint must be granted data-dir",
                root.display()
            ))),
        }
    }

    fn path(&self, kind: &str, name: &str) -> AdapterResult<PathBuf> {
        check_part(kind)?;
        check_part(name)?;
        Ok(self.root.join(kind).join(format!("{name}.json")))
    }

    /// `KIND/NAME.json`, or `None` if absent.
    pub fn load<T: DeserializeOwned>(&self, kind: &str, name: &str) -> AdapterResult<Option<T>> {
        let path = self.path(kind, name)?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                AdapterError::Internal(format!("record {} is damaged: {e}", path.display()))
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &path, e)),
        }
    }

    /// Writes `KIND/NAME.json` whole: a reader sees the old record or the new, never a part.
    pub fn save<T: Serialize>(&self, kind: &str, name: &str, value: &T) -> AdapterResult<()> {
        let path = self.path(kind, name)?;
        let dir = self.root.join(kind);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        let bytes = serde_json::to_vec(value)
            .map_err(|e| AdapterError::Internal(format!("encoding a {kind} record: {e}")))?;
        // A name of its own per write, so concurrent sessions never share a temporary file.
        let tmp = dir.join(format!(".{name}.{}.tmp", random_hex(16)));
        std::fs::write(&tmp, &bytes).map_err(|e| io_error("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("renaming into place", &path, e)
        })
    }

    /// Removes `KIND/NAME.json`; whether it was there.
    pub fn remove(&self, kind: &str, name: &str) -> AdapterResult<bool> {
        let path = self.path(kind, name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("removing", &path, e)),
        }
    }

    /// Every record of a kind, by name.
    pub fn load_all<T: DeserializeOwned>(&self, kind: &str) -> AdapterResult<Vec<T>> {
        check_part(kind)?;
        let dir = self.root.join(kind);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing", &dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", &dir, e))?;
            let file = entry.file_name().to_string_lossy().to_string();
            if let Some(name) = file.strip_suffix(".json")
                && !file.starts_with('.')
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            // Removed by another session since the listing: not an error.
            if let Some(value) = self.load(kind, &name)? {
                all.push(value);
            }
        }
        Ok(all)
    }

    /// What a creating call with `token` produced earlier, if this adapter remembered it.
    /// An empty token is `invalid`.
    pub fn recall<T: DeserializeOwned>(&self, token: &str) -> AdapterResult<Option<T>> {
        if token.is_empty() {
            return Err(AdapterError::Invalid(
                "idempotency token must not be empty".into(),
            ));
        }
        self.load("tokens", &token_key(token))
    }

    /// Remembers what a creating call with `token` produced.
    pub fn remember<T: Serialize>(&self, token: &str, value: &T) -> AdapterResult<()> {
        self.save("tokens", &token_key(token), value)
    }
}
