//! What an adapter call costs: a warm call, a fresh sandbox per step (each next to a
//! minimal component on bare wasmtime, measured in the same run, with the overhead ratio),
//! one outgoing HTTP request through the sandbox next to the host's own, the data path
//! through the lab hypervisor, and whether a snapshot's cost depends on how much was written.
//!
//! Plain `Instant` loops with medians (every figure is printed in one table at the end), on
//! a tokio multi-thread runtime like the product's. Data lives under the target directory's
//! `tmp/`, on a disk, not on tmpfs, so the data path is not flattered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::engine::ports::{DataPath, Hypervisor};
use tidemark::model::capabilities::Grants;
use tidemark::model::{DeviceSpec, NewDisk, VmInfo, VmSpec};
use tidemark::runtime::{EndpointSpec, Runtime, Session};

#[path = "support/baselines.rs"]
mod baselines;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const CHUNK: u64 = MIB;

/// One line of the final table: what, the figure, the target, whether it was met.
struct Row {
    what: String,
    figure: String,
    target: String,
    met: Option<bool>,
}

impl Row {
    fn new(what: &str, figure: String, target: &str, met: Option<bool>) -> Self {
        Self {
            what: what.into(),
            figure,
            target: target.into(),
            met,
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a
    // quick run, so only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        println!("adapter_calls: run with `cargo bench` to measure");
        return;
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows = tokio.block_on(measure_all());
    print_table(&rows);
}

/// A scratch directory in `<target>/tmp`, on the disk of the build's target directory
/// (wherever `CARGO_TARGET_DIR` put it), found from this bench executable's own path
/// (`<target>/release/deps/adapter_calls-…`); the system's temporary directory if that
/// cannot be made.
fn scratch_dir() -> tempfile::TempDir {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.ancestors().nth(3)?.join("tmp")))
        .and_then(|dir| {
            std::fs::create_dir_all(&dir).ok()?;
            tempfile::tempdir_in(dir).ok()
        })
        .unwrap_or_else(|| tempfile::tempdir().expect("scratch dir"))
}

async fn measure_all() -> Vec<Row> {
    let scratch = scratch_dir();
    let runtime = Runtime::new(None, None).await.expect("runtime");
    let spec = lab_spec(scratch.path());
    let mut rows = Vec::new();

    let warm = warm_call(&runtime, &spec).await;
    rows.push(Row::new(
        "warm call: list_hosts on an open session",
        format_duration(warm),
        "<= 2 µs",
        Some(warm <= Duration::from_micros(2)),
    ));
    let fresh = fresh_call(&runtime, &spec).await;
    rows.push(Row::new(
        "fresh: runtime.open + one list_hosts",
        format_duration(fresh),
        "<= 40 µs",
        Some(fresh <= Duration::from_micros(40)),
    ));
    let (bare_warm, bare_fresh) = baselines::bare_wasmtime().await;
    for (what, bare, ours) in [
        ("warm call", bare_warm, warm),
        (
            "fresh store + instantiate from Pre + call",
            bare_fresh,
            fresh,
        ),
    ] {
        rows.push(Row::new(
            &format!("bare wasmtime, minimal component: {what}"),
            format_duration(bare),
            "",
            None,
        ));
        rows.push(Row::new(
            &format!("  Tidemark's overhead over it: {what}"),
            format!("{:.2}x", ours.as_secs_f64() / bare.as_secs_f64()),
            "",
            None,
        ));
    }
    let (sandboxed, direct) = baselines::http_requests().await;
    for (what, samples) in [
        ("HTTP GET by the host (reqwest), p50 / p99", &direct),
        (
            "HTTP GET through the sandbox (granted), p50 / p99",
            &sandboxed,
        ),
    ] {
        rows.push(Row::new(
            what,
            format!(
                "{} / {}",
                format_duration(baselines::percentile(samples, 50)),
                format_duration(baselines::percentile(samples, 99))
            ),
            "",
            None,
        ));
    }

    let mut hv = runtime.open(spec.clone()).await.expect("session");
    let vm = create_vm(&mut hv).await;
    let (big, small) = (&vm.devices[0].id, &vm.devices[1].id);
    let buffer = non_zero_buffer(CHUNK as usize);

    let first_write = write_disk(&mut hv, &vm.id, big, GIB, &buffer).await;
    let overwrite = write_disk(&mut hv, &vm.id, big, GIB, &buffer).await;
    let read = median(&[
        read_disk(&mut hv, &vm.id, big, GIB).await,
        read_disk(&mut hv, &vm.id, big, GIB).await,
        read_disk(&mut hv, &vm.id, big, GIB).await,
    ]);
    verify_chunks(&mut hv, &vm.id, big, &buffer).await;
    rows.push(throughput_row(
        "write 1 GiB, 1 MiB chunks, fresh blocks",
        first_write,
        ">= 1.5 GB/s",
        1.5,
    ));
    rows.push(throughput_row(
        "write 1 GiB, 1 MiB chunks, overwrite",
        overwrite,
        ">= 1.5 GB/s",
        1.5,
    ));
    rows.push(throughput_row(
        "read 1 GiB, 1 MiB chunks (median of 3)",
        read,
        ">= 2 GB/s",
        2.0,
    ));

    write_disk(&mut hv, &vm.id, small, MIB, &buffer).await;
    drop(hv);
    rows.extend(snapshot_cost(&runtime, &spec, &vm.id, big, small).await);
    rows
}

/// The lab hypervisor endpoint with its data dir in `scratch`.
fn lab_spec(scratch: &Path) -> Arc<EndpointSpec> {
    std::fs::create_dir_all(scratch.join("lab")).expect("endpoint data dir");
    let spec = EndpointSpec::new(
        "bench-lab",
        "lab-hypervisor",
        BTreeMap::new(),
        scratch.join("lab"),
    )
    .expect("endpoint spec");
    Arc::new(EndpointSpec {
        grants: Grants {
            data_dir: true,
            ..Grants::default()
        },
        ..spec
    })
}

/// Median per-call time of `list_hosts` on one open session: samples of 100 calls, so the
/// clock's own cost is amortised, after a warm-up that faults in the instance's memory.
async fn warm_call(runtime: &Runtime, spec: &Arc<EndpointSpec>) -> Duration {
    let mut session = runtime.open(spec.clone()).await.expect("session");
    baselines::per_call(
        async || {
            std::hint::black_box(session.list_hosts().await.expect("list_hosts"));
        },
        2_000,
        1_000,
        100,
    )
    .await
}

/// Median time of opening a fresh session (new Store, instantiate from the pre-instantiated
/// component) and making one call, as the engine does for every job step.
async fn fresh_call(runtime: &Runtime, spec: &Arc<EndpointSpec>) -> Duration {
    baselines::per_call(async || one_fresh_call(runtime, spec).await, 200, 3_000, 1).await
}

/// Opens, calls, and drops a session (the drop is part of a step's cost, so it is timed).
async fn one_fresh_call(runtime: &Runtime, spec: &Arc<EndpointSpec>) {
    let mut session = runtime.open(spec.clone()).await.expect("session");
    std::hint::black_box(session.list_hosts().await.expect("list_hosts"));
}

/// A VM with two 1 GiB virtual disks: one to fill, one to write 1 MiB into.
async fn create_vm(hv: &mut Session) -> VmInfo {
    let disk = |mount: &str| {
        DeviceSpec::NewVirtualDisk(NewDisk {
            capacity: GIB,
            mount_point: mount.into(),
        })
    };
    let spec = VmSpec {
        hardware: Default::default(),
        name: "bench-vm".into(),
        host_id: "esx-a".into(),
        devices: vec![disk("C:"), disk("D:")],
    };
    hv.create_vm(&spec, "bench-create-vm")
        .await
        .expect("create_vm")
}

/// A buffer of non-zero, non-repeating-per-block bytes (so no layer can skip or dedupe it).
fn non_zero_buffer(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 24) as u8 | 1)
        .collect()
}

/// Time to write `total` bytes in `CHUNK`s through the adapter: open_writer, writes, flush.
async fn write_disk(
    hv: &mut Session,
    vm_id: &str,
    device: &str,
    total: u64,
    chunk: &[u8],
) -> Duration {
    let started = Instant::now();
    let writer = hv.open_writer(vm_id, device).await.expect("open_writer");
    for offset in (0..total).step_by(chunk.len()) {
        hv.write(&writer, offset, chunk).await.expect("write");
    }
    hv.flush(&writer).await.expect("flush");
    let elapsed = started.elapsed();
    hv.close_writer(writer).await.expect("close_writer");
    elapsed
}

/// Time to read `total` bytes in `CHUNK`s through the adapter: open_reader, reads.
async fn read_disk(hv: &mut Session, vm_id: &str, device: &str, total: u64) -> Duration {
    let started = Instant::now();
    let reader = hv
        .open_reader(vm_id, device, None)
        .await
        .expect("open_reader");
    for offset in (0..total).step_by(CHUNK as usize) {
        std::hint::black_box(hv.read(&reader, offset, CHUNK).await.expect("read"));
    }
    let elapsed = started.elapsed();
    hv.close_reader(reader).await.expect("close_reader");
    elapsed
}

/// Checks (untimed) that the first and last chunks read back as written, so the figures are
/// for a data path that works.
async fn verify_chunks(hv: &mut Session, vm_id: &str, device: &str, chunk: &[u8]) {
    let reader = hv
        .open_reader(vm_id, device, None)
        .await
        .expect("open_reader");
    for offset in [0, GIB - CHUNK] {
        let bytes = hv.read(&reader, offset, CHUNK).await.expect("read");
        assert!(
            bytes == chunk,
            "chunk at {offset} did not read back as written"
        );
    }
    hv.close_reader(reader).await.expect("close_reader");
}

/// Snapshot time of the 1 GiB-written disk against the 1 MiB-written one: the first
/// snapshot of each (the one that freezes the written data), then the median of 30 more
/// (fresh session and new token each time, as the engine does), alternating disks so both
/// see the same chain length.
async fn snapshot_cost(
    runtime: &Runtime,
    spec: &Arc<EndpointSpec>,
    vm_id: &str,
    big: &str,
    small: &str,
) -> Vec<Row> {
    let first_big = timed_snapshot(runtime, spec, vm_id, big, "first-big").await;
    let first_small = timed_snapshot(runtime, spec, vm_id, small, "first-small").await;
    let (mut bigs, mut smalls) = (Vec::new(), Vec::new());
    for i in 0..30 {
        bigs.push(timed_snapshot(runtime, spec, vm_id, big, &format!("big-{i}")).await);
        smalls.push(timed_snapshot(runtime, spec, vm_id, small, &format!("small-{i}")).await);
    }
    let (big_median, small_median) = (median(&bigs), median(&smalls));
    let ratio = big_median.as_secs_f64() / small_median.as_secs_f64();
    let first_ratio = first_big.as_secs_f64() / first_small.as_secs_f64();
    vec![
        Row::new(
            "snapshot, 1 GiB written (first, 1 sample)",
            format_duration(first_big),
            "",
            None,
        ),
        Row::new(
            "snapshot, 1 MiB written (first, 1 sample)",
            format_duration(first_small),
            "",
            None,
        ),
        Row::new(
            "  ratio of first snapshots",
            format!("{first_ratio:.2}"),
            "<= 1.2",
            Some(first_ratio <= 1.2),
        ),
        Row::new(
            "snapshot, 1 GiB disk (median of 30)",
            format_duration(big_median),
            "",
            None,
        ),
        Row::new(
            "snapshot, 1 MiB disk (median of 30)",
            format_duration(small_median),
            "",
            None,
        ),
        Row::new(
            "  ratio of medians",
            format!("{ratio:.2}"),
            "<= 1.2",
            Some(ratio <= 1.2),
        ),
    ]
}

/// Time of one `snapshot_disks` call on a fresh session (the open is not timed).
async fn timed_snapshot(
    runtime: &Runtime,
    spec: &Arc<EndpointSpec>,
    vm_id: &str,
    device: &str,
    token: &str,
) -> Duration {
    let mut hv = runtime.open(spec.clone()).await.expect("session");
    let devices = [device.to_string()];
    let started = Instant::now();
    let refs = hv
        .snapshot_disks(vm_id, &devices, token)
        .await
        .expect("snapshot_disks");
    let elapsed = started.elapsed();
    assert_eq!(refs.len(), 1);
    elapsed
}

fn throughput_row(what: &str, elapsed: Duration, target: &str, target_gbps: f64) -> Row {
    let gbps = GIB as f64 / elapsed.as_secs_f64() / 1e9;
    Row::new(
        what,
        format!("{gbps:.2} GB/s ({})", format_duration(elapsed)),
        target,
        Some(gbps >= target_gbps),
    )
}

fn median(samples: &[Duration]) -> Duration {
    baselines::percentile(samples, 50)
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 1e-3 {
        format!("{:.3} ms", secs * 1e3)
    } else {
        format!("{:.2} µs", secs * 1e6)
    }
}

fn print_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.what.chars().count())
        .max()
        .unwrap_or(0);
    let figure_width = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "{:<width$}  {:<figure_width$}  {:<10}  met",
        "adapter_calls", "figure", "target"
    );
    println!("{}", "-".repeat(width + figure_width + 20));
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<width$}  {:<figure_width$}  {:<10}  {met}",
            row.what, row.figure, row.target
        );
    }
}
