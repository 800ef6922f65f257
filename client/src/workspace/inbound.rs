//! The check of the platform's calls into a workspace runtime.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

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
    inbound_authorized_any(expected, authorization_header)
}

/// As [`inbound_authorized`], with several secrets accepted at once (during
/// a rotation: the current, next and previous ones): `true` when the header
/// is exactly `Bearer <secret>` for one of `accepted`. Empty secrets are
/// skipped; with none left, every request is refused.
///
/// Every secret is compared, in constant time, whichever matches: the time
/// taken reveals neither which one matched nor how closely the others did.
pub fn inbound_authorized_any<'a>(
    accepted: impl IntoIterator<Item = &'a Secret>,
    authorization_header: Option<&str>,
) -> bool {
    let Some(header) = authorization_header else {
        return false;
    };
    let got = Sha256::digest(header.as_bytes());
    let mut matched = Choice::from(0);
    for secret in accepted.into_iter().filter(|secret| !secret.is_empty()) {
        let wanted = Sha256::new()
            .chain_update(b"Bearer ")
            .chain_update(secret.expose().as_bytes())
            .finalize();
        matched |= wanted[..].ct_eq(&got[..]);
    }
    matched.into()
}

/// Where [`InboundAuthLayer`](super::InboundAuthLayer) gets the inbound secret
/// from, asked on every request so that a rotated secret takes effect without
/// rebuilding the layer.
///
/// Implemented for [`WorkspaceFiles`](super::WorkspaceFiles) and
/// [`InboundSecrets`](super::InboundSecrets) (the usual sources: the current,
/// next and previous secrets, so rotations never refuse a call), for a
/// single [`SecretFile`] (the current secret only: cached, and refreshed by
/// [`SecretFile::save`]), for a fixed [`Secret`], and for closures returning
/// `Option<Secret>`.
pub trait InboundSecretSource: Send + Sync + 'static {
    /// The secret requests must carry now, or `None` to reject every request.
    fn current(&self) -> Option<Secret>;

    /// Whether a request carrying `authorization_header` may be served; what
    /// the layer asks. By default [`inbound_authorized`] against
    /// [`current`](Self::current); sources that accept several secrets
    /// override it.
    fn authorizes(&self, authorization_header: Option<&str>) -> bool {
        inbound_authorized(self.current().as_ref(), authorization_header)
    }
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
