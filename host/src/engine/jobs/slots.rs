//! The bound on jobs the engine runs at once: past it, a start is refused as busy (the API
//! answers 429 with `Retry-After`) instead of starting more work than the machine can carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many jobs started over the API may run at once unless configured otherwise. High
/// enough that a burst of 100 snapshot jobs (the benchmark) is accepted whole; the bound
/// exists so that a runaway client meets 429 rather than exhausting the host.
pub const DEFAULT_MAX_RUNNING_JOBS: usize = 256;

/// Jobs this server is running now; each holds a [`JobSlot`] for the life of its task.
#[derive(Debug, Default, Clone)]
pub struct RunningJobs(Arc<AtomicUsize>);

/// One running job's place under the bound; dropping it frees the place.
#[derive(Debug)]
pub struct JobSlot(Arc<AtomicUsize>);

impl RunningJobs {
    /// A slot if fewer than `max` jobs are running, `None` when the bound is reached.
    pub fn try_start(&self, max: usize) -> Option<JobSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| JobSlot(self.0.clone()))
    }

    /// How many jobs hold a slot now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let running = RunningJobs::default();
        let a = running.try_start(2).expect("first slot");
        let b = running.try_start(2).expect("second slot");
        assert!(
            running.try_start(2).is_none(),
            "a third job passed a bound of 2"
        );
        assert_eq!(running.count(), 2);
        drop(a);
        let c = running.try_start(2).expect("a freed slot is reusable");
        drop((b, c));
        assert_eq!(running.count(), 0);
        assert!(
            running.try_start(0).is_none(),
            "a bound of 0 admits nothing"
        );
    }
}
