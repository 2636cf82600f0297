//! The one error type of the copy store.
//!
//! Every variant names what was wrong (a path, a manifest id, a chunk id) so that an operator
//! reading a failed job can act on it without a debugger.

use std::fmt;
use std::io;

use super::chunk::ChunkId;

/// Which stored object a damage report is about; kept typed (not a bare string) so callers can
/// tell a damaged chunk (shared by many copies) from a damaged manifest (one copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRef {
    /// A content-addressed chunk object.
    Chunk(ChunkId),
    /// The manifest of one device copy, by its caller-chosen id.
    Manifest(String),
    /// A pack file, by its id.
    Pack(String),
    /// An index object, by its key.
    Index(String),
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Chunk(id) => write!(f, "chunk {id}"),
            ObjectRef::Manifest(id) => write!(f, "manifest {id}"),
            ObjectRef::Pack(id) => write!(f, "pack {id}"),
            ObjectRef::Index(key) => write!(f, "index object {key}"),
        }
    }
}

/// Everything that can go wrong in the copy store.
///
/// Typed so that the engine and CLI can react differently to "operator must do something"
/// (key missing, wrong passphrase, busy) and "data is damaged" (never restore silently).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyStoreError {
    /// `open` found no `config.json`: the directory was never initialised.
    #[error("copy store at {location} is not initialised (no config.json); initialise it first")]
    NotInitialised {
        /// Where the store was looked for.
        location: String,
    },
    /// `init` found an existing `config.json`; refusing so an existing key is never replaced.
    #[error("copy store at {location} is already initialised")]
    AlreadyInitialised {
        /// Where the store is.
        location: String,
    },
    /// `init` found sealed data (chunks, manifests) without a config: the key they were sealed
    /// with is unknown, so creating a store there could strand them. (A key file alone is
    /// the leftover of a creation cut short, and is adopted instead.)
    #[error(
        "cannot initialise a copy store at {location}: it holds {found} but no config.json, so the key they were sealed with is unknown; put its config.json (and key file) back from a backup, or move that data away"
    )]
    NotEmpty {
        /// Where the store was to be created.
        location: String,
        /// What was found there.
        found: String,
    },
    /// The store was written by a newer (or unknown) format.
    #[error(
        "copy store at {location} has format version {found}; this program supports version {supported}"
    )]
    UnsupportedVersion {
        /// Where the store is.
        location: String,
        /// Version recorded in `config.json`.
        found: u64,
        /// Version this code writes and reads.
        supported: u32,
    },
    /// The store is of an older format that this code reads only after migrating it.
    #[error(
        "copy store at {location} has format version {found} (one file per chunk); this program reads version {supported} (pack files): run `tidemark copies upgrade` to migrate it in place"
    )]
    UpgradeNeeded {
        /// Where the store is.
        location: String,
        /// Version recorded in `config.json`.
        found: u64,
        /// Version this code writes and reads.
        supported: u32,
    },
    /// `config.json` exists but cannot be understood.
    #[error("copy store config {path} is corrupt: {reason}")]
    CorruptConfig {
        /// Path of the config file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store uses a key file and it is not there.
    #[error(
        "the key file {path} of the copy store is missing; restore it from your backup of the key (without it no copy can be read)"
    )]
    KeyFileMissing {
        /// Where the key file was expected.
        path: String,
    },
    /// The key file exists but does not hold a key.
    #[error("the key file {path} is corrupt: {reason}")]
    CorruptKeyFile {
        /// Path of the key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds a key, but not the key of this store.
    #[error("the key file {path} does not belong to the copy store at {location}")]
    WrongKey {
        /// Path of the key file.
        path: String,
        /// Where the store is.
        location: String,
    },
    /// The store is protected by a passphrase and none was given.
    #[error("the copy store at {location} is protected by a passphrase and none was given")]
    PassphraseRequired {
        /// Where the store is.
        location: String,
    },
    /// The passphrase given does not unlock the store.
    #[error("wrong passphrase for the copy store at {location}")]
    WrongPassphrase {
        /// Where the store is.
        location: String,
    },
    /// A passphrase was given for a store that uses a key file: refused so the operator does
    /// not believe the data is protected by the passphrase.
    #[error("a passphrase was given, but the copy store at {location} uses the key file {path}")]
    PassphraseNotUsed {
        /// Where the store is.
        location: String,
        /// Its key file.
        path: String,
    },
    /// Chunk sizes must be a power of two in 4 KiB ..= 4 MiB (aligned with block devices).
    #[error("invalid chunk size {size}: it must be a power of two from 4 KiB to 4 MiB")]
    InvalidChunkSize {
        /// The size that was asked for.
        size: u64,
    },
    /// A store option given to `init` is out of range.
    #[error("invalid copy store option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
    },
    /// Manifest ids become object names, so they are restricted.
    #[error(
        "invalid manifest id {id:?}: use 1 to 200 characters from A-Z a-z 0-9 . _ - not starting with a dot"
    )]
    InvalidManifestId {
        /// The id that was given.
        id: String,
    },
    /// The manifest asked for does not exist.
    #[error("manifest {id} does not exist in the copy store")]
    ManifestNotFound {
        /// The id that was asked for.
        id: String,
    },
    /// A stored object failed its check (authentication, decompression, length or content
    /// hash, or it is missing). A damaged chunk is never returned as data.
    #[error("{object} is damaged: {reason}")]
    Damaged {
        /// The damaged object.
        object: ObjectRef,
        /// What failed.
        reason: String,
    },
    /// `commit` found a manifest entry whose chunk is not stored; committing it would create a
    /// copy that cannot be restored.
    #[error("manifest {id} refers to chunk {chunk} (index {index}) which is not in the store")]
    MissingChunk {
        /// The manifest being committed.
        id: String,
        /// Index of the entry in the manifest.
        index: u64,
        /// The absent chunk.
        chunk: ChunkId,
    },
    /// A manifest handed to the store breaks its own invariants (sizes, lengths, indexes).
    #[error("invalid manifest: {reason}")]
    InvalidManifest {
        /// What is inconsistent.
        reason: String,
    },
    /// Chunk data handed to `put_chunk` is empty or longer than the chunk size.
    #[error("invalid chunk data: {reason}")]
    InvalidChunk {
        /// What is wrong.
        reason: String,
    },
    /// The store lock could not be taken in time (gc waits for running copies).
    #[error("copy store at {location} is busy: {reason}")]
    Busy {
        /// Where the store is.
        location: String,
        /// Who holds it.
        reason: String,
    },
    /// gc found a manifest it could not read; it deletes nothing rather than free chunks that
    /// manifest may need.
    #[error(
        "gc deleted nothing: manifest {id} could not be read ({reason}); verify it, then delete it or restore it before running gc"
    )]
    GcRefused {
        /// The unreadable manifest.
        id: String,
        /// Why it could not be read.
        reason: String,
    },
    /// An I/O failure of the backend, with the operation and object it concerned.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "list", ...).
        op: &'static str,
        /// The object or file concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A worker thread of a parallel helper failed or panicked.
    #[error("copy store worker failed: {reason}")]
    Worker {
        /// What happened.
        reason: String,
    },
}

impl CopyStoreError {
    /// True for errors that mean stored data is damaged or missing (as opposed to usage,
    /// configuration or transient I/O errors); lets callers decide to alert.
    pub fn is_damage(&self) -> bool {
        matches!(self, CopyStoreError::Damaged { .. })
    }
}

/// Result alias used throughout the copy store.
pub type Result<T, E = CopyStoreError> = std::result::Result<T, E>;
