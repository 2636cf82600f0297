//! The bridge to the `dns` contract's types, so that each DNS adapter converts with `into()`
//! and `?` instead of writing the same two mappings again.

use tidemark_sdk::{AdapterError, RecordKind};

use crate::{Kind, NameError};

impl From<RecordKind> for Kind {
    fn from(kind: RecordKind) -> Kind {
        match kind {
            RecordKind::A => Kind::A,
            RecordKind::Aaaa => Kind::Aaaa,
            RecordKind::Cname => Kind::Cname,
        }
    }
}

impl From<NameError> for AdapterError {
    fn from(error: NameError) -> AdapterError {
        match error {
            NameError::Invalid(m) => AdapterError::Invalid(m),
            NameError::NotFound(m) => AdapterError::NotFound(m),
        }
    }
}
