//! What a failed authentication is charged to: the caller's peer address
//! and, when it presented a well-formed credential of a kind a caller may
//! hold, that credential.

use std::net::IpAddr;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::failures::Scope;

/// What a failure is charged to: the peer's address and, when the caller
/// presented a well-formed credential, its public id. The keys are worked
/// out only when needed (a block is on file, or a failure is recorded), so
/// callers that do not fail never pay for hashing their bearer.
#[derive(Clone, Debug, Default)]
pub(crate) struct FailureKeys {
    peer: Option<IpAddr>,
    bearer: Secret,
}

impl FailureKeys {
    /// Keys of a call from `peer` presenting `bearer` (empty when none).
    pub(crate) fn new(peer: Option<IpAddr>, bearer: Secret) -> Self {
        Self { peer, bearer }
    }

    /// The peer's address, if known.
    pub(super) fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// The bearer the caller presented.
    pub(crate) fn bearer(&self) -> &Secret {
        &self.bearer
    }

    /// The keys of this call in `scope`.
    pub(super) fn resolve(&self, scope: Scope) -> Keys {
        let mut keys = Keys::default();
        if scope != Scope::Credential {
            keys.peer = self.peer.map(|ip| format!("peer:{ip}"));
        }
        // Only a kind that can authenticate a caller: a made-up ticket or
        // install token as a bearer fails without a lookup, and its own key
        // would only add a row to the counts (the peer is charged anyway).
        if scope != Scope::Peer
            && let Ok(kind) = token::parse(self.bearer.expose())
            && CALLER_KINDS.contains(&kind)
        {
            // The public id (the tag and 64 bits of the SHA-256) and 64 bits
            // more: a token made to share a victim's public id, to have it
            // refused, would cost about 2^64 hashes; 128 are out of reach.
            let hash = token::sha256_hex(self.bearer.expose());
            let bits = hash.get(..32).unwrap_or_default();
            keys.credential = Some(format!("credential:{}_{bits}", kind.tag()));
        }
        keys
    }
}

/// A call's keys as the throttle's maps name them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Keys {
    /// `peer:<address>`, when the peer is in scope and known.
    pub(super) peer: Option<String>,
    /// `credential:<tag>_<128 bits of its hash>`, when the credential is in
    /// scope and of a kind a caller may hold.
    pub(super) credential: Option<String>,
}

impl Keys {
    /// Every key, the peer's first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &String> {
        self.peer.iter().chain(&self.credential)
    }
}

/// The kinds of token a caller may present as its own credential.
const CALLER_KINDS: [TokenKind; 5] = [
    TokenKind::UserAccess,
    TokenKind::WorkspaceAuth,
    TokenKind::WorkspaceRegistration,
    TokenKind::Internal,
    TokenKind::Service,
];
