//! `authorization` header parsing on arbitrary bytes: the server's
//! `parse_bearer` (through `http::HeaderValue`, as its auth layer reads the
//! header) and a workspace runtime's `inbound_authorized`. Never a panic;
//! each accepts exactly the shape it documents.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tessera_client::Secret;
use tessera_client::token;
use tessera_client::workspace::inbound_authorized;
use tessera_fuzz::seeds;
use tessera_server::parse_bearer;

/// A fixed inbound secret for the runtime-side check.
const INBOUND: &str = "tsr_wsi_fixed-inbound-secret-for-fuzzing";

fuzz_target!(
    init: {
        seeds::write_if_asked(seeds::bearer_seeds);
    },
    |data: &[u8]| {
        // The auth layer sees only values that are valid header octets and
        // visible ASCII; the parser itself must hold for any text.
        if let Ok(value) = HeaderValue::from_bytes(data)
            && let Ok(text) = value.to_str()
        {
            check_bearer(text);
        }
        if let Ok(text) = std::str::from_utf8(data) {
            check_bearer(text);
            check_inbound(text);
        }
    }
);

fn check_bearer(text: &str) {
    let shaped = text.len() >= 7
        && text.as_bytes()[6] == b' '
        && text.as_bytes()[..6].eq_ignore_ascii_case(b"bearer");
    match parse_bearer(text) {
        Some(token) => {
            assert!(shaped, "{text:?} accepted");
            assert_eq!(token, &text[7..]);
            let _ = token::parse(token);
        }
        None => assert!(!shaped, "{text:?} refused"),
    }
}

fn check_inbound(text: &str) {
    let fixed = Secret::new(INBOUND);
    let expected = format!("Bearer {INBOUND}");
    assert_eq!(
        inbound_authorized(Some(&fixed), Some(text)),
        text == expected
    );
    assert!(!inbound_authorized(None, Some(text)));
    assert!(!inbound_authorized(Some(&Secret::new("")), Some(text)));
    // The header's own token as the secret: only the exact scheme matches.
    if let Some(rest) = text.strip_prefix("Bearer ").filter(|rest| !rest.is_empty()) {
        assert!(inbound_authorized(Some(&Secret::new(rest)), Some(text)));
    }
}
