//! Limits: field lengths, message sizes (tonic's default and
//! `TESSERA_MAX_MESSAGE_BYTES`), the HTTP/2 header list, the server-side
//! deadline and the client's `grpc-timeout`. Refused input is not echoed
//! back, and the server stays up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::{Code, Request, Status};
use tessera_tests::fixture::Fixture;
use tessera_tests::grpc::{consume_ticket, mint_ticket, verify_bearer};
use tessera_tests::raw::{RawCall, frame};
use tessera_tests::sql::hold_write_lock;
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret, violated_fields,
};

const MIB: usize = 1024 * 1024;

/// A MintTicket on `client`; `Ok` holds the ticket.
async fn mint(client: &mut Client) -> Result<String, Status> {
    mint_ticket(client, "u", "", 0).await
}

/// 1 MiB in each MintTicket field: INVALID_ARGUMENT naming the field
/// (limits are 256 bytes), without echoing the input back; 256 bytes is
/// fine, 257 is not.
async fn assert_long_fields_are_invalid(fx: &mut Fixture, huge: &str) {
    let cases = [
        ("user_id", huge, "github", ""),
        ("provider", "user-1", huge, ""),
        ("purpose", "user-1", "github", huge),
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
    mint_ticket(&mut fx.client, &"u".repeat(256), "", 0)
        .await
        .expect("256 bytes");
    let status = mint_ticket(&mut fx.client, &"u".repeat(257), "", 0)
        .await
        .expect_err("257 bytes");
    assert_status(&status, Code::InvalidArgument, None);
}

/// 1 MiB where a credential goes: refused like any wrong credential, the
/// input not echoed back.
async fn assert_huge_credentials_are_refused(fx: &mut Fixture, huge: &str) {
    let status = consume_ticket(&mut fx.client, huge, "")
        .await
        .expect_err("1 MiB ticket");
    assert_status(&status, Code::Unauthenticated, Some("TICKET_MALFORMED"));
    assert!(status.message().len() < 200);
    let status = verify_bearer(&mut fx.client, huge)
        .await
        .expect_err("1 MiB bearer to verify");
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .client
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: huge.to_owned(),
            name: String::new(),
        })
        .await
        .expect_err("1 MiB workspace id");
    assert_status(&status, Code::InvalidArgument, None);
    let mut anonymous = fx.server.client(None).await;
    let status = anonymous
        .consume_install_token(pb::ConsumeInstallTokenRequest {
            install_token: huge.to_owned(),
            admin_email: huge.to_owned(),
            admin_name: huge.to_owned(),
        })
        .await
        .expect_err("1 MiB install token fields");
    assert!(
        matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated),
        "{status:?}"
    );
    assert!(status.message().len() < 200);
}

/// A message over tonic's default 4 MiB receive limit is refused from its
/// length prefix, before it is buffered: tonic answers OUT_OF_RANGE
/// (grpc-go and grpc-core say RESOURCE_EXHAUSTED for the same case).
async fn assert_oversized_messages_are_out_of_range(fx: &mut Fixture) {
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
        "limits: a 5 MiB MintTicket got {:?} ({:?}) in {:.2?}",
        status.code(),
        status.message(),
        started.elapsed()
    );
    // The frame header alone is enough to refuse it.
    let mut header_only = vec![0u8];
    header_only.extend_from_slice(&(64 * MIB as u32).to_be_bytes());
    let bearer = format!("Bearer {}", scheduler_secret());
    let status = fx
        .raw(RawCall::new("MintTicket", Bytes::from(header_only)).authorization(bearer.as_bytes()))
        .await;
    assert_status(&status, Code::OutOfRange, None);
}

/// A 64 KiB authorization header: over the HTTP/2 header list limit the
/// server advertises (16 KiB by default in hyper), so the call never
/// reaches Tessera and gets no OK.
async fn assert_huge_header_is_refused(fx: &Fixture) {
    let long = format!("Bearer {}", "b".repeat(64 * 1024));
    let response = RawCall::new("VerifyBearer", frame(&[]))
        .authorization(long.as_bytes())
        .send(&fx.channel)
        .await;
    eprintln!("limits: a 64 KiB authorization header: {response:?}");
    match response {
        Ok(response) => assert_ne!(response.status().code(), Code::Ok),
        Err(err) => assert!(!err.is_empty()),
    }
}

#[tokio::test]
async fn oversized_fields_are_invalid_and_oversized_messages_out_of_range() {
    let mut fx = Fixture::sqlite().await;
    let huge = "u".repeat(MIB);
    assert_long_fields_are_invalid(&mut fx, &huge).await;
    assert_huge_credentials_are_refused(&mut fx, &huge).await;
    fx.assert_up("1 MiB fields").await;
    assert_oversized_messages_are_out_of_range(&mut fx).await;
    fx.assert_up("oversized messages").await;
    assert_huge_header_is_refused(&fx).await;
    fx.assert_up("a 64 KiB header").await;
    fx.assert_survived().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_stays_up() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler().env("TESSERA_MAX_MESSAGE_BYTES", "1024");
    let server = TestServer::start(&db, options).await;
    let mut client = server.scheduler().await;
    let status = verify_bearer(&mut client, &"x".repeat(4096))
        .await
        .expect_err("too large");
    assert_status(&status, Code::OutOfRange, None);
    verify_bearer(&mut client, &scheduler_secret())
        .await
        .expect("a normal call still works");
}

#[tokio::test]
async fn calls_stuck_on_the_database_end_at_the_server_deadline() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler().env("TESSERA_REQUEST_TIMEOUT_MS", "500");
    let server = TestServer::start(&db, options).await;
    let mut client = server.scheduler().await;
    mint(&mut client).await.expect("warm up");

    // Hold SQLite's write lock so MintTicket cannot finish.
    let conn = db.connect().await;
    let lock = hold_write_lock(&conn).await;

    let started = Instant::now();
    let status = mint(&mut client).await.expect_err("deadline");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    // A shorter client deadline (grpc-timeout) wins over the server's.
    let mut request = Request::new(pb::MintTicketRequest {
        user_id: "u".into(),
        provider: "p".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    });
    request.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let status = client
        .mint_ticket(request)
        .await
        .expect_err("client deadline");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    lock.rollback().await.expect("release");
    mint(&mut client).await.expect("works again");
}
