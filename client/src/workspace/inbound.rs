//! The check of the platform's calls into a workspace runtime.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::SecretFile;
use crate::Secret;

/// Whether a request carrying `authorization_header` may be served, given the
/// runtime's inbound secret `expected`.
///
/// Fails closed: `false` when `expected` is missing or empty (a runtime that
/// lost its secret rejects everything rather than serving everyone) or when
/// the header is missing. Otherwise `true` only for exactly
/// `Bearer <expected>`: the scheme is case-sensitive, with one space and no
/// surrounding whitespace, matching how the platform sends it.
///
/// The comparison is in constant time: both sides are hashed with SHA-256 and
/// the digests compared with [`subtle`], so the time taken reveals neither
/// how many leading bytes matched nor whether the lengths differed.
pub fn inbound_authorized(expected: Option<&Secret>, authorization_header: Option<&str>) -> bool {
    let Some(expected) = expected.filter(|secret| !secret.is_empty()) else {
        return false;
    };
    let Some(header) = authorization_header else {
        return false;
    };
    let wanted = Sha256::new()
        .chain_update(b"Bearer ")
        .chain_update(expected.expose().as_bytes())
        .finalize();
    let got = Sha256::digest(header.as_bytes());
    wanted[..].ct_eq(&got[..]).into()
}

/// Where [`InboundAuthLayer`](super::InboundAuthLayer) gets the inbound secret
/// from, asked on every request so that a rotated secret takes effect without
/// rebuilding the layer.
///
/// Implemented for [`SecretFile`] (the usual source: cached, and refreshed by
/// [`SecretFile::save`]), for a fixed [`Secret`], and for closures returning
/// `Option<Secret>`.
pub trait InboundSecretSource: Send + Sync + 'static {
    /// The secret requests must carry now, or `None` to reject every request.
    fn current(&self) -> Option<Secret>;
}

impl InboundSecretSource for SecretFile {
    fn current(&self) -> Option<Secret> {
        self.load()
    }
}

impl InboundSecretSource for Secret {
    fn current(&self) -> Option<Secret> {
        Some(self.clone())
    }
}

impl<F> InboundSecretSource for F
where
    F: Fn() -> Option<Secret> + Send + Sync + 'static,
{
    fn current(&self) -> Option<Secret> {
        self()
    }
}
