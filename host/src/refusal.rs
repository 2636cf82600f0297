//! A request refused for what it asks, not because something broke: what it names does not
//! exist, something is in its way, or it makes no sense. Typed, so the API answers 404, 409
//! or 422 from what the refusal is rather than from its wording.

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Something the request names does not exist.
    NotFound,
    /// The state of things is in the way (an unfinished job, a taken name).
    Conflict,
    /// The request itself cannot be carried out as asked.
    Invalid,
    /// Nothing is wrong with the request, but there is no room for it now: try again later.
    Busy,
}

/// A refusal with its message for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

impl Refusal {
    /// Something named does not exist.
    pub fn not_found(message: impl Into<String>) -> anyhow::Error {
        Self::of(RefusalKind::NotFound, message)
    }

    /// Something is in the way.
    pub fn conflict(message: impl Into<String>) -> anyhow::Error {
        Self::of(RefusalKind::Conflict, message)
    }

    /// The request makes no sense as asked.
    pub fn invalid(message: impl Into<String>) -> anyhow::Error {
        Self::of(RefusalKind::Invalid, message)
    }

    /// No room for it now (e.g. as many jobs running as allowed).
    pub fn busy(message: impl Into<String>) -> anyhow::Error {
        Self::of(RefusalKind::Busy, message)
    }

    fn of(kind: RefusalKind, message: impl Into<String>) -> anyhow::Error {
        Self {
            kind,
            message: message.into(),
        }
        .into()
    }

    /// The refusal inside an error, if it is one.
    pub fn find(error: &anyhow::Error) -> Option<&Refusal> {
        error.downcast_ref::<Refusal>()
    }
}
