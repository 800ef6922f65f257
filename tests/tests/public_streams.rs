//! The long-lived streams anyone may open without credentials — health
//! `Watch` and server reflection — share one bound per peer address.

use std::net::SocketAddr;

use tessera_client::tonic::transport::Channel;
use tessera_client::tonic::{Code, Status, Streaming};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

/// An open reflection stream: its requests' sender (kept, so the stream
/// stays open) and its responses.
type Reflecting = (
    mpsc::Sender<ServerReflectionRequest>,
    Streaming<ServerReflectionResponse>,
);

/// Opens a reflection stream to `addr`, on a connection of its own, and
/// makes one round trip on it.
async fn reflect(addr: SocketAddr) -> Result<Reflecting, Status> {
    let channel = tessera_tests::raw::channel(&format!("http://{addr}")).await;
    let mut client = ServerReflectionClient::<Channel>::new(channel);
    let (requests, outgoing) = mpsc::channel(1);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    requests.send(request).await.expect("queue a request");
    let response = client.server_reflection_info(ReceiverStream::new(outgoing));
    let mut responses = response.await?.into_inner();
    responses.message().await?.expect("a reflection response");
    Ok((requests, responses))
}

#[tokio::test]
async fn reflection_streams_are_bounded_per_peer_with_watch_streams() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new().env("TESSERA_MAX_WATCH_STREAMS_PER_PEER", "2");
    let server = TestServer::start(&db, options).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(reflect(server.addr).await.expect("within the bound"));
    }
    let status = reflect(server.addr).await.expect_err("a third stream");
    assert_status(&status, Code::ResourceExhausted, None);
    let watch = HealthCheckRequest {
        service: String::new(),
    };
    let mut health = server.health().await;
    let status = health
        .watch(watch.clone())
        .await
        .expect_err("the bound is shared");
    assert_status(&status, Code::ResourceExhausted, None);

    drop(open.pop());
    let freed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match reflect(server.addr).await {
                Ok(stream) => return stream,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    });
    freed.await.expect("an ended stream frees its place");
}
