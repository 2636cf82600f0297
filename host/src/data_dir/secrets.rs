//! Endpoints' secrets at rest: sealed with AES-256-GCM under a key of the data directory,
//! kept like the copy store's — a key file `secrets.key` (64 hex digits, mode 0600), or, when
//! `TIDEMARK_SECRETS_PASSPHRASE` is set at its creation, the key wrapped under an Argon2id
//! key of that passphrase. The catalog holds only the sealed bytes; each is bound to its
//! endpoint and name, so a sealed value moved to another endpoint does not open.

use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use anyhow::{Context as _, anyhow, bail};
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

use crate::copies::crypto::{self, KdfParams, MasterKey};
use crate::copies::envelope;
use crate::refusal::Refusal;

/// The key file, in the data directory.
pub const KEY_FILE: &str = "secrets.key";
/// The environment variable with the passphrase of a wrapped key.
pub const PASSPHRASE_ENV: &str = "TIDEMARK_SECRETS_PASSPHRASE";

const CTX_SEAL: &str = "tidemark endpoint secrets 2026-12 v1 sealing";

/// The key file of a passphrase-wrapped key.
#[derive(Serialize, Deserialize)]
struct Wrapped {
    kdf: KdfParams,
    salt: String,
    wrapped: String,
}

/// Seals and opens secrets; the key is read (or made, on the first secret) when first needed,
/// so a data directory without secrets never pays the key derivation.
pub struct Vault {
    root: Dir,
    cipher: OnceLock<Aes256Gcm>,
    opening: std::sync::Mutex<()>,
}

impl Vault {
    /// The vault of the data directory `root`.
    pub fn new(root: &Dir) -> anyhow::Result<Self> {
        Ok(Self {
            root: root
                .try_clone()
                .context("sharing the data directory handle")?,
            cipher: OnceLock::new(),
            opening: std::sync::Mutex::new(()),
        })
    }

    /// Seals `value` as the secret `name` of `endpoint`.
    pub fn seal(&self, endpoint: &str, name: &str, value: &str) -> anyhow::Result<Vec<u8>> {
        let cipher = self.cipher(true)?;
        Ok(envelope::seal_object(
            cipher,
            &context(endpoint, name),
            value.as_bytes(),
            false,
        )?)
    }

    /// Opens the sealed secret `name` of `endpoint`.
    pub fn open(&self, endpoint: &str, name: &str, sealed: &[u8]) -> anyhow::Result<String> {
        let cipher = self.cipher(false)?;
        let plain = envelope::open_object(
            cipher,
            &context(endpoint, name),
            sealed.to_vec(),
            "sealed secret",
        )
        .map_err(|why| {
            anyhow!(
                "endpoint {endpoint}: secret {name} does not open with this data directory's \
                 key ({why}); set it again with `tidemark endpoint secret {endpoint} {name}=@FILE`"
            )
        })?;
        String::from_utf8(plain)
            .map_err(|_| anyhow!("endpoint {endpoint}: secret {name} is not UTF-8"))
    }

    fn cipher(&self, create: bool) -> anyhow::Result<&Aes256Gcm> {
        if let Some(cipher) = self.cipher.get() {
            return Ok(cipher);
        }
        let _one_at_a_time = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cipher) = self.cipher.get() {
            return Ok(cipher);
        }
        let master = self.master_key(create)?;
        let cipher = Aes256Gcm::new(&master.derive_subkey(CTX_SEAL).into());
        Ok(self.cipher.get_or_init(|| cipher))
    }

    fn master_key(&self, create: bool) -> anyhow::Result<MasterKey> {
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        let text = match self.root.read_to_string(KEY_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                return self.make_key(passphrase.as_deref());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Refusal::conflict(format!(
                    "secrets are recorded but the data directory's {KEY_FILE} is missing; \
                     restore it from your backup"
                )));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {KEY_FILE}")),
        };
        match (text.trim_start().starts_with('{'), passphrase) {
            (false, None) => {
                MasterKey::from_key_file(&text).map_err(|e| anyhow!("{KEY_FILE} is damaged: {e}"))
            }
            (false, Some(_)) => Err(Refusal::conflict(format!(
                "the secrets key is a key file ({KEY_FILE}), not a passphrase: unset {PASSPHRASE_ENV}"
            ))),
            (true, None) => Err(Refusal::conflict(format!(
                "the secrets key is wrapped under a passphrase: set {PASSPHRASE_ENV}"
            ))),
            (true, Some(passphrase)) => {
                let wrapped: Wrapped = serde_json::from_str(&text)
                    .with_context(|| format!("{KEY_FILE} is damaged"))?;
                let salt = hex::decode(&wrapped.salt).context("its salt is not hex")?;
                let body = hex::decode(&wrapped.wrapped).context("its wrapped key is not hex")?;
                let kek = crypto::passphrase_key(&passphrase, &salt, &wrapped.kdf)
                    .map_err(|e| anyhow!("{KEY_FILE}: {e}"))?;
                crypto::unwrap_master(&kek, &body).ok_or_else(|| {
                    Refusal::conflict(format!(
                        "{PASSPHRASE_ENV} is not the passphrase of this data directory's secrets"
                    ))
                })
            }
        }
    }

    /// A new key, written create-only (two first secrets at once cannot make two keys).
    fn make_key(&self, passphrase: Option<&str>) -> anyhow::Result<MasterKey> {
        let master = MasterKey::generate()?;
        let text = match passphrase {
            None => master.to_key_file(),
            Some(passphrase) => {
                let mut salt = [0u8; 16];
                getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
                let kdf = KdfParams::for_new_store();
                let kek =
                    crypto::passphrase_key(passphrase, &salt, &kdf).map_err(|e| anyhow!(e))?;
                serde_json::to_string_pretty(&Wrapped {
                    kdf,
                    salt: hex::encode(salt),
                    wrapped: hex::encode(crypto::wrap_master(&kek, &master)?),
                })?
            }
        };
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = match self.root.open_with(KEY_FILE, &options) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("{KEY_FILE} appeared while it was being made; retry")
            }
            Err(e) => return Err(e).with_context(|| format!("creating {KEY_FILE}")),
        };
        use std::io::Write as _;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {KEY_FILE}"))?;
        Ok(master)
    }
}

impl crate::engine::ports::SecretVault for Vault {
    fn seal(&self, endpoint: &str, name: &str, value: &str) -> anyhow::Result<Vec<u8>> {
        Vault::seal(self, endpoint, name, value)
    }

    fn open(&self, endpoint: &str, name: &str, sealed: &[u8]) -> anyhow::Result<String> {
        Vault::open(self, endpoint, name, sealed)
    }
}

/// What a sealed secret is bound to.
fn context(endpoint: &str, name: &str) -> Vec<u8> {
    format!("endpoint secret\0{endpoint}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let vault = Vault::new(&root).unwrap();
        (dir, vault)
    }

    #[test]
    fn a_sealed_secret_opens_only_as_itself_and_its_plaintext_is_nowhere_on_disk() {
        let (dir, vault) = vault();
        let sealed = vault.seal("a", "password", "hunter2-secret").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            vault.open("a", "password", &sealed).unwrap(),
            "hunter2-secret"
        );
        let moved = vault.open("b", "password", &sealed).unwrap_err();
        assert!(format!("{moved:#}").contains("does not open"), "{moved:#}");
        assert!(vault.open("a", "token", &sealed).is_err());
        let key = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(key.trim().len(), 64);
        // A second vault on the same directory reads the same key.
        let again =
            Vault::new(&Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap())
                .unwrap();
        assert_eq!(
            again.open("a", "password", &sealed).unwrap(),
            "hunter2-secret"
        );
    }

    #[test]
    fn a_missing_key_with_recorded_secrets_is_refused_not_remade() {
        let (dir, vault) = vault();
        let sealed = vault.seal("a", "p", "v").unwrap();
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let fresh =
            Vault::new(&Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap())
                .unwrap();
        let err = fresh.open("a", "p", &sealed).unwrap_err();
        assert!(format!("{err:#}").contains("is missing"), "{err:#}");
        assert!(!dir.path().join(KEY_FILE).exists());
    }
}
