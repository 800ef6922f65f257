//! Offline tests of the client: the interceptor, validation and `Debug`.

use std::time::{Duration, Instant};

use tessera_client::tonic::service::Interceptor;
use tessera_client::tonic::{self, Request};
use tessera_client::{BearerInterceptor, Client, ConnectError, Secret};

const SECRET: &str = "tsr_svc_TOPSECRETVALUE";

#[test]
fn interceptor_sets_a_sensitive_bearer_header() {
    let mut interceptor = BearerInterceptor::new(&Secret::new(SECRET)).unwrap();
    assert!(interceptor.is_authenticated());
    let request = interceptor.call(Request::new(())).unwrap();
    let values: Vec<_> = request.metadata().get_all("authorization").iter().collect();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].to_str().unwrap(), format!("Bearer {SECRET}"));
    assert!(values[0].is_sensitive());
}

#[test]
fn interceptor_replaces_a_caller_supplied_authorization() {
    let mut interceptor = BearerInterceptor::new(&Secret::new(SECRET)).unwrap();
    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert("authorization", "Bearer other".parse().unwrap());
    let request = interceptor.call(request).unwrap();
    let values: Vec<_> = request.metadata().get_all("authorization").iter().collect();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].to_str().unwrap(), format!("Bearer {SECRET}"));
}

#[test]
fn unauthenticated_interceptor_adds_nothing() {
    for mut interceptor in [
        BearerInterceptor::unauthenticated(),
        BearerInterceptor::default(),
    ] {
        assert!(!interceptor.is_authenticated());
        let request = interceptor.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }
}

#[test]
fn invalid_bearer_is_rejected_without_echoing_it() {
    for bad in [
        "",
        "tsr_svc_TOPSECRET\nVALUE",
        "tsr_svc_TOPSECRET\u{e9}VALUE",
        "tsr_svc_TOPSECRETVALUE ",
        " tsr_svc_TOPSECRETVALUE",
        "tsr_svc_TOPSECRET VALUE",
    ] {
        let err = BearerInterceptor::new(&Secret::new(bad)).unwrap_err();
        assert!(matches!(err, ConnectError::InvalidBearer), "{err:?}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("TOPSECRET"), "{text}");
        }
    }
}

#[tokio::test]
async fn builder_rejects_an_invalid_bearer_before_connecting() {
    let err = Client::builder("http://127.0.0.1:1")
        .bearer(Secret::new("tsr_svc_TOPSECRET\r\nx"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidBearer), "{err:?}");
}

#[test]
fn debug_output_never_contains_the_secret() {
    let interceptor = BearerInterceptor::new(&Secret::new(SECRET)).unwrap();
    let debug = format!("{interceptor:?}");
    assert_eq!(debug, "BearerInterceptor { bearer: Some([redacted]) }");

    let builder = Client::builder("http://127.0.0.1:1").bearer(Secret::new(SECRET));
    let debug = format!("{builder:?} {builder:#?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
    assert!(debug.contains("127.0.0.1:1"), "{debug}");
}

#[tokio::test]
async fn client_debug_never_contains_the_secret() {
    let client = Client::builder("http://127.0.0.1:1")
        .bearer(Secret::new(SECRET))
        .connect_lazy()
        .unwrap();
    let debug = format!("{client:?} {client:#?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
    assert!(debug.contains("authenticated: true"), "{debug}");

    let other = client
        .with_bearer(Secret::new("tsr_wsa_TOPSECRET2"))
        .unwrap();
    assert!(!format!("{other:?}").contains("TOPSECRET"));
    assert!(matches!(
        client.with_bearer(Secret::new("")),
        Err(ConnectError::InvalidBearer)
    ));
}

#[tokio::test]
async fn invalid_endpoints_are_reported_as_such() {
    for endpoint in [
        "not a uri",
        "",
        "localhost:50051",
        "https://tessera:50051",
        "ftp://tessera",
        "http://",
    ] {
        let builder = Client::builder(endpoint);
        let err = builder.connect().await.unwrap_err();
        match &err {
            ConnectError::InvalidEndpoint { endpoint: e, .. } => assert_eq!(e, endpoint),
            other => panic!("{endpoint:?}: expected InvalidEndpoint, got {other:?}"),
        }
        assert!(err.to_string().contains("invalid Tessera endpoint"));
        assert!(matches!(
            builder.connect_lazy(),
            Err(ConnectError::InvalidEndpoint { .. })
        ));
    }
}

#[tokio::test]
async fn accepted_endpoint_forms() {
    for endpoint in [
        "http://127.0.0.1:1",
        "HTTP://localhost",
        "unix:/nonexistent.sock",
    ] {
        let client = Client::builder(endpoint).connect_lazy();
        assert!(client.is_ok(), "{endpoint}: {client:?}");
    }
}

#[tokio::test]
async fn closed_port_fails_with_a_transport_error_in_bounded_time() {
    let connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let result = tokio::time::timeout(
        connect_timeout + Duration::from_secs(3),
        Client::builder("http://127.0.0.1:1")
            .bearer(Secret::new(SECRET))
            .connect_timeout(connect_timeout)
            .connect(),
    )
    .await
    .expect("connect() outlived its connect timeout");
    let err = result.unwrap_err();
    assert!(matches!(err, ConnectError::Transport(_)), "{err:?}");
    assert!(started.elapsed() < connect_timeout + Duration::from_secs(3));
    // The source chain explains the failure but never carries the bearer.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(!chain.contains("TOPSECRET"), "{chain}");
}

#[tokio::test]
async fn lazy_client_reports_unreachable_server_on_first_call() {
    let mut client = Client::builder("http://127.0.0.1:1")
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2))
        .connect_lazy()
        .unwrap();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_install_token_status(tessera_client::pb::GetInstallTokenStatusRequest {}),
    )
    .await
    .expect("call outlived its timeouts")
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}
