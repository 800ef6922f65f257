//! Checks on free-text request fields shared by several RPCs.

use super::error::{Error, Result};
use super::text;

/// Longest display name accepted, in bytes.
const MAX_NAME_LEN: usize = 256;
/// Longest e-mail accepted (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Domain reserved for synthetic service users (and its subdomains).
const SERVICE_DOMAIN: &str = "system.local";

/// A free-text field: at most `max_len` bytes, and no unprintable
/// character ([`text::unprintable`]) anywhere, before any trimming: they
/// garble logs and UIs, and PostgreSQL refuses NUL in text.
pub(crate) fn free_text(field: &'static str, value: &str, max_len: usize) -> Result<()> {
    if value.len() > max_len {
        return Err(Error::invalid(
            field,
            format!("longer than {max_len} bytes"),
        ));
    }
    printable(field, value)
}

/// A display name (of an admin, of a workspace): free text of at most
/// [`MAX_NAME_LEN`] bytes.
pub(crate) fn display_name(field: &'static str, name: &str) -> Result<()> {
    free_text(field, name, MAX_NAME_LEN)
}

fn printable(field: &'static str, value: &str) -> Result<()> {
    if text::has_unprintable(value) {
        return Err(Error::invalid(
            field,
            "must not hold control, line-separator or invisible format characters",
        ));
    }
    Ok(())
}

/// A human's e-mail address, trimmed: one `@`, a dotted domain in its ASCII
/// form (an internationalised one as `xn--…`), no white space or control
/// characters, and not in the `system.local` domain, which is reserved for
/// service users. An ASCII domain cannot be made to look like (or, mapped
/// as IDNA maps full-width letters and ideographic full stops, to become)
/// `system.local` with characters from elsewhere.
pub(crate) fn human_email<'a>(field: &'static str, email: &'a str) -> Result<&'a str> {
    printable(field, email)?;
    let email = email.trim();
    let valid_shape = email.len() <= MAX_EMAIL_LEN
        // The joiners and variation selectors free text allows would let
        // an e-mail look exactly like another's in listings and the audit log.
        && !email.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
                || matches!(c, '\u{E0100}'..='\u{E01EF}')
        })
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid_shape {
        return Err(Error::invalid(field, "not an e-mail address"));
    }
    let domain = email
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if domain == SERVICE_DOMAIN || domain.ends_with(&format!(".{SERVICE_DOMAIN}")) {
        return Err(Error::invalid(
            field,
            "the system.local domain is reserved for services",
        ));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_emails_are_validated() {
        for bad in [
            "",
            "a",
            "a@b",
            "@b.c",
            "a b@c.d",
            "a@.c",
            "a@c.",
            "svc@system.local",
            "x@SYSTEM.local",
            "\u{85}ada@example.com",
            "ada\0@example.com",
            "a\u{200e}b@example.com",
            "ada@exam\u{ad}ple.com",
            "svc@system.local\u{200d}",
            "a\u{200c}b@example.com",
            "a@sub.System.Local",
            "svc@system.local\u{fe0f}",
            "svc\u{fe0f}@example.com",
            "svc@\u{ff53}\u{ff59}\u{ff53}\u{ff54}\u{ff45}\u{ff4d}.local",
            "svc@system.local\u{3002}",
            "svc@\u{455}ystem.local",
            "ada@exa_mple.com",
        ] {
            assert!(human_email("email", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            human_email("email", " ada@example.com ").ok(),
            Some("ada@example.com")
        );
        for good in [
            "zoë@example.com",
            "ada@xn--bcher-kva.example",
            "a.b-c@d-e.f",
        ] {
            assert_eq!(human_email("email", good).ok(), Some(good));
        }
    }

    #[test]
    fn display_names_are_bounded_and_printable() {
        assert!(display_name("name", "Ada Lovelace").is_ok());
        assert!(display_name("name", &"n".repeat(300)).is_err());
        assert!(display_name("name", "a\nb").is_err());
        assert!(display_name("name", "\u{85}").is_err());
        assert!(display_name("name", "a\u{202e}b").is_err());
        assert!(display_name("name", "\u{feff}Ada").is_err());
        assert!(display_name("name", "Zoë \u{1f469}\u{200d}\u{1f4bb}").is_ok());
    }
}
