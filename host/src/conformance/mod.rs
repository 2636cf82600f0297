//! The conformance suite: behavioural checks any hypervisor or storage-array adapter must
//! pass, driven through the engine's ports (so it tests what the engine will see, whatever
//! contract version the adapter was built against).
//!
//! Each check is one claim in one sentence with an id and tags (`token`, `isolation`, …) so
//! a deliberately broken adapter can be shown to fail exactly the checks of its flaw. Every
//! check builds its own fixtures, named with the run's prefix; after each check the suite
//! sweeps whatever carries that prefix, and the `cleanup.*` checks at the end compare what
//! the system under test holds with what it held before the run.
//!
//! Areas, one file each: `basics` (create, list, data), `tokens`, `lookups` (unknown ids),
//! `garbage` (malformed arguments), `snapshots` (isolation), `revert_clone`, `group` (one
//! instant under a concurrent writer), `extents`, `refusals` (exposure, delete, physical
//! mapping), `past_end`, `concurrency`, `cleanup`; the DNS and machine worlds have one file
//! each (`dns`, `machine`).

mod basics;
mod cleanup;
mod concurrency;
mod cx;
mod dns;
mod extents;
mod garbage;
mod group;
mod lookups;
mod machine;
mod past_end;
mod refusals;
mod report;
mod revert_clone;
mod snapshots;
pub mod subject;
mod support;
mod tokens;

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

pub use crate::model::AdapterKind;
pub use cx::Cx;
pub use report::{Outcome, Report, junit_xml};
pub use subject::{Access, ArraySource, Subject, SubjectError};

/// What a check is about; a broken adapter fails exactly the checks carrying its flaw's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tag {
    /// Idempotency tokens of creating calls.
    Token,
    /// Snapshots keep their instant while the device changes.
    Isolation,
    /// Unknown ids answer `not-found`.
    Lookup,
    /// Malformed arguments answer `invalid` and never trap.
    Garbage,
    /// Creating, listing, describing.
    Basic,
    /// Bytes written read back.
    Data,
    /// Revert and clone.
    Revert,
    /// Several devices snapshotted at one instant.
    Group,
    /// Allocated and changed extents.
    Extents,
    /// Calls that must be refused.
    Refusal,
    /// Reads past the end of a device.
    PastEnd,
    /// Two sessions at once.
    Concurrency,
    /// The suite leaves nothing behind.
    Cleanup,
}

impl Tag {
    /// The tag's name in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Token => "token",
            Tag::Isolation => "isolation",
            Tag::Lookup => "lookup",
            Tag::Garbage => "garbage",
            Tag::Basic => "basic",
            Tag::Data => "data",
            Tag::Revert => "revert",
            Tag::Group => "group",
            Tag::Extents => "extents",
            Tag::Refusal => "refusal",
            Tag::PastEnd => "past-end",
            Tag::Concurrency => "concurrency",
            Tag::Cleanup => "cleanup",
        }
    }
}

/// What a check needs beyond the adapter under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing else.
    Nothing,
    /// A storage array for LUNs (a hypervisor's mapped-LUN checks; `--array`).
    Array,
}

/// Why a check did not pass.
#[derive(Debug)]
pub enum Why {
    /// The claim does not hold; what was seen.
    Fail(String),
    /// The check could not run (an optional call answered `unsupported`, or something it
    /// needs is missing).
    Skip(String),
}

/// What a check body answers.
pub type Res = Result<(), Why>;

impl From<crate::engine::ports::CallError> for Why {
    /// `unsupported` from a call the check relies on skips it; anything else fails it.
    fn from(e: crate::engine::ports::CallError) -> Self {
        if e.is_unsupported() {
            Why::Skip(format!("unsupported: {e}"))
        } else {
            Why::Fail(e.to_string())
        }
    }
}

impl From<anyhow::Error> for Why {
    fn from(e: anyhow::Error) -> Self {
        Why::Fail(format!("{e:#}"))
    }
}

/// A check's body.
pub type Body = for<'a> fn(&'a mut Cx) -> BoxFuture<'a, Res>;

/// One behavioural claim about an adapter.
pub struct Check {
    /// Stable id, `<kind letter>.<area>.<what>`.
    pub id: &'static str,
    /// The kind of adapter it applies to.
    pub kind: AdapterKind,
    pub tags: &'static [Tag],
    /// The claim, one sentence.
    pub claim: &'static str,
    pub needs: Needs,
    pub run: Body,
}

impl Check {
    /// Whether the check carries `tag`.
    pub fn has(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }
}

/// Fails the check with a message unless the condition holds.
macro_rules! claim {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::Why::Fail(format!($($msg)+)));
        }
    };
}
pub(crate) use claim;

/// Declares a check: `check!(ID, Kind, [Tags], Needs, "claim", |cx| { body })`.
macro_rules! check {
    ($id:literal, $kind:ident, [$($tag:ident),+], $needs:ident, $claim:literal, |$cx:ident| $body:block) => {
        $crate::conformance::Check {
            id: $id,
            kind: $crate::model::AdapterKind::$kind,
            tags: &[$($crate::conformance::Tag::$tag),+],
            claim: $claim,
            needs: $crate::conformance::Needs::$needs,
            run: {
                fn body<'a>(
                    $cx: &'a mut $crate::conformance::Cx,
                ) -> futures::future::BoxFuture<'a, $crate::conformance::Res> {
                    Box::pin(async move $body)
                }
                body
            },
        }
    };
}
pub(crate) use check;

/// Every check, in the order they run (`cleanup` last).
pub fn all_checks() -> Vec<&'static Check> {
    [
        basics::CHECKS,
        tokens::CHECKS,
        lookups::CHECKS,
        garbage::CHECKS,
        snapshots::CHECKS,
        revert_clone::CHECKS,
        group::CHECKS,
        extents::CHECKS,
        refusals::CHECKS,
        past_end::CHECKS,
        concurrency::CHECKS,
        dns::CHECKS,
        machine::CHECKS,
        cleanup::CHECKS,
        dns::CLEANUP,
        machine::CLEANUP,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The checks for one kind of adapter.
pub fn checks_for(kind: AdapterKind) -> Vec<&'static Check> {
    all_checks()
        .into_iter()
        .filter(|c| c.kind == kind)
        .collect()
}

/// Runs every check for the subject's kind; `on_result` sees each result as it comes.
pub async fn run(subject: &Subject, on_result: &mut dyn FnMut(&Outcome)) -> Report {
    let started = Instant::now();
    let mut cx = Cx::new(subject);
    let before = cleanup::inventory(&mut cx).await;
    cx.before = Some(before);
    let mut outcomes = Vec::new();
    for check in checks_for(subject.kind) {
        let outcome = run_one(&mut cx, check).await;
        on_result(&outcome);
        outcomes.push(outcome);
    }
    Report::new(subject, outcomes, cx.left_behind.clone(), started.elapsed())
}

/// Runs one check (with the sweep after it), or skips it when it needs an array there is not.
async fn run_one(cx: &mut Cx, check: &'static Check) -> Outcome {
    if check.needs == Needs::Array && cx.array_side().is_none() {
        return Outcome::new(
            check,
            Err(Why::Skip(
                "needs a storage array for mapped LUNs: give --array FILE.wasm|ENDPOINT".into(),
            )),
            Duration::ZERO,
        );
    }
    cx.begin(check.id);
    let started = Instant::now();
    let result = (check.run)(cx).await;
    let elapsed = started.elapsed();
    if !check.has(Tag::Cleanup) {
        cleanup::sweep(cx).await;
    }
    Outcome::new(check, result, elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_claims_are_sentences_and_there_are_enough() {
        let checks = all_checks();
        assert!(checks.len() >= 80, "only {} checks", checks.len());
        let mut ids: Vec<_> = checks.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate check ids");
        let mut claims: Vec<_> = checks.iter().map(|c| c.claim).collect();
        claims.sort_unstable();
        claims.dedup();
        assert_eq!(before, claims.len(), "two checks make the same claim");
        for c in &checks {
            assert!(c.claim.ends_with('.'), "{}: claim is not a sentence", c.id);
            let letter = match c.kind {
                AdapterKind::Hypervisor => "h.",
                AdapterKind::StorageArray => "a.",
                AdapterKind::Dns => "d.",
                AdapterKind::Machine => "m.",
                other => panic!("{}: the suite has no {other} checks yet", c.id),
            };
            assert!(
                c.id.starts_with(letter),
                "{}: id names the wrong kind",
                c.id
            );
        }
        // Cleanup comes last, so it sees what every other check left.
        let first_cleanup = checks.iter().position(|c| c.has(Tag::Cleanup)).unwrap();
        assert!(checks[first_cleanup..].iter().all(|c| c.has(Tag::Cleanup)));
    }
}
