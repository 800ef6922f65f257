//! End-to-end tests against a real in-process tonic server on 127.0.0.1:0.
//!
//! The generated server stubs need the `server` feature, so the test server is
//! a raw tower service registered under the CredentialService name: it records
//! the `authorization` header of every call and answers UNIMPLEMENTED, except
//! `GetInternalCredential`, which never answers (to exercise the timeout).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_client::pb::{GetInternalCredentialRequest, VerifyBearerRequest};
use tessera_client::tonic::body::Body;
use tessera_client::tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tessera_client::tonic::server::NamedService;
use tessera_client::tonic::transport::Server;
use tessera_client::tonic::transport::server::TcpIncoming;
use tessera_client::tonic::{Code, Status};
use tessera_client::{Client, Secret};

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl NamedService for Recorder {
    const NAME: &'static str = "tessera.v1.CredentialService";
}

impl Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let header = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen.lock().unwrap().push(header);
        if request.uri().path().ends_with("/GetInternalCredential") {
            return Box::pin(std::future::pending());
        }
        Box::pin(async { Ok(Status::unimplemented("recorder").into_http()) })
    }
}

async fn serve() -> (SocketAddr, Recorder) {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let recorder = Recorder::default();
    let server = Server::builder()
        .add_service(recorder.clone())
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    (addr, recorder)
}

fn verify() -> VerifyBearerRequest {
    VerifyBearerRequest {
        token: "tsr_usr_x".into(),
    }
}

#[tokio::test]
async fn bearer_reaches_the_server_and_can_be_swapped() {
    let (addr, recorder) = serve().await;
    let mut client = Client::builder(format!("http://{addr}"))
        .bearer(Secret::new("tsr_svc_one"))
        .connect()
        .await
        .unwrap();

    let status = client.verify_bearer(verify()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let mut other = client.with_bearer(Secret::new("tsr_wsa_two")).unwrap();
    other.verify_bearer(verify()).await.unwrap_err();
    // Clones keep the bearer of the client they came from.
    client.clone().verify_bearer(verify()).await.unwrap_err();

    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            Some("Bearer tsr_svc_one".to_owned()),
            Some("Bearer tsr_wsa_two".to_owned()),
            Some("Bearer tsr_svc_one".to_owned()),
        ]
    );
}

#[tokio::test]
async fn without_a_bearer_no_authorization_is_sent() {
    let (addr, recorder) = serve().await;
    let mut client = Client::builder(format!("http://{addr}"))
        .connect_lazy()
        .unwrap();
    client.verify_bearer(verify()).await.unwrap_err();
    assert_eq!(*recorder.seen.lock().unwrap(), [None]);
}

#[tokio::test]
async fn calls_are_bounded_by_the_request_timeout() {
    let (addr, recorder) = serve().await;
    let mut client = Client::builder(format!("http://{addr}"))
        .bearer(Secret::new("tsr_svc_one"))
        .request_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_internal_credential(GetInternalCredentialRequest {}),
    )
    .await
    .expect("the request timeout did not fire")
    .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(recorder.seen.lock().unwrap().len(), 1);
}
