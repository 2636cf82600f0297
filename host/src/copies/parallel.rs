//! Parallel helpers: the engine reads a device sequentially (one Wasm adapter call at a time)
//! and writes it sequentially on restore, while hashing, compression and encryption need every
//! core. These helpers move the CPU work to worker threads behind bounded queues, so memory
//! stays at roughly `(queue depth + threads) × chunk size` whatever the device size.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::CopyStore;
use super::chunk::Packing;
use super::error::{CopyStoreError, Result};
use super::manifest::{ChunkEntry, Manifest};
use super::session::WriteSession;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Totals of a [`ParallelPut`], for job reports (logical vs stored bytes, dedup ratio).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutStats {
    /// Bytes submitted.
    pub bytes_in: u64,
    /// Bytes newly written to the store.
    pub bytes_stored: u64,
    /// Chunks written.
    pub chunks_new: u64,
    /// Chunks already stored (deduplicated).
    pub chunks_reused: u64,
    /// All-zero chunks (nothing stored).
    pub zero_chunks: u64,
    /// New chunks stored compressed.
    pub chunks_compressed: u64,
    /// New chunks stored as they are because their sample did not compress (no whole
    /// compression was tried).
    pub chunks_skipped_by_estimate: u64,
    /// New chunks compressed in vain: the sample promised more than the chunk saved.
    pub chunks_estimate_missed: u64,
}

struct Job {
    index: u64,
    data: Vec<u8>,
}

struct PutShared {
    session: WriteSession,
    rx: Mutex<Receiver<Job>>,
    results: Mutex<Vec<(u64, ChunkEntry)>>,
    error: Mutex<Option<CopyStoreError>>,
    failed: AtomicBool,
    pool: Mutex<Vec<Vec<u8>>>,
    pool_max: usize,
    chunk_size: usize,
    bytes_in: AtomicU64,
    bytes_stored: AtomicU64,
    chunks_new: AtomicU64,
    chunks_reused: AtomicU64,
    zero_chunks: AtomicU64,
    chunks_compressed: AtomicU64,
    chunks_skipped_by_estimate: AtomicU64,
    chunks_estimate_missed: AtomicU64,
}

impl PutShared {
    fn fail(&self, e: CopyStoreError) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        let mut pool = lock(&self.pool);
        if pool.len() < self.pool_max && buf.capacity() >= self.chunk_size {
            buf.clear();
            pool.push(buf);
        }
    }

    fn work(&self) {
        loop {
            let job = match lock(&self.rx).recv() {
                Ok(j) => j,
                Err(_) => return, // producer finished
            };
            // After a failure keep draining, so a producer blocked on a full queue wakes up.
            if !self.failed.load(Ordering::SeqCst) {
                let r = catch_unwind(AssertUnwindSafe(|| self.session.put_chunk(&job.data)));
                match r {
                    Ok(Ok(o)) => {
                        self.bytes_in
                            .fetch_add(job.data.len() as u64, Ordering::Relaxed);
                        self.bytes_stored
                            .fetch_add(o.stored_bytes, Ordering::Relaxed);
                        let counter = match (o.entry, o.new) {
                            (ChunkEntry::Zero { .. }, _) => &self.zero_chunks,
                            (_, true) => &self.chunks_new,
                            (_, false) => &self.chunks_reused,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if let Some(p) = o.packing {
                            let counter = match p {
                                Packing::Compressed => &self.chunks_compressed,
                                Packing::SkippedByEstimate => &self.chunks_skipped_by_estimate,
                                Packing::NotWorthIt => &self.chunks_estimate_missed,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        lock(&self.results).push((job.index, o.entry));
                    }
                    Ok(Err(e)) => self.fail(e),
                    Err(p) => self.fail(CopyStoreError::Worker {
                        reason: format!("put of chunk {} panicked: {}", job.index, panic_text(&*p)),
                    }),
                }
            }
            self.recycle(job.data);
        }
    }
}

/// Puts chunks on worker threads while one producer thread reads the device.
///
/// `submit` blocks when `queue_depth` chunks are waiting, which bounds memory and paces the
/// reader to the workers. Results come back in index order from `finish`.
pub struct ParallelPut {
    shared: Arc<PutShared>,
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl ParallelPut {
    /// Starts `threads` workers (at least 1) putting chunks through `session`.
    pub fn new(session: &WriteSession, threads: usize, queue_depth: usize) -> ParallelPut {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel(queue_depth.max(1));
        let shared = Arc::new(PutShared {
            session: session.clone(),
            rx: Mutex::new(rx),
            results: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            pool: Mutex::new(Vec::new()),
            pool_max: queue_depth.max(1) + threads + 1,
            chunk_size: session.chunk_size() as usize,
            bytes_in: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            chunks_new: AtomicU64::new(0),
            chunks_reused: AtomicU64::new(0),
            zero_chunks: AtomicU64::new(0),
            chunks_compressed: AtomicU64::new(0),
            chunks_skipped_by_estimate: AtomicU64::new(0),
            chunks_estimate_missed: AtomicU64::new(0),
        });
        let workers = (0..threads)
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("copy-put-{i}"))
                    .spawn(move || s.work())
                    .expect("spawn copy store worker")
            })
            .collect();
        ParallelPut {
            shared,
            tx: Some(tx),
            workers,
        }
    }

    /// An empty buffer with room for one chunk, recycled from finished chunks so a long copy
    /// does not allocate per chunk. Fill it and pass it to [`ParallelPut::submit`].
    pub fn buffer(&self) -> Vec<u8> {
        lock(&self.shared.pool)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.shared.chunk_size))
    }

    /// Queues the chunk of slot `index` (each index at most once). Blocks while the queue is
    /// full. Fails fast once any chunk has failed, so the caller stops reading the device.
    pub fn submit(&self, index: u64, data: Vec<u8>) -> Result<()> {
        if self.shared.failed.load(Ordering::SeqCst) {
            let reason = lock(&self.shared.error)
                .as_ref()
                .map_or_else(|| "a worker failed".to_string(), |e| e.to_string());
            return Err(CopyStoreError::Worker {
                reason: format!("stopped after an earlier chunk failed: {reason}"),
            });
        }
        let tx = self.tx.as_ref().expect("sender lives until finish");
        tx.send(Job { index, data })
            .map_err(|_| CopyStoreError::Worker {
                reason: "all copy workers have exited".to_string(),
            })
    }

    /// Waits for every queued chunk; returns the entries sorted by index, and totals. The
    /// first error of any chunk is returned instead, if there was one.
    pub fn finish(mut self) -> Result<(Vec<(u64, ChunkEntry)>, PutStats)> {
        self.join();
        if let Some(e) = lock(&self.shared.error).take() {
            return Err(e);
        }
        let mut entries = std::mem::take(&mut *lock(&self.shared.results));
        entries.sort_unstable_by_key(|(i, _)| *i);
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(CopyStoreError::InvalidChunk {
                reason: format!("slot {} was submitted twice", w[0].0),
            });
        }
        let s = &self.shared;
        let stats = PutStats {
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bytes_stored: s.bytes_stored.load(Ordering::Relaxed),
            chunks_new: s.chunks_new.load(Ordering::Relaxed),
            chunks_reused: s.chunks_reused.load(Ordering::Relaxed),
            zero_chunks: s.zero_chunks.load(Ordering::Relaxed),
            chunks_compressed: s.chunks_compressed.load(Ordering::Relaxed),
            chunks_skipped_by_estimate: s.chunks_skipped_by_estimate.load(Ordering::Relaxed),
            chunks_estimate_missed: s.chunks_estimate_missed.load(Ordering::Relaxed),
        };
        Ok((entries, stats))
    }

    fn join(&mut self) {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            if let Err(p) = w.join() {
                self.shared.fail(CopyStoreError::Worker {
                    reason: format!("copy worker panicked: {}", panic_text(&*p)),
                });
            }
        }
    }
}

impl Drop for ParallelPut {
    fn drop(&mut self) {
        self.join();
    }
}

/// A run of consecutive device slots, read and yielded as one piece.
struct GetJob {
    offset: u64,
    len: usize,
    slots: Vec<(ChunkEntry, u32)>,
}

/// Device bytes one yielded piece covers at most: large writes for the restore target, few
/// hand-overs between threads, and chunks next to each other in a pack read together.
const RUN_BYTES: usize = 1 << 20;

/// The runs of `manifest` in device order; zero slots are left out (ending a run) with
/// `skip_zero_chunks`.
fn runs_of(manifest: &Manifest, skip_zero_chunks: bool) -> Vec<GetJob> {
    let mut jobs: Vec<GetJob> = Vec::new();
    let mut next_offset = None;
    for (i, e) in manifest.entries().iter().enumerate() {
        if skip_zero_chunks && matches!(e, ChunkEntry::Zero { .. }) {
            next_offset = None;
            continue;
        }
        let (offset, slot_len) = (
            manifest.chunk_offset(i as u64),
            manifest.chunk_len(i as u64),
        );
        match jobs.last_mut() {
            Some(run)
                if next_offset == Some(offset) && run.len + slot_len as usize <= RUN_BYTES =>
            {
                run.len += slot_len as usize;
                run.slots.push((*e, slot_len));
            }
            _ => jobs.push(GetJob {
                offset,
                len: slot_len as usize,
                slots: vec![(*e, slot_len)],
            }),
        }
        next_offset = Some(offset + u64::from(slot_len));
    }
    jobs
}

struct GetState {
    next_job: usize,
    consumed: usize,
    ready: HashMap<usize, Result<Vec<u8>>>,
    live_workers: usize,
    cancelled: bool,
}

struct GetShared {
    store: CopyStore,
    jobs: Vec<GetJob>,
    prefetch: usize,
    state: Mutex<GetState>,
    work_cv: Condvar,
    ready_cv: Condvar,
}

/// Counts a reader as gone however it exits, so the consumer never waits for a dead reader.
struct LiveGuard<'a>(&'a GetShared);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).live_workers -= 1;
        self.0.ready_cv.notify_all();
    }
}

impl GetShared {
    fn work(&self) {
        let _live = LiveGuard(self);
        loop {
            let j = {
                let mut st = lock(&self.state);
                loop {
                    if st.cancelled || st.next_job >= self.jobs.len() {
                        return;
                    }
                    if st.next_job < st.consumed + self.prefetch {
                        break;
                    }
                    st = self.work_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                st.next_job += 1;
                st.next_job - 1
            };
            let job = &self.jobs[j];
            let r = catch_unwind(AssertUnwindSafe(|| {
                // Zeroed: zero slots and the tail of a chunk shorter than its slot (the
                // device grew) stay zeros.
                let mut out = vec![0u8; job.len];
                self.store.read_run(&job.slots, &mut out).map(|()| out)
            }))
            .unwrap_or_else(|p| {
                Err(CopyStoreError::Worker {
                    reason: format!(
                        "read of the chunks at offset {} panicked: {}",
                        job.offset,
                        panic_text(&*p)
                    ),
                })
            });
            lock(&self.state).ready.insert(j, r);
            self.ready_cv.notify_all();
        }
    }
}

/// Reads a copy back in device order, with chunks fetched and verified ahead on worker
/// threads (about `prefetch` chunks ahead of the consumer, at least one run per worker and
/// one more, which bounds memory).
///
/// Yields `(device offset, bytes)` in runs of consecutive slots of up to 1 MiB; every chunk
/// is verified, and the first damaged chunk ends the iteration with its `Damaged` error.
pub struct ParallelGet {
    shared: Arc<GetShared>,
    workers: Vec<JoinHandle<()>>,
    next: usize,
    done: bool,
}

impl ParallelGet {
    /// Starts reading `manifest`. With `skip_zero_chunks`, all-zero slots are not yielded
    /// (for targets known to read as zeros, such as a freshly created device).
    pub fn new(
        store: &CopyStore,
        manifest: &Manifest,
        threads: usize,
        prefetch: usize,
        skip_zero_chunks: bool,
    ) -> ParallelGet {
        let threads = threads.max(1);
        let jobs = runs_of(manifest, skip_zero_chunks);
        let runs_ahead = (prefetch * manifest.chunk_size() as usize).div_ceil(RUN_BYTES);
        let shared = Arc::new(GetShared {
            store: store.clone(),
            jobs,
            prefetch: runs_ahead.max(threads + 1),
            state: Mutex::new(GetState {
                next_job: 0,
                consumed: 0,
                ready: HashMap::new(),
                live_workers: threads,
                cancelled: false,
            }),
            work_cv: Condvar::new(),
            ready_cv: Condvar::new(),
        });
        let workers = (0..threads)
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("copy-get-{i}"))
                    .spawn(move || s.work())
                    .expect("spawn copy store worker")
            })
            .collect();
        ParallelGet {
            shared,
            workers,
            next: 0,
            done: false,
        }
    }

    fn stop(&mut self) {
        lock(&self.shared.state).cancelled = true;
        self.shared.work_cv.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Iterator for ParallelGet {
    type Item = Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.shared.jobs.len() {
            return None;
        }
        let i = self.next;
        let r = {
            let mut st = lock(&self.shared.state);
            loop {
                if let Some(r) = st.ready.remove(&i) {
                    st.consumed = i + 1;
                    break r;
                }
                if st.live_workers == 0 {
                    break Err(CopyStoreError::Worker {
                        reason: "all copy readers have exited".to_string(),
                    });
                }
                st = self
                    .shared
                    .ready_cv
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        self.shared.work_cv.notify_all();
        self.next += 1;
        match r {
            Ok(data) => Some(Ok((self.shared.jobs[i].offset, data))),
            Err(e) => {
                self.done = true;
                self.stop();
                Some(Err(e))
            }
        }
    }
}

impl Drop for ParallelGet {
    fn drop(&mut self) {
        self.stop();
    }
}
