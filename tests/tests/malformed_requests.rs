//! Requests no generated client would send: undecodable protobuf bytes,
//! broken gRPC framing, unknown methods, unknown fields and scalars outside
//! their type. Each gets a clear gRPC error or the answer protobuf defines;
//! afterwards the server is still SERVING, still answers, and a ticket
//! minted before is still consumable exactly once.

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use sea_orm::DatabaseConnection;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::tonic::Code;
use tessera_tests::fixture::Fixture;
use tessera_tests::raw::{RawCall, RawResponse, frame};
use tessera_tests::sql::count;
use tessera_tests::{
    assert_status, mint_ticket, now_seconds, scheduler_secret, seconds, violated_fields,
};

fn bearer(secret: &str) -> Vec<u8> {
    format!("Bearer {secret}").into_bytes()
}

/// `Bearer <the scheduler's secret>`.
fn scheduler() -> Vec<u8> {
    bearer(&scheduler_secret())
}

async fn tickets_stored(conn: &DatabaseConnection) -> i64 {
    count(conn, "SELECT COUNT(*) FROM tickets").await
}

// ---------------------------------------------------------------------------
// Malformed protobuf bytes and framing
// ---------------------------------------------------------------------------

/// MintTicketRequest bodies prost cannot decode. tonic maps every protobuf
/// decode error to INTERNAL (as the gRPC status code guide says), with
/// prost's description as the message.
async fn assert_undecodable_bodies_are_internal(fx: &mut Fixture) {
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
            .raw(RawCall::new("MintTicket", frame(payload)).authorization(&scheduler()))
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
}

/// Broken gRPC framing, caught by tonic before prost runs: INTERNAL.
async fn assert_broken_framing_is_internal(fx: &mut Fixture) {
    let mut compressed = frame(b"\x0a\x01a").to_vec();
    compressed[0] = 1;
    let mut bad_flag = frame(b"\x0a\x01a").to_vec();
    bad_flag[0] = 7;
    let framing: [(&str, Bytes); 5] = [
        // The length prefix promises 100 bytes; 3 arrive, then END_STREAM.
        (
            "a frame cut short",
            Bytes::from_static(b"\x00\x00\x00\x00\x64\x0a\x01a"),
        ),
        ("half a frame header", Bytes::from_static(b"\x00\x00")),
        ("no message at all", Bytes::new()),
        (
            "the compressed flag without grpc-encoding",
            Bytes::from(compressed),
        ),
        ("an invalid compression flag", Bytes::from(bad_flag)),
    ];
    for (what, body) in framing {
        let status = fx
            .raw(RawCall::new("MintTicket", body).authorization(&scheduler()))
            .await;
        assert_eq!(status.code(), Code::Internal, "{what}: {status:?}");
        fx.assert_up(what).await;
    }
}

/// Two valid messages on a unary call: tonic serves the first and drops the
/// second; one ticket is stored beyond the `stored_before`, not two.
async fn assert_two_messages_mint_one_ticket(
    fx: &mut Fixture,
    conn: &DatabaseConnection,
    stored_before: i64,
) {
    let valid = pb::MintTicketRequest {
        user_id: "user-two".into(),
        provider: "github".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    }
    .encode_to_vec();
    let mut two = frame(&valid).to_vec();
    two.extend_from_slice(&frame(&valid));
    let response = RawCall::new("MintTicket", Bytes::from(two))
        .authorization(&scheduler())
        .send(&fx.channel)
        .await
        .expect("an answer");
    eprintln!(
        "malformed: two messages on a unary call: {:?}, {} response messages, {} tickets stored",
        response.status(),
        response.messages.len(),
        tickets_stored(conn).await - stored_before
    );
    assert_eq!(response.status().code(), Code::Ok);
    assert_eq!(response.messages.len(), 1, "one answer");
    assert_eq!(
        tickets_stored(conn).await,
        stored_before + 1,
        "one ticket for two request messages"
    );
    fx.assert_up("two messages").await;
}

/// Without a valid caller the body is never decoded: UNAUTHENTICATED. An
/// unknown method or service is UNIMPLEMENTED for a caller, and
/// UNAUTHENTICATED without one.
async fn assert_callers_are_checked_before_decoding(fx: &Fixture) {
    let status = fx.raw(RawCall::new("MintTicket", frame(&[0xff; 16]))).await;
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .raw(RawCall::new("VerifyBearer", frame(&[0xff; 16])).authorization(b"Bearer garbage"))
        .await;
    assert_status(&status, Code::Unauthenticated, None);
    for path in [
        "/tessera.v1.CredentialService/NoSuchMethod",
        "/tessera.v9.Nope/Call",
    ] {
        let status = fx
            .raw(RawCall::new(path, frame(&[])).authorization(&scheduler()))
            .await;
        assert_status(&status, Code::Unimplemented, None);
        let status = fx.raw(RawCall::new(path, frame(&[]))).await;
        assert_status(&status, Code::Unauthenticated, None);
    }
}

#[tokio::test]
async fn malformed_protobuf_is_internal_from_the_decoder_and_harmless() {
    let mut fx = Fixture::sqlite().await;
    let conn = fx.db.connect().await;
    let stored_before = tickets_stored(&conn).await;

    assert_undecodable_bodies_are_internal(&mut fx).await;
    assert_broken_framing_is_internal(&mut fx).await;
    assert_two_messages_mint_one_ticket(&mut fx, &conn, stored_before).await;
    assert_callers_are_checked_before_decoding(&fx).await;

    // Nothing was stored by the refused calls: only the two-message mint.
    assert_eq!(tickets_stored(&conn).await, stored_before + 1);
    fx.assert_survived().await;
}

// ---------------------------------------------------------------------------
// Unknown fields and out-of-range scalars
// ---------------------------------------------------------------------------

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

/// `body` as one message of `method`, called as the scheduler; the answer
/// must be OK.
async fn call_ok(fx: &Fixture, method: &str, body: &[u8]) -> RawResponse {
    let response = RawCall::new(method, frame(body))
        .authorization(&scheduler())
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_eq!(response.status().code(), Code::Ok, "{response:?}");
    response
}

/// Unknown fields around known ones change nothing: VerifyBearer answers
/// normally, and MintTicket then ConsumeTicket make a working ticket.
async fn assert_unknown_fields_are_ignored(fx: &Fixture) {
    let known = pb::VerifyBearerRequest {
        token: scheduler_secret(),
    };
    let response = call_ok(
        fx,
        "VerifyBearer",
        &with_unknown_fields(&known.encode_to_vec()),
    )
    .await;
    let principal = pb::VerifyBearerResponse::decode(response.messages[0].clone())
        .expect("decode")
        .principal
        .expect("principal");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "scheduler@system.local");

    let known = pb::MintTicketRequest {
        user_id: "user-unknown".into(),
        provider: "github".into(),
        purpose: "ws-upgrade".into(),
        ttl_seconds: 0,
    };
    let response = call_ok(
        fx,
        "MintTicket",
        &with_unknown_fields(&known.encode_to_vec()),
    )
    .await;
    let minted = pb::MintTicketResponse::decode(response.messages[0].clone()).expect("decode");
    let known = pb::ConsumeTicketRequest {
        ticket: minted.ticket.clone(),
        purpose: "ws-upgrade".into(),
    };
    let response = call_ok(
        fx,
        "ConsumeTicket",
        &with_unknown_fields(&known.encode_to_vec()),
    )
    .await;
    let identity = pb::ConsumeTicketResponse::decode(response.messages[0].clone())
        .expect("decode")
        .identity
        .expect("identity");
    assert_eq!(identity.user_id, "user-unknown");

    // An empty message is every field at its default: for VerifyBearer an
    // empty token, refused like any token it does not accept.
    let response = RawCall::new("VerifyBearer", frame(&[]))
        .authorization(&scheduler())
        .send(&fx.channel)
        .await
        .expect("answer");
    assert_status(response.status(), Code::Unauthenticated, None);
}

/// No request message has an enum field; the closest thing to an unknown
/// enum value is a scalar outside its type, read as protobuf specifies.
async fn assert_scalars_outside_their_type_are_read_as_protobuf_says(fx: &Fixture) {
    // A uint32 sent as a 64-bit varint is truncated to 32 bits (2^32 + 5
    // reads as 5): a 5 s ticket.
    let mut body = pb::MintTicketRequest {
        user_id: "user-wide".into(),
        provider: "github".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    }
    .encode_to_vec();
    encode_key(4, WireType::Varint, &mut body);
    encode_varint((1u64 << 32) + 5, &mut body);
    let before = now_seconds();
    let response = call_ok(fx, "MintTicket", &body).await;
    let minted = pb::MintTicketResponse::decode(response.messages[0].clone()).expect("decode");
    let lifetime = seconds!(minted.expires_at) - before;
    assert!(
        (4.0..=7.0).contains(&lifetime),
        "ttl_seconds 2^32+5 is read as 5: lifetime {lifetime}"
    );

    // A bool sent as 2 reads as true: IssueInstallToken{force: 2} mints.
    let mut body = Vec::new();
    encode_key(1, WireType::Varint, &mut body);
    encode_varint(2, &mut body);
    let response = call_ok(fx, "IssueInstallToken", &body).await;
    let issued =
        pb::IssueInstallTokenResponse::decode(response.messages[0].clone()).expect("decode");
    assert_eq!(issued.state(), InstallTokenState::Pending);
}

/// ttl_seconds: 0 is the default 30 s; u32::MAX and anything above the
/// maximum (300) are INVALID_ARGUMENT naming the field; 300 itself works.
async fn assert_ttl_edges(fx: &mut Fixture) {
    let before = now_seconds();
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
    let lifetime = seconds!(response.expires_at) - before;
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
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_ttl_edges_behave() {
    let mut fx = Fixture::sqlite().await;
    assert_unknown_fields_are_ignored(&fx).await;
    assert_scalars_outside_their_type_are_read_as_protobuf_says(&fx).await;
    assert_ttl_edges(&mut fx).await;
    fx.assert_survived().await;
}
