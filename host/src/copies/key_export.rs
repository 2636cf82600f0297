//! Keeping the key somewhere else. In key-file mode the master key exists in one file on
//! this machine: lose the machine and every copy is unreadable. `tidemark copies key export`
//! writes it out once (for the operator to keep elsewhere) and leaves a `key-exported`
//! marker in the store; until the marker exists, every copy warns.

use std::io;

use super::CopyStore;
use super::error::{CopyStoreError, Result};

/// The marker object: when the key was exported and where to.
const MARKER: &str = "key-exported";

impl CopyStore {
    /// Why the operator should export the key now, or `None` when that is done (or the key
    /// is wrapped under a passphrase, which the operator keeps anyway).
    pub fn key_backup_warning(&self) -> Option<String> {
        let file = self.inner.key_file.as_deref()?;
        match self.inner.backend.exists(MARKER) {
            Ok(true) => None,
            _ => Some(format!(
                "the copy key exists only on this machine ({}/{file}): without it no copy can be \
                 read; run `tidemark copies key export --out FILE` and keep FILE elsewhere",
                self.location()
            )),
        }
    }

    /// The key file's text, for export. A passphrase-protected store has no key file.
    pub fn key_file_text(&self) -> Result<String> {
        let location = self.location().to_string();
        let Some(file) = self.inner.key_file.as_deref() else {
            return Err(CopyStoreError::Io {
                op: "export the key of",
                path: location,
                source: io::Error::other(
                    "this store's key is wrapped under a passphrase (TIDEMARK_COPY_PASSPHRASE): \
                     keep the passphrase; there is no key file to export",
                ),
            });
        };
        let path = format!("{location}/{file}");
        let text = match self.inner.backend.get(file) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| CopyStoreError::Io {
                op: "read",
                path: path.clone(),
                source: io::Error::other("the key file is not text"),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CopyStoreError::KeyFileMissing { path });
            }
            Err(source) => {
                return Err(CopyStoreError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        Ok(text)
    }

    /// Records that the key was written to `to` (once that file is safely written), so
    /// copies stop warning.
    pub fn mark_key_exported(&self, to: &str) -> Result<()> {
        let location = self.location();
        let marker = serde_json::json!({ "to": to, "at_ms": crate::catalog::now_ms() });
        // Create-only and durable on return; already there (an earlier export) is fine.
        self.inner
            .backend
            .put_new(MARKER, marker.to_string().as_bytes())
            .map(|_| ())
            .map_err(|source| CopyStoreError::Io {
                op: "write",
                path: format!("{location}/{MARKER}"),
                source,
            })
    }
}
