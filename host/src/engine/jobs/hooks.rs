//! Test hooks, documented as such: they let tests crash or fail a job at an exact step.
//!
//! - `TIDEMARK_CRASH_AFTER_STEP=N` aborts the process right after the Nth step of a job is
//!   recorded (as `kill -9` would, but at a known point).
//! - `TIDEMARK_CRASH_IN_STEP=N` aborts the process inside the Nth step: after its body
//!   returned (the adapter made what it made) but before the journal recorded the outcome, the
//!   moment a real `kill -9` can hit and the one `resume` must settle.
//! - `TIDEMARK_FAIL_STEP=N` makes the Nth step of a job fail with an injected error instead
//!   of running.
//! - `TIDEMARK_STEP_DELAY_MS=N` waits N milliseconds before each new step, so tests can act
//!   on a job while it runs (cancel it, detach from it).
//!
//! None is meant for production use; all are read once when the engine starts.

/// The hooks in force.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHooks {
    /// Abort after this step is recorded.
    pub crash_after_step: Option<u32>,
    /// Abort after this step's body returned, before its outcome is recorded.
    pub crash_in_step: Option<u32>,
    /// Fail this step.
    pub fail_step: Option<u32>,
    /// Wait this long before each new step.
    pub step_delay: Option<std::time::Duration>,
}

impl TestHooks {
    /// Reads the hooks from the environment; a malformed value is an error, not ignored.
    pub fn from_env() -> anyhow::Result<Self> {
        let read = |name: &str| -> anyhow::Result<Option<u32>> {
            match std::env::var(name) {
                Ok(raw) => raw
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(Some)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{name} must be a whole number >= 1, not '{raw}'")
                    }),
                Err(_) => Ok(None),
            }
        };
        Ok(Self {
            crash_after_step: read("TIDEMARK_CRASH_AFTER_STEP")?,
            crash_in_step: read("TIDEMARK_CRASH_IN_STEP")?,
            fail_step: read("TIDEMARK_FAIL_STEP")?,
            step_delay: read("TIDEMARK_STEP_DELAY_MS")?
                .map(|ms| std::time::Duration::from_millis(u64::from(ms))),
        })
    }
}
