//! Text that reaches logs, errors and the audit table: which characters
//! are unprintable, and how they are written when they must be shown.

use std::borrow::Cow;
use std::fmt::Write as _;

use tessera_client::token;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// True for what is not text a person reads: control characters (Unicode
/// `Cc`: the C0 controls with NUL, DEL, the C1 controls), the line and
/// paragraph separators, and the format characters (`Cf`), which are
/// invisible: bidirectional marks, embeddings, overrides and isolates,
/// which reorder what a terminal or a UI shows after them, the zero width
/// space, the byte order mark, the soft hyphen, tags… PostgreSQL refuses
/// NUL in text; the others garble log lines and audit views, forge them,
/// or make two different values look the same. The zero width joiner and
/// non-joiner are format characters too but stay printable: emoji
/// sequences and some scripts (Persian, Indic) need them. Also unprintable:
/// the [`invisible`] characters of other categories, private-use characters
/// (`Co`: what they show depends on a font) and noncharacters.
pub(crate) fn unprintable(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || (c.general_category() == GeneralCategory::Format
            && !matches!(c, '\u{200C}' | '\u{200D}'))
        || invisible(c)
        || c.general_category() == GeneralCategory::PrivateUse
        || noncharacter(c)
}

/// The 66 code points Unicode sets aside never to be characters: U+FDD0 to
/// U+FDEF, and the last two of every plane.
fn noncharacter(c: char) -> bool {
    matches!(c, '\u{FDD0}'..='\u{FDEF}') || u32::from(c) & 0xFFFE == 0xFFFE
}

/// Characters outside `Cf` that show nothing, used to make a name look empty
/// or like another: Unicode's default-ignorable code points that are not
/// format characters (the combining grapheme joiner, the Hangul fillers, the
/// Khmer inherent vowels, the Mongolian variation selectors, and the
/// unassigned code points reserved as default-ignorable), and the blank
/// Braille pattern. The variation selectors stay printable: emoji and CJK
/// ideographs need them.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{2065}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{E0000}'..='\u{E00FF}'
            | '\u{E01F0}'..='\u{E0FFF}'
    )
}

/// True when `text` holds an unprintable character. Printable ASCII, what
/// almost every request field holds, is recognised a byte at a time.
pub(crate) fn has_unprintable(text: &str) -> bool {
    if text.bytes().all(|b| matches!(b, b' '..=b'~')) {
        return false;
    }
    text.chars().any(unprintable)
}

/// `text` with every unprintable character written as `\u{XXXX}` (its code
/// point in at least four upper-case hex digits) and every backslash
/// doubled, so that an escape cannot be forged by sending its characters.
/// Borrowed when nothing needs escaping.
pub(crate) fn escaped(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') && !has_unprintable(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            // Writing to a `String` cannot fail.
            c if unprintable(c) => {
                let _ = write!(out, "\\u{{{:04X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The most of a presented ticket or token an error or a log line may
/// show: its first 8 characters, escaped, and `…`.
pub(crate) fn credential_prefix(presented: &str) -> String {
    escaped(&token::truncated(presented)).into_owned()
}

/// How an id a caller sent is recorded in an audit entry: with a Tessera
/// token pasted into it by mistake, as that token's public id, never the
/// token.
pub(crate) fn shown_id(value: &str) -> String {
    token_within(value).unwrap_or_else(|| value.to_owned())
}

/// Refuses an id holding a Tessera token (a leaked token pasted into a
/// revocation, quoted, with `Bearer ` or spaces around it), naming only its
/// public id: the token must not be stored, logged or echoed.
pub(crate) fn not_a_token(field: &'static str, value: &str) -> super::error::Result<()> {
    match token_within(value) {
        Some(id) => Err(super::error::Error::invalid(
            field,
            format!("a token was sent, not an id; its public id is {id}"),
        )),
        None => Ok(()),
    }
}

/// The public id of the first well-formed token anywhere in `value`.
fn token_within(value: &str) -> Option<String> {
    value.match_indices("tsr_").find_map(|(start, _)| {
        let rest = &value[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        token::credential_id_of(&rest[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_wherever_it_stands() {
        let secret = token::generate(token::TokenKind::UserAccess);
        let id = token::credential_id("usr", secret.expose());
        for sent in [
            secret.expose().to_owned(),
            format!(" {} ", secret.expose()),
            format!("Bearer {}", secret.expose()),
            format!("\"{}\".", secret.expose()),
            format!("https://x/?t={}&a=1", secret.expose()),
        ] {
            assert_eq!(shown_id(&sent), id, "{sent:?}");
            assert!(not_a_token("f", &sent).is_err(), "{sent:?}");
        }
        assert_eq!(shown_id("usr_0123456789abcdef"), "usr_0123456789abcdef");
        assert!(not_a_token("f", "tsr_usr_notatoken").is_ok());
    }

    #[test]
    fn unprintable_characters_and_backslashes_are_escaped() {
        assert!(matches!(escaped("user:github/ada"), Cow::Borrowed(_)));
        assert!(matches!(escaped("Zoë"), Cow::Borrowed(_)));
        assert_eq!(escaped("a\0b"), "a\\u{0000}b");
        assert_eq!(
            escaped("\u{1b}[2J\u{85}\u{202e}"),
            "\\u{001B}[2J\\u{0085}\\u{202E}"
        );
        assert_eq!(escaped("\\u{0000}"), "\\\\u{0000}");
        assert_eq!(escaped("Zoë \u{200c}\u{200d}"), "Zoë \u{200c}\u{200d}");
    }

    #[test]
    fn format_characters_are_unprintable_but_joiners() {
        for c in [
            '\u{ad}',
            '\u{61c}',
            '\u{180e}',
            '\u{200b}',
            '\u{200e}',
            '\u{200f}',
            '\u{2060}',
            '\u{2064}',
            '\u{206a}',
            '\u{206f}',
            '\u{feff}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{e0001}',
            '\u{e0020}',
            '\u{e007f}',
        ] {
            assert!(unprintable(c), "{c:?}");
        }
        assert_eq!(escaped("a\u{200e}b\u{e0041}"), "a\\u{200E}b\\u{E0041}");
        for c in [
            'a',
            ' ',
            '~',
            'é',
            'ß',
            '\u{200c}',
            '\u{200d}',
            '\u{fe0f}',
            '\u{1f600}',
        ] {
            assert!(!unprintable(c), "{c:?}");
        }
    }

    #[test]
    fn invisible_characters_of_other_categories_are_unprintable() {
        for c in [
            '\u{34f}',
            '\u{115f}',
            '\u{1160}',
            '\u{17b4}',
            '\u{180b}',
            '\u{180f}',
            '\u{2065}',
            '\u{2800}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{fff0}',
            '\u{e000}',
            '\u{f0000}',
            '\u{10fffd}',
            '\u{fdd0}',
            '\u{fffe}',
            '\u{ffff}',
            '\u{1fffe}',
            '\u{10ffff}',
            '\u{e0080}',
            '\u{e0fff}',
        ] {
            assert!(unprintable(c), "{c:?}");
        }
        for c in [
            '\u{fe00}',
            '\u{fe0f}',
            '\u{e0100}',
            '\u{e01ef}',
            '\u{3000}',
            '\u{1100}',
        ] {
            assert!(!unprintable(c), "{c:?}");
        }
    }

    #[test]
    fn a_credential_prefix_is_eight_characters_escaped() {
        assert_eq!(credential_prefix("tsr_tkt_abcdef"), "tsr_tkt_…");
        assert_eq!(
            credential_prefix("\0\0\0\0\0\0\0\0\0"),
            "\\u{0000}".repeat(8) + "…"
        );
    }
}
