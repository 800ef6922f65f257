//! Checks that an issued secret did not leak: into logs, statuses or
//! stored rows. Errors may name the first 8 characters of a credential (its
//! `tsr_<kind>_` prefix); anything more is a leak.

use crate::TestServer;

/// How many consecutive characters of a secret's random part count as a
/// fragment of it.
const FRAGMENT: usize = 12;

/// The random part of `secret`: what follows its `tsr_<kind>_` prefix (all
/// of it when there is no such prefix).
fn random_part(secret: &str) -> &str {
    secret
        .split_once('_')
        .and_then(|(_, rest)| rest.split_once('_'))
        .map_or(secret, |(_, body)| body)
}

/// A run of 12 characters of `secret`'s random part that occurs in `text`.
pub fn fragment_in<'a>(text: &str, secret: &'a str) -> Option<&'a str> {
    let body = random_part(secret);
    (0..=body.len().saturating_sub(FRAGMENT))
        .filter_map(|start| body.get(start..start + FRAGMENT))
        .find(|fragment| text.contains(fragment))
}

/// True when `text` holds more of `secret` than its first 8 characters: its
/// first 9, or any 12 consecutive characters of its random part.
pub fn leaks(text: &str, secret: &str) -> bool {
    secret.get(..9).is_some_and(|head| text.contains(head)) || fragment_in(text, secret).is_some()
}

/// Asserts that no fragment of `secret` occurs in `text` (`what` names it).
#[track_caller]
pub fn assert_no_fragment(text: &str, secret: &str, what: &str) {
    assert!(
        random_part(secret).len() >= FRAGMENT,
        "secret too short to check"
    );
    if let Some(fragment) = fragment_in(text, secret) {
        panic!("a fragment of a secret ({fragment}) appears in {what}:\n{text}");
    }
}

/// Asserts that `server` logged something, and that none of `secrets`
/// leaks into its standard error or standard output.
#[track_caller]
pub fn assert_not_logged<S: AsRef<str>>(server: &TestServer, secrets: &[S]) {
    let (stderr, stdout) = (server.stderr(), server.stdout());
    assert!(!stderr.is_empty(), "the server logged nothing at all");
    for secret in secrets {
        let secret = secret.as_ref();
        assert!(
            !leaks(&stderr, secret),
            "a credential reached the logs:\n{stderr}"
        );
        assert!(
            !leaks(&stdout, secret),
            "a credential reached stdout:\n{stdout}"
        );
    }
}

/// Asserts `status` is a refusal with `code` (and `reason`) that names at
/// most 8 characters of `secret`, in its message, details and metadata
/// alike.
#[track_caller]
pub fn assert_refused(
    status: &tessera_client::tonic::Status,
    code: tessera_client::tonic::Code,
    reason: Option<&str>,
    secret: &str,
) {
    crate::assert_status(status, code, reason);
    let details = String::from_utf8_lossy(status.details());
    let metadata = format!("{:?}", status.metadata());
    for (what, text) in [
        ("message", status.message()),
        ("details", &details),
        ("metadata", &metadata),
    ] {
        assert!(
            !leaks(text, secret),
            "the status {what} reveals more than 8 characters of the credential: {:?}",
            status.message()
        );
    }
}

/// `secret` with the character at `index` replaced by another base58 one:
/// a near copy, well-formed or not depending on where.
pub fn change_char(secret: &str, index: usize) -> String {
    let mut chars: Vec<char> = secret.chars().collect();
    chars[index] = if chars[index] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}
