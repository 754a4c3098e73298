//! Backend credentials at rest: sealed with the node's secret key
//! (ChaCha20-Poly1305) before they reach the database, opened when a
//! backend is read back. A credential may also be a reference to an
//! environment variable or a file, read each time the backend is resolved
//! (so a reload rotates it) and never stored at all.
//!
//! The key is 32 random bytes, written as 64 hex digits: from
//! `JUNCTION_SECRET_KEY`, from `secret_key_file` in `junction.toml`, or
//! generated on first start into the data folder (`secret.key`, readable by
//! its owner only). Every node on one database needs the same key.
//!
//! [`Secret`] is how a credential is written in a configuration: inline
//! (sealed before it is stored) or a reference (`env`, `file`).

use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What sealed text starts with.
const PREFIX: &str = "v1:";
/// Bound into every ciphertext: a sealed value opens only as a Junction
/// credential.
const AAD: &[u8] = b"junction backend credential v1";

/// The secret key could not be had, or a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret key file {path} could not be read: {reason}; restore it, or point secret_key_file \
         (or JUNCTION_SECRET_KEY) at the key the stored credentials were sealed with"
    )]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "secret key from {source_name} is invalid: {reason}; it must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`"
    )]
    BadKey { source_name: String, reason: String },
    #[error(
        "a stored credential could not be opened with this node's secret key ({fingerprint}): it was \
         sealed with another key; give every node the key it was sealed with, or configure the \
         backend's credential again"
    )]
    WrongKey { fingerprint: String },
    #[error("a stored credential is not sealed text: {0}")]
    Corrupt(String),
}

/// The node's key for credentials at rest.
pub struct SecretKey {
    key: LessSafeKey,
    fingerprint: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint)
    }
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        use sha2::Digest;
        let fingerprint = format!("key {}", &hex::encode(sha2::Sha256::digest(bytes))[..12]);
        SecretKey {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("32 bytes is the key length"),
            ),
            fingerprint,
        }
    }

    /// A key from 64 hex digits; `source_name` says where they came from.
    pub fn from_hex(text: &str, source_name: &str) -> Result<SecretKey, SecretError> {
        let bad = |reason: String| SecretError::BadKey {
            source_name: source_name.to_string(),
            reason,
        };
        let bytes = hex::decode(text.trim()).map_err(|e| bad(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("it is {} bytes", b.len())))?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// A new random key (held only in memory unless written).
    pub fn generate() -> SecretKey {
        SecretKey::from_bytes(&random_key())
    }

    /// The key in `path`, which must exist.
    pub fn load(path: &Path) -> Result<SecretKey, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        SecretKey::from_hex(&text, &path.display().to_string())
    }

    /// The key in `path`, created there (owner-only) when the file does
    /// not exist yet.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretError> {
        if path.exists() {
            return SecretKey::load(path);
        }
        let fail = |e: std::io::Error| SecretError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let bytes = random_key();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(fail)?;
        std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(bytes)).as_bytes())
            .map_err(fail)?;
        file.sync_all().map_err(fail)?;
        tracing::info!(path = %path.display(), "generated the secret key for credentials at rest");
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// A short name of the key (a hash prefix), for messages.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `plain` sealed: `v1:` and the hex of nonce, ciphertext and tag.
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .expect("sealing a short value cannot fail");
        let mut out = nonce.to_vec();
        out.extend(data);
        format!("{PREFIX}{}", hex::encode(out))
    }

    /// The plain text of a value [`SecretKey::seal`] made with this key.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let hexed = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| SecretError::Corrupt("it does not start with v1:".into()))?;
        let bytes = hex::decode(hexed).map_err(|e| SecretError::Corrupt(e.to_string()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Corrupt("it is too short".into()));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .map_err(|_| SecretError::WrongKey {
                fingerprint: self.fingerprint.clone(),
            })?;
        String::from_utf8(plain.to_vec()).map_err(|e| SecretError::Corrupt(e.to_string()))
    }
}

fn random_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    bytes
}

/// A secret value: never printed, never logged, never given to the guest.
///
/// Written inline (`"…"`, sealed with the node's key before it is stored),
/// or as a reference read each time the backend is resolved, so a reload
/// rotates it: `{ env = "SHOP_TOKEN" }` or `{ file = "/run/secrets/shop" }`
/// (absolute, or relative to the working directory; one trailing newline
/// is dropped). `{ sealed = "v1:…" }` is the stored form of an inline one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Secret {
    Inline(String),
    From(SecretRef),
}

/// Where a secret that is not inline comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretRef {
    Env(String),
    #[schema(value_type = String)]
    File(std::path::PathBuf),
    Sealed(String),
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret::Inline(value.into())
    }

    /// A reference to an environment variable or a file: where the secret
    /// is, not the secret, so it may be shown.
    pub fn is_reference(&self) -> bool {
        matches!(self, Secret::From(SecretRef::Env(_) | SecretRef::File(_)))
    }

    /// The value, read now; the error names where it was looked for.
    pub(crate) fn resolve(&self) -> Result<String, String> {
        match self {
            Secret::Inline(v) => Ok(v.clone()),
            Secret::From(SecretRef::Env(name)) => std::env::var(name).map_err(|_| {
                format!("secret environment variable {name} is not set (or not UTF-8)")
            }),
            Secret::From(SecretRef::File(path)) => std::fs::read_to_string(path)
                .map(|t| {
                    t.strip_suffix('\n')
                        .map(|t| t.strip_suffix('\r').unwrap_or(t))
                        .unwrap_or(&t)
                        .to_string()
                })
                .map_err(|e| format!("secret file {} could not be read: {e}", path.display())),
            Secret::From(SecretRef::Sealed(_)) => Err(
                "secret is still sealed; the node opens stored credentials with its secret key"
                    .to_string(),
            ),
        }
    }

    /// Inline values sealed with `key`; references stay as they are.
    pub fn sealed(&self, key: &SecretKey) -> Secret {
        match self {
            Secret::Inline(v) => Secret::From(SecretRef::Sealed(key.seal(v))),
            other => other.clone(),
        }
    }

    /// Sealed values opened with `key`.
    pub fn opened(&self, key: &SecretKey) -> Result<Secret, SecretError> {
        match self {
            Secret::From(SecretRef::Sealed(s)) => key.open(s).map(Secret::Inline),
            other => Ok(other.clone()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::From(SecretRef::Env(name)) => write!(f, "Secret(env {name})"),
            Secret::From(SecretRef::File(path)) => write!(f, "Secret(file {})", path.display()),
            _ => f.write_str("Secret(***)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let key = SecretKey::generate();
        let sealed = key.seal("hunter2");
        assert!(sealed.starts_with("v1:") && !sealed.contains("hunter2"));
        assert_ne!(sealed, key.seal("hunter2"), "a fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), "hunter2");
        let other = SecretKey::generate();
        let err = other.open(&sealed).unwrap_err().to_string();
        assert!(err.contains("another key"), "{err}");
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        assert!(key.open(&tampered).is_err());
        assert!(key.open("hunter2").unwrap_err().to_string().contains("v1:"));
    }

    #[test]
    fn keys_are_created_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("secret.key");
        let a = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(b.open(&a.seal("x")).unwrap(), "x");
        std::fs::write(&path, "not hex").unwrap();
        let err = SecretKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let err = SecretKey::load(&dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.key") && err.contains("secret_key_file"),
            "{err}"
        );
    }
}
