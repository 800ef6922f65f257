//! The inbound check (`inbound_authorized`) and the tower layer applying it,
//! over a real HTTP (axum) and gRPC (tonic) server on 127.0.0.1:0.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use proptest::prelude::*;
use tessera_client::Secret;
use tessera_client::pb::RegisterWorkspaceRequest;
use tessera_client::tonic::Code;
use tessera_client::workspace::{InboundAuthLayer, SecretFile, inbound_authorized};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn check(secret: Option<&str>, header: Option<&str>) -> bool {
    inbound_authorized(secret.map(Secret::new).as_ref(), header)
}

#[test]
fn truth_table() {
    let secret = Some("x");
    assert!(check(secret, Some("Bearer x")));
    for header in [
        "bearer x",
        "BEARER x",
        "Bearer  x",
        "Bearer x ",
        "Bearer x\n",
        " Bearer x",
        "Bearer\tx",
        "Bearerx",
        "Bearer",
        "Bearer ",
        "x",
        "Bearer y",
        "Bearer xx",
        "Bearer X",
        "Basic x",
    ] {
        assert!(!check(secret, Some(header)), "{header:?} must be rejected");
    }
    // Fail closed: no secret, an empty secret (even against "Bearer "), no header.
    assert!(!check(None, Some("Bearer x")));
    assert!(!check(None, None));
    assert!(!check(Some(""), Some("Bearer ")));
    assert!(!check(Some(""), Some("Bearer")));
    assert!(!check(secret, None));
    // A realistic token.
    let token = "tsr_wsi_3yZe7d2Lq9";
    assert!(check(Some(token), Some(&format!("Bearer {token}"))));
    assert!(!check(
        Some(token),
        Some(&format!("Bearer {}", &token[..token.len() - 1]))
    ));
}

proptest! {
    #[test]
    fn accepts_exactly_bearer_space_secret(secret in ".*", header in ".*") {
        let expected = !secret.is_empty() && header == format!("Bearer {secret}");
        prop_assert_eq!(check(Some(&secret), Some(&header)), expected);
    }

    #[test]
    fn the_right_header_passes_and_no_header_never_does(secret in ".+") {
        let right = format!("Bearer {secret}");
        prop_assert!(check(Some(&secret), Some(&right)));
        prop_assert!(!check(Some(&secret), None));
        prop_assert!(!check(None, Some(&right)));
    }

    #[test]
    fn any_one_character_edit_is_rejected(
        secret in "[ -~]{1,64}",
        at in any::<prop::sample::Index>(),
        c in any::<char>(),
        edit in 0..3u8,
    ) {
        let right = format!("Bearer {secret}");
        let mut chars: Vec<char> = right.chars().collect();
        let i = at.index(chars.len());
        match edit {
            0 => chars.insert(i, c),
            1 => { chars.remove(i); }
            _ => {
                prop_assume!(chars[i] != c);
                chars[i] = c;
            }
        }
        let edited: String = chars.into_iter().collect();
        prop_assert!(!check(Some(&secret), Some(&edited)), "{:?}", edited);
    }
}

/// The layer's answers without a network: 401 for HTTP, a trailers-only
/// UNAUTHENTICATED for gRPC, and the inner service for the right bearer.
#[tokio::test]
async fn layer_answers_in_the_request_protocol() {
    let inner = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new("inner".to_owned()))
    });
    let service = tower::Layer::layer(&InboundAuthLayer::new(Secret::new("s3cret")), inner);
    let request = |content_type: Option<&str>, auth: Option<&str>| {
        let mut builder = http::Request::builder().uri("/internal/x");
        if let Some(value) = content_type {
            builder = builder.header("content-type", value);
        }
        if let Some(value) = auth {
            builder = builder.header("authorization", value);
        }
        builder.body(()).unwrap()
    };

    let response = service.clone().oneshot(request(None, None)).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.body(), "");

    let grpc = request(Some("application/grpc+proto"), Some("Bearer wrong"));
    let response = service.clone().oneshot(grpc).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(response.headers()["content-type"], "application/grpc");

    let ok = request(Some("application/json"), Some("Bearer s3cret"));
    let response = service.clone().oneshot(ok).await.unwrap();
    assert_eq!(
        (response.status().as_u16(), response.body().as_str()),
        (200, "inner")
    );

    // Two authorization headers are ambiguous, so rejected.
    let mut twice = request(None, Some("Bearer s3cret"));
    twice
        .headers_mut()
        .append("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(service.oneshot(twice).await.unwrap().status(), 401);
}

async fn serve_http(layer: InboundAuthLayer) -> SocketAddr {
    let router = Router::new()
        .route("/internal/ping", get(|| async { "pong" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A minimal HTTP/1.1 GET; returns the status code and the body.
async fn get_ping(addr: SocketAddr, authorization: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization.map_or(String::new(), |value| format!("authorization: {value}\r\n"));
    let request =
        format!("GET /internal/ping HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn http_routes_are_guarded_and_follow_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let file = SecretFile::new(tmp.path().join(".platform_inbound_secret"));
    let addr = serve_http(InboundAuthLayer::new(file.clone())).await;

    // No secret on disk: everything is rejected, whatever the header.
    assert_eq!(get_ping(addr, Some("Bearer ")).await.0, 401);
    assert_eq!(get_ping(addr, Some("Bearer anything")).await.0, 401);

    file.save(&Secret::new("tsr_wsi_one")).unwrap();
    assert_eq!(get_ping(addr, None).await.0, 401);
    assert_eq!(get_ping(addr, Some("Bearer tsr_wsi_wrong")).await.0, 401);
    assert_eq!(get_ping(addr, Some("bearer tsr_wsi_one")).await.0, 401);
    assert_eq!(
        get_ping(addr, Some("Bearer tsr_wsi_one")).await,
        (200, "pong".into())
    );

    // A rotated secret takes effect without rebuilding the layer.
    file.save(&Secret::new("tsr_wsi_two")).unwrap();
    assert_eq!(get_ping(addr, Some("Bearer tsr_wsi_one")).await.0, 401);
    assert_eq!(
        get_ping(addr, Some("Bearer tsr_wsi_two")).await,
        (200, "pong".into())
    );
}

#[tokio::test]
async fn grpc_services_are_guarded() {
    // The layer's secret doubles as the fake's registration token, so the
    // one bearer that passes the layer is also accepted by the service.
    let fake = common::FakeTessera::new();
    let layer = InboundAuthLayer::new(|| Some(Secret::new(common::REGISTRATION_TOKEN)));
    let client = fake.serve(Some(layer)).await;
    let request = || RegisterWorkspaceRequest {
        workspace_id: common::WORKSPACE.into(),
        reissue_auth_token: false,
        ..Default::default()
    };

    let status = client
        .clone()
        .register_workspace(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut wrong = common::with_bearer(&client, "tsr_wsr_wrong");
    let status = wrong.register_workspace(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // Rejected requests never reached the service.
    assert!(fake.calls().is_empty());

    let mut right = common::with_bearer(&client, common::REGISTRATION_TOKEN);
    let response = right
        .register_workspace(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.platform_inbound_secret.as_deref(),
        Some(common::INBOUND_SECRET)
    );
    assert_eq!(fake.calls().len(), 1);
}
