//! Encryption at rest: AES-256-GCM with a key file kept outside the database, and the
//! key of the short codes' hashes derived from it ([`CodeMac`]).
//!
//! Every stored value names the key that sealed it (`v1:<key id>:<base64>`), so a
//! database opened with the wrong key file fails with a message that says so instead
//! of "authentication failed". The associated data binds a value to its row (for
//! example the token serial), so a ciphertext copied into another row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use data_encoding::{BASE64, HEXLOWER, HEXLOWER_PERMISSIVE};
use mfad_core::code_mac::CodeMac;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
/// 96 bits, the nonce size GCM is specified for (NIST SP 800-38D §5.2.1.1).
const NONCE_LEN: usize = 12;
const FORMAT: &str = "v1";

/// Associated data that binds a token secret to its serial. Every backend uses it, so a
/// sealed secret moves between SQLite and PostgreSQL unchanged.
pub fn token_aad(serial: &str) -> Vec<u8> {
    [b"mfad token secret\0".as_slice(), serial.as_bytes()].concat()
}

/// Associated data that binds an e-mail body to its row (by id, which a snapshot keeps).
pub fn email_aad(id: i64) -> Vec<u8> {
    [b"mfad email body\0".as_slice(), id.to_string().as_bytes()].concat()
}

/// Associated data that binds a RADIUS shared secret to its client.
pub fn client_aad(name: &str) -> Vec<u8> {
    [b"mfad client secret\0".as_slice(), name.as_bytes()].concat()
}

/// Associated data that binds a secret setting (a gateway credential) to its key.
pub fn setting_aad(key: &str) -> Vec<u8> {
    [b"mfad setting\0".as_slice(), key.as_bytes()].concat()
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create key file {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "key file {p} is {what} by others (mode {mode:04o}); run chmod 600 {p}",
        p = path.display()
    )]
    Permissions {
        path: PathBuf,
        mode: u32,
        what: &'static str,
    },
    #[error("key file {} is not usable: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("the operating system could not supply random bytes: {0}")]
    Random(getrandom::Error),
}

/// Why a stored value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error(
        "the value was encrypted with key {stored}, but the key file holds key {loaded}; \
         start mfad with the key file the data was written with"
    )]
    WrongKey { stored: String, loaded: String },
    #[error("the value is not in the v1:<key id>:<data> format ({0})")]
    Malformed(&'static str),
    #[error("the value fails authentication: it was modified or copied from another record")]
    Tampered,
    #[error("the operating system could not supply random bytes: {0}")]
    Random(getrandom::Error),
}

/// AES-256-GCM with the key from a key file, and that key's id.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    key_id: String,
    code_mac: CodeMac,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    /// Loads the key from `path`, or creates the file with a fresh random key if it does
    /// not exist. Refuses a key file that group or others may read or write.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(KeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A cipher from raw key bytes (tests and key rotation tools).
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(key);
        let key_id = HEXLOWER.encode(digest.get(..4).unwrap_or_default());
        Self {
            aead: Aes256Gcm::new(key.into()),
            key_id,
            code_mac: CodeMac::derive(key),
        }
    }

    /// The keyed hash of short codes, with a key derived from this key (never the key
    /// itself, which seals the secrets).
    pub fn code_mac(&self) -> &CodeMac {
        &self.code_mac
    }

    /// The first 8 hex digits of SHA-256(key): names the key without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key id a stored value names, if it is in the `v1` format.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        let mut parts = stored.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(FORMAT), Some(key_id), Some(_)) => Some(key_id),
            _ => None,
        }
    }

    /// Seals `plaintext` as `v1:<key id>:<base64(nonce || ciphertext)>`, bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(CryptoError::Random)?;
        let sealed = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only reachable for plaintexts near 64 GiB (the GCM length limit).
            .map_err(|_| CryptoError::Malformed("value too large to encrypt"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{FORMAT}:{}:{}", self.key_id, BASE64.encode(&blob)))
    }

    /// Opens a value sealed by [`Cipher::encrypt`] with the same key and `aad`.
    pub fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut parts = stored.splitn(3, ':');
        let (Some(version), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed("missing fields"));
        };
        if version != FORMAT {
            return Err(CryptoError::Malformed("unknown version"));
        }
        if key_id != self.key_id {
            return Err(CryptoError::WrongKey {
                stored: key_id.to_owned(),
                loaded: self.key_id.clone(),
            });
        }
        let blob = BASE64
            .decode(data.as_bytes())
            .map_err(|_| CryptoError::Malformed("data is not base64"))?;
        let (nonce, sealed) = blob
            .split_at_checked(NONCE_LEN)
            .ok_or(CryptoError::Malformed("data too short"))?;
        self.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    fn load(path: &Path) -> Result<Self, KeyError> {
        let read_err = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(read_err)?;
        if !meta.is_file() {
            return Err(KeyError::Malformed {
                path: path.to_owned(),
                reason: "it is not a regular file".into(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
                what: "readable",
            });
        }
        if mode & 0o033 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
                what: "writable",
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(read_err)?);
        let malformed = |reason: &str| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("{reason}; it must hold 64 hex digits (a 256-bit key)"),
        };
        let hex = text.trim();
        if hex.len() != KEY_LEN * 2 {
            return Err(malformed(&format!("it holds {} characters", hex.len())));
        }
        let bytes = Zeroizing::new(
            HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .map_err(|_| malformed("it holds characters that are not hex digits"))?,
        );
        let key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed("it has the wrong length"))?,
        );
        Ok(Self::from_key(&key))
    }

    /// Writes a new key to a private temporary file, then links it into place: the key
    /// file appears complete or not at all, and when two processes start at once the
    /// second finds the first one's key instead of overwriting it.
    fn create(path: &Path) -> Result<Self, KeyError> {
        let create_err = |source| KeyError::Create {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(create_err)?;

        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::getrandom(key.as_mut_slice()).map_err(KeyError::Random)?;
        let mut tag = [0u8; 8];
        getrandom::getrandom(&mut tag).map_err(KeyError::Random)?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            file_name.as_deref().unwrap_or("key"),
            HEXLOWER.encode(&tag)
        ));

        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = Zeroizing::new(HEXLOWER.encode(key.as_slice()));
            text.push('\n');
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(create_err(source));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // Make the new directory entry durable before any value depends on it.
                if let Ok(d) = fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
                Ok(Self::from_key(&key))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(source) => Err(create_err(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::from_key(&[byte; KEY_LEN])
    }

    #[test]
    fn value_round_trips_with_the_same_aad() {
        let c = cipher(1);
        let sealed = c.encrypt(b"12345678901234567890", b"token:T1").unwrap();
        assert!(sealed.starts_with(&format!("v1:{}:", c.key_id())));
        assert_eq!(
            c.decrypt(&sealed, b"token:T1").unwrap().as_slice(),
            b"12345678901234567890"
        );
    }

    #[test]
    fn key_id_is_first_eight_hex_digits_of_sha256_of_key() {
        let c = cipher(0);
        let expected = HEXLOWER.encode(&Sha256::digest([0u8; KEY_LEN])[..4]);
        assert_eq!(c.key_id(), expected);
        assert_eq!(c.key_id().len(), 8);
    }

    #[test]
    fn same_plaintext_encrypts_differently_each_time() {
        let c = cipher(1);
        assert_ne!(
            c.encrypt(b"x", b"a").unwrap(),
            c.encrypt(b"x", b"a").unwrap()
        );
    }

    #[test]
    fn value_moved_to_another_row_does_not_open() {
        let c = cipher(1);
        let sealed = c.encrypt(b"secret", b"token:T1").unwrap();
        assert!(matches!(
            c.decrypt(&sealed, b"token:T2"),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn modified_value_does_not_open() {
        let c = cipher(1);
        let sealed = c.encrypt(b"secret", b"a").unwrap();
        let mut blob = BASE64
            .decode(sealed.rsplit(':').next().unwrap().as_bytes())
            .unwrap();
        *blob.last_mut().unwrap() ^= 1;
        let forged = format!("v1:{}:{}", c.key_id(), BASE64.encode(&blob));
        assert!(matches!(
            c.decrypt(&forged, b"a"),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn value_from_another_key_names_both_key_ids() {
        let (a, b) = (cipher(1), cipher(2));
        let sealed = a.encrypt(b"secret", b"x").unwrap();
        let err = b.decrypt(&sealed, b"x").unwrap_err().to_string();
        assert!(
            err.contains(a.key_id()) && err.contains(b.key_id()),
            "{err}"
        );
    }

    #[test]
    fn key_id_is_read_from_a_stored_value() {
        let c = cipher(3);
        let sealed = c.encrypt(b"x", b"").unwrap();
        assert_eq!(Cipher::key_id_of(&sealed), Some(c.key_id()));
        assert_eq!(Cipher::key_id_of("plain"), None);
    }

    #[test]
    fn garbage_is_reported_as_malformed() {
        let c = cipher(1);
        for bad in [
            "",
            "plain",
            "v2:abcd:AAAA",
            &format!("v1:{}:!!", c.key_id()),
        ] {
            assert!(
                matches!(c.decrypt(bad, b""), Err(CryptoError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
