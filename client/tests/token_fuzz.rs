//! Property tests (a bounded fuzz) of the token format: `token::parse` never
//! panics, accepts exactly the `tsr_<kind>_<base58(32 random bytes + CRC-32)>`
//! shape that `generate` produces, and rejects any one-character change.
//!
//! Each property runs a fixed number of cases so CI time stays bounded.

use proptest::prelude::*;
use tessera_client::token::{self, MalformedToken, TokenKind};

/// Cases per property: enough to hit the edge shapes, quick on a slow machine.
const CASES: u32 = 2000;

/// The base58 alphabet (Bitcoin's), which token bodies are written in.
const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn kind() -> impl Strategy<Value = TokenKind> {
    prop::sample::select(TokenKind::ALL.to_vec())
}

/// The documented format, built independently of `generate`: the CRC-32 of
/// the prefix and the random bytes, big-endian, after those bytes.
fn build(kind: TokenKind, random: &[u8; 32], check: Option<[u8; 4]>) -> String {
    let prefix = format!("tsr_{}_", kind.tag());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(prefix.as_bytes());
    hasher.update(random);
    let check = check.unwrap_or(hasher.finalize().to_be_bytes());
    let mut bytes = random.to_vec();
    bytes.extend_from_slice(&check);
    format!("{prefix}{}", bs58::encode(bytes).into_string())
}

/// Anything that might trip a parser: token-like text and its near misses.
fn token_like() -> impl Strategy<Value = String> {
    let tag = prop::sample::select(vec![
        "tkt", "int", "usr", "ins", "wsr", "wsa", "wsi", "svc", "TKT", "xxx", "", "tk",
    ]);
    let body = prop_oneof!["[1-9A-HJ-NP-Za-km-z]{0,90}", "[0OIl1_ ]{0,10}", ".{0,90}",];
    (tag, body).prop_map(|(tag, body)| format!("tsr_{tag}_{body}"))
}

/// `text` with the character at `at` replaced by `with`.
fn replace_char(text: &str, at: usize, with: char) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| if i == at { with } else { c })
        .collect()
}

/// A character to put in place of another: mostly base58 (the hard case,
/// since the result still decodes), sometimes anything at all.
fn replacement() -> impl Strategy<Value = char> {
    let base58: Vec<char> = BASE58.chars().collect();
    prop_oneof![
        3 => prop::sample::select(base58),
        1 => prop::sample::select(vec!['_', '0', 'O', 'I', 'l', ' ', '\0', 'é', '\u{1F600}']),
        1 => any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any text: no panic; whatever is accepted has the shape of its kind.
    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![".*", token_like()]) {
        if let Ok(kind) = token::parse(&text) {
            let prefix = format!("tsr_{}_", kind.tag());
            prop_assert!(text.starts_with(&prefix));
            prop_assert!(text.len() <= 80);
        }
    }

    /// Any bytes, read as UTF-8 the lossy way: no panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = token::parse(&text);
        let mut prefixed = b"tsr_tkt_".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = token::parse(&String::from_utf8_lossy(&prefixed));
    }

    /// Text longer than any token is refused without being read.
    #[test]
    fn long_text_is_refused(text in ".{81,300}") {
        prop_assume!(text.len() > 80);
        prop_assert_eq!(token::parse(&text), Err(MalformedToken::Shape));
    }

    /// What `generate` makes parses back to its kind.
    #[test]
    fn generated_tokens_are_accepted(kind in kind()) {
        let secret = token::generate(kind);
        prop_assert_eq!(token::parse(secret.expose()), Ok(kind));
    }

    /// The format, built from any 32 bytes: accepted with the right checksum
    /// (for its own kind only), refused with any other.
    #[test]
    fn accepted_exactly_with_the_right_checksum(
        kind in kind(),
        other in kind(),
        random in any::<[u8; 32]>(),
        check in any::<[u8; 4]>(),
    ) {
        let good = build(kind, &random, None);
        prop_assert_eq!(token::parse(&good), Ok(kind));
        let forged = build(kind, &random, Some(check));
        if forged != good {
            prop_assert_eq!(token::parse(&forged), Err(MalformedToken::Checksum));
        }
        // Relabelling the kind breaks the checksum (it covers the prefix).
        if other != kind {
            let relabelled = good.replacen(kind.tag(), other.tag(), 1);
            prop_assert_eq!(token::parse(&relabelled), Err(MalformedToken::Checksum));
        }
    }

    /// Any one character changed, anywhere (prefix included), is refused.
    /// (The body is a bijective base58 number under a CRC-32, so a changed
    /// character that still decodes slips through with odds of 2^-32.)
    #[test]
    fn any_single_char_change_is_refused(
        kind in kind(),
        at in any::<prop::sample::Index>(),
        with in replacement(),
    ) {
        let secret = token::generate(kind);
        let text = secret.expose();
        let at = at.index(text.chars().count());
        prop_assume!(text.chars().nth(at) != Some(with));
        let changed = replace_char(text, at, with);
        prop_assert!(token::parse(&changed).is_err(), "{changed:?} accepted");
    }

    /// One character removed or added, anywhere, is refused too.
    #[test]
    fn any_single_char_deletion_or_insertion_is_refused(
        kind in kind(),
        at in any::<prop::sample::Index>(),
        with in replacement(),
    ) {
        let secret = token::generate(kind);
        let chars: Vec<char> = secret.expose().chars().collect();
        let at = at.index(chars.len());
        let mut shorter = chars.clone();
        shorter.remove(at);
        let shorter: String = shorter.into_iter().collect();
        prop_assert!(token::parse(&shorter).is_err(), "{shorter:?} accepted");
        let mut longer = chars;
        longer.insert(at, with);
        let longer: String = longer.into_iter().collect();
        prop_assert!(token::parse(&longer).is_err(), "{longer:?} accepted");
    }
}
