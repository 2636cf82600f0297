//! Creating a copy store so that a crash at any point leaves a directory the next attempt
//! finishes or redoes by itself, never one that needs hands.
//!
//! Order of writes, each published create-only under its final name (no rename is relied on,
//! since object storage has none):
//!
//! 1. the key file (key-file mode), unless one is already there: an existing key file is
//!    *adopted*, never replaced. With no config and no data nothing was sealed with it yet,
//!    but an operator may already have backed it up, and adopting it is the one choice that
//!    can never strand data;
//! 2. the config, last: once it is visible the store is complete and names a durable key.
//!
//! A crash leaves at most temporary files (removed by the next attempt) and a key file with no
//! config (adopted by it). A directory that holds chunks or manifests but no config is still
//! refused: its key is unknown, and guessing could replace a key that data was sealed with.

use std::io;
use std::sync::Arc;

use super::config::{CONFIG_KEY, KEY_FILE, KeyConfig, StoreConfig, passphrase_config};
use super::crypto::{Keys, MasterKey};
use super::error::{CopyStoreError, Result};
use super::lock::{LockMode, LockWait};
use super::manifest::check_chunk_size;
use super::{CopyStore, KeySource, LocalDir, ObjectStore, StoreOptions};

/// Object prefixes that hold sealed data; any of them without a config blocks creation.
const DATA_PREFIXES: &[(&str, &str)] = &[
    ("chunks/", "chunks"),
    ("packs/", "packs"),
    ("index/", "an index"),
    ("manifests/", "manifests"),
];

/// Creates (or finishes creating) a store on `local`; see the module comment.
pub(crate) fn create(local: LocalDir, key: KeySource, options: StoreOptions) -> Result<CopyStore> {
    let chunk_size = check_chunk_size(options.chunk_size as u64)?;
    if !zstd::compression_level_range().contains(&options.zstd_level) {
        return Err(CopyStoreError::InvalidOption {
            reason: format!("zstd level {} is out of range", options.zstd_level),
        });
    }
    let local = Arc::new(local);
    let location = local.location().to_string();
    let io_err = |op: &'static str, what: &str| {
        let path = format!("{location}/{what}");
        move |source: io::Error| CopyStoreError::Io { op, path, source }
    };
    // Exclusive: no session can run without a config anyway, and it makes removing the
    // temporary files of an earlier, crashed attempt safe.
    let _lock = local
        .lock(LockMode::Exclusive, LockWait::Forever)
        .map_err(io_err("lock", "lock"))?;
    if local
        .exists(CONFIG_KEY)
        .map_err(io_err("check", CONFIG_KEY))?
    {
        return Err(CopyStoreError::AlreadyInitialised { location });
    }
    let mut found = Vec::new();
    for (prefix, what) in DATA_PREFIXES {
        if !local
            .list(prefix)
            .map_err(io_err("list", prefix))?
            .is_empty()
        {
            found.push(*what);
        }
    }
    if !found.is_empty() {
        return Err(CopyStoreError::NotEmpty {
            location,
            found: found.join(", "),
        });
    }
    local
        .remove_incomplete()
        .map_err(io_err("remove the leftovers of an earlier attempt in", ""))?;
    let leftover = leftover_key(&local, &location)?;
    let (master, key_config) = match &key {
        KeySource::KeyFile => {
            let master = match leftover {
                Some(m) => m,
                None => new_key_file(&local, &location)?,
            };
            let check = Keys::derive(&master).check_hex();
            let config = KeyConfig::KeyFile {
                file: KEY_FILE.to_string(),
                check,
            };
            (master, config)
        }
        KeySource::Passphrase(p) => {
            if leftover.is_some() {
                // Left by a key-file creation that never published its config: it protects
                // nothing, and a key in clear beside a passphrase store would defeat it.
                local
                    .remove_private(KEY_FILE)
                    .map_err(io_err("remove the unused key file", KEY_FILE))?;
            }
            let master = MasterKey::generate().map_err(io_err("generate key for", CONFIG_KEY))?;
            let config =
                passphrase_config(&master, p).map_err(io_err("protect key in", CONFIG_KEY))?;
            (master, config)
        }
    };
    let config = StoreConfig::new(chunk_size, options.zstd_level, key_config);
    let text = serde_json::to_vec_pretty(&config).expect("config serialises");
    if !local
        .create_object(CONFIG_KEY, &text)
        .map_err(io_err("write", CONFIG_KEY))?
    {
        return Err(CopyStoreError::AlreadyInitialised { location });
    }
    Ok(CopyStore::from_parts(local, Keys::derive(&master), &config))
}

/// The master key in a key file left by an earlier attempt, if there is one.
fn leftover_key(local: &LocalDir, location: &str) -> Result<Option<MasterKey>> {
    let Some(text) = super::read_key_file(local, KEY_FILE)? else {
        return Ok(None);
    };
    // Key files are published whole, so an unreadable one was put there by someone: say so
    // rather than replace it.
    MasterKey::from_key_file(&text)
        .map(Some)
        .map_err(|reason| CopyStoreError::CorruptKeyFile {
            path: format!("{location}/{KEY_FILE}"),
            reason,
        })
}

/// Generates a key and publishes it as the key file; adopts the winner's if another writer
/// published one first.
fn new_key_file(local: &LocalDir, location: &str) -> Result<MasterKey> {
    let io_err = |op: &'static str| {
        let path = format!("{location}/{KEY_FILE}");
        move |source: io::Error| CopyStoreError::Io { op, path, source }
    };
    let master = MasterKey::generate().map_err(io_err("generate key for"))?;
    if local
        .create_private(KEY_FILE, master.to_key_file().as_bytes())
        .map_err(io_err("write"))?
    {
        return Ok(master);
    }
    leftover_key(local, location)?.ok_or_else(|| CopyStoreError::KeyFileMissing {
        path: format!("{location}/{KEY_FILE}"),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cap_std::ambient_authority;
    use cap_std::fs::Dir;

    use super::super::crash_hook::CRASH_ENV;
    use super::super::*;

    const CS: u32 = 4096;
    /// Where the child of `a_crash_at_every_point_of_creation_is_finished_by_the_next` makes
    /// its store.
    const CHILD_DIR_ENV: &str = "TIDEMARK_TEST_CREATE_STORE_IN";
    /// Points store creation passes in key-file mode: three per create-only publication.
    const POINTS: u32 = 6;

    fn dir(p: &Path) -> Dir {
        Dir::open_ambient_dir(p, ambient_authority()).unwrap()
    }

    /// Puts one chunk, commits it and reads it back through a fresh handle.
    fn works(p: &Path, passphrase: Option<&str>) {
        let store = CopyStore::open(dir(p), passphrase).unwrap();
        let session = store.begin_write().unwrap();
        let put = session.put_chunk(&[7u8; CS as usize]).unwrap();
        let mut m = Manifest::new(CS as u64, CS, serde_json::json!({})).unwrap();
        m.set(0, put.entry).unwrap();
        session.commit("m", &m).unwrap();
        drop(session);
        let again = CopyStore::open(dir(p), passphrase).unwrap();
        let m = again.read_manifest("m").unwrap();
        assert_eq!(
            again.read_chunk(&m.entries()[0]).unwrap(),
            [7u8; CS as usize]
        );
    }

    fn names(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Not a test on its own: the body of the child process the crash test starts.
    #[test]
    #[ignore = "run by a_crash_at_every_point_of_creation_is_finished_by_the_next"]
    fn child_creates_a_store() {
        if let Ok(p) = std::env::var(CHILD_DIR_ENV) {
            CopyStore::init(dir(Path::new(&p)), KeySource::KeyFile, CS).unwrap();
        }
    }

    #[test]
    fn a_crash_at_every_point_of_creation_is_finished_by_the_next() {
        let exe = std::env::current_exe().unwrap();
        for at in 1..=POINTS + 1 {
            let t = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(&exe)
                .args(["--exact", "--ignored", "--nocapture"])
                .arg("copies::create::tests::child_creates_a_store")
                .env(CHILD_DIR_ENV, t.path())
                .env(CRASH_ENV, at.to_string())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let crashed = stderr.contains("aborting copy-store creation after");
            assert_eq!(crashed, at <= POINTS, "point {at}: {stderr}");
            let key_before = std::fs::read(t.path().join("key")).ok();
            let store = match CopyStore::open(dir(t.path()), None) {
                // The config was published: the store is complete.
                Ok(s) => {
                    assert!(at >= 5, "point {at}: a config before the key was durable");
                    s
                }
                Err(CopyStoreError::NotInitialised { .. }) => {
                    CopyStore::init(dir(t.path()), KeySource::KeyFile, CS)
                        .unwrap_or_else(|e| panic!("point {at}: {e}"))
                }
                Err(e) => panic!("point {at}: {e}"),
            };
            drop(store);
            if let Some(k) = key_before {
                assert_eq!(
                    std::fs::read(t.path().join("key")).unwrap(),
                    k,
                    "point {at}: a key file was replaced"
                );
            }
            works(t.path(), None);
            CopyStore::open(dir(t.path()), None)
                .unwrap()
                .gc(LockWait::NoWait)
                .unwrap();
            let left = names(t.path());
            assert!(
                left.iter().all(|n| !n.starts_with(".tmp.")),
                "point {at}: {left:?}"
            );
        }
    }

    #[test]
    fn the_leftovers_of_a_killed_first_copy_are_finished_with_their_key() {
        // What `kill -9` of the first copy left before this fix: the key, a temporary config.
        let t = tempfile::tempdir().unwrap();
        let key = format!("{}\n", "ab".repeat(32));
        std::fs::write(t.path().join("key"), &key).unwrap();
        std::fs::write(
            t.path().join(".tmp.4242.0a0b0c0d.1.config.json"),
            b"{\"form",
        )
        .unwrap();
        CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("key")).unwrap(), key);
        assert_eq!(names(t.path()), ["config.json", "key", "lock"]);
        works(t.path(), None);
    }

    #[test]
    fn data_without_a_config_or_a_bad_key_file_is_refused_and_left_alone() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("key"), "not a key").unwrap();
        let err = CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap_err();
        assert!(
            matches!(err, CopyStoreError::CorruptKeyFile { .. }),
            "{err}"
        );
        assert_eq!(std::fs::read(t.path().join("key")).unwrap(), b"not a key");

        let t = tempfile::tempdir().unwrap();
        CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap();
        works(t.path(), None);
        std::fs::remove_file(t.path().join("config.json")).unwrap();
        let key = std::fs::read(t.path().join("key")).unwrap();
        for source in [
            KeySource::KeyFile,
            KeySource::Passphrase("pass".to_string()),
        ] {
            let err = CopyStore::init(dir(t.path()), source, CS).unwrap_err();
            match &err {
                CopyStoreError::NotEmpty { found, .. } => {
                    assert_eq!(found, "packs, an index, manifests")
                }
                other => panic!("expected NotEmpty, got {other}"),
            }
            assert!(err.to_string().contains("config.json"), "{err}");
        }
        assert_eq!(std::fs::read(t.path().join("key")).unwrap(), key);
    }

    #[test]
    fn a_passphrase_store_does_not_keep_a_leftover_key_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("key"), format!("{}\n", "cd".repeat(32))).unwrap();
        CopyStore::init(dir(t.path()), KeySource::Passphrase("pass".into()), CS).unwrap();
        assert!(!t.path().join("key").exists());
        works(t.path(), Some("pass"));
    }

    #[test]
    fn put_new_never_replaces_and_leaves_no_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir(t.path()));
        assert!(local.put_new("a/b", b"first").unwrap());
        assert!(!local.put_new("a/b", b"second").unwrap());
        assert_eq!(local.get("a/b").unwrap(), b"first");
        assert_eq!(names(&t.path().join("a")), ["b"]);
        assert!(local.create_private("k", b"1").unwrap());
        assert!(!local.create_private("k", b"2").unwrap());
        assert_eq!(std::fs::read(t.path().join("k")).unwrap(), b"1");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
