//! Token parsing (`tessera_client::token`) on arbitrary text: never a
//! panic, and a token is accepted only in its documented shape, with the
//! public id and the truncation derived from it consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_client::token;
use tessera_fuzz::seeds;

fuzz_target!(
    init: {
        seeds::write_if_asked(seeds::token_seeds);
    },
    |data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        check_parse(&text);
        check_truncated(&text);
        let id = token::credential_id_from_digest("tkt", data);
        assert!(id.starts_with("tkt_") && id.len() <= "tkt_".len() + 16);
    }
);

fn check_parse(text: &str) {
    match token::parse(text) {
        Ok(kind) => {
            assert!(text.len() <= 80, "an over-long token was accepted");
            let prefix = format!("tsr_{}_", kind.tag());
            assert!(text.starts_with(&prefix), "{text:?} is not a {kind:?}");
            let body = &text[prefix.len()..];
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{text:?}");
            let id = token::credential_id(kind.tag(), text);
            assert_eq!(token::credential_id_of(text), Some(id.clone()));
            assert_eq!(id.len(), 3 + 1 + 16, "{id:?}");
            assert!(!id.contains(body), "the public id holds the token");
        }
        Err(_) => assert_eq!(token::credential_id_of(text), None),
    }
}

fn check_truncated(text: &str) {
    let truncated = token::truncated(text);
    let head = truncated
        .strip_suffix('…')
        .unwrap_or_else(|| panic!("{truncated:?} does not end in an ellipsis"));
    assert!(head.chars().count() <= 8, "{truncated:?}");
    assert!(
        text.starts_with(head),
        "{truncated:?} is not a prefix of {text:?}"
    );
}
