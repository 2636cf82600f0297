//! Test hooks, documented as such; not meant for production use, read once per process.
//!
//! - `TIDEMARK_CRASH_IN_STORE_CREATE=N` aborts the process at the Nth durable-write point of
//!   copy-store creation (as `kill -9` would, but at a known point), so a test can stop
//!   creation at every point and show the next copy still works. The create-only
//!   publications of the key file and the config each pass three points (temporary file
//!   written, linked, temporary name removed).
//! - `TIDEMARK_CRASH_AFTER_PACKS=N` aborts the process right after the Nth pack file of a
//!   write session was put, before any index names it: a crash in the middle of a copy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Arms the store-creation hook.
pub(crate) const CRASH_ENV: &str = "TIDEMARK_CRASH_IN_STORE_CREATE";
/// Arms the pack hook.
pub(crate) const PACKS_ENV: &str = "TIDEMARK_CRASH_AFTER_PACKS";

/// One hook: the point at which it aborts, and how many points have passed.
struct Hook {
    env: &'static str,
    armed: OnceLock<Option<u32>>,
    passed: AtomicU32,
}

impl Hook {
    const fn new(env: &'static str) -> Hook {
        Hook {
            env,
            armed: OnceLock::new(),
            passed: AtomicU32::new(0),
        }
    }

    fn point(&self, what: &str) {
        let armed = self.armed.get_or_init(|| {
            let raw = std::env::var(self.env).ok()?;
            match raw.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Some(n),
                // A test that mistypes the hook must not silently test nothing.
                _ => panic!("{} must be a whole number >= 1, not {raw:?}", self.env),
            }
        });
        let Some(at) = *armed else { return };
        if self.passed.fetch_add(1, Ordering::SeqCst) + 1 == at {
            eprintln!("{}={at}: aborting {what}", self.env);
            std::process::abort();
        }
    }
}

static CREATE: Hook = Hook::new(CRASH_ENV);
static PACKS: Hook = Hook::new(PACKS_ENV);

/// Marks one point of store creation, just after `what` became durable.
pub(crate) fn point(what: &str) {
    CREATE.point(&format!("copy-store creation after {what}"));
}

/// Marks a pack put by a write session.
pub(crate) fn pack_written() {
    PACKS.point("a copy after writing a pack file");
}
