//! Secrets at rest and in transit: upstream keys and other credentials are sealed with
//! AES-256-GCM before they reach the store, and stay sealed in the config documents on
//! the bus. Only a plane that uses a secret opens it, in memory, when it compiles its
//! snapshot.
//!
//! The key comes from `SLUICE_SECRET_KEY` (32 bytes, base64), or in the embedded
//! default from `secret.key` in the data dir, created with mode 0600 on first start.
//! Admin and every proxy of a deployment must share it.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use thiserror::Error;

/// What marks a sealed value, with the format version.
const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("SLUICE_SECRET_KEY must be 32 bytes in base64")]
    BadKey,
    #[error("a sealed secret cannot be opened with this key (was it sealed with another?)")]
    CannotOpen,
    #[error("cannot read or write the secret key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// base for keys of other purposes ([`SecretBox::derive`]).
    derivation: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
            derivation: *key,
        }
    }

    /// A 32-byte key for `purpose`, derived from this one (SHA-256 of the key and the
    /// purpose), so every replica that shares `SLUICE_SECRET_KEY` has the same keys
    /// for other jobs (signing the MCP plane's tokens) without more configuration,
    /// and none of them reveals the sealing key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.derivation);
        hash.update(b"\x00sluice-derive\x00");
        hash.update(purpose.as_bytes());
        hash.finalize().into()
    }

    /// The key from its base64 form.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(Self::from_key(&key))
    }

    /// The key from `env_key`, else from `secret.key` in `data_dir`. With `create`, a
    /// missing file is created with a fresh random key; without, `None` is returned.
    pub fn load(
        env_key: Option<&str>,
        data_dir: &Path,
        create: bool,
    ) -> Result<Option<Self>, SecretError> {
        if let Some(key) = env_key {
            return Self::from_base64(key).map(Some);
        }
        let path = data_dir.join("secret.key");
        let io = |source| SecretError::KeyFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(&path, STANDARD.encode(key).as_bytes()).map_err(io)?;
                Ok(Some(Self::from_key(&key)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Seal a secret. Sealing twice gives different text (a fresh nonce each time).
    pub fn seal(&self, plaintext: &str) -> String {
        if is_sealed(plaintext) {
            return plaintext.to_string();
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // Encrypting a byte slice with a valid key and nonce cannot fail.
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// Open a sealed secret. A value that was never sealed (written before sealing
    /// existed) is returned as it is.
    pub fn open(&self, text: &str) -> Result<String, SecretError> {
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Ok(text.to_string());
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::CannotOpen)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::CannotOpen);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::CannotOpen)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), sealed)
            .map_err(|_| SecretError::CannotOpen)?;
        String::from_utf8(plain).map_err(|_| SecretError::CannotOpen)
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Write a file only its owner can read, creating its directory.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let sb = SecretBox::from_key(&[7; 32]);
        let sealed = sb.seal("sk-live-123");
        assert!(is_sealed(&sealed) && !sealed.contains("sk-live"));
        assert_ne!(sealed, sb.seal("sk-live-123"));
        assert_eq!(sb.open(&sealed).expect("opens"), "sk-live-123");
        assert_eq!(sb.seal(&sealed), sealed, "sealing is idempotent");
        assert_eq!(sb.open("legacy-plain").expect("plain"), "legacy-plain");
        assert!(SecretBox::from_key(&[8; 32]).open(&sealed).is_err());
        assert!(sb.open("enc:v1:!!").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let a = SecretBox::load(None, dir.path(), true)
            .expect("load")
            .expect("created");
        let b = SecretBox::load(None, dir.path(), false)
            .expect("load")
            .expect("exists");
        assert_eq!(b.open(&a.seal("x")).expect("same key"), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let empty = tempfile::tempdir().expect("dir");
        assert!(
            SecretBox::load(None, empty.path(), false)
                .expect("load")
                .is_none()
        );
        assert!(SecretBox::from_base64("short").is_err());
    }
}
