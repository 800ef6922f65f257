//! A string that must never be printed.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret value (token, ticket, shared secret). Its `Debug` output is
/// `[redacted]` and it has no `Display`, so it cannot reach a log by accident;
/// read it deliberately with [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(String);

/// Equality is constant time: comparing SHA-256 digests hides where two
/// secrets differ and how long they are.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(other.0.as_bytes()),
        );
        a.ct_eq(&b).into()
    }
}

impl Eq for Secret {}

/// The bytes are overwritten when the secret is dropped, so a freed secret
/// does not linger in memory (copies made through [`Secret::expose`] are the
/// caller's to care for).
impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the few places that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `other` in constant time, lengths included (both sides
    /// are hashed first).
    pub fn ct_eq(&self, other: &str) -> bool {
        let (a, b) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(other.as_bytes()),
        );
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
    }

    #[test]
    fn constant_time_equality() {
        let secret = Secret::new("abc");
        assert!(secret.ct_eq("abc"));
        assert!(!secret.ct_eq("abd"));
        assert!(!secret.ct_eq("ab"));
    }
}
