//! Encryption at rest of the secrets Tessera must read back (the workspace
//! inbound secrets), with XChaCha20-Poly1305.
//!
//! Each stored value describes itself: `enc:v1:<key id>:<base64(nonce ‖
//! ciphertext)>`, so a value can move between columns of its row, and keys
//! can rotate row by row. A value without the `enc:` prefix is plaintext
//! from before encryption (or from a server without a key), still read.
//!
//! The associated data is the row's identity (its table and workspace id),
//! never the column: the rotation of inbound secrets moves values between
//! the columns of one row in SQL, and a value copied into another
//! workspace's row must not open there.

mod census;
#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tessera_client::Secret;
use zeroize::Zeroizing;

pub use census::{MissingKeys, SealedCensus, log_census};

/// Bytes of a key: 256 bits.
const KEY_LEN: usize = 32;
/// Bytes of an XChaCha20 nonce: 192 bits, drawn at random per value, so
/// replicas sealing under one key need no shared counter.
const NONCE_LEN: usize = 24;
/// What every sealed value starts with; anything else is plaintext.
pub const SEALED_PREFIX: &str = "enc:";
/// The format version, after the prefix.
const VERSION: &str = "v1";
/// Hex digits of a key id (8 bytes).
const KEY_ID_HEX: usize = 16;
/// Characters of [`header`]: `enc:v1:`, a key id, `:`.
pub const HEADER_LEN: usize = SEALED_PREFIX.len() + VERSION.len() + 1 + KEY_ID_HEX + 1;
/// Hashed before the key into its id, so the id is of use for nothing else.
const KEY_ID_LABEL: &[u8] = b"tessera encryption key id v1\0";

/// Why a value could not be sealed or opened. Never holds a secret or a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed under a key this process was not given.
    #[error("sealed under key id {0}, which is not among the configured encryption keys")]
    UnknownKey(String),
    /// Starts with `enc:` but is not a value this version can read.
    #[error("not a sealed value this version can read")]
    Malformed,
    /// The key is known but the value does not authenticate: altered, or
    /// moved from another workspace's row.
    #[error("does not authenticate (altered, or moved from another workspace)")]
    Forged,
    /// Longer than the cipher takes (gigabytes: never a secret of ours).
    #[error("too long to seal")]
    TooLong,
    /// The OS CSPRNG failed to give a nonce.
    #[error("the OS random number generator failed")]
    Entropy,
}

/// Why a configured key list was refused. Names the key by position, never
/// by value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing but separators.
    #[error("holds no key")]
    Empty,
    /// Key `n` (from 1) is not standard base64.
    #[error("key {0} is not standard base64")]
    NotBase64(usize),
    /// Key `n` (from 1) does not decode to 32 bytes.
    #[error("key {0} is {1} bytes, not 32 (a 256-bit key, as `tessera gen-secret --key` prints)")]
    WrongLength(usize, usize),
    /// Key `n` (from 1) repeats an earlier one.
    #[error("key {0} repeats an earlier key")]
    Duplicate(usize),
}

/// One key, with its id. The cipher zeroes its key when dropped.
#[derive(Clone)]
struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The configured keys: the first seals, every one opens. Empty when no key
/// is configured: values are then stored and read as plaintext, and a
/// sealed value cannot be opened. `Debug` shows the key ids only.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Parses comma-separated standard base64 keys of 256 bits each;
    /// surrounding whitespace (a file's newline) is ignored.
    pub fn parse(list: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<SealingKey> = Vec::new();
        for (index, encoded) in list.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            if encoded.is_empty() {
                continue;
            }
            let bytes = Zeroizing::new(
                BASE64
                    .decode(encoded)
                    .map_err(|_| KeyError::NotBase64(position))?,
            );
            let wrong_length = KeyError::WrongLength(position, bytes.len());
            if bytes.len() != KEY_LEN {
                return Err(wrong_length);
            }
            let id = key_id(&bytes);
            if keys.iter().any(|key| key.id == id) {
                return Err(KeyError::Duplicate(position));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| wrong_length)?;
            keys.push(SealingKey { id, cipher });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that seals, if any.
    pub fn current_id(&self) -> Option<&str> {
        self.keys.first().map(|key| key.id.as_str())
    }

    /// The ids of every key, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }

    /// `secret` as stored in the row of workspace `workspace_id`: sealed
    /// under the first key, or as it is when no key is configured.
    pub fn seal(&self, workspace_id: &str, secret: &Secret) -> Result<String, SealError> {
        let Some(key) = self.keys.first() else {
            return Ok(secret.expose().to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| SealError::Entropy)?;
        let header = header(&key.id);
        let aad = associated_data(&header, workspace_id);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: &aad,
        };
        let ciphertext = key
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::TooLong)?;
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        Ok(format!("{header}{}", BASE64.encode(body)))
    }

    /// The secret stored as `stored` in the row of workspace `workspace_id`.
    pub fn open(&self, workspace_id: &str, stored: &str) -> Result<Secret, SealError> {
        let Some(sealed) = Sealed::parse(stored)? else {
            return Ok(Secret::new(stored));
        };
        let key = self
            .keys
            .iter()
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.to_owned()))?;
        let body = BASE64
            .decode(sealed.body)
            .map_err(|_| SealError::Malformed)?;
        let (nonce, ciphertext) = body
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(SealError::Malformed)?;
        let aad = associated_data(&header(sealed.key_id), workspace_id);
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        let plain = Zeroizing::new(
            key.cipher
                .decrypt(&XNonce::from(*nonce), payload)
                .map_err(|_| SealError::Forged)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| SealError::Malformed)?;
        Ok(Secret::new(text))
    }

    /// True when `stored` is sealed under the key that seals now (plaintext
    /// never is, unless no key is configured).
    pub fn is_current(&self, stored: &str) -> bool {
        match (Sealed::parse(stored), self.current_id()) {
            (Ok(Some(sealed)), Some(current)) => sealed.key_id == current,
            (Ok(None), None) => true,
            _ => false,
        }
    }
}

/// The key id of `stored`: `None` for plaintext.
pub fn key_id_of(stored: &str) -> Result<Option<&str>, SealError> {
    Ok(Sealed::parse(stored)?.map(|sealed| sealed.key_id))
}

/// A fresh 256-bit key from the OS CSPRNG, in standard base64.
pub fn generate_key() -> Result<String, SealError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| SealError::Entropy)?;
    Ok(BASE64.encode(key.as_ref()))
}

/// The parts of a sealed value.
struct Sealed<'a> {
    key_id: &'a str,
    body: &'a str,
}

impl<'a> Sealed<'a> {
    /// `None` for plaintext; an error for a value that claims to be sealed
    /// but is not in the v1 form.
    fn parse(stored: &'a str) -> Result<Option<Self>, SealError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(None);
        };
        let mut parts = rest.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(VERSION), Some(key_id), Some(body)) if is_key_id(key_id) => {
                Ok(Some(Self { key_id, body }))
            }
            _ => Err(SealError::Malformed),
        }
    }
}

/// True for 16 lower-case hex digits.
fn is_key_id(text: &str) -> bool {
    text.len() == KEY_ID_HEX && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The id of `key`: the first 8 bytes of SHA-256 over a label and the key,
/// in hex. Naming a key in a value and a log gives nothing of it away.
fn key_id(key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(KEY_ID_LABEL)
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..KEY_ID_HEX / 2])
}

/// `enc:v1:<key id>:`, the start of every value sealed under `key_id`
/// (queries tell the values under the current key by it).
pub fn header(key_id: &str) -> String {
    format!("{SEALED_PREFIX}{VERSION}:{key_id}:")
}

/// What a value is bound to besides its key: its header (format and key)
/// and the row it belongs to, by table and workspace id, never by column.
fn associated_data(header: &str, workspace_id: &str) -> Vec<u8> {
    format!("{header}workspaces:{workspace_id}").into_bytes()
}
