//! Fan-out: snapshot 1,000 lab VMs (one virtual disk + one physical LUN each) through the
//! engine, as many jobs at once as the machine takes. Target: ≤ 10 s on 2 cores.
//! Prints its figures; run with `cargo bench -p tidemark --bench fanout`.

use std::time::Instant;

use futures::StreamExt;
use tidemark::catalog::JobState;
use tidemark::cli::{Api, CreateVm, lab};
use tidemark::data_dir::DataDir;
use tidemark::model::MappingMode;

/// VMs to snapshot.
const VMS: usize = 1000;
/// Jobs in flight at once.
const CONCURRENCY: usize = 16;

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(()); // `cargo test` runs bench targets without --bench: nothing to do.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let ctx = std::sync::Arc::new(DataDir::open(dir.path()).await?);
        let (url, token) = tidemark::api::serve_private(ctx.clone()).await?;
        let api = Api::new(&url, &token, None)?;
        lab::init(&ctx, &api).await?;
        let setup = Instant::now();
        for i in 0..VMS {
            let args = CreateVm {
                name: format!("vm{i:04}"),
                host: "esx-a".into(),
                disks: vec![("C:".into(), 64 << 20)],
                luns: vec![("D:".into(), 64 << 20, MappingMode::Physical)],
                hypervisor: lab::LAB_HYPERVISOR.into(),
                array: lab::LAB_ARRAY.into(),
                cpus: None,
                memory: None,
                nics: Vec::new(),
                firmware: None,
            };
            lab::create_vm(&ctx, &api, &args).await?;
        }
        println!("setup: {VMS} VMs created in {:.2} s", setup.elapsed().as_secs_f64());
        let started = Instant::now();
        let results: Vec<_> = futures::stream::iter(0..VMS)
            .map(|i| {
                let engine = &ctx.engine;
                async move {
                    let vm = format!("vm{i:04}");
                    engine.run(&tidemark::engine::JobRequest::Snapshot(tidemark::engine::workflows::snapshot::SnapshotArgs { vm })).await
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let succeeded = results.iter().filter(|r| r.as_ref().is_ok_and(|j| j.state == JobState::Succeeded)).count();
        println!("fan-out: {succeeded}/{VMS} snapshot jobs succeeded in {elapsed:.2} s ({:.1} jobs/s, {CONCURRENCY} in flight); target <= 10 s", VMS as f64 / elapsed);
        anyhow::ensure!(succeeded == VMS, "some snapshot jobs failed: {:?}", results.iter().find(|r| r.is_err()));
        anyhow::Ok(())
    })
}
