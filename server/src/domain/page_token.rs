//! Page tokens of listings: where the last page ended, bound to the
//! listing, the caller and the filters it was made for. Opaque to callers;
//! not a secret (it only says where to resume within what the caller may
//! see anyway).

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// Encodes and checks page tokens.
pub(super) struct PageToken;

impl PageToken {
    /// What a page token is bound to: the listing (so that a token of one
    /// listing never resumes another), the caller and every filter but the
    /// page size. Each part is length-prefixed, so that no two different
    /// lists of parts are bound to the same text.
    pub(super) fn scope(listing: &str, caller_subject: &str, filters: &[&str]) -> String {
        let mut hasher = Sha256::new();
        for part in [listing, caller_subject].iter().chain(filters) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    }

    /// The token of a page whose last item sorts at `(key, id)`.
    pub(super) fn encode(scope: &str, key: i64, id: &str) -> String {
        hex::encode(format!("{scope}:{key}:{id}"))
    }

    /// Where the page of `token` resumes (`None` for the first page);
    /// `INVALID_ARGUMENT` for a token not made for `scope`.
    pub(super) fn decode(token: &str, scope: &str) -> Result<Option<(i64, String)>> {
        if token.is_empty() {
            return Ok(None);
        }
        let text = hex::decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(text).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        let (Some(bound), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        // Anyone can forge a token of their own scope: what it says is
        // checked like any input (PostgreSQL refuses NUL in a text bind).
        if bound != scope || super::text::has_unprintable(id) {
            return Err(invalid());
        }
        let key = key.parse().map_err(|_| invalid())?;
        Ok(Some((key, id.to_owned())))
    }
}

/// The refusal of a page token that is not one of this listing.
pub(super) fn invalid() -> Error {
    Error::invalid("page_token", "not a page token of this listing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_resumes_only_the_listing_it_was_made_for() {
        let scope = PageToken::scope("credentials", "alice", &["", "", "false"]);
        let token = PageToken::encode(&scope, 42, "usr_00");
        assert_eq!(
            PageToken::decode(&token, &scope).expect("decode"),
            Some((42, "usr_00".to_owned()))
        );
        let other_caller = PageToken::scope("credentials", "mallory", &["", "", "false"]);
        assert!(PageToken::decode(&token, &other_caller).is_err());
        let other_filter = PageToken::scope("credentials", "alice", &["", "", "true"]);
        assert!(PageToken::decode(&token, &other_filter).is_err());
        let other_listing = PageToken::scope("audit", "alice", &["", "", "false"]);
        assert!(PageToken::decode(&token, &other_listing).is_err());
        let shifted = PageToken::scope("credentials", "alice", &["", "", "", "false"]);
        assert_ne!(scope, shifted, "parts are not merely concatenated");
        assert!(PageToken::decode("zz", &scope).is_err());
        assert_eq!(PageToken::decode("", &scope).expect("first page"), None);
        let forged = hex::encode(format!("{scope}:0:usr_\0"));
        assert!(
            PageToken::decode(&forged, &scope).is_err(),
            "a NUL in the id"
        );
    }
}
