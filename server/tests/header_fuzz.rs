//! Property tests (a bounded fuzz) of the `authorization` header parsing that
//! runs before every authenticated call: `tessera_server::parse_bearer`.
//!
//! Each property runs a fixed number of cases so CI time stays bounded.

use proptest::prelude::*;
use tessera_server::parse_bearer;

/// Cases per property: enough to hit the edge shapes, quick on a slow machine.
const CASES: u32 = 2000;

/// What `parse_bearer` must do, written out another way: `Some(rest)` exactly
/// when the value starts with `bearer` in any case followed by one space.
fn model(value: &str) -> Option<&str> {
    let scheme = value.get(..6)?;
    let rest = value.get(6..)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        rest.strip_prefix(' ')
    } else {
        None
    }
}

/// `word` with the ASCII case of each letter chosen by `mask`.
fn recase(word: &str, mask: u8) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 8)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Header values that look like, or nearly like, a bearer header.
fn near_bearer() -> impl Strategy<Value = String> {
    let heads = prop::sample::select(vec![
        "Bearer ",
        "bearer ",
        "BEARER ",
        "Bearer",
        "Bearer  ",
        " Bearer ",
        "Bearer\t",
        "Bearer\u{a0}",
        "Beare ",
        "Bearerx ",
        "Basic ",
        "Bearer Bearer ",
        "Bеarer ", // Cyrillic 'е'
        "BEARER\u{0} ",
        "",
        " ",
    ]);
    (heads, ".{0,40}").prop_map(|(head, tail)| format!("{head}{tail}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any text: no panic, and the answer is the model's.
    #[test]
    fn arbitrary_text_matches_the_model(value in ".*") {
        prop_assert_eq!(parse_bearer(&value), model(&value));
    }

    /// Text shaped like a bearer header, with its near misses.
    #[test]
    fn near_misses_match_the_model(value in near_bearer()) {
        prop_assert_eq!(parse_bearer(&value), model(&value));
    }

    /// Whatever comes back is the tail of the input itself (the same bytes,
    /// not a copy) after exactly `Bearer `.
    #[test]
    fn the_token_is_a_suffix_of_the_input(value in prop_oneof![".*", near_bearer()]) {
        if let Some(token) = parse_bearer(&value) {
            let start = value.len() - token.len();
            prop_assert_eq!(start, 7);
            prop_assert!(value.ends_with(token));
            let end_of_value = value.as_ptr() as usize + value.len();
            let end_of_token = token.as_ptr() as usize + token.len();
            prop_assert_eq!(end_of_token, end_of_value, "not a slice of the input");
        }
    }

    /// `Bearer <t>` in any letter case gives back `t`, whatever `t` holds
    /// (spaces included: checking it is the verifier's job).
    #[test]
    fn any_case_of_the_scheme_gives_the_token(mask in any::<u8>(), token in ".*") {
        let value = format!("{} {token}", recase("bearer", mask));
        prop_assert_eq!(parse_bearer(&value), Some(token.as_str()));
        for value in [format!("Bearer {token}"), format!("bearer {token}")] {
            prop_assert_eq!(parse_bearer(&value), Some(token.as_str()));
        }
    }

    /// Without a space there is no token.
    #[test]
    fn no_space_means_none(value in "[^ ]*") {
        prop_assert_eq!(parse_bearer(&value), None);
        let glued = format!("Bearer{value}");
        prop_assert_eq!(parse_bearer(&glued), None);
    }

    /// Any other scheme is refused.
    #[test]
    fn other_schemes_are_refused(scheme in "[A-Za-z0-9_-]{0,12}", token in ".*") {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        let value = format!("{scheme} {token}");
        prop_assert_eq!(parse_bearer(&value), None);
    }

    /// Raw header bytes, as the auth layer receives them: `HeaderValue`
    /// accepts them or not, `to_str` succeeds or not, and the parse never
    /// panics and returns only visible ASCII (and spaces).
    #[test]
    fn raw_header_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), bearer in any::<bool>()) {
        let mut raw = if bearer { b"Bearer ".to_vec() } else { Vec::new() };
        raw.extend_from_slice(&bytes);
        if let Ok(value) = http::HeaderValue::from_bytes(&raw)
            && let Ok(text) = value.to_str()
            && let Some(token) = parse_bearer(text)
        {
            prop_assert!(token.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()));
        }
        // Lossy text of the same bytes goes through the parser too.
        let lossy = String::from_utf8_lossy(&raw);
        prop_assert_eq!(parse_bearer(&lossy), model(&lossy));
    }
}
