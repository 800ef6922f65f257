//! What health checkers and grpcurl see: the standard gRPC health service
//! and server reflection, both open to callers without credentials.

use std::net::SocketAddr;

use tessera_client::tonic::transport::Channel;
use tessera_client::tonic::{Code, Request};
use tessera_tests::grpc::verify_bearer;
use tessera_tests::{CREDENTIAL_SERVICE, ServerOptions, TestDatabase, TestServer, assert_status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

fn health_request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// One reflection round trip on a channel without any `authorization`.
async fn reflect(addr: SocketAddr, request: MessageRequest) -> MessageResponse {
    let channel = tessera_tests::raw::channel(&format!("http://{addr}")).await;
    let mut client = ServerReflectionClient::<Channel>::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection without credentials")
        .into_inner();
    stream
        .message()
        .await
        .expect("reflection response")
        .expect("one reflection response")
        .message_response
        .expect("message_response")
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_credential_service() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new()).await;

    assert_eq!(server.health_status("").await, Some(ServingStatus::Serving));
    assert_eq!(
        server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::Serving)
    );

    let mut health = server.health().await;
    for unknown in [
        "tessera.v1.Unknown",
        "tessera.v1.credentialservice",
        "CredentialService",
    ] {
        let status = health
            .check(health_request(unknown))
            .await
            .expect_err("an unknown service has no health");
        assert_eq!(status.code(), Code::NotFound, "{unknown:?}: {status:?}");
    }

    // Health is public: a bogus bearer neither helps nor hurts.
    let mut request = Request::new(health_request(""));
    request.metadata_mut().insert(
        "authorization",
        "Bearer not-a-credential".parse().expect("metadata"),
    );
    let response = health
        .check(request)
        .await
        .expect("health with a bad bearer");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn reflection_lists_the_services_without_credentials() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new()).await;

    let MessageResponse::ListServicesResponse(list) =
        reflect(server.addr, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices answered with something else");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [CREDENTIAL_SERVICE, "grpc.health.v1.Health"] {
        assert!(names.contains(&expected), "{expected} missing in {names:?}");
    }

    // grpcurl needs the descriptors too, not only the names.
    let response = reflect(
        server.addr,
        MessageRequest::FileContainingSymbol(CREDENTIAL_SERVICE.to_owned()),
    )
    .await;
    let MessageResponse::FileDescriptorResponse(files) = response else {
        panic!("FileContainingSymbol({CREDENTIAL_SERVICE}) answered {response:?}");
    };
    let all: Vec<u8> = files.file_descriptor_proto.concat();
    let text = String::from_utf8_lossy(&all);
    for needle in ["CredentialService", "VerifyBearer", "MintTicket"] {
        assert!(text.contains(needle), "descriptor lacks {needle}");
    }

    // And the credential service itself still wants credentials.
    let mut anonymous = server.client(None).await;
    let status = verify_bearer(&mut anonymous, "x")
        .await
        .expect_err("anonymous VerifyBearer");
    assert_status(&status, Code::Unauthenticated, None);
}
