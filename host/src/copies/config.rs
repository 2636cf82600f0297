//! `config.json`: what makes a copy store self-describing (format, version, chunk size,
//! algorithms, how the key is protected), and unlocking the master key from it.

use serde::{Deserialize, Serialize};

use super::crypto::{KdfParams, Keys, MasterKey, passphrase_key, unwrap_master, wrap_master};
use super::error::{CopyStoreError, Result};

/// Object key of the config.
pub(crate) const CONFIG_KEY: &str = "config.json";
/// Name of the key file inside the store directory (key-file mode).
pub(crate) const KEY_FILE: &str = "key";
/// Value of the `format` field; tells a human (or a tool) what this directory is.
const FORMAT_NAME: &str = "tidemark-copy-store";
/// Store format version written and read by this code: 2 keeps chunks in pack files with an
/// index (version 1 kept one file per chunk).
pub const STORE_VERSION: u32 = 2;
/// The one-file-per-chunk format, refused with a pointer to `tidemark copies upgrade`.
pub(crate) const V1_ONE_FILE_PER_CHUNK: u64 = 1;

/// Everything stored in `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoreConfig {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) about: String,
    pub(crate) chunk_size: u32,
    pub(crate) zstd_level: i32,
    pub(crate) chunk_id: String,
    pub(crate) cipher: String,
    pub(crate) key: KeyConfig,
}

/// How the master key is protected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub(crate) enum KeyConfig {
    /// The master key is in a key file (0600) next to the config.
    KeyFile { file: String, check: String },
    /// The master key is wrapped under an Argon2id key derived from a passphrase.
    Passphrase {
        kdf: String,
        #[serde(flatten)]
        params: KdfParams,
        salt: String,
        wrapped_key: String,
        check: String,
    },
}

impl StoreConfig {
    /// A config for a new store whose key protection is `key`.
    pub(crate) fn new(chunk_size: u32, zstd_level: i32, key: KeyConfig) -> StoreConfig {
        StoreConfig {
            format: FORMAT_NAME.to_string(),
            version: STORE_VERSION,
            about: "Tidemark copy store: encrypted, deduplicated device copies. Every object is \
                    encrypted with a key kept in the key file or derived from the passphrase; \
                    without it nothing here can be read, so keep a backup of the key."
                .to_string(),
            chunk_size,
            zstd_level,
            chunk_id: "blake3-keyed".to_string(),
            cipher: "aes-256-gcm".to_string(),
            key,
        }
    }

    /// Parses `config.json`, checking the version before anything else so a newer store is
    /// reported as "unsupported version", not as corrupt, and an older one as needing
    /// `tidemark copies upgrade` (never misread).
    pub(crate) fn parse(bytes: &[u8], location: &str) -> Result<StoreConfig> {
        StoreConfig::parse_for_upgrade(bytes, location, false)
    }

    /// Like [`StoreConfig::parse`]; with `old_too`, a version-1 config is accepted as well
    /// (only the upgrade reads one).
    pub(crate) fn parse_for_upgrade(
        bytes: &[u8],
        location: &str,
        old_too: bool,
    ) -> Result<StoreConfig> {
        let path = format!("{location}/{CONFIG_KEY}");
        let corrupt = |reason: String| CopyStoreError::CorruptConfig {
            path: path.clone(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(corrupt(format!("\"format\" is not {FORMAT_NAME:?}")));
        }
        let version = v
            .get("version")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| corrupt("no \"version\"".to_string()))?;
        if version == V1_ONE_FILE_PER_CHUNK && !old_too {
            return Err(CopyStoreError::UpgradeNeeded {
                location: location.to_string(),
                found: version,
                supported: STORE_VERSION,
            });
        }
        if version != STORE_VERSION as u64 && version != V1_ONE_FILE_PER_CHUNK {
            return Err(CopyStoreError::UnsupportedVersion {
                location: location.to_string(),
                found: version,
                supported: STORE_VERSION,
            });
        }
        let c: StoreConfig = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
        super::manifest::check_chunk_size(c.chunk_size as u64)
            .map_err(|e| corrupt(e.to_string()))?;
        if c.chunk_id != "blake3-keyed" || c.cipher != "aes-256-gcm" {
            return Err(corrupt(format!(
                "unknown algorithms {} / {}",
                c.chunk_id, c.cipher
            )));
        }
        Ok(c)
    }

    /// Recovers the subkeys: from the key file text (read by the caller, `None` if missing)
    /// or the passphrase.
    pub(crate) fn unlock(
        &self,
        location: &str,
        key_file: impl FnOnce(&str) -> Result<Option<String>>,
        passphrase: Option<&str>,
    ) -> Result<Keys> {
        let path_of = |f: &str| format!("{location}/{f}");
        match &self.key {
            KeyConfig::KeyFile { file, check } => {
                if passphrase.is_some() {
                    return Err(CopyStoreError::PassphraseNotUsed {
                        location: location.to_string(),
                        path: path_of(file),
                    });
                }
                if super::backend::check_key(file).is_err() || file.contains('/') {
                    return Err(CopyStoreError::CorruptConfig {
                        path: path_of(CONFIG_KEY),
                        reason: format!("invalid key file name {file:?}"),
                    });
                }
                let text = key_file(file)?.ok_or_else(|| CopyStoreError::KeyFileMissing {
                    path: path_of(file),
                })?;
                let master = MasterKey::from_key_file(&text).map_err(|reason| {
                    CopyStoreError::CorruptKeyFile {
                        path: path_of(file),
                        reason,
                    }
                })?;
                let keys = Keys::derive(&master);
                if &keys.check_hex() != check {
                    return Err(CopyStoreError::WrongKey {
                        path: path_of(file),
                        location: location.to_string(),
                    });
                }
                Ok(keys)
            }
            KeyConfig::Passphrase {
                kdf,
                params,
                salt,
                wrapped_key,
                check,
            } => {
                let corrupt = |reason: String| CopyStoreError::CorruptConfig {
                    path: path_of(CONFIG_KEY),
                    reason,
                };
                let passphrase = passphrase.ok_or_else(|| CopyStoreError::PassphraseRequired {
                    location: location.to_string(),
                })?;
                if kdf != "argon2id" {
                    return Err(corrupt(format!("unknown kdf {kdf:?}")));
                }
                let salt = hex::decode(salt).map_err(|e| corrupt(format!("salt: {e}")))?;
                let wrapped =
                    hex::decode(wrapped_key).map_err(|e| corrupt(format!("wrapped_key: {e}")))?;
                let kek = passphrase_key(passphrase, &salt, params).map_err(corrupt)?;
                let master = unwrap_master(&kek, &wrapped).ok_or_else(|| {
                    CopyStoreError::WrongPassphrase {
                        location: location.to_string(),
                    }
                })?;
                let keys = Keys::derive(&master);
                if &keys.check_hex() != check {
                    return Err(corrupt("key check does not match the wrapped key".into()));
                }
                Ok(keys)
            }
        }
    }
}

/// Builds the key part of a new config for passphrase mode.
pub(crate) fn passphrase_config(
    master: &MasterKey,
    passphrase: &str,
) -> std::io::Result<KeyConfig> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
    let params = KdfParams::for_new_store();
    let kek = passphrase_key(passphrase, &salt, &params).map_err(std::io::Error::other)?;
    Ok(KeyConfig::Passphrase {
        kdf: "argon2id".to_string(),
        params,
        salt: hex::encode(salt),
        wrapped_key: hex::encode(wrap_master(&kek, master)?),
        check: Keys::derive(master).check_hex(),
    })
}
