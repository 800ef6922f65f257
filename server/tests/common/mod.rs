//! Helpers the store-level test binaries share.

use tessera_server::store::{CredentialKind, CredentialRecord};

/// The live record of a credential of `kind` whose hash is `hash` (its id
/// made from the hash as the server does), issued to `subject` at time 1.
pub fn credential(kind: CredentialKind, hash: &str, subject: &str) -> CredentialRecord {
    CredentialRecord {
        id: format!("{}_{hash}", kind.as_str()),
        hash: hash.to_owned(),
        kind,
        subject: subject.to_owned(),
        name: String::new(),
        created_at: 1,
        created_by: String::new(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}
