//! Job-scoped progress. Each job being driven reports its long steps' bytes through a
//! [`JobProgress`], which publishes throttled [`ProgressUpdate`]s on the [`ProgressHub`]
//! under the job's id, where the API's event stream subscribes. Progress is ephemeral, never journalled: a subscriber
//! sees the updates published after it subscribed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

use super::progress::Progress;

/// The least time between two updates of one job (so at most ~5 per second), except the
/// update that completes a piece (`done == total`), which is always published.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Updates a subscriber may fall behind by before it misses some (about 13 s at the
/// throttled rate; event streams drain every 100 ms).
const BACKLOG: usize = 64;

/// One progress report of a piece of work inside a job step: what a `progress` event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressUpdate {
    /// The journal step (sequence number) moving the bytes.
    pub seq: u32,
    /// The step's name, e.g. `copy-device /data`.
    pub step: String,
    /// The piece of work, e.g. `copy /data`.
    pub label: String,
    /// Bytes done so far.
    pub done: u64,
    /// Bytes of the piece.
    pub total: u64,
    /// Bytes per second since the piece started.
    pub rate: u64,
    /// Counts this step's updates from 1; with `seq` it names the update (event id).
    #[serde(skip)]
    pub n: u32,
}

/// Where running jobs publish progress and event streams subscribe, by job id. Only jobs
/// with a subscriber hold an entry, so unwatched jobs cost a map look-up per update.
#[derive(Default)]
pub struct ProgressHub {
    jobs: Mutex<HashMap<String, broadcast::Sender<ProgressUpdate>>>,
}

impl ProgressHub {
    /// Receives the job's updates from now on (the job need not be running yet).
    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<ProgressUpdate> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        // Entries whose subscribers all left go now, so watched-then-finished jobs don't pile up.
        jobs.retain(|_, sender| sender.receiver_count() > 0);
        jobs.entry(job_id.to_string())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    /// The job has ended (its final state is recorded): its subscribers see their channel
    /// close, which wakes event streams to send `end` now rather than at their next poll.
    pub fn close(&self, job_id: &str) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.remove(job_id);
    }

    fn publish(&self, job_id: &str, update: ProgressUpdate) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = jobs.get(job_id)
            && sender.send(update).is_err()
        {
            jobs.remove(job_id);
        }
    }
}

/// The piece of work in progress and what was last published of it.
#[derive(Default)]
struct State {
    seq: u32,
    step: String,
    label: String,
    total: u64,
    done: u64,
    started: Option<Instant>,
    last_sent: Option<Instant>,
    sent_complete: bool,
    n: u32,
}

/// One job's progress sink: knows the step being run, throttles, and publishes.
pub struct JobProgress {
    job_id: String,
    hub: Arc<ProgressHub>,
    state: Mutex<State>,
}

impl JobProgress {
    /// Progress of `job_id`, published on `hub`.
    pub fn new(job_id: &str, hub: Arc<ProgressHub>) -> Self {
        Self {
            job_id: job_id.to_string(),
            hub,
            state: Mutex::new(State::default()),
        }
    }

    /// The journal step `seq` (`name`) starts: later pieces belong to it.
    pub fn enter_step(&self, seq: u32, name: &str) {
        let mut state = self.lock();
        *state = State {
            seq,
            step: name.to_string(),
            ..State::default()
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the current state if `force`d or the interval passed since the last one.
    fn maybe_publish(&self, state: &mut State, force: bool) {
        let Some(started) = state.started else {
            return;
        };
        let now = Instant::now();
        if !force && state.last_sent.is_some_and(|at| now - at < MIN_INTERVAL) {
            return;
        }
        let complete = state.done >= state.total;
        if complete && state.sent_complete {
            return;
        }
        let elapsed = (now - started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            (state.done as f64 / elapsed) as u64
        } else {
            0
        };
        state.n += 1;
        state.last_sent = Some(now);
        state.sent_complete = complete;
        self.hub.publish(
            &self.job_id,
            ProgressUpdate {
                seq: state.seq,
                step: state.step.clone(),
                label: state.label.clone(),
                done: state.done,
                total: state.total,
                rate,
                n: state.n,
            },
        );
    }
}

impl Progress for JobProgress {
    fn start(&self, label: &str, total: u64) {
        let mut state = self.lock();
        state.label = label.to_string();
        state.total = total;
        state.done = 0;
        state.started = Some(Instant::now());
        state.sent_complete = false;
        self.maybe_publish(&mut state, true);
    }

    fn advance(&self, bytes: u64) {
        let mut state = self.lock();
        state.done = state.done.saturating_add(bytes).min(state.total);
        let complete = state.done >= state.total;
        self.maybe_publish(&mut state, complete);
    }

    fn finish(&self) {
        let mut state = self.lock();
        // A piece that reached its total always ends with a `done == total` update; one that
        // stopped short (an error) says nothing more: its step's end tells.
        if state.done >= state.total {
            self.maybe_publish(&mut state, true);
        }
        state.started = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut broadcast::Receiver<ProgressUpdate>) -> Vec<ProgressUpdate> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn throttles_but_always_reports_the_start_and_the_completion() {
        let hub = Arc::new(ProgressHub::default());
        let mut rx = hub.subscribe("job-1");
        let progress = JobProgress::new("job-1", hub.clone());
        progress.enter_step(3, "copy-device C:");
        progress.start("copy C:", 1000);
        for _ in 0..9 {
            progress.advance(100);
        }
        std::thread::sleep(MIN_INTERVAL);
        progress.advance(50);
        progress.advance(50);
        progress.finish();
        let got = drain(&mut rx);
        let done: Vec<u64> = got.iter().map(|u| u.done).collect();
        // The start, one after the interval, the completion; nothing in between.
        assert_eq!(done, vec![0, 950, 1000]);
        assert_eq!(got.iter().map(|u| u.n).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(
            got.iter()
                .all(|u| u.seq == 3 && u.step == "copy-device C:" && u.label == "copy C:")
        );
        assert!(got[2].rate > 0 && got[2].total == 1000);
    }

    #[test]
    fn closing_a_job_ends_its_subscribers_after_what_was_sent() {
        let hub = Arc::new(ProgressHub::default());
        let mut rx = hub.subscribe("job-3");
        let progress = JobProgress::new("job-3", hub.clone());
        progress.enter_step(1, "copy-device C:");
        progress.start("copy C:", 10);
        hub.close("job-3");
        assert_eq!(rx.try_recv().map(|u| u.done), Ok(0));
        assert_eq!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed));
    }

    #[test]
    fn an_empty_piece_completes_once_and_a_failed_one_never() {
        let hub = Arc::new(ProgressHub::default());
        let mut rx = hub.subscribe("job-2");
        let progress = JobProgress::new("job-2", hub.clone());
        progress.enter_step(1, "copy-device D:");
        progress.start("copy D:", 0);
        progress.finish();
        progress.enter_step(2, "restore-device D:");
        progress.start("restore D:", 10);
        progress.advance(4);
        progress.finish();
        let got = drain(&mut rx);
        assert_eq!(
            got.iter()
                .map(|u| (u.seq, u.done, u.total))
                .collect::<Vec<_>>(),
            vec![(1, 0, 0), (2, 0, 10)]
        );
        // Unwatched jobs leave nothing behind.
        drop(rx);
        let _other = hub.subscribe("job-3");
        assert_eq!(hub.jobs.lock().unwrap().len(), 1);
    }
}
