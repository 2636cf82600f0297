//! The store-wide reader/writer lock that keeps gc from freeing chunks a running copy relies on.
//!
//! Copy jobs hold it *shared* for the whole write session (they deduplicate against chunks that
//! no manifest references yet); gc holds it *exclusive*. The local backend implements it with
//! `flock(2)` on a `lock` file, which the kernel releases when a process dies, so a crashed
//! job never leaves the store locked.

use std::io;
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, File, OpenOptions};
use rustix::fs::FlockOperation;

/// How the store lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Held by write sessions: many at once.
    Shared,
    /// Held by gc: alone.
    Exclusive,
}

/// How long to wait for the store lock; gc callers choose, so a CLI can say "waiting for
/// running copies" or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with `Busy` if the lock is held.
    NoWait,
    /// Wait at most this long.
    Timeout(Duration),
    /// Wait until the lock is free.
    Forever,
}

/// A held store lock; dropping it releases the lock. Opaque so each backend can hold whatever
/// it needs (an flock'd file, a lease object).
pub struct LockGuard {
    _held: Box<dyn Send + Sync>,
}

impl LockGuard {
    /// Wraps a backend-specific lock holder whose drop releases the lock.
    pub fn new(held: impl Send + Sync + 'static) -> LockGuard {
        LockGuard {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Takes an flock on `name` inside `dir`. Each call opens its own file description, so two
/// sessions in one process lock independently (as two processes would).
pub fn flock_file(
    dir: &Dir,
    name: &str,
    mode: LockMode,
    wait: LockWait,
) -> io::Result<Option<File>> {
    let file = dir.open_with(name, OpenOptions::new().read(true).write(true).create(true))?;
    let (blocking, nonblocking) = match mode {
        LockMode::Shared => (
            FlockOperation::LockShared,
            FlockOperation::NonBlockingLockShared,
        ),
        LockMode::Exclusive => (
            FlockOperation::LockExclusive,
            FlockOperation::NonBlockingLockExclusive,
        ),
    };
    let deadline = match wait {
        LockWait::Forever => loop {
            match rustix::fs::flock(&file, blocking) {
                Ok(()) => return Ok(Some(file)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        },
        LockWait::NoWait => Instant::now(),
        LockWait::Timeout(d) => Instant::now() + d,
    };
    let mut pause = Duration::from_millis(5);
    loop {
        match rustix::fs::flock(&file, nonblocking) {
            Ok(()) => return Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
