//! Parsing of the `authorization` header's value, kept apart from the layer
//! so it can be tested (and fuzzed) on its own.

/// The token of an `authorization: Bearer <token>` header value: everything
/// after the first space, when the scheme before it is `Bearer` in any case
/// (RFC 9110). Anything else yields `None`. The token is returned as given,
/// unchecked: an empty or malformed one is the verifier's to refuse.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::parse_bearer;

    #[test]
    fn scheme_is_case_insensitive_and_token_is_the_rest() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bEaReR abc def"), Some("abc def"));
        assert_eq!(parse_bearer("Bearer "), Some(""));
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer(""), None);
    }
}
