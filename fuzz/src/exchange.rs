//! One `rpc` input sent to the server, and what its answer must look like:
//! HTTP 200 with a gRPC status (never a reset stream or a closed
//! connection), a well-formed message when the status is OK, no secret and
//! no whole token in the status message unless the request carried it, and
//! no server-side failure (`UNKNOWN`, `INTERNAL`, `DATA_LOSS`) other than
//! the gRPC library's own refusal of a message that does not decode.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::header::{AUTHORIZATION, CONTENT_TYPE, TE};
use http_body_util::{BodyExt, Full};
use percent_encoding::percent_decode;
use prost::Message;
use tessera_client::pb;
use tessera_client::token;
use tower::ServiceExt;

use crate::harness::{Credentials, Harness};
use crate::input::{self, Bearer, Input};
use crate::wire;

/// Longer than the server's own request timeout: a call still unanswered
/// by then hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How tonic refuses a request body that is not one well-formed message;
/// `INTERNAL` is the code gRPC specifies for those.
const CODEC_MESSAGES: [&str; 4] = [
    "failed to decode Protobuf message",
    "Missing request message.",
    "Unexpected EOF decoding stream.",
    "protocol error:",
];

/// The server's answer to one call.
#[derive(Debug)]
pub struct Answer {
    /// The gRPC status code.
    pub code: i32,
    /// The percent-decoded status message.
    pub message: String,
    /// The response body (gRPC framed).
    pub body: Bytes,
}

impl Harness {
    /// Sends `input` and checks the answer.
    ///
    /// # Panics
    /// When the answer breaks one of the rules in the module documentation.
    pub fn exchange(&self, input: &Input) {
        let credentials = self.credentials();
        let path = &self.paths[input.method];
        let Some((request, sent)) = request(path, input, &credentials) else {
            return;
        };
        let answer = self.runtime.block_on(self.send(request));
        if self.trace {
            eprintln!(
                "{path} {:?} {} {:?}",
                input.bearer, answer.code, answer.message
            );
        }
        check(path, &answer, &credentials, &sent);
        if answer.code == 0 {
            self.remember(path, &answer.body);
        }
    }

    fn credentials(&self) -> Credentials {
        match self.credentials.lock() {
            Ok(credentials) => credentials.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn send(&self, request: http::Request<tonic::body::Body>) -> Answer {
        let call = async {
            let response = self.channel.clone().oneshot(request).await;
            let response = response.unwrap_or_else(|err| panic!("transport failure: {err:?}"));
            let (parts, body) = response.into_parts();
            assert_eq!(parts.status, http::StatusCode::OK, "HTTP status");
            let collected = body
                .collect()
                .await
                .unwrap_or_else(|err| panic!("the response body failed: {err:?}"));
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let body = collected.to_bytes();
            // A trailers-only answer carries the status in its headers.
            let status = trailers
                .get("grpc-status")
                .or(parts.headers.get("grpc-status"));
            let status = status.unwrap_or_else(|| panic!("no grpc-status in {parts:?}"));
            let code = std::str::from_utf8(status.as_bytes())
                .ok()
                .and_then(|code| code.parse::<i32>().ok())
                .filter(|code| (0..=16).contains(code))
                .unwrap_or_else(|| panic!("bad grpc-status {status:?}"));
            let message = trailers
                .get("grpc-message")
                .or(parts.headers.get("grpc-message"));
            let message = message.map_or_else(String::new, |value| {
                percent_decode(value.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            });
            Answer {
                code,
                message,
                body,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(answer) => answer,
            Err(_) => panic!("no answer within {CALL_TIMEOUT:?}"),
        }
    }

    /// Keeps the credentials an OK answer issued, so `$tkt` and `$wsa`
    /// stay live.
    fn remember(&self, path: &str, body: &Bytes) {
        let Some(message) = body.get(5..) else {
            return;
        };
        let mut credentials = match self.credentials.lock() {
            Ok(credentials) => credentials,
            Err(poisoned) => poisoned.into_inner(),
        };
        if path.ends_with("/MintTicket") {
            if let Ok(minted) = pb::MintTicketResponse::decode(message) {
                credentials.ticket = minted.ticket;
            }
        } else if path.ends_with("/RegisterWorkspace") {
            let registered = pb::RegisterWorkspaceResponse::decode(message);
            if let Ok(Some(auth)) = registered.map(|registered| registered.auth_token) {
                credentials.workspace_auth = auth;
            }
        }
    }
}

/// The HTTP/2 request of `input` and the text it carries (body and header
/// values, placeholders replaced); `None` when its header value is one no
/// client could send.
fn request(
    path: &str,
    input: &Input,
    credentials: &Credentials,
) -> Option<(http::Request<tonic::body::Body>, String)> {
    let message = wire::substitute(input.body, |value| credentials.placeholder(value))
        .unwrap_or_else(|| input.body.to_vec());
    let mut sent = String::from_utf8_lossy(&message).into_owned();
    let body = if input.unframed {
        message
    } else {
        input::frame(&message)
    };
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers");
    let bearer = |secret: &str| format!("Bearer {secret}").into_bytes();
    let values: Vec<Vec<u8>> = match input.bearer {
        Bearer::None => vec![],
        Bearer::Service => vec![bearer(&credentials.service)],
        Bearer::User => vec![bearer(&credentials.user)],
        Bearer::WorkspaceRegistration => vec![bearer(&credentials.workspace_registration)],
        Bearer::WorkspaceAuth => vec![bearer(&credentials.workspace_auth)],
        Bearer::Internal => vec![bearer(&credentials.internal)],
        Bearer::FromInput => vec![input.header.to_vec()],
        Bearer::Twice => vec![bearer(&credentials.service), bearer(&credentials.service)],
    };
    for value in values {
        sent.push('\n');
        sent.push_str(&String::from_utf8_lossy(&value));
        request = request.header(AUTHORIZATION, HeaderValue::from_bytes(&value).ok()?);
    }
    let body = tonic::body::Body::new(Full::new(Bytes::from(body)));
    let request = request
        .body(body)
        .unwrap_or_else(|err| panic!("bad request: {err}"));
    Some((request, sent))
}

/// Panics unless `answer` follows the rules of the module documentation.
/// A message may repeat what the request itself carried (`sent`): a
/// workspace id the caller chose may look like a token.
fn check(path: &str, answer: &Answer, credentials: &Credentials, sent: &str) {
    let message = &answer.message;
    for secret in credentials.secrets() {
        assert!(
            secret.is_empty() || !message.contains(secret) || sent.contains(secret),
            "{path}: the status message holds a secret: {message:?}"
        );
    }
    if let Some(token) = token_in(message).filter(|token| !sent.contains(token)) {
        panic!("{path}: the status message holds a whole token {token:?}: {message:?}");
    }
    match answer.code {
        0 => assert_one_message(path, &answer.body),
        // UNKNOWN, INTERNAL, DATA_LOSS: the server failed, not the caller.
        2 | 13 | 15 => assert!(
            answer.code == 13 && CODEC_MESSAGES.iter().any(|m| message.starts_with(m)),
            "{path}: server failure {}: {message:?}",
            answer.code
        ),
        _ => {}
    }
}

/// A well-formed Tessera token in `text`, if there is one.
fn token_in(text: &str) -> Option<&str> {
    text.match_indices("tsr_").find_map(|(start, _)| {
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        token::parse(&rest[..end]).is_ok().then_some(&rest[..end])
    })
}

/// An OK answer is exactly one uncompressed gRPC message.
fn assert_one_message(path: &str, body: &[u8]) {
    let header = body
        .get(..5)
        .unwrap_or_else(|| panic!("{path}: OK without a message"));
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    assert_eq!(header[0], 0, "{path}: compressed answer");
    assert_eq!(
        usize::try_from(len).ok(),
        Some(body.len() - 5),
        "{path}: OK answer is not exactly one message"
    );
}
