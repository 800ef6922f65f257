//! The format of every token Tessera issues: `tsr_<kind>_<body>`.
//!
//! The body is base58 of 32 bytes from the OS CSPRNG followed by a CRC-32 of
//! the prefix and those bytes. The checksum lets a server reject a mistyped or
//! truncated token before touching its database, and the fixed prefix lets
//! secret scanners find leaked tokens. Only the SHA-256 of a token is stored.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::Secret;

/// Number of random bytes in a token (256 bits).
const RANDOM_LEN: usize = 32;
/// Number of checksum bytes appended to the random bytes.
const CHECKSUM_LEN: usize = 4;
/// Longest text a well-formed token can have; longer input is rejected unread.
const MAX_TOKEN_LEN: usize = 80;

/// What a token is for. Its tag is the `<kind>` part of the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Single-use ticket (`tsr_tkt_`).
    Ticket,
    /// Per-process internal credential (`tsr_int_`).
    Internal,
    /// User access token (`tsr_usr_`).
    UserAccess,
    /// First-admin install token (`tsr_ins_`).
    Install,
    /// Workspace registration token (`tsr_wsr_`).
    WorkspaceRegistration,
    /// Workspace auth token (`tsr_wsa_`).
    WorkspaceAuth,
    /// Platform inbound secret of a workspace (`tsr_wsi_`).
    WorkspaceInbound,
    /// Shared secret for a service, from `tessera gen-secret` (`tsr_svc_`).
    Service,
    /// One-shot invitation of a new user (`tsr_inv_`).
    Invite,
}

impl TokenKind {
    /// Every kind, for parsing.
    pub const ALL: [TokenKind; 9] = [
        TokenKind::Ticket,
        TokenKind::Internal,
        TokenKind::UserAccess,
        TokenKind::Install,
        TokenKind::WorkspaceRegistration,
        TokenKind::WorkspaceAuth,
        TokenKind::WorkspaceInbound,
        TokenKind::Service,
        TokenKind::Invite,
    ];

    /// The three-letter tag used in the prefix.
    pub fn tag(self) -> &'static str {
        match self {
            TokenKind::Ticket => "tkt",
            TokenKind::Internal => "int",
            TokenKind::UserAccess => "usr",
            TokenKind::Install => "ins",
            TokenKind::WorkspaceRegistration => "wsr",
            TokenKind::WorkspaceAuth => "wsa",
            TokenKind::WorkspaceInbound => "wsi",
            TokenKind::Service => "svc",
            TokenKind::Invite => "inv",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.tag() == tag)
    }
}

/// Why a string is not a well-formed Tessera token. Deliberately carries no
/// part of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    /// Missing `tsr_` prefix, unknown kind, or wrong length.
    #[error("not a Tessera token")]
    Shape,
    /// The body is not base58 or its checksum does not match.
    #[error("token checksum mismatch")]
    Checksum,
}

/// The operating system could not provide random bytes; no credential may
/// be issued until it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the OS random number generator failed")]
pub struct EntropyUnavailable;

/// Creates a fresh token of `kind` from the OS CSPRNG.
pub fn try_generate(kind: TokenKind) -> Result<Secret, EntropyUnavailable> {
    let mut bytes = [0u8; RANDOM_LEN + CHECKSUM_LEN];
    OsRng
        .try_fill_bytes(&mut bytes[..RANDOM_LEN])
        .map_err(|_| EntropyUnavailable)?;
    let prefix = prefix(kind);
    let checksum = checksum(&prefix, &bytes[..RANDOM_LEN]);
    bytes[RANDOM_LEN..].copy_from_slice(&checksum);
    Ok(Secret::new(format!(
        "{prefix}{}",
        bs58::encode(bytes).into_string()
    )))
}

/// A random 128-bit id in hex from the OS CSPRNG, for records (users):
/// not a secret, but unguessable and fallible like every draw here.
pub fn random_id() -> Result<String, EntropyUnavailable> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| EntropyUnavailable)?;
    Ok(hex::encode(bytes))
}

/// Like [`try_generate`], for tools and tests.
///
/// # Panics
/// If the operating system cannot provide random bytes.
pub fn generate(kind: TokenKind) -> Secret {
    match try_generate(kind) {
        Ok(secret) => secret,
        Err(err) => panic!("{err}"),
    }
}

/// Checks that `token` is a well-formed token and returns its kind. Does not
/// say whether the token was ever issued.
pub fn parse(token: &str) -> Result<TokenKind, MalformedToken> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(MalformedToken::Shape);
    }
    let rest = token.strip_prefix("tsr_").ok_or(MalformedToken::Shape)?;
    let (tag, body) = rest.split_once('_').ok_or(MalformedToken::Shape)?;
    let kind = TokenKind::from_tag(tag).ok_or(MalformedToken::Shape)?;
    let bytes = bs58::decode(body)
        .into_vec()
        .map_err(|_| MalformedToken::Checksum)?;
    if bytes.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(MalformedToken::Shape);
    }
    let (random, check) = bytes.split_at(RANDOM_LEN);
    if checksum(&prefix(kind), random) != check {
        return Err(MalformedToken::Checksum);
    }
    Ok(kind)
}

/// Lower-case hex SHA-256 of `value`: what the database stores.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Public identifier of a credential: its kind tag and the first 16 hex
/// digits of its SHA-256. Safe to log and to return to callers.
pub fn credential_id(tag: &str, value: &str) -> String {
    credential_id_from_digest(tag, &Sha256::digest(value.as_bytes()))
}

/// [`credential_id`] from a SHA-256 digest the caller already computed.
pub fn credential_id_from_digest(tag: &str, digest: &[u8]) -> String {
    let head = digest.get(..8).unwrap_or(digest);
    format!("{tag}_{}", hex::encode(head))
}

/// [`credential_id`] from the [`sha256_hex`] of the token, which a caller
/// that looks the token up has already computed.
pub fn credential_id_from_hex(tag: &str, sha256_hex: &str) -> String {
    let head = sha256_hex.get(..16).unwrap_or(sha256_hex);
    format!("{tag}_{head}")
}

/// The public id of `value` if it is a well-formed token (`None` for
/// anything else, which has no kind to name and nothing worth tracking).
pub fn credential_id_of(value: &str) -> Option<String> {
    parse(value)
        .ok()
        .map(|kind| credential_id(kind.tag(), value))
}

/// The first 8 characters of `value` followed by `…`: the most of a ticket
/// or token that may appear in an error or a log line.
pub fn truncated(value: &str) -> String {
    let head: String = value.chars().take(8).collect();
    format!("{head}…")
}

fn prefix(kind: TokenKind) -> String {
    format!("tsr_{}_", kind.tag())
}

fn checksum(prefix: &str, random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(prefix.as_bytes());
    hasher.update(random);
    hasher.finalize().to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_to_their_kind() {
        for kind in TokenKind::ALL {
            let token = generate(kind);
            assert!(token.expose().starts_with(&format!("tsr_{}_", kind.tag())));
            assert_eq!(parse(token.expose()), Ok(kind));
        }
    }

    #[test]
    fn a_public_id_from_the_hash_is_the_public_id_of_the_token() {
        for kind in TokenKind::ALL {
            let token = generate(kind);
            let value = token.expose();
            assert_eq!(
                credential_id_from_hex(kind.tag(), &sha256_hex(value)),
                credential_id(kind.tag(), value)
            );
        }
    }

    #[test]
    fn tokens_are_distinct() {
        assert_ne!(generate(TokenKind::Ticket), generate(TokenKind::Ticket));
    }

    #[test]
    fn any_changed_character_is_rejected() {
        let token = generate(TokenKind::Ticket);
        let text = token.expose();
        for i in 8..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
            let changed: String = chars.into_iter().collect();
            assert!(parse(&changed).is_err(), "position {i} accepted");
        }
    }

    #[test]
    fn kind_cannot_be_swapped() {
        let token = generate(TokenKind::Ticket);
        let swapped = token.expose().replacen("tsr_tkt_", "tsr_usr_", 1);
        assert_eq!(parse(&swapped), Err(MalformedToken::Checksum));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "tsr_",
            "tsr_tkt_",
            "tsr_xxx_abc",
            "Bearer x",
            "tsr_tkt_0OIl",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&"a".repeat(10_000)).is_err());
    }

    #[test]
    fn truncation_keeps_eight_characters() {
        assert_eq!(truncated("tsr_tkt_abcdef"), "tsr_tkt_…");
        assert_eq!(truncated("abc"), "abc…");
    }
}
