//! Tests of the copy store against real temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use tempfile::TempDir;

use super::*;

const CS: u32 = 4096;

fn dir(p: &Path) -> Dir {
    Dir::open_ambient_dir(p, ambient_authority()).unwrap()
}

fn new_store(key: KeySource) -> (TempDir, CopyStore) {
    let t = tempfile::tempdir().unwrap();
    let s = CopyStore::init(dir(t.path()), key, CS).unwrap();
    (t, s)
}

/// Deterministic, incompressible-ish test data.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog "
        .iter()
        .cycle()
        .take(len)
        .copied()
        .collect()
}

/// The pack file holding a committed chunk, and where its blob is in it.
fn blob_at(store: &CopyStore, root: &Path, id: &ChunkId) -> (PathBuf, usize, usize) {
    store.refresh_index().unwrap();
    let (pack, at) = store.locate(id).expect("chunk is indexed");
    (
        root.join(pack::pack_key(&pack)),
        at.offset as usize,
        at.len as usize,
    )
}

/// Chunks the store's index names, read afresh.
fn indexed(store: &CopyStore) -> usize {
    store.refresh_index().unwrap();
    store.inner.index.read().unwrap().len()
}

fn flip_byte(p: &Path, at_from_end: usize) {
    let mut b = std::fs::read(p).unwrap();
    let i = b.len() - at_from_end;
    b[i] ^= 0x40;
    std::fs::write(p, b).unwrap();
}

/// Flips the byte `at_from_end` bytes before the end of a chunk's blob inside its pack.
fn flip_blob_byte(store: &CopyStore, root: &Path, id: &ChunkId, at_from_end: usize) -> PathBuf {
    let (path, offset, len) = blob_at(store, root, id);
    let mut b = std::fs::read(&path).unwrap();
    b[offset + len - at_from_end] ^= 0x40;
    std::fs::write(&path, b).unwrap();
    path
}

/// Writes a device made of `chunks` through ParallelPut and commits it as `id`.
fn write_device(store: &CopyStore, id: &str, chunks: &[Vec<u8>]) -> Manifest {
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let session = store.begin_write().unwrap();
    let pp = ParallelPut::new(&session, 3, 4);
    for (i, c) in chunks.iter().enumerate() {
        pp.submit(i as u64, c.clone()).unwrap();
    }
    let (entries, _) = pp.finish().unwrap();
    let mut m = Manifest::new(size, CS, serde_json::json!({"device": id})).unwrap();
    m.apply(&entries).unwrap();
    session.commit(id, &m).unwrap();
    m
}

fn restore_all(store: &CopyStore, m: &Manifest) -> Vec<u8> {
    let mut out = Vec::new();
    for r in ParallelGet::new(store, m, 3, 5, false) {
        let (off, d) = r.unwrap();
        assert_eq!(off, out.len() as u64, "chunks come in device order");
        out.extend_from_slice(&d);
    }
    out
}

#[test]
fn round_trip_put_commit_read() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let chunks = vec![
        data(1, CS as usize),
        text(CS as usize),
        vec![0; CS as usize],
        data(2, 1000), // short last chunk
    ];
    let m = write_device(&store, "vm1-disk0-p1", &chunks);
    assert_eq!(store.list_manifests().unwrap(), vec!["vm1-disk0-p1"]);
    let back = store.read_manifest("vm1-disk0-p1").unwrap();
    assert_eq!(back, m);
    assert_eq!(back.label, serde_json::json!({"device": "vm1-disk0-p1"}));
    assert_eq!(back.device_size(), 3 * CS as u64 + 1000);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(&store.read_chunk(&back.entries()[i]).unwrap(), c);
    }
    assert_eq!(restore_all(&store, &back), chunks.concat());
    // Reopen from disk: same data.
    drop(store);
    let store = CopyStore::open(dir(_t.path()), None).unwrap();
    assert_eq!(restore_all(&store, &back), chunks.concat());
    let stats = back.stats();
    assert_eq!(stats.zero_chunks, 1);
    assert_eq!(stats.distinct_chunks, 3);
    assert!(stats.stored_bytes > 0 && stats.stored_bytes < stats.data_bytes + 3 * 64);
}

#[test]
fn compressible_chunks_are_stored_smaller() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let s = store.begin_write().unwrap();
    let t = s.put_chunk(&text(CS as usize)).unwrap();
    let r = s.put_chunk(&data(3, CS as usize)).unwrap();
    assert!(
        t.stored_bytes < CS as u64 / 2,
        "text compresses: {}",
        t.stored_bytes
    );
    // Random data is kept uncompressed: header + data + tag.
    assert_eq!(r.stored_bytes, CS as u64 + 14 + 16);
    assert_eq!(t.entry.stored_bytes(), t.stored_bytes);
}

#[test]
fn the_compression_estimate_skips_random_chunks_and_is_not_fooled_by_their_heads() {
    const BIG: usize = 64 * 1024;
    let t = tempfile::tempdir().unwrap();
    let store = CopyStore::init(dir(t.path()), KeySource::KeyFile, BIG as u32).unwrap();
    let mut chunks: Vec<Vec<u8>> = (1..=4).map(|i| data(i, BIG)).collect();
    // Text, each chunk distinct.
    chunks.extend((0..3u8).map(|i| {
        let mut c = text(BIG);
        c[..8].fill(i);
        c
    }));
    // Random but for its last quarter: the sample must look past the head.
    let mut tail = data(9, BIG);
    tail[BIG / 4 * 3..].copy_from_slice(&text(BIG / 4));
    chunks.push(tail);
    // Random but for the bytes the sample reads: the sample promises, the chunk does not keep.
    let mut decoy = data(10, BIG);
    for k in 0..4 {
        decoy[k * BIG / 4..k * BIG / 4 + 256].fill(0);
    }
    chunks.push(decoy);

    let session = store.begin_write().unwrap();
    let pp = ParallelPut::new(&session, 2, 4);
    for (i, c) in chunks.iter().enumerate() {
        pp.submit(i as u64, c.clone()).unwrap();
    }
    let (entries, stats) = pp.finish().unwrap();
    assert_eq!(stats.chunks_skipped_by_estimate, 4, "{stats:?}");
    assert_eq!(stats.chunks_compressed, 4, "{stats:?}");
    assert_eq!(stats.chunks_estimate_missed, 1, "{stats:?}");
    let mut m = Manifest::new(
        (chunks.len() * BIG) as u64,
        BIG as u32,
        serde_json::json!({}),
    )
    .unwrap();
    m.apply(&entries).unwrap();
    session.commit("mixed", &m).unwrap();
    drop(session);
    assert_eq!(restore_all(&store, &m), chunks.concat());
    // What the estimate skipped is stored as is; text shrinks.
    let stored = |i: usize| m.entries()[i].stored_bytes();
    assert_eq!(stored(0), BIG as u64 + 14 + 16);
    assert!(stored(4) < BIG as u64 / 4, "text: {}", stored(4));
    assert!(
        stored(7) < BIG as u64 * 7 / 8,
        "random head, text tail: {}",
        stored(7)
    );
}

#[test]
fn dedup_stores_identical_chunks_once() {
    let (t, store) = new_store(KeySource::KeyFile);
    let d = data(7, CS as usize);
    let s = store.begin_write().unwrap();
    let a = s.put_chunk(&d).unwrap();
    let b = s.put_chunk(&d).unwrap();
    assert!(a.new && !b.new);
    assert_eq!(b.stored_bytes, 0);
    assert_eq!(a.entry, b.entry);
    let m1 = write_device(&store, "m1", &[d.clone(), data(8, CS as usize)]);
    drop(s);
    let m2 = write_device(&store, "m2", std::slice::from_ref(&d));
    assert_eq!(m1.entries()[0], m2.entries()[0]);
    assert_eq!(indexed(&store), 2);
    assert!(blob_at(&store, t.path(), a.entry.id().unwrap()).0.exists());
}

#[test]
fn zero_chunks_store_nothing() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let s = store.begin_write().unwrap();
    let o = s.put_chunk(&vec![0u8; CS as usize]).unwrap();
    assert_eq!(o.entry, ChunkEntry::Zero { len: CS });
    assert!(!o.new);
    assert_eq!(o.stored_bytes, 0);
    let short = s.put_chunk(&[0u8; 10]).unwrap();
    assert_eq!(short.entry, ChunkEntry::Zero { len: 10 });
    assert_eq!(store.read_chunk(&o.entry).unwrap(), vec![0u8; CS as usize]);
    // A fresh manifest is all zeros and restores as such; skip_zero_chunks yields nothing.
    let m = Manifest::new(3 * CS as u64 + 5, CS, serde_json::Value::Null).unwrap();
    s.commit("sparse", &m).unwrap();
    assert_eq!(restore_all(&store, &m), vec![0u8; 3 * CS as usize + 5]);
    assert_eq!(ParallelGet::new(&store, &m, 2, 2, true).count(), 0);
    assert!(store.backend().list("packs/").unwrap().is_empty());
    assert_eq!(indexed(&store), 0);
}

#[test]
fn key_file_is_private() {
    let (t, _store) = new_store(KeySource::KeyFile);
    let meta = std::fs::metadata(t.path().join("key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let config = std::fs::read_to_string(t.path().join("config.json")).unwrap();
    let key = std::fs::read_to_string(t.path().join("key")).unwrap();
    assert!(!config.contains(key.trim()), "config must not hold the key");
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(v["format"], "tidemark-copy-store");
    assert_eq!(v["version"], STORE_VERSION);
    assert_eq!(v["chunk_size"], CS);
}

#[test]
fn passphrase_mode_errors() {
    let (t, store) = new_store(KeySource::Passphrase("correct horse".into()));
    assert!(!t.path().join("key").exists());
    let m = write_device(&store, "p", &[data(1, CS as usize)]);
    drop(store);
    let err = CopyStore::open(dir(t.path()), Some("wrong horse")).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::WrongPassphrase { .. }),
        "{err}"
    );
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::PassphraseRequired { .. }),
        "{err}"
    );
    let store = CopyStore::open(dir(t.path()), Some("correct horse")).unwrap();
    assert_eq!(restore_all(&store, &m), data(1, CS as usize));
}

#[test]
fn key_file_mode_errors() {
    let (t, store) = new_store(KeySource::KeyFile);
    drop(store);
    let err = CopyStore::open(dir(t.path()), Some("pass")).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::PassphraseNotUsed { .. }),
        "{err}"
    );

    // A key from another store is recognised as such.
    let (t2, _other) = new_store(KeySource::KeyFile);
    let own = std::fs::read(t.path().join("key")).unwrap();
    std::fs::copy(t2.path().join("key"), t.path().join("key")).unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(matches!(err, CopyStoreError::WrongKey { .. }), "{err}");

    std::fs::write(t.path().join("key"), "not a key").unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::CorruptKeyFile { .. }),
        "{err}"
    );

    std::fs::remove_file(t.path().join("key")).unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    match &err {
        CopyStoreError::KeyFileMissing { path } => assert!(path.ends_with("/key"), "{path}"),
        other => panic!("expected KeyFileMissing, got {other}"),
    }
    assert!(
        err.to_string().contains("back"),
        "message tells what to do: {err}"
    );

    std::fs::write(t.path().join("key"), own).unwrap();
    CopyStore::open(dir(t.path()), None).unwrap();
}

#[test]
fn init_and_open_errors() {
    let t = tempfile::tempdir().unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::NotInitialised { .. }),
        "{err}"
    );
    let err = CopyStore::init(dir(t.path()), KeySource::KeyFile, 5000).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::InvalidChunkSize { size: 5000 }),
        "{err}"
    );
    CopyStore::init(dir(t.path()), KeySource::KeyFile, 8 << 20).unwrap_err();

    CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap();
    let err = CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::AlreadyInitialised { .. }),
        "{err}"
    );

    // Config lost, the key is there and nothing was sealed: creation is finished with that
    // key, never a new one (see create.rs for data without a config).
    let cfg = std::fs::read(t.path().join("config.json")).unwrap();
    let key = std::fs::read(t.path().join("key")).unwrap();
    std::fs::remove_file(t.path().join("config.json")).unwrap();
    CopyStore::init(dir(t.path()), KeySource::KeyFile, CS).unwrap();
    assert_eq!(std::fs::read(t.path().join("key")).unwrap(), key);

    let mut v: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    v["version"] = 99.into();
    std::fs::write(t.path().join("config.json"), v.to_string()).unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(
        matches!(
            err,
            CopyStoreError::UnsupportedVersion {
                found: 99,
                supported: STORE_VERSION,
                ..
            }
        ),
        "{err}"
    );

    std::fs::write(t.path().join("config.json"), b"{ not json").unwrap();
    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    match err {
        CopyStoreError::CorruptConfig { path, .. } => assert!(path.ends_with("config.json")),
        other => panic!("expected CorruptConfig, got {other}"),
    }
}

#[test]
fn damaged_chunk_is_reported_and_never_returned() {
    let (t, store) = new_store(KeySource::KeyFile);
    let chunks = vec![
        data(1, CS as usize),
        data(2, CS as usize),
        data(1, CS as usize),
    ];
    let m = write_device(&store, "dev", &chunks);
    write_device(&store, "other", &[data(3, CS as usize)]);
    let victim = *m.entries()[0].id().unwrap();
    let pack = flip_blob_byte(&store, t.path(), &victim, 20);

    let err = store.read_chunk(&m.entries()[0]).unwrap_err();
    match &err {
        CopyStoreError::Damaged {
            object: ObjectRef::Chunk(id),
            ..
        } => assert_eq!(*id, victim),
        other => panic!("expected Damaged chunk, got {other}"),
    }
    assert!(err.is_damage());
    assert!(err.to_string().contains(&victim.to_hex()));
    store.read_chunk(&m.entries()[1]).unwrap();

    let report = store.verify(&["dev".to_string(), "other".to_string()]);
    assert!(!report.ok());
    assert_eq!(report.chunks_checked, 3, "shared chunk verified once");
    let dev = &report.manifests[0];
    assert_eq!(dev.id, "dev");
    assert!(!dev.ok);
    let idx: Vec<u64> = dev.damaged_chunks.iter().map(|d| d.index).collect();
    assert_eq!(idx, vec![0, 2]);
    let pack_id = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        dev.damaged_chunks
            .iter()
            .all(|d| d.chunk == victim.to_hex() && d.pack.as_deref() == Some(pack_id)),
        "{dev:?}"
    );
    assert!(report.manifests[1].ok);

    // Restore stops at the damaged chunk with its error.
    let results: Vec<_> = ParallelGet::new(&store, &m, 2, 2, false).collect();
    assert_eq!(results.len(), 1);
    assert!(matches!(results[0], Err(CopyStoreError::Damaged { .. })));

    // A missing pack is damage too, named as such.
    std::fs::remove_file(&pack).unwrap();
    let err = store.read_chunk(&m.entries()[0]).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let report = store.verify(&["dev".to_string()]);
    let d = &report.manifests[0].damaged_chunks[0];
    assert!(d.reason.contains("pack is missing"), "{d:?}");
}

#[test]
fn damaged_manifest_is_reported() {
    let (t, store) = new_store(KeySource::KeyFile);
    write_device(&store, "good", &[data(1, CS as usize)]);
    write_device(&store, "bad", &[data(2, CS as usize)]);
    flip_byte(&t.path().join("manifests/bad"), 30);
    let err = store.read_manifest("bad").unwrap_err();
    assert!(
        matches!(&err, CopyStoreError::Damaged { object: ObjectRef::Manifest(id), .. } if id == "bad"),
        "{err}"
    );
    let report = store.verify(&["good".into(), "bad".into(), "absent".into()]);
    assert!(report.manifests[0].ok);
    assert!(!report.manifests[1].ok);
    assert!(
        report.manifests[1]
            .error
            .as_deref()
            .unwrap()
            .contains("manifest bad")
    );
    assert!(
        report.manifests[2]
            .error
            .as_deref()
            .unwrap()
            .contains("does not exist")
    );

    // gc refuses to free anything while a manifest cannot be read.
    store.delete_manifest("good").unwrap();
    let before = store.backend().list("packs/").unwrap();
    let err = store.gc(LockWait::NoWait).unwrap_err();
    assert!(
        matches!(&err, CopyStoreError::GcRefused { id, .. } if id == "bad"),
        "{err}"
    );
    assert_eq!(store.backend().list("packs/").unwrap(), before);

    // A manifest file renamed to another id fails authentication.
    std::fs::copy(
        t.path().join("manifests/bad"),
        t.path().join("manifests/renamed"),
    )
    .unwrap();
    std::fs::remove_file(t.path().join("manifests/bad")).unwrap();
    write_device(&store, "copy-src", &[data(4, CS as usize)]);
    std::fs::copy(
        t.path().join("manifests/copy-src"),
        t.path().join("manifests/copy-dst"),
    )
    .unwrap();
    assert!(store.read_manifest("copy-dst").unwrap_err().is_damage());
}

#[test]
fn swapped_chunk_file_is_detected() {
    let (t, store) = new_store(KeySource::KeyFile);
    let m = write_device(&store, "dev", &[data(1, CS as usize), data(2, CS as usize)]);
    let a = *m.entries()[0].id().unwrap();
    let b = *m.entries()[1].id().unwrap();
    // Put A's blob where the index says B's is.
    let (pa, oa, la) = blob_at(&store, t.path(), &a);
    let (pb, ob, lb) = blob_at(&store, t.path(), &b);
    assert_eq!(la, lb);
    let blob_a = std::fs::read(&pa).unwrap()[oa..oa + la].to_vec();
    let mut pack_b = std::fs::read(&pb).unwrap();
    pack_b[ob..ob + lb].copy_from_slice(&blob_a);
    std::fs::write(&pb, pack_b).unwrap();
    let err = store.read_chunk(&m.entries()[1]).unwrap_err();
    assert!(
        matches!(&err, CopyStoreError::Damaged { object: ObjectRef::Chunk(id), reason } if *id == b && reason.contains("authentication")),
        "{err}"
    );
    let report = store.verify(&["dev".into()]);
    assert_eq!(report.manifests[0].damaged_chunks.len(), 1);
    assert_eq!(report.manifests[0].damaged_chunks[0].index, 1);
}

#[test]
fn gc_frees_exactly_the_unreferenced_chunks() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let shared = data(1, CS as usize);
    let m1 = write_device(
        &store,
        "m1",
        &[shared.clone(), data(2, CS as usize), data(3, 10)],
    );
    let m2 = write_device(&store, "m2", &[shared.clone(), data(4, CS as usize)]);
    assert_eq!(indexed(&store), 4);
    let r = store.gc(LockWait::NoWait).unwrap();
    assert_eq!((r.manifests, r.chunks_total, r.chunks_freed), (2, 4, 0));

    assert!(store.delete_manifest("m1").unwrap());
    assert!(
        !store.delete_manifest("m1").unwrap(),
        "retried delete is harmless"
    );
    let r = store.gc(LockWait::NoWait).unwrap();
    assert_eq!((r.manifests, r.chunks_total, r.chunks_freed), (1, 4, 2));
    assert!(r.bytes_freed > CS as u64);
    assert_eq!(indexed(&store), 2);
    for e in m2.entries() {
        assert!(store.locate(e.id().unwrap()).is_some());
    }
    assert!(store.verify(&["m2".into()]).ok());
    assert_eq!(
        restore_all(&store, &m2),
        [shared, data(4, CS as usize)].concat()
    );
    let _ = m1;
}

#[test]
fn gc_waits_for_write_sessions() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let session = store.begin_write().unwrap();
    // A chunk nothing references yet: a running copy just wrote or deduplicated it.
    let o = session.put_chunk(&data(1, CS as usize)).unwrap();
    store.backend().sync().unwrap();

    let err = store.gc(LockWait::NoWait).unwrap_err();
    assert!(matches!(err, CopyStoreError::Busy { .. }), "{err}");
    let t0 = Instant::now();
    let err = store
        .gc(LockWait::Timeout(Duration::from_millis(100)))
        .unwrap_err();
    assert!(matches!(err, CopyStoreError::Busy { .. }));
    assert!(t0.elapsed() >= Duration::from_millis(100));

    // A second session can run alongside the first.
    let other = store.begin_write().unwrap();
    drop(other);

    let s2 = store.clone();
    let gc = std::thread::spawn(move || {
        let t = Instant::now();
        (s2.gc(LockWait::Forever).unwrap(), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut m = Manifest::new(CS as u64, CS, serde_json::Value::Null).unwrap();
    m.set(0, o.entry).unwrap();
    session.commit("m", &m).unwrap();
    drop(session);
    let (report, waited) = gc.join().unwrap();
    assert!(
        waited >= Duration::from_millis(150),
        "gc waited for the session"
    );
    assert_eq!(report.chunks_freed, 0, "the committed chunk survives");
    store.read_chunk(&o.entry).unwrap();

    // While gc holds the lock, a write session waits (or gives up when asked to).
    let held = store
        .backend()
        .lock(LockMode::Exclusive, LockWait::NoWait)
        .unwrap()
        .unwrap();
    let err = store.begin_write_wait(LockWait::NoWait).unwrap_err();
    assert!(matches!(err, CopyStoreError::Busy { .. }), "{err}");
    drop(held);
    store.begin_write_wait(LockWait::NoWait).unwrap();
}

#[test]
fn a_crash_while_writing_packs_leaves_a_store_verify_calls_clean_and_gc_tidies() {
    let t = tempfile::tempdir().unwrap();
    // Every chunk closes its pack, so packs are written however many lanes there are.
    let store = CopyStore::init(dir(t.path()), KeySource::KeyFile, CS)
        .unwrap()
        .with_packing(1, 2);
    write_device(&store, "kept", &[data(9, CS as usize)]);
    {
        let session = store.begin_write().unwrap();
        for i in 0..8 {
            session.put_chunk(&data(100 + i, CS as usize)).unwrap();
        }
        // Some packs reached their final names, then the job "crashed" (no commit).
        store.backend().sync().unwrap();
        for i in 8..12 {
            session.put_chunk(&data(100 + i, CS as usize)).unwrap();
        }
    }
    // Leftover of a pack put interrupted mid-write by a process crash.
    std::fs::create_dir_all(t.path().join("packs/ab")).unwrap();
    std::fs::write(t.path().join("packs/ab/.tmp.1.2.3.deadbeef"), b"partial").unwrap();
    assert_eq!(store.backend().list("packs/").unwrap().len(), 9);
    assert_eq!(store.list_manifests().unwrap(), vec!["kept"]);
    // A fresh handle (as after a restart) sees no new copy, and verify calls it clean.
    let reopened = CopyStore::open(dir(t.path()), None).unwrap();
    assert_eq!(reopened.list_manifests().unwrap(), vec!["kept"]);
    assert!(reopened.verify(&["kept".into()]).ok());
    let r = reopened.gc(LockWait::NoWait).unwrap();
    assert_eq!(r.packs_deleted, 8, "every pack no index names: {r:?}");
    assert!(
        r.incomplete_removed >= 5,
        "staged packs and the partial file: {r:?}"
    );
    let r = store.gc(LockWait::NoWait).unwrap();
    assert_eq!((r.chunks_total, r.chunks_freed, r.packs_deleted), (1, 0, 0));
    // Nothing is left behind but the kept copy.
    let files = walkdir(t.path());
    assert!(files.iter().all(|f| !f.contains(".tmp.")), "{files:?}");
    assert_eq!(store.backend().list("packs/").unwrap().len(), 1);
    assert!(reopened.verify(&["kept".into()]).ok());
    // The old session's handle can still commit later work after gc.
    write_device(&store, "after", &[data(100, CS as usize)]);
    assert!(store.verify(&["after".into()]).ok());
}

#[test]
fn gc_repacks_packs_below_the_threshold_and_keeps_every_live_chunk() {
    let t = tempfile::tempdir().unwrap();
    let store = CopyStore::init(dir(t.path()), KeySource::KeyFile, CS)
        .unwrap()
        .with_packing(64 * CS as usize, 1);
    // One pack of 8 chunks.
    let chunks: Vec<Vec<u8>> = (0..8).map(|i| data(200 + i, CS as usize)).collect();
    let session = store.begin_write().unwrap();
    let mut full = Manifest::new(8 * CS as u64, CS, serde_json::Value::Null).unwrap();
    let mut quarter = Manifest::new(2 * CS as u64, CS, serde_json::Value::Null).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        let e = session.put_chunk(c).unwrap().entry;
        full.set(i as u64, e).unwrap();
        if i < 2 {
            quarter.set(i as u64, e).unwrap();
        }
    }
    session.commit("full", &full).unwrap();
    session.commit("quarter", &quarter).unwrap();
    drop(session);
    let packs_before = store.backend().list("packs/").unwrap();
    assert_eq!(packs_before.len(), 1);
    store.delete_manifest("full").unwrap();
    // Threshold 0: dead chunks leave the index, the pack stays.
    let r = store
        .gc_repacking(LockWait::NoWait, || Ok(|_: &str| true), 0)
        .unwrap();
    assert_eq!((r.chunks_freed, r.packs_repacked), (6, 0), "{r:?}");
    assert_eq!(store.backend().list("packs/").unwrap(), packs_before);
    // The default 50%: a quarter live, so it is rewritten.
    let r = store.gc(LockWait::NoWait).unwrap();
    assert_eq!(
        (
            r.chunks_freed,
            r.packs_repacked,
            r.packs_written,
            r.packs_deleted
        ),
        (0, 1, 1, 1),
        "{r:?}"
    );
    assert!(r.bytes_freed > 5 * CS as u64, "{r:?}");
    let packs_after = store.backend().list("packs/").unwrap();
    assert_eq!(packs_after.len(), 1);
    assert_ne!(packs_after, packs_before);
    assert_eq!(indexed(&store), 2);
    assert!(store.verify(&["quarter".into()]).ok());
    assert_eq!(restore_all(&store, &quarter), chunks[..2].concat());
    let err = store
        .gc_repacking(LockWait::NoWait, || Ok(|_: &str| true), 101)
        .unwrap_err();
    assert!(matches!(err, CopyStoreError::InvalidOption { .. }), "{err}");
}

#[test]
fn index_problems_are_named_and_rebuild_index_recovers_them() {
    let (t, store) = new_store(KeySource::KeyFile);
    let m = write_device(&store, "dev", &[data(1, CS as usize), data(2, CS as usize)]);
    let index = store.backend().list("index/").unwrap();
    assert_eq!(index.len(), 1);
    // A lost index: every chunk is named as not indexed, with the command that fixes it.
    let saved = std::fs::read(t.path().join(&index[0])).unwrap();
    std::fs::remove_file(t.path().join(&index[0])).unwrap();
    let fresh = CopyStore::open(dir(t.path()), None).unwrap();
    let report = fresh.verify(&["dev".into()]);
    let d = &report.manifests[0].damaged_chunks;
    assert_eq!(d.len(), 2, "{report:?}");
    assert!(
        d[0].reason.contains("rebuild-index") && d[0].pack.is_none(),
        "{d:?}"
    );
    let r = fresh.rebuild_index(LockWait::NoWait).unwrap();
    assert_eq!(
        (r.packs as usize, r.chunks),
        (store.backend().list("packs/").unwrap().len(), 2)
    );
    assert!(fresh.verify(&["dev".into()]).ok());
    assert_eq!(
        restore_all(&fresh, &m),
        [data(1, CS as usize), data(2, CS as usize)].concat()
    );

    // An index entry past its pack's end (here: a truncated pack) is named as such.
    let id = *m.entries()[1].id().unwrap();
    let (pack, offset, len) = blob_at(&fresh, t.path(), &id);
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..offset + len / 2]).unwrap();
    let report = CopyStore::open(dir(t.path()), None)
        .unwrap()
        .verify(&["dev".into()]);
    let d = &report.manifests[0].damaged_chunks;
    assert!(
        d.iter()
            .any(|d| d.index == 1 && d.reason.contains("past the end")),
        "{d:?}"
    );
    // A damaged index object stops gc (it cannot tell what is live) and is named.
    std::fs::write(&pack, &bytes).unwrap();
    let key = fresh.backend().list("index/").unwrap()[0].clone();
    std::fs::write(t.path().join(&key), &saved).unwrap();
    let err = CopyStore::open(dir(t.path()), None)
        .unwrap()
        .gc(LockWait::NoWait)
        .unwrap_err();
    assert!(err.to_string().contains("index object"), "{err}");
}

#[test]
fn a_version_1_store_is_refused_by_name_and_upgraded_in_place() {
    let (t, store) = new_store(KeySource::KeyFile);
    let chunks = [data(1, CS as usize), text(CS as usize), data(3, 100)];
    let m = write_device(&store, "dev", &chunks);
    drop(store);
    // Turn it into what version 1 wrote: one file per chunk, no packs, no index.
    let store = CopyStore::open(dir(t.path()), None).unwrap();
    for e in m.entries() {
        let id = e.id().unwrap();
        let (pack, offset, len) = blob_at(&store, t.path(), id);
        let h = id.to_hex();
        let file = t.path().join("chunks").join(&h[..2]).join(&h);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &std::fs::read(&pack).unwrap()[offset..offset + len]).unwrap();
    }
    drop(store);
    std::fs::remove_dir_all(t.path().join("packs")).unwrap();
    std::fs::remove_dir_all(t.path().join("index")).unwrap();
    let config = t.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    v["version"] = 1.into();
    std::fs::write(&config, v.to_string()).unwrap();

    let err = CopyStore::open(dir(t.path()), None).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::UpgradeNeeded { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tidemark copies upgrade"), "{err}");
    // An interrupted earlier attempt left a stray pack and index object: redone cleanly.
    std::fs::create_dir_all(t.path().join("index")).unwrap();
    std::fs::write(t.path().join("index").join("f".repeat(64)), b"junk").unwrap();
    let r = CopyStore::upgrade_local(LocalDir::new(dir(t.path())), None).unwrap();
    assert_eq!(
        (r.from_version, r.to_version, r.chunks_packed),
        (1, 2, 3),
        "{r:?}"
    );
    assert_eq!(r.chunk_files_removed, 3);
    let store = CopyStore::open(dir(t.path()), None).unwrap();
    assert!(store.verify(&["dev".into()]).ok());
    assert_eq!(restore_all(&store, &m), chunks.concat());
    assert!(store.backend().list("chunks/").unwrap().is_empty());
    // Running it again is harmless.
    let r = CopyStore::upgrade_local(LocalDir::new(dir(t.path())), None).unwrap();
    assert_eq!((r.from_version, r.chunks_packed), (2, 0));
}

fn walkdir(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdir(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn parallel_put_returns_entries_in_index_order() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let session = store.begin_write().unwrap();
    let n = 300u64;
    let pp = ParallelPut::new(&session, 8, 3);
    for i in 0..n {
        let mut b = pp.buffer();
        if i % 10 == 0 {
            b.resize(CS as usize, 0);
        } else if i % 7 == 0 {
            b.extend_from_slice(&data(1, CS as usize)); // repeated content
        } else {
            b.extend_from_slice(&data(i + 10, CS as usize));
        }
        pp.submit(i, b).unwrap();
    }
    let (entries, stats) = pp.finish().unwrap();
    assert_eq!(entries.len() as u64, n);
    // Chunks become readable once a commit has indexed their packs.
    let mut m = Manifest::new(n * CS as u64, CS, serde_json::Value::Null).unwrap();
    m.apply(&entries).unwrap();
    session.commit("all", &m).unwrap();
    for (k, (i, e)) in entries.iter().enumerate() {
        assert_eq!(*i, k as u64);
        let expect = if k % 10 == 0 {
            vec![0; CS as usize]
        } else if k % 7 == 0 {
            data(1, CS as usize)
        } else {
            data(k as u64 + 10, CS as usize)
        };
        assert_eq!(store.read_chunk(e).unwrap(), expect);
    }
    assert_eq!(stats.zero_chunks, 30);
    assert_eq!(stats.bytes_in, n * CS as u64);
    assert_eq!(
        stats.chunks_new + stats.chunks_reused + stats.zero_chunks,
        n
    );
    assert!(stats.chunks_reused >= 20, "{stats:?}");

    // Sparse submission (an incremental copy) and duplicate detection.
    let pp = ParallelPut::new(&session, 4, 2);
    pp.submit(7, data(1, 100)).unwrap();
    pp.submit(3, data(2, 100)).unwrap();
    let (entries, _) = pp.finish().unwrap();
    assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 7]);
    let pp = ParallelPut::new(&session, 2, 2);
    pp.submit(1, data(1, 100)).unwrap();
    pp.submit(1, data(2, 100)).unwrap();
    assert!(pp.finish().is_err());

    // A bad chunk fails the batch and later submits fail fast.
    let pp = ParallelPut::new(&session, 2, 1);
    pp.submit(0, vec![1; CS as usize + 1]).unwrap();
    let t = Instant::now();
    let mut failed = false;
    while t.elapsed() < Duration::from_secs(5) {
        if pp.submit(1, data(5, 10)).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert!(matches!(
        pp.finish(),
        Err(CopyStoreError::InvalidChunk { .. })
    ));
}

#[test]
fn chunk_ids_are_keyed() {
    use sha2::Digest;
    let (_t, store) = new_store(KeySource::KeyFile);
    let (_t2, other) = new_store(KeySource::KeyFile);
    let d = data(42, CS as usize);
    let id = *store
        .begin_write()
        .unwrap()
        .put_chunk(&d)
        .unwrap()
        .entry
        .id()
        .unwrap();
    let other_id = *other
        .begin_write()
        .unwrap()
        .put_chunk(&d)
        .unwrap()
        .entry
        .id()
        .unwrap();
    assert_ne!(id.0, *blake3::hash(&d).as_bytes());
    assert_ne!(id.0[..], sha2::Sha256::digest(&d)[..]);
    assert_ne!(id, other_id, "each store has its own id key");
}

#[test]
fn incremental_copy_reuses_previous_manifest() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let v1: Vec<Vec<u8>> = (0..6).map(|i| data(i, CS as usize)).collect();
    write_device(&store, "p1", &v1);

    let session = store.begin_write().unwrap();
    let mut m = session.read_manifest("p1").unwrap();
    let range = m.chunks_touching(2 * CS as u64 + 100, 10);
    assert_eq!(range, 2..3);
    let changed = data(99, CS as usize);
    let o = session.put_chunk(&changed).unwrap();
    m.set(2, o.entry).unwrap();
    // The device grew by one and a half chunks: existing entries stay valid.
    assert_eq!(m.resize(7 * CS as u64 + CS as u64 / 2).unwrap(), None);
    assert_eq!(m.chunk_count(), 8);
    m.label = serde_json::json!({"point": 2});
    session.commit("p2", &m).unwrap();
    drop(session);

    let mut expect = v1.clone();
    expect[2] = changed;
    let mut expect = expect.concat();
    expect.resize(7 * CS as usize + CS as usize / 2, 0);
    assert_eq!(
        restore_all(&store, &store.read_manifest("p2").unwrap()),
        expect
    );
    // p1 is untouched.
    assert_eq!(
        restore_all(&store, &store.read_manifest("p1").unwrap()),
        v1.concat()
    );

    // A device whose last chunk grew (short data entry followed by zeros).
    let session = store.begin_write().unwrap();
    let mut small = Manifest::new(100, CS, serde_json::Value::Null).unwrap();
    small
        .set(0, session.put_chunk(&data(5, 100)).unwrap().entry)
        .unwrap();
    assert_eq!(small.resize(CS as u64 + 10).unwrap(), None);
    session.commit("grown", &small).unwrap();
    let mut want = data(5, 100);
    want.resize(CS as usize + 10, 0);
    assert_eq!(restore_all(&store, &small), want);

    // Shrinking through a stored chunk must be re-read before commit.
    let mut m = store.read_manifest("p1").unwrap();
    assert_eq!(m.resize(3 * CS as u64 + 7).unwrap(), Some(3));
    let err = session.commit("shrunk", &m).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::InvalidManifest { .. }),
        "{err}"
    );
    m.set(3, session.put_chunk(&v1[3][..7]).unwrap().entry)
        .unwrap();
    session.commit("shrunk", &m).unwrap();
    let mut want = v1[..3].concat();
    want.extend_from_slice(&v1[3][..7]);
    assert_eq!(restore_all(&store, &m), want);
}

#[test]
fn commit_refuses_missing_chunks_and_bad_ids() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let session = store.begin_write().unwrap();
    let mut m = Manifest::new(CS as u64, CS, serde_json::Value::Null).unwrap();
    let ghost = ChunkId([7; 32]);
    m.set(
        0,
        ChunkEntry::Data {
            id: ghost,
            len: CS,
            stored: 1,
        },
    )
    .unwrap();
    let err = session.commit("ghost", &m).unwrap_err();
    assert!(
        matches!(err, CopyStoreError::MissingChunk { chunk, index: 0, .. } if chunk == ghost),
        "{err}"
    );
    assert!(!store.manifest_exists("ghost").unwrap());
    for bad in ["", "../x", "a/b", ".hidden", "sp ace", &"x".repeat(201)] {
        let err = session.commit(bad, &Manifest::new(0, CS, serde_json::Value::Null).unwrap());
        assert!(
            matches!(err, Err(CopyStoreError::InvalidManifestId { .. })),
            "{bad:?}"
        );
        assert!(store.read_manifest(bad).is_err());
    }
    let wrong = Manifest::new(CS as u64, CS * 2, serde_json::Value::Null).unwrap();
    assert!(matches!(
        session.commit("w", &wrong),
        Err(CopyStoreError::InvalidManifest { .. })
    ));
    assert!(matches!(
        session.put_chunk(&[]),
        Err(CopyStoreError::InvalidChunk { .. })
    ));
    assert!(matches!(
        store.read_manifest("nope"),
        Err(CopyStoreError::ManifestNotFound { .. })
    ));
}

#[test]
fn backend_rejects_escaping_keys() {
    let t = tempfile::tempdir().unwrap();
    let local = LocalDir::new(dir(t.path()));
    assert!(
        local
            .location()
            .ends_with(t.path().file_name().unwrap().to_str().unwrap())
    );
    for bad in [
        "../x",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a/../b",
        ".tmp.x",
        "a b",
        "",
    ] {
        let err = local.put(bad, b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(local.get(bad).is_err());
    }
    local.put("a/b/c", b"hello").unwrap();
    local.sync().unwrap();
    assert_eq!(local.get("a/b/c").unwrap(), b"hello");
    assert_eq!(local.size("a/b/c").unwrap(), Some(5));
    assert_eq!(local.size("a/b/d").unwrap(), None);
    assert_eq!(local.list("a/").unwrap(), vec!["a/b/c"]);
    assert!(local.delete("a/b/c").unwrap());
    assert!(!local.exists("a/b/c").unwrap());
}

#[test]
fn per_object_durability_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let local = LocalDir::new(dir(t.path())).with_durability(Durability::PerObject);
    let store = CopyStore::init_local(
        local,
        KeySource::KeyFile,
        StoreOptions {
            chunk_size: CS,
            zstd_level: 3,
        },
    )
    .unwrap();
    let chunks = vec![text(CS as usize), data(1, 77)];
    let m = write_device(&store, "d", &chunks);
    assert_eq!(restore_all(&store, &m), chunks.concat());
    let err = CopyStore::init_local(
        LocalDir::new(dir(tempfile::tempdir().unwrap().path())),
        KeySource::KeyFile,
        StoreOptions {
            chunk_size: CS,
            zstd_level: 1000,
        },
    )
    .unwrap_err();
    assert!(matches!(err, CopyStoreError::InvalidOption { .. }));
}

#[test]
fn gc_concurrent_with_copies_never_frees_referenced_chunks() {
    let (_t, store) = new_store(KeySource::KeyFile);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..40u64 {
                // Contents come from a small pool, so copies keep deduplicating against
                // chunks whose last manifest gc may just be deleting.
                let chunks: Vec<Vec<u8>> = (0..6)
                    .map(|k| data((i * 3 + k) % 11, CS as usize))
                    .collect();
                write_device(&store, &format!("m{i:03}"), &chunks);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let collector = s.spawn(|| {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                let ids = store.list_manifests().unwrap();
                // Keep the newest two copies, drop the rest (retention).
                for id in ids.iter().rev().skip(2) {
                    store.delete_manifest(id).unwrap();
                }
                store.gc(LockWait::Forever).unwrap();
                runs += 1;
            }
            runs
        });
        writer.join().unwrap();
        assert!(collector.join().unwrap() > 0);
    });
    let ids = store.list_manifests().unwrap();
    assert!(ids.contains(&"m039".to_string()));
    let report = store.verify(&ids);
    assert!(report.ok(), "{report:?}");
    store.gc(LockWait::NoWait).unwrap();
    assert!(store.verify(&ids).ok());
}

#[test]
fn handles_can_move_to_worker_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<CopyStore>();
    send_sync::<WriteSession>();
    send_sync::<Manifest>();
    send_sync::<LocalDir>();
    send::<ParallelPut>();
    send::<ParallelGet>();
    send_sync::<CopyStoreError>();
}
