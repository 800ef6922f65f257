//! Faults and bad input (issue 5, point 3): malformed protobuf bytes,
//! oversized fields and messages, broken `authorization` metadata, unknown
//! fields, edge `ttl_seconds`, and a database that disappears mid-run and
//! comes back. Each case gets a clear gRPC error; afterwards the server is
//! still SERVING, still answers, and a ticket minted before the fault is
//! still consumable exactly once (nothing stored was lost or corrupted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tessera_client::Client;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::transport::Channel;
use tessera_client::tonic::{Code, Status};
use tessera_tests::raw::{self, RawCall, frame};
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, consume_ticket, mint_ticket,
    service_secret,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

const SERVICE: &str = "SCHEDULER";
const CREDENTIAL_SERVICE: &str = "tessera.v1.CredentialService";
const CANARY_USER: &str = "canary-user";
const CANARY_PURPOSE: &str = "canary";
const MIB: usize = 1024 * 1024;

fn secret() -> String {
    service_secret("scheduler")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// A server, a service client, and a canary ticket minted before any fault.
struct Fixture {
    db: TestDatabase,
    server: TestServer,
    client: Client,
    channel: Channel,
    canary: String,
}

impl Fixture {
    async fn sqlite() -> Self {
        Self::on(TestDatabase::sqlite(), &[]).await
    }

    async fn on(db: TestDatabase, env: &[(&str, &str)]) -> Self {
        let mut options = ServerOptions::new().service(SERVICE, &secret());
        for (key, value) in env {
            options = options.env(key, value);
        }
        let server = TestServer::start(&db, options).await;
        let mut client = server.client(Some(&secret())).await;
        let canary = mint_ticket(&mut client, CANARY_USER, CANARY_PURPOSE, 300)
            .await
            .expect("mint the canary");
        let channel = raw::channel(&server.endpoint()).await;
        Fixture {
            db,
            server,
            client,
            channel,
            canary,
        }
    }

    /// Sends a raw call; the server must answer it (no transport failure).
    async fn raw(&self, call: RawCall) -> Status {
        let response = call
            .send(&self.channel)
            .await
            .unwrap_or_else(|err| panic!("the server did not answer: {err}"));
        assert_eq!(response.http_status, 200, "gRPC answers with HTTP 200");
        response.status().clone()
    }

    /// Health SERVING and a successful authenticated call.
    async fn assert_up(&mut self, after: &str) {
        for service in ["", CREDENTIAL_SERVICE] {
            assert_eq!(
                self.server.health_status(service).await,
                Some(ServingStatus::Serving),
                "health of {service:?} after {after}"
            );
        }
        let principal = verify(&mut self.client, &secret())
            .await
            .unwrap_or_else(|s| panic!("VerifyBearer after {after}: {s:?}"));
        assert_eq!(principal.kind(), PrincipalKind::Service);
    }

    /// Up, the canary consumable exactly once, a fresh ticket works, and the
    /// server never panicked.
    async fn assert_survived(mut self) {
        self.assert_up("the faults").await;
        let identity = consume_ticket(&mut self.client, &self.canary, CANARY_PURPOSE)
            .await
            .expect("the ticket minted before the faults is still consumable");
        assert_eq!(identity.user_id, CANARY_USER);
        assert_eq!(identity.provider, "github");
        let status = consume_ticket(&mut self.client, &self.canary, CANARY_PURPOSE)
            .await
            .expect_err("and only once");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_UNKNOWN"));
        let fresh = mint_ticket(&mut self.client, "after", "", 0)
            .await
            .expect("mint");
        consume_ticket(&mut self.client, &fresh, "")
            .await
            .expect("consume a fresh ticket");
        let stderr = self.server.stderr();
        assert!(
            !stderr.contains("panicked"),
            "the server panicked:\n{stderr}"
        );
        drop(self.db);
    }
}

async fn verify(client: &mut Client, token: &str) -> Result<pb::Principal, Status> {
    let request = pb::VerifyBearerRequest {
        token: token.to_owned(),
    };
    let response = client.verify_bearer(request).await?.into_inner();
    Ok(response.principal.expect("principal"))
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

fn bearer(secret: &str) -> Vec<u8> {
    format!("Bearer {secret}").into_bytes()
}

/// The field violations of a status's `BadRequest` detail.
fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

// 1 ─ malformed protobuf bytes ────────────────────────────────────────────

#[tokio::test]
async fn malformed_protobuf_is_internal_from_the_decoder_and_harmless() {
    let mut fx = Fixture::sqlite().await;
    let conn = fx.db.connect().await;
    let stored_before = count(&conn, "SELECT COUNT(*) FROM tickets").await;

    // MintTicketRequest bodies prost cannot decode. tonic maps every
    // protobuf decode error to INTERNAL (as the gRPC status code guide
    // says), with prost's description as the message.
    let undecodable: [(&str, Vec<u8>); 6] = [
        ("random bytes", vec![0xff; 16]),
        ("a truncated varint key", vec![0x80]),
        ("a length beyond the buffer", vec![0x0a, 0x10, b'a']),
        ("invalid UTF-8 in user_id", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("user_id sent as a varint", vec![0x08, 0x01]),
        ("a field number of 0", vec![0x00, 0x01]),
    ];
    for (what, payload) in &undecodable {
        let status = fx
            .raw(RawCall::new("MintTicket", frame(payload)).authorization(&bearer(&secret())))
            .await;
        assert_eq!(
            status.code(),
            Code::Internal,
            "{what}: tonic's decoder answers INTERNAL, got {status:?}"
        );
        assert!(
            status.message().contains("decode"),
            "{what}: the message says what failed: {:?}",
            status.message()
        );
        fx.assert_up(what).await;
    }

    // Broken gRPC framing, caught by tonic before prost runs.
    let mut compressed = frame(b"\x0a\x01a").to_vec();
    compressed[0] = 1;
    let mut bad_flag = frame(b"\x0a\x01a").to_vec();
    bad_flag[0] = 7;
    let valid = pb::MintTicketRequest {
        user_id: "user-two".into(),
        provider: "github".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    }
    .encode_to_vec();
    let mut two = frame(&valid).to_vec();
    two.extend_from_slice(&frame(&valid));
    let framing: [(&str, Bytes, Code); 5] = [
        // The length prefix promises 100 bytes; 3 arrive, then END_STREAM.
        (
            "a frame cut short",
            Bytes::from_static(b"\x00\x00\x00\x00\x64\x0a\x01a"),
            Code::Internal,
        ),
        (
            "half a frame header",
            Bytes::from_static(b"\x00\x00"),
            Code::Internal,
        ),
        ("no message at all", Bytes::new(), Code::Internal),
        (
            "the compressed flag without grpc-encoding",
            Bytes::from(compressed),
            Code::Internal,
        ),
        (
            "an invalid compression flag",
            Bytes::from(bad_flag),
            Code::Internal,
        ),
    ];
    for (what, body, code) in framing {
        let status = fx
            .raw(RawCall::new("MintTicket", body).authorization(&bearer(&secret())))
            .await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
        fx.assert_up(what).await;
    }
    // Two valid messages on a unary call: tonic serves the first and drops
    // the second; one ticket, not two.
    let response = RawCall::new("MintTicket", Bytes::from(two))
        .authorization(&bearer(&secret()))
        .send(&fx.channel)
        .await
        .expect("an answer");
    eprintln!(
        "faults: two messages on a unary call: {:?}, {} response messages, {} tickets stored",
        response.status(),
        response.messages.len(),
        count(&conn, "SELECT COUNT(*) FROM tickets").await - stored_before
    );
    assert_eq!(response.status().code(), Code::Ok);
    assert_eq!(response.messages.len(), 1, "one answer");
    let stored_before = stored_before + 1;
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM tickets").await,
        stored_before,
        "one ticket for two request messages"
    );
    fx.assert_up("two messages").await;

    // Without a valid caller the body is never decoded: UNAUTHENTICATED.
    let status = fx.raw(RawCall::new("MintTicket", frame(&[0xff; 16]))).await;
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .raw(RawCall::new("VerifyBearer", frame(&[0xff; 16])).authorization(b"Bearer garbage"))
        .await;
    assert_status(&status, Code::Unauthenticated, None);

    // An unknown method of the service, and an unknown service.
    for path in [
        "/tessera.v1.CredentialService/NoSuchMethod",
        "/tessera.v9.Nope/Call",
    ] {
        let status = fx
            .raw(RawCall::new(path, frame(&[])).authorization(&bearer(&secret())))
            .await;
        assert_status(&status, Code::Unimplemented, None);
        let status = fx.raw(RawCall::new(path, frame(&[]))).await;
        assert_status(&status, Code::Unauthenticated, None);
    }

    // Nothing was stored by the refused calls.
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM tickets").await,
        stored_before
    );
    fx.assert_survived().await;
}

// 2 ─ oversized fields and messages ───────────────────────────────────────

#[tokio::test]
async fn oversized_fields_are_invalid_and_oversized_messages_out_of_range() {
    let mut fx = Fixture::sqlite().await;
    let huge = "u".repeat(MIB);

    // 1 MiB in each MintTicket field: INVALID_ARGUMENT naming the field
    // (limits are 256 bytes), without echoing the input back.
    let cases = [
        ("user_id", huge.as_str(), "github", ""),
        ("provider", "user-1", huge.as_str(), ""),
        ("purpose", "user-1", "github", huge.as_str()),
    ];
    for (field, user_id, provider, purpose) in cases {
        let request = pb::MintTicketRequest {
            user_id: user_id.to_owned(),
            provider: provider.to_owned(),
            purpose: purpose.to_owned(),
            ttl_seconds: 0,
        };
        let status = fx
            .client
            .mint_ticket(request)
            .await
            .expect_err("1 MiB field");
        assert_status(&status, Code::InvalidArgument, None);
        assert_eq!(violated_fields(&status), vec![field.to_owned()]);
        assert!(status.message().len() < 200, "{field}: input echoed back");
        assert!(status.details().len() < 1024, "{field}: input in details");
    }
    // Just at the limit is fine; one byte more is not.
    mint_ticket(&mut fx.client, &"u".repeat(256), "", 0)
        .await
        .expect("256 bytes");
    let status = mint_ticket(&mut fx.client, &"u".repeat(257), "", 0)
        .await
        .expect_err("257 bytes");
    assert_status(&status, Code::InvalidArgument, None);

    // 1 MiB where a credential goes: refused like any wrong credential.
    let status = consume_ticket(&mut fx.client, &huge, "")
        .await
        .expect_err("1 MiB ticket");
    assert_status(&status, Code::Unauthenticated, Some("TICKET_MALFORMED"));
    assert!(status.message().len() < 200);
    let status = verify(&mut fx.client, &huge)
        .await
        .expect_err("1 MiB bearer to verify");
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .client
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: huge.clone(),
            name: String::new(),
        })
        .await
        .expect_err("1 MiB workspace id");
    assert_status(&status, Code::InvalidArgument, None);
    let mut anonymous = fx.server.client(None).await;
    let status = anonymous
        .consume_install_token(pb::ConsumeInstallTokenRequest {
            install_token: huge.clone(),
            admin_email: huge.clone(),
            admin_name: huge.clone(),
        })
        .await
        .expect_err("1 MiB install token fields");
    assert!(
        matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated),
        "{status:?}"
    );
    assert!(status.message().len() < 200);
    fx.assert_up("1 MiB fields").await;

    // A message over tonic's default 4 MiB receive limit is refused from its
    // length prefix, before it is buffered: tonic answers OUT_OF_RANGE
    // (grpc-go and grpc-core say RESOURCE_EXHAUSTED for the same case).
    let started = Instant::now();
    let status = mint_ticket(&mut fx.client, &"u".repeat(5 * MIB), "", 0)
        .await
        .expect_err("5 MiB message");
    assert_status(&status, Code::OutOfRange, None);
    assert!(
        status.message().contains("too large"),
        "{:?}",
        status.message()
    );
    eprintln!(
        "faults: a 5 MiB MintTicket got {:?} ({:?}) in {:.2?}",
        status.code(),
        status.message(),
        started.elapsed()
    );
    // The frame header alone is enough to refuse it.
    let mut header_only = vec![0u8];
    header_only.extend_from_slice(&(64 * MIB as u32).to_be_bytes());
    let status = fx
        .raw(RawCall::new("MintTicket", Bytes::from(header_only)).authorization(&bearer(&secret())))
        .await;
    assert_status(&status, Code::OutOfRange, None);
    fx.assert_up("oversized messages").await;

    // A 64 KiB authorization header: over the HTTP/2 header list limit the
    // server advertises (16 KiB by default in hyper), so the call never
    // reaches Tessera; the connection and the server survive.
    let long = format!("Bearer {}", "b".repeat(64 * 1024));
    let response = RawCall::new("VerifyBearer", frame(&[]))
        .authorization(long.as_bytes())
        .send(&fx.channel)
        .await;
    eprintln!("faults: a 64 KiB authorization header: {response:?}");
    match response {
        Ok(response) => assert_ne!(response.status().code(), Code::Ok),
        Err(err) => assert!(!err.is_empty()),
    }
    fx.assert_up("a 64 KiB header").await;
    fx.assert_survived().await;
}

// 3 ─ the authorization metadata ──────────────────────────────────────────

#[tokio::test]
async fn authorization_metadata_is_parsed_strictly_and_safely() {
    let fx = Fixture::sqlite().await;
    let secret = secret();
    let request = frame(
        &pb::VerifyBearerRequest {
            token: secret.clone(),
        }
        .encode_to_vec(),
    );
    let accepted = |value: String| (value.into_bytes(), true);
    let refused = |value: Vec<u8>| (value, false);
    let mut invalid_utf8 = bearer(&secret);
    invalid_utf8.extend_from_slice(b"\xff");
    let mut latin1 = b"Bearer ".to_vec();
    latin1.extend_from_slice(b"\xe9t\xe9\xff\xfe");
    let cases: Vec<(Vec<u8>, bool)> = vec![
        accepted(format!("Bearer {secret}")),
        // The scheme is case-insensitive (RFC 9110 §11.1).
        accepted(format!("bearer {secret}")),
        accepted(format!("BEARER {secret}")),
        accepted(format!("bEaReR {secret}")),
        // No scheme, another scheme, a doubled scheme.
        refused(secret.clone().into_bytes()),
        refused(format!("Basic {secret}").into_bytes()),
        refused(format!("Token {secret}").into_bytes()),
        refused(format!("Bearer Bearer {secret}").into_bytes()),
        refused(format!("Bearer{secret}").into_bytes()),
        // Other separators: the token is exactly what follows one space.
        refused(format!("Bearer  {secret}").into_bytes()),
        refused(format!("Bearer\t{secret}").into_bytes()),
        refused(format!("Bearer {secret} ").into_bytes()),
        refused(format!("Bearer {secret}x").into_bytes()),
        // Nothing to check.
        refused(b"Bearer".to_vec()),
        refused(b"Bearer ".to_vec()),
        refused(Vec::new()),
        // Bytes that are not UTF-8 (HTTP/2 carries them; tonic's ASCII
        // metadata API would refuse to build them).
        refused(invalid_utf8),
        refused(latin1),
        refused(b"\xff\xfe\xfd".to_vec()),
    ];
    let mut summary = Vec::new();
    for (value, ok) in &cases {
        let shown = String::from_utf8_lossy(value).replace(&secret, "<secret>");
        let response = RawCall::new("VerifyBearer", request.clone())
            .authorization(value)
            .send(&fx.channel)
            .await
            .unwrap_or_else(|err| panic!("{shown:?}: no answer: {err}"));
        let status = response.status();
        if *ok {
            assert_eq!(status.code(), Code::Ok, "{shown:?}: {status:?}");
            let message = response.messages.first().expect("a response message");
            let principal = pb::VerifyBearerResponse::decode(message.clone())
                .expect("a VerifyBearerResponse")
                .principal
                .expect("principal");
            assert_eq!(principal.email, "scheduler@system.local", "{shown:?}");
        } else {
            assert_status(status, Code::Unauthenticated, None);
        }
        summary.push(format!("{shown:?} -> {:?}", status.code()));
    }
    eprintln!(
        "faults: authorization variants:\n  {}",
        summary.join("\n  ")
    );

    // No authorization entry at all, and the token in another header.
    let status = fx.raw(RawCall::new("VerifyBearer", request.clone())).await;
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .raw(RawCall::new("VerifyBearer", request.clone()).header(
            "x-authorization",
            http::HeaderValue::from_str(&format!("Bearer {secret}")).expect("value"),
        ))
        .await;
    assert_status(&status, Code::Unauthenticated, None);

    // The same refusals through the generated client: tonic metadata can
    // carry these (ASCII) values.
    for value in [
        secret.clone(),
        format!("Bearer Bearer {secret}"),
        format!("Bearer  {secret}"),
    ] {
        let mut anonymous = fx.server.client(None).await;
        let mut call = tessera_client::tonic::Request::new(pb::VerifyBearerRequest {
            token: secret.clone(),
        });
        call.metadata_mut()
            .insert("authorization", value.parse().expect("ASCII metadata"));
        let status = anonymous
            .verify_bearer(call)
            .await
            .expect_err("refused through tonic as well");
        assert_status(&status, Code::Unauthenticated, None);
    }

    // Failed authentications are audited without the presented value.
    let conn = fx.db.connect().await;
    let failures = count(
        &conn,
        "SELECT COUNT(*) FROM audit_log WHERE outcome <> 'ok' AND action = 'caller.authenticate'",
    )
    .await;
    assert!(failures >= 10, "{failures} failed authentications audited");
    let leaked = count(
        &conn,
        &format!(
            "SELECT COUNT(*) FROM audit_log WHERE actor LIKE '%{0}%' OR resource LIKE '%{0}%' \
             OR credential_id LIKE '%{0}%'",
            &secret[4..20]
        ),
    )
    .await;
    assert_eq!(leaked, 0, "a presented secret reached the audit log");
    fx.assert_survived().await;
}

// 4 ─ unknown fields and out-of-range scalars ─────────────────────────────

/// `message` followed by one unknown field of every wire type, with field
/// numbers the proto does not use.
fn with_unknown_fields(message: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    // Unknown fields may come first, too.
    encode_key(98, WireType::Varint, &mut buf);
    encode_varint(u64::MAX, &mut buf);
    buf.extend_from_slice(message);
    encode_key(99, WireType::Varint, &mut buf);
    encode_varint(7, &mut buf);
    encode_key(100, WireType::SixtyFourBit, &mut buf);
    buf.extend_from_slice(&u64::MAX.to_le_bytes());
    encode_key(101, WireType::LengthDelimited, &mut buf);
    encode_varint(5, &mut buf);
    buf.extend_from_slice(b"\xff\x00abc");
    encode_key(102, WireType::ThirtyTwoBit, &mut buf);
    buf.extend_from_slice(&[1, 2, 3, 4]);
    encode_key(536_870_911, WireType::Varint, &mut buf); // the largest field number
    encode_varint(1, &mut buf);
    buf
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_ttl_edges_behave() {
    let mut fx = Fixture::sqlite().await;
    let auth = bearer(&secret());

    // VerifyBearer with unknown fields around the token: normal answer.
    let known = pb::VerifyBearerRequest { token: secret() }.encode_to_vec();
    let response = RawCall::new("VerifyBearer", frame(&with_unknown_fields(&known)))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    let principal = pb::VerifyBearerResponse::decode(response.messages[0].clone())
        .expect("decode")
        .principal
        .expect("principal");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "scheduler@system.local");

    // MintTicket and ConsumeTicket with unknown fields: a working ticket.
    let known = pb::MintTicketRequest {
        user_id: "user-unknown".into(),
        provider: "github".into(),
        purpose: "ws-upgrade".into(),
        ttl_seconds: 0,
    }
    .encode_to_vec();
    let response = RawCall::new("MintTicket", frame(&with_unknown_fields(&known)))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    let minted = pb::MintTicketResponse::decode(response.messages[0].clone()).expect("decode");
    let known = pb::ConsumeTicketRequest {
        ticket: minted.ticket.clone(),
        purpose: "ws-upgrade".into(),
    }
    .encode_to_vec();
    let response = RawCall::new("ConsumeTicket", frame(&with_unknown_fields(&known)))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    let identity = pb::ConsumeTicketResponse::decode(response.messages[0].clone())
        .expect("decode")
        .identity
        .expect("identity");
    assert_eq!(identity.user_id, "user-unknown");

    // An empty message is every field at its default: for VerifyBearer an
    // empty token, refused like any token it does not accept.
    let response = RawCall::new("VerifyBearer", frame(&[]))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_status(response.status(), Code::Unauthenticated, None);

    // No request message has an enum field; the closest thing to an
    // unknown enum value is a scalar outside its type. A uint32 field sent
    // as a 64-bit varint is truncated to 32 bits, as protobuf specifies
    // (2^32 + 5 reads as 5): a 5 s ticket.
    let mut body = pb::MintTicketRequest {
        user_id: "user-wide".into(),
        provider: "github".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    }
    .encode_to_vec();
    encode_key(4, WireType::Varint, &mut body);
    encode_varint((1u64 << 32) + 5, &mut body);
    let before = now();
    let response = RawCall::new("MintTicket", frame(&body))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    let minted = pb::MintTicketResponse::decode(response.messages[0].clone()).expect("decode");
    let expires = minted.expires_at.expect("expires_at");
    let lifetime = expires.seconds as f64 + f64::from(expires.nanos) / 1e9 - before;
    assert!(
        (4.0..=7.0).contains(&lifetime),
        "ttl_seconds 2^32+5 is read as 5: lifetime {lifetime}"
    );
    // A bool sent as 2 reads as true: IssueInstallToken{force: 2} mints.
    let mut body = Vec::new();
    encode_key(1, WireType::Varint, &mut body);
    encode_varint(2, &mut body);
    let response = RawCall::new("IssueInstallToken", frame(&body))
        .authorization(&auth)
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    let issued =
        pb::IssueInstallTokenResponse::decode(response.messages[0].clone()).expect("decode");
    assert_eq!(issued.state(), InstallTokenState::Pending);

    // ttl_seconds: 0 is the default 30 s; u32::MAX and max + 1 are invalid.
    let before = now();
    let response = fx
        .client
        .mint_ticket(pb::MintTicketRequest {
            user_id: "user-ttl".into(),
            provider: "github".into(),
            purpose: String::new(),
            ttl_seconds: 0,
        })
        .await
        .expect("ttl 0")
        .into_inner();
    let expires = response.expires_at.expect("expires_at");
    let lifetime = expires.seconds as f64 + f64::from(expires.nanos) / 1e9 - before;
    assert!(
        (29.0..=32.0).contains(&lifetime),
        "default lifetime {lifetime}"
    );
    for ttl in [u32::MAX, u32::MAX / 2, 301] {
        let status = mint_ticket(&mut fx.client, "user-ttl", "", ttl)
            .await
            .expect_err("above the maximum");
        assert_status(&status, Code::InvalidArgument, None);
        assert_eq!(violated_fields(&status), vec!["ttl_seconds".to_owned()]);
    }
    mint_ticket(&mut fx.client, "user-ttl", "", 300)
        .await
        .expect("the maximum itself");
    fx.assert_survived().await;
}

// 5 ─ the database disappears mid-run and comes back ──────────────────────

/// What background traffic saw during the outage, by RPC and code.
type Seen = Arc<Mutex<HashMap<(&'static str, Code), usize>>>;

/// Mint-then-consume on `client` until `stop`, counting every outcome, and
/// checking that no ticket is consumed twice.
async fn traffic(mut client: Client, stop: Arc<AtomicBool>, seen: Seen, worker: usize) {
    let mut spent = std::collections::HashSet::new();
    let started = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(40) {
        i += 1;
        let minted = mint_ticket(&mut client, &format!("bg-{worker}-{i}"), "", 300).await;
        let code = minted.as_ref().map_or_else(Status::code, |_| Code::Ok);
        *seen
            .lock()
            .expect("seen")
            .entry(("MintTicket", code))
            .or_default() += 1;
        if let Ok(ticket) = minted {
            let consumed = consume_ticket(&mut client, &ticket, "").await;
            let code = consumed.as_ref().map_or_else(Status::code, |_| Code::Ok);
            *seen
                .lock()
                .expect("seen")
                .entry(("ConsumeTicket", code))
                .or_default() += 1;
            if consumed.is_ok() {
                assert!(spent.insert(ticket), "a ticket was consumed twice");
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_mid_run_loses_no_stored_data_and_recovers_without_restart() {
    const TICKETS: usize = 6;
    const WORKERS: usize = 4;
    let db = TestDatabase::postgres()
        .await
        .expect("this test needs PostgreSQL (127.0.0.1:5432 or TESSERA_TEST_POSTGRES_URL)");
    let name = db.name().expect("name").to_owned();
    let mut fx = Fixture::on(db, &[]).await;

    // State worth losing: tickets, the first admin and its token, a
    // workspace with its auth token and inbound secret, the internal
    // credential.
    let mut tickets = Vec::new();
    for i in 0..TICKETS {
        let purpose = if i % 2 == 0 { "ws-upgrade" } else { "" };
        let user = format!("before-{i}");
        let ticket = mint_ticket(&mut fx.client, &user, purpose, 300)
            .await
            .expect("mint");
        tickets.push((ticket, user, purpose));
    }
    let install_token = fx
        .server
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("INSTALL TOKEN: ").map(str::to_owned))
        .expect("boot banner");
    let mut anonymous = fx.server.client(None).await;
    let admin = anonymous
        .consume_install_token(pb::ConsumeInstallTokenRequest {
            install_token,
            admin_email: "ada@example.com".into(),
            admin_name: "Ada".into(),
        })
        .await
        .expect("first admin")
        .into_inner();
    let provisioned = fx
        .client
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: "ws-outage".into(),
            name: "Outage".into(),
        })
        .await
        .expect("provision")
        .into_inner();
    let mut runtime = fx
        .server
        .client(Some(&provisioned.registration_token))
        .await;
    let auth_token = runtime
        .register_workspace(pb::RegisterWorkspaceRequest {
            workspace_id: "ws-outage".into(),
            reissue_auth_token: false,
        })
        .await
        .expect("register")
        .into_inner()
        .auth_token
        .expect("auth token");
    let internal = fx
        .client
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("internal credential")
        .into_inner()
        .credential;
    assert_eq!(token::parse(&internal), Ok(TokenKind::Internal));

    // Background traffic through the whole outage.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let client = fx.server.client(Some(&secret())).await;
        workers.push(tokio::spawn(traffic(
            client,
            stop.clone(),
            seen.clone(),
            worker,
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The database goes away: no new connections, existing ones killed.
    let outage = Instant::now();
    fx.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    fx.db
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
    fx.server
        .wait_for_health(ServingStatus::NotServing, Duration::from_secs(10))
        .await;
    let flipped = outage.elapsed();
    assert_eq!(
        fx.server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::NotServing)
    );

    // Calls that need the database fail UNAVAILABLE, and change nothing.
    let (ticket, _, purpose) = &tickets[0];
    let status = consume_ticket(&mut fx.client, ticket, purpose)
        .await
        .expect_err("ConsumeTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = mint_ticket(&mut fx.client, "during", "", 0)
        .await
        .expect_err("MintTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = verify(&mut fx.client, &admin.admin_token)
        .await
        .expect_err("a user token cannot be checked without a database");
    assert_status(&status, Code::Unavailable, None);
    let mut as_admin = fx.server.client(Some(&admin.admin_token)).await;
    let status = mint_ticket(
        &mut as_admin,
        &admin.admin.clone().expect("admin").subject,
        "",
        0,
    )
    .await
    .expect_err("an admin caller cannot be authenticated without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = anonymous
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect_err("status without a database");
    assert_status(&status, Code::Unavailable, None);
    // This process's own internal credential is checked in memory.
    let identity = consume_ticket(&mut fx.client, &internal, "")
        .await
        .expect("the process's own internal credential needs no database");
    assert!(identity.internal);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fx.server.health_status("").await,
        Some(ServingStatus::NotServing),
        "still up, still reporting"
    );

    // It comes back; the same process recovers.
    let restored = Instant::now();
    fx.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    fx.server
        .wait_for_health(ServingStatus::Serving, Duration::from_secs(10))
        .await;
    let recovered = restored.elapsed();
    let outage_time = outage.elapsed();
    // Let the background traffic succeed again before stopping it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ok_mints = |seen: &Seen| {
        seen.lock()
            .expect("seen")
            .get(&("MintTicket", Code::Ok))
            .copied()
            .unwrap_or(0)
    };
    let ok_before = ok_mints(&seen);
    while ok_mints(&seen) < ok_before + WORKERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("traffic stops")
            .expect("no ticket consumed twice");
    }

    // Nothing stored before the outage was lost.
    for (ticket, user, purpose) in &tickets {
        let identity = consume_ticket(&mut fx.client, ticket, purpose)
            .await
            .unwrap_or_else(|s| panic!("a ticket minted before the outage: {s:?}"));
        assert_eq!(&identity.user_id, user);
        let status = consume_ticket(&mut fx.client, ticket, purpose)
            .await
            .expect_err("once");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_UNKNOWN"));
    }
    let principal = verify(&mut fx.client, &admin.admin_token)
        .await
        .expect("the admin token");
    assert_eq!(principal.kind(), PrincipalKind::User);
    assert_eq!(principal.email, "ada@example.com");
    assert!(principal.groups.iter().any(|g| g == "Admin"));
    let principal = verify(&mut fx.client, &auth_token)
        .await
        .expect("the workspace auth token");
    assert_eq!(principal.kind(), PrincipalKind::Workspace);
    let inbound = fx
        .client
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "ws-outage".into(),
        })
        .await
        .expect("inbound secret")
        .into_inner();
    assert_eq!(
        inbound.platform_inbound_secret.as_deref(),
        Some(provisioned.platform_inbound_secret.as_str())
    );
    let state = anonymous
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .state();
    assert_eq!(state, InstallTokenState::Consumed);
    let again = fx
        .client
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("internal credential")
        .into_inner()
        .credential;
    assert_eq!(again, internal, "stable across the outage");
    let principal = verify(&mut fx.client, &internal)
        .await
        .expect("the internal credential");
    assert_eq!(principal.kind(), PrincipalKind::Internal);

    // The background traffic saw only successes and UNAVAILABLE.
    let seen = seen.lock().expect("seen").clone();
    let mut summary: Vec<_> = seen.iter().collect();
    summary.sort_by_key(|((rpc, code), _)| (*rpc, *code as i32));
    eprintln!(
        "faults: PostgreSQL outage: NOT_SERVING {flipped:.2?} after the database went away, \
         SERVING {recovered:.2?} after it returned ({outage_time:.2?} in all); \
         {WORKERS} background clients saw {summary:?}"
    );
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|((_, code), _)| !matches!(code, Code::Ok | Code::Unavailable))
        .collect();
    assert!(
        unexpected.is_empty(),
        "calls during the outage must succeed or fail UNAVAILABLE, got {unexpected:?}; \
         server errors:\n{}",
        fx.server
            .stderr()
            .lines()
            .filter(|l| l.contains("\"ERROR\""))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(seen.contains_key(&("MintTicket", Code::Unavailable)));
    fx.assert_survived().await;
}

/// Calls blocked inside PostgreSQL when the database goes away (a lock the
/// test holds keeps them there) must fail UNAVAILABLE, like calls that find
/// no connection, and must change nothing: the ticket a cut-off
/// ConsumeTicket was spending is still there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_when_postgres_goes_away_fail_unavailable_and_change_nothing() {
    let db = TestDatabase::postgres()
        .await
        .expect("this test needs PostgreSQL (127.0.0.1:5432 or TESSERA_TEST_POSTGRES_URL)");
    let name = db.name().expect("name").to_owned();
    let fx = Fixture::on(db, &[]).await;
    let mut client = fx.server.client(Some(&secret())).await;
    let victim = mint_ticket(&mut client, "in-flight", "ws-upgrade", 300)
        .await
        .expect("mint");

    // Hold an exclusive lock on the tickets table, so that a MintTicket and
    // a ConsumeTicket are waiting inside PostgreSQL.
    let locker = fx.db.connect().await;
    let txn = sea_orm::TransactionTrait::begin(&locker)
        .await
        .expect("begin");
    txn.execute_unprepared("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let blocked_mint = {
        let mut client = client.clone();
        tokio::spawn(async move { mint_ticket(&mut client, "blocked", "", 0).await })
    };
    let blocked_consume = {
        let mut client = client.clone();
        let victim = victim.clone();
        tokio::spawn(async move { consume_ticket(&mut client, &victim, "ws-upgrade").await })
    };
    let watcher = fx.db.connect().await;
    let waiting = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&watcher, &waiting).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the calls never blocked on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = watcher.close().await;

    // The database goes away under them.
    fx.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    fx.db
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
    let minted = tokio::time::timeout(Duration::from_secs(15), blocked_mint)
        .await
        .expect("the blocked MintTicket returns")
        .expect("task");
    let consumed = tokio::time::timeout(Duration::from_secs(15), blocked_consume)
        .await
        .expect("the blocked ConsumeTicket returns")
        .expect("task");
    drop(txn);
    let _ = locker.close().await;
    fx.server
        .wait_for_health(ServingStatus::NotServing, Duration::from_secs(10))
        .await;
    fx.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    fx.server
        .wait_for_health(ServingStatus::Serving, Duration::from_secs(10))
        .await;
    eprintln!(
        "faults: calls in flight when PostgreSQL went away: MintTicket {:?}, ConsumeTicket {:?}",
        minted.as_ref().map(|_| "OK").map_err(Status::code),
        consumed.as_ref().map(|_| "OK").map_err(Status::code),
    );

    // Whatever the answers, nothing was lost: the ticket is still there
    // unless the ConsumeTicket call reported spending it.
    let status = consume_ticket(&mut client, &victim, "ws-upgrade").await;
    match &consumed {
        Ok(_) => {
            let status = status.expect_err("spent by the in-flight call");
            assert_status(&status, Code::Unauthenticated, Some("TICKET_UNKNOWN"));
        }
        Err(_) => {
            let identity = status.expect("a cut-off ConsumeTicket spent nothing");
            assert_eq!(identity.user_id, "in-flight");
        }
    }
    let logs = fx.server.stderr();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"ERROR\""))
        .take(4)
        .collect();
    for (rpc, result) in [
        ("MintTicket", minted.err()),
        ("ConsumeTicket", consumed.err()),
    ] {
        if let Some(status) = result {
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "{rpc} in flight when the database went away: {status:?}; server errors:\n{}",
                errors.join("\n")
            );
        }
    }
    fx.assert_survived().await;
}
