//! Page tokens of listings: where the last page ended, bound to the caller
//! and the filters it was made for. Opaque to callers; not a secret (it
//! only says where to resume within what the caller may see anyway).

use sha2::{Digest, Sha256};

use super::credentials::CredentialFilter;
use super::error::{Error, Result};
use crate::store::CredentialKind;

/// Encodes and checks page tokens.
pub(super) struct PageToken;

impl PageToken {
    /// What a page token is bound to: the caller and every filter but the
    /// page size.
    pub(super) fn scope(caller_subject: &str, filter: &CredentialFilter) -> String {
        let kind = filter.kind.map(CredentialKind::as_str).unwrap_or_default();
        let bound = format!(
            "{caller_subject}\n{}\n{kind}\n{}\n{}",
            filter.subject, filter.include_revoked, filter.include_expired
        );
        hex::encode(&Sha256::digest(bound.as_bytes())[..8])
    }

    /// The token of a page that ended with the entry at `(created_at, id)`.
    pub(super) fn encode((created_at, id): (i64, &str), scope: &str) -> String {
        hex::encode(format!("{scope}:{created_at}:{id}"))
    }

    /// Where the page of `token` resumes (`None` for the first page);
    /// `INVALID_ARGUMENT` for a token not made for `scope`.
    pub(super) fn decode(token: &str, scope: &str) -> Result<Option<(i64, String)>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Error::invalid("page_token", "not a page token of this listing");
        let text = hex::decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(text).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        let (Some(bound), Some(created_at), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if bound != scope {
            return Err(invalid());
        }
        let created_at = created_at.parse().map_err(|_| invalid())?;
        Ok(Some((created_at, id.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_resumes_only_the_listing_it_was_made_for() {
        let filter = CredentialFilter::default();
        let scope = PageToken::scope("alice", &filter);
        let token = PageToken::encode((42, "usr_00"), &scope);
        assert_eq!(
            PageToken::decode(&token, &scope).expect("decode"),
            Some((42, "usr_00".to_owned()))
        );
        let other_caller = PageToken::scope("mallory", &filter);
        assert!(PageToken::decode(&token, &other_caller).is_err());
        let revoked_too = CredentialFilter {
            include_revoked: true,
            ..CredentialFilter::default()
        };
        assert!(PageToken::decode(&token, &PageToken::scope("alice", &revoked_too)).is_err());
        assert!(PageToken::decode("zz", &scope).is_err());
        assert_eq!(PageToken::decode("", &scope).expect("first page"), None);
    }
}
