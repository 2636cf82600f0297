//! Behavioural tests of the block store, run natively over `StdStorage` in a temp dir.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use lab_blockstore::{
    BLOCK_SIZE, BlockStore, Error, Extent, Result, StdFile, StdStorage, Storage, StorageFile,
    read_json, write_json,
};

const BS: u64 = BLOCK_SIZE;

// ---------- helpers ----------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn fresh() -> (tempfile::TempDir, BlockStore<StdStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::new(StdStorage::new(dir.path()));
    (dir, store)
}

fn write<S: Storage>(store: &BlockStore<S>, vol: &str, off: u64, data: &[u8]) {
    let mut w = store.open_writer(vol).unwrap();
    w.write(off, data).unwrap();
    w.flush().unwrap();
}

fn read_all<S: Storage>(store: &BlockStore<S>, vol: &str, snap: Option<&str>) -> Vec<u8> {
    let r = store.open_reader(vol, snap).unwrap();
    let data = r.read(0, r.size()).unwrap();
    assert_eq!(data.len() as u64, r.size());
    data
}

fn apply(model: &mut [u8], off: u64, data: &[u8]) {
    model[off as usize..off as usize + data.len()].copy_from_slice(data);
}

fn covered(exts: &[Extent], pos: u64) -> bool {
    exts.iter()
        .any(|e| pos >= e.offset && pos < e.offset + e.length)
}

/// Every byte that differs between `a` and `b` lies inside `exts`.
fn assert_diff_covered(a: &[u8], b: &[u8], exts: &[Extent]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            assert!(
                covered(exts, i as u64),
                "byte {i} differs but is not in {exts:?}"
            );
        }
    }
}

/// Files in the volume's layers dir and the layers of its metadata.
fn layer_files(root: &std::path::Path, vol: &str) -> (Vec<String>, Vec<u64>) {
    let dir = root.join("volumes").join(vol).join("layers");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("volumes").join(vol).join("volume.json")).unwrap(),
    )
    .unwrap();
    let layers = meta["layers"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    (files, layers)
}

fn assert_no_orphans(root: &std::path::Path, vol: &str) {
    let (files, layers) = layer_files(root, vol);
    for f in &files {
        assert!(!f.ends_with(".tmp"), "leftover temp file {f}");
        let stem = f.split('.').next().unwrap().parse::<u64>().unwrap();
        assert!(
            layers.contains(&stem),
            "orphan layer file {f}, layers {layers:?}"
        );
    }
}

// ---------- basic data path ----------

#[test]
fn round_trip_unaligned_writes_and_zero_holes() {
    let (_d, store) = fresh();
    let size = 10 * BS + 100; // partial last block
    store.create_volume("v", size).unwrap();
    let mut model = vec![0u8; size as usize];
    assert_eq!(read_all(&store, "v", None), model);
    let mut rng = Rng(7);
    let cases: &[(u64, usize)] = &[
        (0, 1),
        (BS - 3, 10),                   // crosses one boundary
        (2 * BS + 17, 3 * BS as usize), // spans several, unaligned both ends
        (5 * BS, BS as usize),          // exactly one block
        (7 * BS + 1, 1),                // inside an untouched block
        (10 * BS, 100),                 // the partial last block, fully
        (size - 1, 1),                  // last byte
        (3 * BS + 5, 4),                // overwrite inside an existing block
    ];
    for &(off, len) in cases {
        let data = rng.bytes(len);
        write(&store, "v", off, &data);
        apply(&mut model, off, &data);
        assert_eq!(
            read_all(&store, "v", None),
            model,
            "after write at {off} len {len}"
        );
    }
    // One writer, several writes, then unaligned reads.
    let mut w = store.open_writer("v").unwrap();
    for i in 0..20u64 {
        let off = (i * 1999) % (size - 300);
        let data = rng.bytes(1 + (i as usize * 37) % 300);
        w.write(off, &data).unwrap();
        apply(&mut model, off, &data);
    }
    w.flush().unwrap();
    drop(w);
    let r = store.open_reader("v", None).unwrap();
    for (off, len) in [
        (0, 1),
        (BS - 1, 2),
        (123, 5 * BS),
        (size - 10, 10),
        (size - 10, 1000),
        (8 * BS, BS),
    ] {
        let got = r.read(off, len).unwrap();
        let end = (off + len).min(size) as usize;
        assert_eq!(got, &model[off as usize..end], "read at {off} len {len}");
    }
    assert_eq!(r.read(size, 10).unwrap(), Vec::<u8>::new());
    assert!(matches!(r.read(size + 1, 1), Err(Error::Invalid(_))));
}

#[test]
fn unwritten_volume_reads_zeros_and_is_unallocated() {
    let (_d, store) = fresh();
    store.create_volume("big", 1 << 30).unwrap();
    let r = store.open_reader("big", None).unwrap();
    assert_eq!(r.read(12345, 100_000).unwrap(), vec![0u8; 100_000]);
    assert!(r.allocated_extents().unwrap().is_empty());
    assert_eq!(store.info("big").unwrap().allocated_bytes, 0);
}

// ---------- snapshots ----------

#[test]
fn snapshot_preserves_bytes_and_head_moves_on() {
    let (_d, store) = fresh();
    let size = 8 * BS;
    store.create_volume("v", size).unwrap();
    let mut rng = Rng(3);
    let a = rng.bytes(size as usize);
    write(&store, "v", 0, &a);
    let info = store.snapshot("v", "s1", "tok1", 111).unwrap();
    assert_eq!((info.id.as_str(), info.created_at_ms), ("s1", 111));
    let b = rng.bytes(BS as usize + 10);
    write(&store, "v", BS + 5, &b);
    let mut head = a.clone();
    apply(&mut head, BS + 5, &b);
    assert_eq!(read_all(&store, "v", Some("s1")), a);
    assert_eq!(read_all(&store, "v", None), head);
    assert_eq!(store.info("v").unwrap().snapshots, vec![info]);
}

#[test]
fn revert_to_older_then_write_then_revert_to_newer() {
    let (d, store) = fresh();
    let size = 6 * BS + 7;
    store.create_volume("v", size).unwrap();
    let mut rng = Rng(11);
    let mut model = vec![0u8; size as usize];
    let mut snaps = BTreeMap::new();
    for i in 0..4 {
        let off = rng.below(size - 50);
        let len = 1 + rng.below(size - off - 1) as usize;
        let data = rng.bytes(len);
        write(&store, "v", off, &data);
        apply(&mut model, off, &data);
        let id = format!("s{i}");
        store.snapshot("v", &id, &format!("t{i}"), i).unwrap();
        snaps.insert(id, model.clone());
    }
    store.revert("v", "s1", "r1").unwrap();
    assert_eq!(read_all(&store, "v", None), snaps["s1"]);
    let data = rng.bytes(3000);
    write(&store, "v", 100, &data);
    let mut m = snaps["s1"].clone();
    apply(&mut m, 100, &data);
    assert_eq!(read_all(&store, "v", None), m);
    store.revert("v", "s3", "r2").unwrap();
    assert_eq!(read_all(&store, "v", None), snaps["s3"]);
    for (id, want) in &snaps {
        assert_eq!(&read_all(&store, "v", Some(id)), want, "snapshot {id}");
    }
    assert_no_orphans(d.path(), "v");
}

fn build_chain(
    store: &BlockStore<StdStorage>,
    n: usize,
    seed: u64,
) -> (BTreeMap<String, Vec<u8>>, Vec<u8>) {
    let size = 12 * BS + 300;
    store.create_volume("v", size).unwrap();
    let mut rng = Rng(seed);
    let mut model = vec![0u8; size as usize];
    let mut snaps = BTreeMap::new();
    for i in 0..n {
        for _ in 0..3 {
            let off = rng.below(size - 1);
            let len = 1 + rng.below((size - off).min(3 * BS)) as usize;
            let data = rng.bytes(len);
            write(store, "v", off, &data);
            apply(&mut model, off, &data);
        }
        let id = format!("s{i}");
        store
            .snapshot("v", &id, &format!("t{i}"), i as u64)
            .unwrap();
        snaps.insert(id, model.clone());
    }
    let data = rng.bytes(2 * BS as usize);
    write(store, "v", BS / 2, &data);
    apply(&mut model, BS / 2, &data);
    (snaps, model)
}

fn check_all(store: &BlockStore<StdStorage>, snaps: &BTreeMap<String, Vec<u8>>, head: &[u8]) {
    for (id, want) in snaps {
        assert!(
            read_all(store, "v", Some(id)) == *want,
            "snapshot {id} differs"
        );
    }
    assert!(read_all(store, "v", None) == head, "head differs");
    let mut listed: Vec<String> = store
        .info("v")
        .unwrap()
        .snapshots
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    assert_eq!(listed, snaps.keys().cloned().collect::<Vec<_>>());
}

#[test]
fn delete_snapshots_in_every_order_keeps_the_rest_exact() {
    let orders: &[&[usize]] = &[
        &[0, 1, 2, 3],
        &[3, 2, 1, 0],
        &[1, 2, 0, 3],
        &[2, 0, 3, 1],
        &[1, 3, 0, 2],
    ];
    for (k, order) in orders.iter().enumerate() {
        let (d, store) = fresh();
        let (mut snaps, head) = build_chain(&store, 4, 100 + k as u64);
        for &i in *order {
            let id = format!("s{i}");
            store.delete_snapshot("v", &id).unwrap();
            snaps.remove(&id);
            check_all(&store, &snaps, &head);
            assert_no_orphans(d.path(), "v");
        }
        let (files, layers) = layer_files(d.path(), "v");
        assert!(
            layers.len() <= 2,
            "layers left after deleting all snapshots: {layers:?} {files:?}"
        );
        assert!(matches!(
            store.delete_snapshot("v", "s0"),
            Err(Error::NotFound(_))
        ));
    }
}

#[test]
fn delete_snapshot_after_reverts_keeps_branches_exact() {
    let (d, store) = fresh();
    let (mut snaps, _) = build_chain(&store, 4, 5);
    store.revert("v", "s1", "r1").unwrap();
    let mut head = snaps["s1"].clone();
    let data = vec![0xAB; 5000];
    write(&store, "v", 3000, &data);
    apply(&mut head, 3000, &data);
    store.snapshot("v", "b1", "tb1", 9).unwrap();
    snaps.insert("b1".into(), head.clone());
    write(&store, "v", 0, &[1, 2, 3]);
    apply(&mut head, 0, &[1, 2, 3]);
    for id in ["s1", "s2", "b1", "s0", "s3"] {
        store.delete_snapshot("v", id).unwrap();
        snaps.remove(id);
        check_all(&store, &snaps, &head);
        assert_no_orphans(d.path(), "v");
    }
}

#[test]
fn snapshot_and_revert_are_idempotent_by_token() {
    let (_d, store) = fresh();
    store.create_volume("v", 4 * BS).unwrap();
    write(&store, "v", 0, &[1; 100]);
    let first = store.snapshot("v", "s1", "tok", 5).unwrap();
    // Same token: first result, even with another id / time; no new snapshot.
    assert_eq!(store.snapshot("v", "s1", "tok", 6).unwrap(), first);
    assert_eq!(store.snapshot("v", "other", "tok", 7).unwrap(), first);
    assert_eq!(store.info("v").unwrap().snapshots.len(), 1);
    // Same id, other token: conflict.
    assert!(
        matches!(store.snapshot("v", "s1", "tok2", 8), Err(Error::Conflict(m)) if m.contains("s1"))
    );

    write(&store, "v", 0, &[2; 100]);
    store.revert("v", "s1", "rev").unwrap();
    assert_eq!(read_all(&store, "v", None)[..100], [1; 100]);
    write(&store, "v", 0, &[3; 100]);
    // Replaying the same revert must not discard the newer write.
    store.revert("v", "s1", "rev").unwrap();
    assert_eq!(read_all(&store, "v", None)[..100], [3; 100]);
    store.revert("v", "s1", "rev2").unwrap();
    assert_eq!(read_all(&store, "v", None)[..100], [1; 100]);
}

#[test]
fn snapshot_costs_metadata_only() {
    // Count bytes written by a snapshot of a volume with lots of data vs. a little.
    let cost = |mib: usize| {
        let d = tempfile::tempdir().unwrap();
        let store = BlockStore::new(Faulty::new(d.path()));
        store.create_volume("v", 64 << 20).unwrap();
        write(&store, "v", 0, &vec![7u8; mib << 20]);
        let before = store.storage().counters.bytes.get();
        store.snapshot("v", "s", "t", 1).unwrap();
        store.storage().counters.bytes.get() - before
    };
    let (small, big) = (cost(1), cost(48));
    assert!(
        small < 2048 && big == small,
        "snapshot wrote {small} vs {big} bytes"
    );
}

#[test]
fn writer_across_snapshot_is_rejected_instead_of_corrupting() {
    let (_d, store) = fresh();
    store.create_volume("v", 4 * BS).unwrap();
    let mut w = store.open_writer("v").unwrap();
    w.write(0, &[1; 10]).unwrap();
    w.flush().unwrap();
    store.snapshot("v", "s", "t", 1).unwrap();
    assert!(matches!(w.write(0, &[2; 10]), Err(Error::Conflict(_))));
    drop(w);
    assert_eq!(read_all(&store, "v", Some("s"))[..10], [1; 10]);
}

// ---------- clone, extents ----------

#[test]
fn clone_snapshot_is_an_independent_copy() {
    let (_d, store) = fresh();
    let size = 5 * BS + 1;
    store.create_volume("v", size).unwrap();
    let data = Rng(9).bytes(2 * BS as usize);
    write(&store, "v", 100, &data);
    store.snapshot("v", "s", "t", 1).unwrap();
    write(&store, "v", 0, &[9; 50]);
    store.clone_snapshot("v", "s", "c").unwrap();
    let want = read_all(&store, "v", Some("s"));
    assert_eq!(read_all(&store, "c", None), want);
    assert_eq!(store.info("c").unwrap().size, size);
    write(&store, "c", 0, &[5; 10]);
    assert_eq!(read_all(&store, "v", Some("s")), want);
    store.delete_volume("v").unwrap();
    assert_eq!(read_all(&store, "c", None)[10..], want[10..]);
    assert!(matches!(
        store.clone_snapshot("c", "nope", "d"),
        Err(Error::NotFound(_))
    ));
    store.snapshot("c", "s", "t", 1).unwrap();
    assert!(matches!(
        store.clone_snapshot("c", "s", "c"),
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.list_volumes().unwrap(), vec!["c".to_string()]);
}

#[test]
fn changed_and_allocated_extents() {
    let (_d, store) = fresh();
    let size = 16 * BS + 10;
    store.create_volume("v", size).unwrap();
    write(&store, "v", BS, &vec![1; 2 * BS as usize]); // blocks 1,2
    store.snapshot("v", "s1", "t1", 1).unwrap();
    write(&store, "v", 5 * BS + 3, &[2; 10]); // block 5
    write(&store, "v", 16 * BS, &[3; 10]); // partial last block
    store.snapshot("v", "s2", "t2", 2).unwrap();
    write(&store, "v", 8 * BS, &vec![4; BS as usize]); // block 8

    let ext = |o: u64, l: u64| Extent {
        offset: o,
        length: l,
    };
    assert_eq!(
        store.changed_extents("v", "s1", Some("s2")).unwrap(),
        vec![ext(5 * BS, BS), ext(16 * BS, 10)]
    );
    assert_eq!(
        store.changed_extents("v", "s1", None).unwrap(),
        vec![ext(5 * BS, BS), ext(8 * BS, BS), ext(16 * BS, 10)]
    );
    assert_eq!(
        store.changed_extents("v", "s2", None).unwrap(),
        vec![ext(8 * BS, BS)]
    );
    assert!(
        store
            .changed_extents("v", "s2", Some("s2"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .open_reader("v", Some("s1"))
            .unwrap()
            .allocated_extents()
            .unwrap(),
        vec![ext(BS, 2 * BS)]
    );
    assert_eq!(
        store
            .open_reader("v", None)
            .unwrap()
            .allocated_extents()
            .unwrap(),
        vec![
            ext(BS, 2 * BS),
            ext(5 * BS, BS),
            ext(8 * BS, BS),
            ext(16 * BS, 10)
        ]
    );
    assert_eq!(store.info("v").unwrap().allocated_bytes, 4 * BS + 10);
    // Across a revert: from s2 to the reverted head (= s1 + a write) via the common ancestor.
    store.revert("v", "s1", "r").unwrap();
    write(&store, "v", 0, &[5; 1]);
    let head = read_all(&store, "v", None);
    let s2 = read_all(&store, "v", Some("s2"));
    let ch = store.changed_extents("v", "s2", None).unwrap();
    assert_diff_covered(&s2, &head, &ch);
    assert!(!covered(&ch, 12 * BS));
    // Deleting the middle snapshot keeps the answer for s1 -> head.
    store.delete_snapshot("v", "s2").unwrap();
    assert_eq!(
        store.changed_extents("v", "s1", None).unwrap(),
        vec![ext(0, BS)]
    );
    assert!(matches!(
        store.changed_extents("v", "s2", None),
        Err(Error::NotFound(_))
    ));
}

// ---------- crash safety ----------

#[test]
fn reopen_after_crash_leftovers_cleans_up() {
    let (d, store) = fresh();
    store.create_volume("v", 4 * BS).unwrap();
    write(&store, "v", 0, &[1; 10]);
    store.snapshot("v", "s", "t", 1).unwrap();
    let layers = d.path().join("volumes/v/layers");
    std::fs::write(layers.join("99.data"), b"junk").unwrap();
    std::fs::write(layers.join("99.map"), [0xff; 8]).unwrap();
    std::fs::write(layers.join("1.map.tmp"), [0xff; 8]).unwrap();
    std::fs::write(d.path().join("volumes/v/volume.json.tmp"), b"{garbage").unwrap();
    // Unflushed writes from a killed process: data hit the file, map never persisted.
    let mut w = store.open_writer("v").unwrap();
    w.write(BS, &[2; 10]).unwrap();
    std::mem::forget(w);
    // A directory with no metadata is an interrupted create.
    std::fs::create_dir_all(d.path().join("volumes/half/layers")).unwrap();

    let store = BlockStore::new(StdStorage::new(d.path()));
    assert_eq!(store.list_volumes().unwrap(), vec!["v".to_string()]);
    let r = store.open_reader("v", None).unwrap();
    assert_eq!(r.read(0, 10).unwrap(), vec![1; 10]);
    assert_eq!(
        r.read(BS, 10).unwrap(),
        vec![0; 10],
        "unflushed write must not appear"
    );
    drop(store.open_writer("v").unwrap());
    assert_no_orphans(d.path(), "v");
    assert!(!d.path().join("volumes/v/volume.json.tmp").exists());
    store.create_volume("half", BS).unwrap();
    write(&store, "v", BS + 1, &[3; 5]);
    assert_eq!(
        read_all(&store, "v", None)[BS as usize..BS as usize + 6],
        [0, 3, 3, 3, 3, 3]
    );
}

#[test]
fn corrupt_metadata_is_reported_not_panicked() {
    let (d, store) = fresh();
    store.create_volume("v", BS).unwrap();
    let p = d.path().join("volumes/v/volume.json");
    std::fs::write(&p, b"{not json").unwrap();
    assert!(matches!(store.open_reader("v", None), Err(Error::Corrupt(m)) if m.contains("\"v\"")));
    let cyc = r#"{"format":1,"size":4096,"block_size":4096,"head":0,"next_layer":2,
        "layers":{"0":1,"1":0},"snapshots":[],"revert_tokens":[]}"#;
    std::fs::write(&p, cyc).unwrap();
    assert!(matches!(store.info("v"), Err(Error::Corrupt(m)) if m.contains("cycle")));
}

// ---------- bad input ----------

#[test]
fn bad_ids_ranges_and_missing_objects_are_typed_errors() {
    let (_d, store) = fresh();
    for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(129)] {
        assert!(
            matches!(store.create_volume(bad, BS), Err(Error::Invalid(_))),
            "{bad:?}"
        );
        assert!(
            matches!(store.open_reader(bad, None), Err(Error::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store.create_volume("v", 0),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.create_volume("v", u64::MAX),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(store.open_writer("nope"), Err(Error::NotFound(m)) if m.contains("nope")));
    assert!(matches!(
        store.delete_volume("nope"),
        Err(Error::NotFound(_))
    ));
    store.create_volume("v", 3 * BS).unwrap();
    assert!(matches!(
        store.create_volume("v", BS),
        Err(Error::Conflict(_))
    ));
    let mut w = store.open_writer("v").unwrap();
    assert!(
        matches!(w.write(3 * BS - 1, &[0, 0]), Err(Error::Invalid(m)) if m.contains("offset 12287"))
    );
    assert!(matches!(w.write(u64::MAX, &[0]), Err(Error::Invalid(_))));
    w.write(3 * BS, &[]).unwrap();
    drop(w);
    let r = store.open_reader("v", None).unwrap();
    assert!(matches!(r.read(u64::MAX, 1), Err(Error::Invalid(_))));
    assert!(matches!(r.read(0, u64::MAX), Err(Error::Invalid(_))));
    assert!(
        matches!(store.open_reader("v", Some("s")), Err(Error::NotFound(m)) if m.contains("\"s\""))
    );
    assert!(matches!(
        store.open_reader("v", Some("../s")),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.snapshot("v", "s", "", 1),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.revert("v", "s", "t"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.changed_extents("v", "s", None),
        Err(Error::NotFound(_))
    ));
    assert!(store.volume_exists("v").unwrap());
    store.delete_volume("v").unwrap();
    assert!(!store.volume_exists("v").unwrap());
    assert!(store.list_volumes().unwrap().is_empty());
}

#[test]
fn small_file_helpers_and_path_checks() {
    let (_d, store) = fresh();
    let st = store.storage();
    assert_eq!(read_json::<_, Vec<u32>>(st, "state.json").unwrap(), None);
    write_json(st, "state.json", &vec![1u32, 2]).unwrap();
    assert_eq!(
        read_json::<_, Vec<u32>>(st, "state.json").unwrap(),
        Some(vec![1, 2])
    );
    for bad in ["/etc/passwd", "../x", "a/../b", "a//b", "", "./a"] {
        assert!(
            matches!(st.read_file(bad), Err(Error::Invalid(_))),
            "{bad:?}"
        );
    }
}

// ---------- randomized model test ----------

fn model_run(seed: u64, steps: usize) {
    let (d, mut store) = fresh();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let size = BS * (1 + rng.below(24)) + rng.below(BS);
    store.create_volume("v", size).unwrap();
    let mut head = vec![0u8; size as usize];
    let mut snaps: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut n = 0;
    let ctx = |step: usize, op: &str| format!("seed {seed} step {step} op {op}");
    for step in 0..steps {
        let pick = |rng: &mut Rng, snaps: &BTreeMap<String, Vec<u8>>| {
            let k = rng.below(snaps.len() as u64) as usize;
            snaps.keys().nth(k).cloned()
        };
        match rng.below(12) {
            0..=4 => {
                let mut w = store.open_writer("v").unwrap();
                for _ in 0..1 + rng.below(3) {
                    let off = rng.below(size);
                    let max = (size - off).min(if rng.below(4) == 0 { 6 * BS } else { BS + 50 });
                    let len = 1 + rng.below(max) as usize;
                    let data = rng.bytes(len);
                    w.write(off, &data).unwrap();
                    apply(&mut head, off, &data);
                }
                if rng.below(2) == 0 {
                    w.flush().unwrap();
                }
            }
            5 | 6 => {
                n += 1;
                let id = format!("s{n}");
                store.snapshot("v", &id, &format!("t{n}"), n).unwrap();
                snaps.insert(id, head.clone());
            }
            7 => {
                if let Some(id) = pick(&mut rng, &snaps) {
                    store.revert("v", &id, &format!("r{step}")).unwrap();
                    head = snaps[&id].clone();
                }
            }
            8 => {
                if let Some(id) = pick(&mut rng, &snaps) {
                    store.delete_snapshot("v", &id).unwrap();
                    snaps.remove(&id);
                }
            }
            9 => {
                if let Some(since) = pick(&mut rng, &snaps) {
                    let until = if rng.below(2) == 0 {
                        None
                    } else {
                        pick(&mut rng, &snaps)
                    };
                    let ch = store
                        .changed_extents("v", &since, until.as_deref())
                        .unwrap();
                    let b = until.as_ref().map_or(&head, |u| &snaps[u]);
                    assert_diff_covered(&snaps[&since], b, &ch);
                }
            }
            10 => {
                let r = store.open_reader("v", None).unwrap();
                let alloc = r.allocated_extents().unwrap();
                for (i, &b) in head.iter().enumerate() {
                    assert!(
                        b == 0 || covered(&alloc, i as u64),
                        "{}: byte {i} outside allocation",
                        ctx(step, "alloc")
                    );
                }
                let off = rng.below(size);
                let len = rng.below(size + 10);
                let end = (off + len).min(size) as usize;
                assert!(
                    r.read(off, len).unwrap() == head[off as usize..end],
                    "{}",
                    ctx(step, "read")
                );
            }
            _ => {
                // A fresh instance, as after the adapter is re-instantiated.
                store = BlockStore::new(StdStorage::new(d.path()));
                if let Some(id) = pick(&mut rng, &snaps) {
                    store.clone_snapshot("v", &id, "c").unwrap();
                    assert!(
                        read_all(&store, "c", None) == snaps[&id],
                        "{}",
                        ctx(step, "clone")
                    );
                    store.delete_volume("c").unwrap();
                }
            }
        }
        assert!(
            read_all(&store, "v", None) == head,
            "{}: head differs",
            ctx(step, "check")
        );
        if step % 10 == 0 {
            for (id, want) in &snaps {
                assert!(
                    read_all(&store, "v", Some(id)) == *want,
                    "{}: snapshot {id}",
                    ctx(step, "check")
                );
            }
            let (_, layers) = layer_files(d.path(), "v");
            assert!(
                layers.len() <= 2 * snaps.len() + 2,
                "{}: {} layers for {} snapshots",
                ctx(step, "gc"),
                layers.len(),
                snaps.len()
            );
        }
    }
    for id in snaps.keys() {
        store.delete_snapshot("v", id).unwrap();
    }
    assert!(
        read_all(&store, "v", None) == head,
        "seed {seed}: head after deleting all"
    );
    drop(store.open_writer("v").unwrap());
    assert_no_orphans(d.path(), "v");
}

#[test]
fn randomized_against_in_memory_model() {
    for seed in 1..=40 {
        model_run(seed, 150);
    }
}

// ---------- fault injection: stop after the k-th mutation ----------

#[derive(Default)]
struct Counters {
    /// Mutations allowed before every further one fails (`None` = unlimited).
    budget: Cell<Option<u64>>,
    bytes: Cell<u64>,
    /// Read-ahead hints received: (offset, length).
    hints: std::cell::RefCell<Vec<(u64, u64)>>,
}

impl Counters {
    fn tick(&self) -> Result<()> {
        match self.budget.get() {
            Some(0) => Err(Error::Io("injected crash".into())),
            Some(n) => {
                self.budget.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// StdStorage that counts bytes written and can "crash" (fail every mutation) after a
/// budget, leaving exactly what a killed process would leave (temp files included).
struct Faulty {
    inner: StdStorage,
    counters: Rc<Counters>,
}

impl Faulty {
    fn new(root: &std::path::Path) -> Self {
        Faulty {
            inner: StdStorage::new(root),
            counters: Rc::default(),
        }
    }
}

struct FaultyFile {
    inner: StdFile,
    counters: Rc<Counters>,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.counters.tick()?;
        self.counters
            .bytes
            .set(self.counters.bytes.get() + buf.len() as u64);
        self.inner.write_at(buf, offset)
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
    fn will_need(&self, offset: u64, len: u64) {
        self.counters.hints.borrow_mut().push((offset, len));
    }
}

impl Storage for Faulty {
    type File = FaultyFile;
    fn open_read(&self, path: &str) -> Result<Option<FaultyFile>> {
        Ok(self.inner.open_read(path)?.map(|inner| FaultyFile {
            inner,
            counters: self.counters.clone(),
        }))
    }
    fn open_write(&self, path: &str) -> Result<FaultyFile> {
        self.counters.tick()?;
        Ok(FaultyFile {
            inner: self.inner.open_write(path)?,
            counters: self.counters.clone(),
        })
    }
    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.inner.read_file(path)
    }
    fn write_file_atomic(&self, path: &str, data: &[u8]) -> Result<()> {
        self.counters.tick()?;
        let tmp = format!("{path}.tmp");
        self.inner.remove_file(&tmp)?;
        self.inner.open_write(&tmp)?.write_at(data, 0)?;
        self.counters
            .bytes
            .set(self.counters.bytes.get() + data.len() as u64);
        self.counters.tick()?;
        self.inner.rename(&tmp, path)
    }
    fn remove_file(&self, path: &str) -> Result<bool> {
        self.counters.tick()?;
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.counters.tick()?;
        self.inner.rename(from, to)
    }
    fn create_dir_all(&self, path: &str) -> Result<()> {
        self.counters.tick()?;
        self.inner.create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &str) -> Result<bool> {
        self.counters.tick()?;
        self.inner.remove_dir_all(path)
    }
    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        self.inner.list_dir(path)
    }
}

#[test]
fn sequential_readers_are_read_ahead_of_and_scattered_ones_are_not() {
    const MIB: u64 = 1 << 20;
    let d = tempfile::tempdir().unwrap();
    let store = BlockStore::new(Faulty::new(d.path()));
    store.create_volume("v", 128 * MIB).unwrap();
    let mut w = store.open_writer("v").unwrap();
    w.write(0, &vec![7; (128 * MIB) as usize]).unwrap();
    w.flush().unwrap();
    drop(w);
    let hints = |store: &BlockStore<Faulty>| store.storage().counters.hints.take();

    // Scattered reads (an incremental copy): no hint, however many.
    let r = store.open_reader("v", None).unwrap();
    for k in 0..20u64 {
        assert_eq!(r.read(k * 3 * MIB, MIB).unwrap().len(), MIB as usize);
    }
    assert!(hints(&store).is_empty());

    // A sequential reader: from its second read on, the next 64 MiB are announced once each,
    // in steps, never past the end of the volume.
    let r = store.open_reader("v", None).unwrap();
    for k in 0..128u64 {
        r.read(k * MIB, MIB).unwrap();
    }
    let got = hints(&store);
    assert!(!got.is_empty());
    assert_eq!(got[0].0, 2 * MIB, "announced right after the second read");
    let mut at = 2 * MIB;
    for &(offset, len) in &got {
        assert_eq!(offset, at, "contiguous, no range announced twice: {got:?}");
        at += len;
    }
    assert_eq!(at, 128 * MIB, "up to the end and no further");

    // Going back is not sequential: the hints stop.
    r.read(0, MIB).unwrap();
    r.read(10 * MIB, MIB).unwrap();
    assert!(hints(&store).is_empty());
}

/// Runs `op` on a fresh copy of a multi-snapshot volume with a crash after every possible
/// mutation count, then checks the survivor with a clean instance.
fn crash_everywhere(
    op: impl Fn(&BlockStore<Faulty>, u64) -> Result<()>,
    check: impl Fn(&BlockStore<StdStorage>, &BTreeMap<String, Vec<u8>>, &[u8], bool),
) {
    for k in 0.. {
        let d = tempfile::tempdir().unwrap();
        let (snaps, head) = build_chain(&BlockStore::new(StdStorage::new(d.path())), 4, 77);
        let faulty = BlockStore::new(Faulty::new(d.path()));
        faulty.storage().counters.budget.set(Some(k));
        let done = op(&faulty, k).is_ok();
        drop(faulty);
        let store = BlockStore::new(StdStorage::new(d.path()));
        check(&store, &snaps, &head, done);
        // Still fully usable: write, snapshot, delete everything, no leftovers.
        write(&store, "v", 0, &[42; 10]);
        store.snapshot("v", "after", "after", 1).unwrap();
        for s in store.info("v").unwrap().snapshots {
            store.delete_snapshot("v", &s.id).unwrap();
        }
        drop(store.open_writer("v").unwrap());
        assert_no_orphans(d.path(), "v");
        if done {
            assert!(k > 0);
            break;
        }
    }
}

#[test]
fn crash_during_delete_snapshot_with_merges_loses_nothing() {
    for victim in ["s0", "s1", "s2", "s3"] {
        crash_everywhere(
            |s, _| s.delete_snapshot("v", victim),
            |s, snaps, head, done| {
                for (id, want) in snaps {
                    match s.open_reader("v", Some(id)) {
                        Ok(_) => assert!(
                            read_all(s, "v", Some(id)) == *want,
                            "snapshot {id} after crash"
                        ),
                        Err(e) => {
                            assert!(id == victim && matches!(e, Error::NotFound(_)), "{id}: {e}")
                        }
                    }
                }
                if done {
                    assert!(s.open_reader("v", Some(victim)).is_err());
                }
                assert!(read_all(s, "v", None) == head);
            },
        );
    }
    // Deleting two in a row (second one merges a layer left by the first).
    crash_everywhere(
        |s, k| {
            s.storage().counters.budget.set(None);
            s.delete_snapshot("v", "s1")?;
            s.storage().counters.budget.set(Some(k));
            s.delete_snapshot("v", "s2")
        },
        |s, snaps, head, _| {
            for id in ["s0", "s3"] {
                assert!(read_all(s, "v", Some(id)) == snaps[id]);
            }
            assert!(read_all(s, "v", None) == head);
        },
    );
}

#[test]
fn crash_during_revert_snapshot_and_write_is_all_or_nothing() {
    crash_everywhere(
        |s, _| s.revert("v", "s1", "r"),
        |s, snaps, head, done| {
            for (id, want) in snaps {
                assert!(read_all(s, "v", Some(id)) == *want);
            }
            let now = read_all(s, "v", None);
            assert!(now == head || now == snaps["s1"]);
            if done {
                assert!(now == snaps["s1"]);
            }
        },
    );
    crash_everywhere(
        |s, _| s.snapshot("v", "new", "new", 1).map(|_| ()),
        |s, snaps, head, _| {
            for (id, want) in snaps {
                assert!(read_all(s, "v", Some(id)) == *want);
            }
            if s.open_reader("v", Some("new")).is_ok() {
                assert!(read_all(s, "v", Some("new")) == head);
            }
            assert!(read_all(s, "v", None) == head);
        },
    );
    crash_everywhere(
        |s, _| {
            let mut w = s.open_writer("v")?;
            w.write(BS - 7, &vec![0xEE; 3 * BS as usize])?;
            w.flush()
        },
        |s, snaps, head, done| {
            for (id, want) in snaps {
                assert!(read_all(s, "v", Some(id)) == *want);
            }
            let now = read_all(s, "v", None);
            let mut new = head.to_vec();
            apply(&mut new, BS - 7, &vec![0xEE; 3 * BS as usize]);
            // Without a flush each block is old or new; after a flush all is new.
            for (i, (n, (o, w))) in now.iter().zip(head.iter().zip(&new)).enumerate() {
                assert!(n == o || n == w, "byte {i}");
            }
            if done {
                assert!(now == new);
            }
        },
    );
}

#[test]
fn crash_during_clone_and_delete_volume_leaves_no_half_volume() {
    crash_everywhere(
        |s, _| s.clone_snapshot("v", "s2", "c"),
        |s, snaps, _, done| {
            if s.volume_exists("c").unwrap() {
                assert!(read_all(s, "c", None) == snaps["s2"]);
            } else {
                assert!(!done);
                s.clone_snapshot("v", "s2", "c").unwrap();
                assert!(read_all(s, "c", None) == snaps["s2"]);
            }
        },
    );
    crash_everywhere(
        |s, k| {
            s.storage().counters.budget.set(None);
            s.clone_snapshot("v", "s2", "c")?;
            s.storage().counters.budget.set(Some(k));
            s.delete_volume("c")
        },
        |s, snaps, _, _| {
            if s.volume_exists("c").unwrap() {
                assert!(read_all(s, "c", None) == snaps["s2"]);
                s.delete_volume("c").unwrap();
            }
            assert_eq!(s.list_volumes().unwrap(), vec!["v".to_string()]);
        },
    );
}

/// Throughput smoke test: `cargo test --release -p lab-blockstore -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_1gib_in_1mib_chunks() {
    let (_d, store) = fresh();
    store.create_volume("v", 1 << 30).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    let pass = || {
        let t = std::time::Instant::now();
        let mut w = store.open_writer("v").unwrap();
        for i in 0..1024u64 {
            w.write(i << 20, &chunk).unwrap();
        }
        w.flush().unwrap();
        t.elapsed()
    };
    let first = pass();
    let wt = pass();
    println!(
        "first write (allocating) {:.2} GB/s",
        1.073 / first.as_secs_f64()
    );
    let t = std::time::Instant::now();
    let s = std::time::Instant::now();
    store.snapshot("v", "s", "t", 1).unwrap();
    let st = s.elapsed();
    let r = store.open_reader("v", Some("s")).unwrap();
    for i in 0..1024u64 {
        assert_eq!(r.read(i << 20, 1 << 20).unwrap().len(), 1 << 20);
    }
    let rt = t.elapsed();
    println!(
        "write {:.2} GB/s, read {:.2} GB/s, snapshot {st:?}",
        1.073 / wt.as_secs_f64(),
        1.073 / rt.as_secs_f64()
    );
}

// ---------- group snapshots ----------

#[test]
fn a_group_snapshot_takes_every_member_and_lifts_its_fences() {
    let (_d, store) = fresh();
    for v in ["a", "b"] {
        store.create_volume(v, 4 * BS).unwrap();
        write(&store, v, 0, &[7; 10]);
    }
    let taken = store
        .snapshot_group(&[("a", "sa", "t/a"), ("b", "sb", "t/b")], 5)
        .unwrap();
    assert_eq!(
        taken.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["sa", "sb"]
    );
    // Repeated with the same tokens: the same snapshots, nothing new.
    let again = store
        .snapshot_group(&[("a", "sa2", "t/a"), ("b", "sb2", "t/b")], 6)
        .unwrap();
    assert_eq!(
        again.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["sa", "sb"]
    );
    // The fences are lifted: writes go on, and the snapshots kept their instant.
    write(&store, "a", 0, &[8; 10]);
    assert_eq!(read_all(&store, "a", Some("sa"))[..10], [7; 10]);
    assert_eq!(read_all(&store, "a", None)[..10], [8; 10]);
    // A member that does not exist fails the group and leaves the others unfenced.
    assert!(matches!(
        store.snapshot_group(&[("a", "sx", "t2/a"), ("nope", "sy", "t2/n")], 7),
        Err(Error::NotFound(_))
    ));
    write(&store, "a", BS, &[9; 10]);
}

#[test]
fn a_fenced_volume_refuses_writes_until_the_fence_lapses() {
    let (d, store) = fresh();
    store.create_volume("v", 4 * BS).unwrap();
    let meta_path = d.path().join("volumes/v/volume.json");
    let set_fence = |until: u64| {
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        meta["fenced_until_ms"] = until.into();
        std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A group snapshot in progress (or crashed less than its fence ago): writes wait.
    set_fence(now + 60_000);
    let mut w = store.open_writer("v").unwrap();
    assert!(
        matches!(w.write(0, &[1; 10]), Err(Error::Conflict(m)) if m.contains("group snapshot"))
    );
    drop(w);
    // One that crashed long ago no longer holds anything off.
    set_fence(now.saturating_sub(1));
    write(&store, "v", 0, &[1; 10]);
    assert_eq!(read_all(&store, "v", None)[..10], [1; 10]);
}
