//! Measures the copy store on 1 GiB of alternating 1 MiB random / 1 MiB text-like blocks, for
//! several chunk sizes: full copy throughput (2 workers), pack files, restore throughput, and
//! stored bytes of incremental copies after 1% scattered 4 KiB writes and after ten 1 MiB runs.
//!
//! Run: `cargo bench -p tidemark --bench chunk_sizes [-- sizes_kib...]`
//! Env: MEASURE_DIR (default: a temporary directory), MEASURE_LEVEL (zstd level),
//!      MEASURE_DURABILITY=per-object, MEASURE_STREAM=1 (generate data on the fly, report peak RSS).

use std::time::Instant;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use tidemark::copies::*;

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// A small vocabulary: text-like blocks compress ~3.5x, as in the benchmark's description.
const WORDS: &[&str] = &[
    "the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "was", "for", "on", "are",
    "with", "they", "be", "this", "have", "from", "virtual", "machine", "snapshot", "backup",
    "restore", "device", "array", "copy", "block", "data", "store", "chunk",
];

fn text_block(seed: u64, out: &mut [u8]) {
    let mut r = Rng(seed);
    let mut i = 0;
    while i < out.len() {
        let v = r.next();
        let w = WORDS[(v % WORDS.len() as u64) as usize].as_bytes();
        for &b in w
            .iter()
            .chain(std::iter::once(if v >> 60 == 0 { &b'\n' } else { &b' ' }))
        {
            if i < out.len() {
                out[i] = b;
                i += 1;
            }
        }
    }
}

fn gen_block(b: usize, out: &mut [u8]) {
    if b.is_multiple_of(2) {
        Rng(b as u64 * 7919 + 1).fill(out);
    } else {
        text_block(b as u64, out);
    }
}

fn make_dataset() -> Vec<u8> {
    let mut d = vec![0u8; GIB];
    for (b, blk) in d.chunks_mut(MIB).enumerate() {
        gen_block(b, blk);
    }
    d
}

fn cpu_secs() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (t(11), t(12))
}

/// Busy seconds of the whole machine so far (user+nice+system+irq+softirq+steal): compared
/// with this process's own CPU time it shows whether something else ran during a measurement
/// (another build on the same 2 cores makes a run worthless).
fn machine_busy_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum::<u64>() as f64
        / 100.0
}

fn peak_rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn new_store(base: &str, name: &str, chunk: u32, level: i32) -> CopyStore {
    let path = format!("{base}/{name}");
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    let dir = Dir::open_ambient_dir(&path, ambient_authority()).unwrap();
    let durability = match std::env::var("MEASURE_DURABILITY").as_deref() {
        Ok("per-object") => Durability::PerObject,
        _ => Durability::Batched,
    };
    let local = LocalDir::with_location(dir, path).with_durability(durability);
    CopyStore::init_local(
        local,
        KeySource::KeyFile,
        StoreOptions {
            chunk_size: chunk,
            zstd_level: level,
        },
    )
    .unwrap()
}

const THREADS: usize = 2;
const QUEUE: usize = 16;

/// Puts the given chunk indexes of `data` (or of generated data when `data` is None); returns
/// the new manifest, stats and seconds.
fn put(
    store: &CopyStore,
    id: &str,
    base: Option<&Manifest>,
    data: Option<&[u8]>,
    indexes: &[u64],
) -> (Manifest, PutStats, f64) {
    let t = Instant::now();
    let cpu0 = cpu_secs();
    let busy0 = machine_busy_secs();
    let session = store.begin_write().unwrap();
    let mut m = match base {
        Some(b) => b.clone(),
        None => Manifest::new(
            GIB as u64,
            store.chunk_size(),
            serde_json::json!({"bench": id}),
        )
        .unwrap(),
    };
    let cs = store.chunk_size() as usize;
    let pp = ParallelPut::new(&session, THREADS, QUEUE);
    let mut gen_buf = vec![0u8; MIB];
    let mut gen_at = usize::MAX;
    for &i in indexes {
        let off = i as usize * cs;
        let mut buf = pp.buffer();
        match data {
            Some(d) => buf.extend_from_slice(&d[off..off + cs]),
            None => {
                // Generate the 1 MiB block holding this chunk on the fly (stands in for the
                // adapter read), so no 1 GiB buffer inflates the peak RSS.
                let b = off / MIB;
                if gen_at != b {
                    gen_block(b, &mut gen_buf);
                    gen_at = b;
                }
                let o = off % MIB;
                buf.extend_from_slice(&gen_buf[o..o + cs.min(MIB)]);
            }
        }
        pp.submit(i, buf).unwrap();
    }
    let (entries, stats) = pp.finish().unwrap();
    let t_put = t.elapsed().as_secs_f64();
    m.apply(&entries).unwrap();
    session.commit(id, &m).unwrap();
    if std::env::var("MEASURE_VERBOSE").is_ok() {
        let cpu1 = cpu_secs();
        eprintln!(
            "  {id}: puts {t_put:.2} s, commit {:.2} s, cpu user {:.2} s sys {:.2} s, other processes {:.2} s",
            t.elapsed().as_secs_f64() - t_put,
            cpu1.0 - cpu0.0,
            cpu1.1 - cpu0.1,
            machine_busy_secs() - busy0 - (cpu1.0 - cpu0.0) - (cpu1.1 - cpu0.1)
        );
    }
    (m, stats, t.elapsed().as_secs_f64())
}

fn restore(store: &CopyStore, m: &Manifest) -> f64 {
    let t = Instant::now();
    let cpu0 = cpu_secs();
    let busy0 = machine_busy_secs();
    let mut sum = 0u64;
    for r in ParallelGet::new(store, m, THREADS, 32, false) {
        let (off, d) = r.unwrap();
        sum = sum.wrapping_add(off ^ d[d.len() / 2] as u64);
    }
    std::hint::black_box(sum);
    if std::env::var("MEASURE_VERBOSE").is_ok() {
        let cpu1 = cpu_secs();
        eprintln!(
            "  restore: {:.2} s, cpu user {:.2} s sys {:.2} s, other processes {:.2} s",
            t.elapsed().as_secs_f64(),
            cpu1.0 - cpu0.0,
            cpu1.1 - cpu0.1,
            machine_busy_secs() - busy0 - (cpu1.0 - cpu0.0) - (cpu1.1 - cpu0.1)
        );
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let temp = tempfile::Builder::new()
        .prefix("tidemark-chunk-sizes-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    let base =
        std::env::var("MEASURE_DIR").unwrap_or_else(|_| temp.path().to_string_lossy().into_owned());
    let level: i32 = std::env::var("MEASURE_LEVEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ZSTD_LEVEL);
    let sizes: Vec<u32> = {
        let a: Vec<u32> = std::env::args()
            .skip(1)
            .filter_map(|s| s.parse().ok())
            .collect();
        if a.is_empty() {
            vec![16, 32, 64, 128, 256, 1024]
        } else {
            a
        }
    }
    .into_iter()
    .map(|k| k * 1024)
    .collect();
    std::fs::create_dir_all(&base).unwrap();

    if std::env::var("MEASURE_STREAM").is_ok() {
        for &cs in &sizes {
            let store = new_store(&base, "stream", cs, level);
            let n = (GIB / cs as usize) as u64;
            let all: Vec<u64> = (0..n).collect();
            let (m, st, secs) = put(&store, "full", None, None, &all);
            let r = restore(&store, &m);
            println!(
                "stream chunk {:>4} KiB: full copy incl. generating data {:.2} s ({:.2} GB/s), stored {:.0} MiB, restore {:.2} s; peak RSS {} MiB",
                cs / 1024,
                secs,
                GIB as f64 / secs / 1e9,
                st.bytes_stored as f64 / MIB as f64,
                r,
                peak_rss_mib()
            );
        }
        return;
    }

    let t = Instant::now();
    let data = make_dataset();
    eprintln!("dataset generated in {:.1} s", t.elapsed().as_secs_f64());
    // The two kinds of 1% change, applied to copies of the dataset.
    let mut rng = Rng(12345);
    let n_writes = GIB / 100 / 4096; // 2621 writes of 4 KiB
    let scattered: Vec<usize> = (0..n_writes)
        .map(|_| (rng.next() as usize % (GIB / 4096)) * 4096)
        .collect();
    let runs: Vec<usize> = (0..10)
        .map(|_| (rng.next() as usize % ((GIB - MIB) / 4096)) * 4096)
        .collect();
    let mut data_s = data.clone();
    for &o in &scattered {
        rng.fill(&mut data_s[o..o + 4096]);
    }
    let mut data_c = data.clone();
    for &o in &runs {
        rng.fill(&mut data_c[o..o + MIB]);
    }

    println!(
        "zstd level {level}, {THREADS} worker threads, queue {QUEUE}; 1 GiB = 512 MiB random + 512 MiB text"
    );
    println!(
        "| chunk | full copy s | full GB/s | pack files | stored MiB | restore s | restore GB/s | incr. scattered 1%: chunks, stored MiB (% of full) | incr. 10×1 MiB runs: chunks, stored MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &cs in &sizes {
        let store = new_store(&base, &format!("c{}", cs / 1024), cs, level);
        let n = (GIB / cs as usize) as u64;
        let all: Vec<u64> = (0..n).collect();
        let (m, st, secs) = put(&store, "full", None, Some(&data), &all);
        let files = store.backend().list("packs/").unwrap().len();
        let r = restore(&store, &m);
        let touched = |offs: &[usize], len: usize| {
            let mut v: Vec<u64> = offs
                .iter()
                .flat_map(|&o| (o / cs as usize) as u64..=((o + len - 1) / cs as usize) as u64)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let ts = touched(&scattered, 4096);
        let (_, ss, _) = put(&store, "incr-scattered", Some(&m), Some(&data_s), &ts);
        let tc = touched(&runs, MIB);
        let (_, sc, _) = put(&store, "incr-runs", Some(&m), Some(&data_c), &tc);
        println!(
            "| {} KiB | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {}, {:.1} ({:.1}%) | {}, {:.1} |",
            cs / 1024,
            secs,
            GIB as f64 / secs / 1e9,
            files,
            st.bytes_stored as f64 / MIB as f64,
            r,
            GIB as f64 / r / 1e9,
            ts.len(),
            ss.bytes_stored as f64 / MIB as f64,
            100.0 * ss.bytes_stored as f64 / st.bytes_stored as f64,
            tc.len(),
            sc.bytes_stored as f64 / MIB as f64,
        );
        let rep = store.verify(&[
            "full".to_string(),
            "incr-scattered".to_string(),
            "incr-runs".to_string(),
        ]);
        assert!(rep.ok(), "verify failed: {rep:?}");
        drop(store);
        // Stores are left in place: deleting tens of thousands of files right before the next
        // run slows ext4 inode allocation for minutes and would skew the next row.
    }
}
