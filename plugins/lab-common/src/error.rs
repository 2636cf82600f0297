//! Block-store errors as adapter errors: what the state files and the data path both
//! answer with, kept apart from either so neither module imports the other for it.

use lab_blockstore::Error;
use tidemark_sdk::AdapterError;

/// Maps a block-store error onto the contract's error cases.
pub fn store_error(error: Error) -> AdapterError {
    match error {
        Error::NotFound(m) => AdapterError::NotFound(m),
        Error::Conflict(m) => AdapterError::Conflict(m),
        Error::Invalid(m) => AdapterError::Invalid(m),
        Error::Corrupt(m) => AdapterError::Internal(format!("corrupt lab state: {m}")),
        Error::Io(m) => AdapterError::Internal(format!("lab i/o: {m}")),
    }
}
