//! Moving device bytes between adapters and the copy store: a device copy (incremental
//! when the adapter can say what changed) and a device restore.
//!
//! Adapters are called from async code one request at a time; the CPU work (hashing,
//! compression, encryption) runs on the copy store's worker threads, fed through a bounded
//! queue so memory stays flat however large the device.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::copy_label::{CopyLabel, PointFacts};
use super::device_io::{self, DeviceTarget, IO_CHUNK};
use super::ports::{CallError, Endpoints, ReaderHandle};
use super::progress::Progress;
use crate::catalog::{Catalog, CopyRefRecord, MAPPED_LUN, PointRecord, SnapshotRefRecord};
use crate::copies::{CopyStore, Manifest, ParallelGet, ParallelPut, default_threads};
use crate::model::Extent;

/// The name copy refs give the embedded copy store (room for more stores later).
pub const STORE_NAME: &str = "local";

/// Chunks queued between the adapter and the workers: bounds memory (16 × 64 KiB).
const QUEUE_DEPTH: usize = 16;

/// Reader sessions a copy keeps reading at once. One read at a time leaves a disk idle
/// between requests: a cold device read at queue depth 1 ran at ~120 MB/s here, with four
/// in flight at several times that (the scattered reads of an incremental gain the most).
const READERS: usize = 4;

/// What an incremental copy starts from: the device's previous copy and, if it still
/// exists, the snapshot it was read from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Base {
    /// Manifest id of the previous copy.
    pub copy: String,
    /// The snapshot that copy was read from; `None` once expired.
    pub snapshot: Option<String>,
}

/// One device to copy.
#[derive(Debug, Clone)]
pub struct CopySource {
    /// Where the proxy reads it.
    pub reader: DeviceTarget,
    /// The point's snapshot of the device (asked what changed since the base).
    pub snapshot: SnapshotRefRecord,
    /// The VM, point and job the copy belongs to (its manifest's label says so).
    pub facts: PointFacts,
    /// The previous copy to build on.
    pub base: Option<Base>,
    /// Manifest id to write.
    pub copy_id: String,
}

/// What a device copy did (recorded as the step's output).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopiedDevice {
    pub copy: String,
    /// `incremental`, or `full` (no usable base: everything read, unchanged chunks dedup).
    pub how: String,
    pub size: u64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    pub stored_total: u64,
    /// When the manifest was committed (ms since the epoch; its label says the same); 0 in
    /// journals written before it was recorded.
    #[serde(default)]
    pub copied_at: i64,
    /// How the new chunks were sealed: the hit rate of the compressibility estimate.
    #[serde(default)]
    pub compression: CompressionCounts,
}

/// New chunks of a copy by how they were sealed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompressionCounts {
    /// Stored compressed.
    pub compressed: u64,
    /// Stored as they are without a try: their sample did not compress.
    pub skipped_by_estimate: u64,
    /// Compressed in vain (the sample promised a saving the chunk did not give).
    pub estimate_missed: u64,
}

/// What a device restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restored {
    pub bytes_written: u64,
}

/// The newest other copy of the same device of the same VM, to copy incrementally from.
pub fn incremental_base(
    catalog: &Catalog,
    vm_name: &str,
    point: &PointRecord,
    device_ref: &str,
) -> anyhow::Result<Option<Base>> {
    let mut best: Option<(&PointRecord, &CopyRefRecord)> = None;
    let points = catalog.points(vm_name)?;
    for other in points.iter().filter(|p| p.id != point.id) {
        if let Some(copy) = other.copy_of(device_ref)
            && best.is_none_or(|(_, b)| copy.created_at >= b.created_at)
        {
            best = Some((other, copy));
        }
    }
    Ok(best.map(|(p, c)| Base {
        copy: c.copy.clone(),
        snapshot: p
            .snapshots
            .iter()
            .find(|s| s.device_ref == device_ref && s.expired_at.is_none())
            .map(|s| s.snapshot.clone()),
    }))
}

/// Chunk indexes covering `extents` (clipped to the device).
fn chunks_covering(extents: &[Extent], chunk: u64, size: u64) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for e in extents {
        let end = e.offset.saturating_add(e.length).min(size);
        if e.length == 0 || e.offset >= end {
            continue;
        }
        out.extend(e.offset / chunk..=(end - 1) / chunk);
    }
    out
}

/// Runs of consecutive chunk indexes, each at most `max` chunks long (one read call each).
fn runs(indexes: &BTreeSet<u64>, max: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in indexes {
        match out.last_mut() {
            Some((start, len)) if *start + *len == i && *len < max => *len += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// What changed on the production side between the base snapshot and this point's.
async fn changed_since(
    endpoints: &dyn Endpoints,
    source: &CopySource,
    since: &str,
) -> anyhow::Result<Option<Vec<Extent>>> {
    let s = &source.snapshot;
    let (mut session, reader) = if s.device_kind == MAPPED_LUN {
        let wwn = s.wwn.as_deref().unwrap_or_default();
        let mut sa = endpoints.storage_array(&s.endpoint).await?;
        let r = sa.open_reader(wwn, Some(&s.snapshot)).await?;
        (sa as Box<dyn super::ports::DataPath>, r)
    } else {
        let mut hv = endpoints.hypervisor(&s.endpoint).await?;
        let r = hv
            .open_reader(&source.facts.vm.vm_ref, &s.device_ref, Some(&s.snapshot))
            .await?;
        (hv as Box<dyn super::ports::DataPath>, r)
    };
    let answer = session.changed_extents(&reader, since).await;
    session.close_reader(reader).await?;
    match answer {
        Ok(extents) => Ok(Some(extents)),
        Err(e) if fallback_ok(&e) => {
            tracing::info!(
                "{}: cannot copy incrementally ({e}); reading everything",
                s.mount_point
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Errors after which a full read (with dedup) is the right answer.
fn fallback_ok(e: &CallError) -> bool {
    e.is_not_found() || e.is_unsupported()
}

/// Copies one device into the store: reads only the chunks that changed since the base
/// copy (or, without a usable base, every allocated chunk) and commits a manifest that is
/// a full view of the device.
pub async fn copy_device(
    endpoints: &dyn Endpoints,
    store: &Arc<CopyStore>,
    progress: &dyn Progress,
    source: &CopySource,
) -> anyhow::Result<CopiedDevice> {
    let (mut session, reader) = device_io::open_reader(endpoints, &source.reader).await?;
    let size = session.reader_size(&reader).await?;
    let chunk = u64::from(store.chunk_size());

    let writer = store
        .begin_write()
        .with_context(|| format!("copying {}", source.snapshot.mount_point))?;
    // The base manifest is read under the write lock, so gc cannot free its chunks now.
    let base_manifest = match &source.base {
        Some(base) => match writer.read_manifest(&base.copy) {
            Ok(m) if m.device_size() == size && u64::from(m.chunk_size()) == chunk => Some(m),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(
                    "previous copy {} unusable ({e}); copying in full",
                    base.copy
                );
                None
            }
        },
        None => None,
    };
    let changed = match (
        &base_manifest,
        source.base.as_ref().and_then(|b| b.snapshot.as_deref()),
    ) {
        (Some(_), Some(since)) => changed_since(endpoints, source, since).await?,
        _ => None,
    };
    let (mut manifest, todo, how) = match (base_manifest, changed) {
        (Some(base), Some(extents)) => {
            (base, chunks_covering(&extents, chunk, size), "incremental")
        }
        _ => {
            let allocated = match session.allocated_extents(&reader).await {
                Ok(extents) => extents,
                Err(e) if e.is_unsupported() => vec![Extent {
                    offset: 0,
                    length: size,
                }],
                Err(e) => return Err(e.into()),
            };
            (
                Manifest::new(size, store.chunk_size(), serde_json::Value::Null)?,
                chunks_covering(&allocated, chunk, size),
                "full",
            )
        }
    };
    let total: u64 = todo.iter().map(|i| chunk.min(size - i * chunk)).sum();
    progress.start(&format!("copy {}", source.snapshot.mount_point), total);

    let put = ParallelPut::new(&writer, default_threads(), QUEUE_DEPTH);
    let per_read = (IO_CHUNK as u64 / chunk).max(1);
    let runs = runs(&todo, per_read);
    // More sessions on the same device, so several reads are in flight; each takes the next
    // run when its last one is handed to the workers.
    let mut readers = vec![(session, reader)];
    for _ in 1..READERS.min(runs.len()) {
        readers.push(device_io::open_reader(endpoints, &source.reader).await?);
    }
    let next_run = AtomicUsize::new(0);
    let bytes_read = AtomicU64::new(0);
    // Adapter file I/O blocks the thread that calls (cheaper than a hop to the blocking pool),
    // so the readers run on threads of their own to have their reads in flight together.
    let handle = tokio::runtime::Handle::current();
    let read_one = |session: &mut Box<dyn super::ports::DataPath>, reader: &ReaderHandle| {
        handle.block_on(async {
            while let Some(&(first, count)) = runs.get(next_run.fetch_add(1, Ordering::Relaxed)) {
                let offset = first * chunk;
                let length = (count * chunk).min(size - offset);
                let data = device_io::read_exact(session.as_mut(), reader, offset, length).await?;
                bytes_read.fetch_add(length, Ordering::Relaxed);
                for (k, piece) in data.chunks(chunk as usize).enumerate() {
                    let mut buffer = put.buffer();
                    buffer.extend_from_slice(piece);
                    // A thread of its own: blocking while the queue is full is fine here.
                    put.submit(first + k as u64, buffer)?;
                }
                progress.advance(length);
            }
            anyhow::Ok(())
        })
    };
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = readers
                .iter_mut()
                .map(|(session, reader)| scope.spawn(|| read_one(session, reader)))
                .collect();
            // Every thread is joined (the scope would anyway); the first error is the answer.
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(anyhow!("a device reader thread panicked")))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<anyhow::Result<()>>()
        })
    })?;
    for (mut session, reader) in readers {
        session.close_reader(reader).await?;
    }
    let bytes_read = bytes_read.into_inner();
    let (entries, stats) = tokio::task::block_in_place(|| put.finish())?;
    manifest.apply(&entries)?;
    let copied_at = crate::catalog::now_ms();
    manifest.label = CopyLabel::new(
        &source.facts,
        &source.snapshot,
        &source.copy_id,
        (bytes_read, stats.bytes_stored),
        copied_at,
    )
    .to_value();
    tokio::task::block_in_place(|| writer.commit(&source.copy_id, &manifest))?;
    drop(writer);
    progress.finish();
    Ok(CopiedDevice {
        copy: source.copy_id.clone(),
        how: how.to_string(),
        size,
        bytes_read,
        bytes_stored: stats.bytes_stored,
        stored_total: manifest.stats().stored_bytes,
        copied_at,
        compression: CompressionCounts {
            compressed: stats.chunks_compressed,
            skipped_by_estimate: stats.chunks_skipped_by_estimate,
            estimate_missed: stats.chunks_estimate_missed,
        },
    })
}

/// Reads a copy's manifest (authenticating it); returns the device size.
pub fn check_copy(store: &CopyStore, copy: &CopyRefRecord) -> anyhow::Result<u64> {
    let manifest = store
        .read_manifest(&copy.copy)
        .with_context(|| format!("copy {} of device {}", copy.copy, copy.device_ref))?;
    if manifest.device_size() != copy.size {
        bail!(
            "copy {} holds {} bytes but the catalog says {}",
            copy.copy,
            manifest.device_size(),
            copy.size
        );
    }
    Ok(manifest.device_size())
}

/// Writes a copy onto a device. On a `fresh` device (new, all zeros) zero chunks are
/// skipped. Every chunk is authenticated before it is written; a damaged one stops the
/// restore with an error naming it.
pub async fn restore_device(
    endpoints: &dyn Endpoints,
    store: &Arc<CopyStore>,
    progress: &dyn Progress,
    copy: &CopyRefRecord,
    target: &DeviceTarget,
    fresh: bool,
) -> anyhow::Result<Restored> {
    let manifest = store
        .read_manifest(&copy.copy)
        .with_context(|| format!("restoring copy {}", copy.copy))?;
    let (mut session, writer) = device_io::open_writer(endpoints, target).await?;
    let capacity = session.writer_size(&writer).await?;
    if capacity < manifest.device_size() {
        bail!(
            "the target device holds {capacity} bytes, less than the copy's {}",
            manifest.device_size()
        );
    }
    progress.start(
        &format!("restore {}", copy.device_ref),
        manifest.device_size(),
    );
    let mut written = 0u64;
    // Progress counts the device covered so far, zero chunks skipped on a fresh device
    // included, so a finished restore reports `done == total`.
    let mut covered = 0u64;
    let mut report = |end: u64| {
        progress.advance(end.saturating_sub(covered));
        covered = covered.max(end);
    };
    // Runs of consecutive chunks (up to 1 MiB), each written as it comes: large, aligned
    // writes, and zero chunks of a fresh device never written.
    let mut runs = ParallelGet::new(store, &manifest, default_threads(), QUEUE_DEPTH, fresh);
    loop {
        let next = tokio::task::block_in_place(|| runs.next());
        let Some(item) = next else { break };
        let (offset, data) = item.map_err(|e| anyhow!("restoring copy {}: {e}", copy.copy))?;
        session.write(&writer, offset, &data).await?;
        written += data.len() as u64;
        report(offset + data.len() as u64);
    }
    session.flush(&writer).await?;
    session.close_writer(writer).await?;
    report(manifest.device_size());
    progress.finish();
    Ok(Restored {
        bytes_written: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_cover_and_runs() {
        let e = |offset, length| Extent { offset, length };
        let set = chunks_covering(
            &[e(0, 1), e(4095, 2), e(10_000, 0), e(20_000, 10_000)],
            4096,
            24_576,
        );
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![0, 1, 4, 5]);
        let idx: BTreeSet<u64> = [0, 1, 2, 5, 6, 9].into_iter().collect();
        assert_eq!(runs(&idx, 2), vec![(0, 2), (2, 1), (5, 2), (9, 1)]);
    }
}
