//! SIGHUP rereads the TLS certificate and key: new connections get the new
//! certificate, connections made before keep working, and files that do not
//! make a TLS configuration keep the old one.

use std::time::Duration;

use tessera_client::{Client, ClientTls, Secret, pb};
use tessera_tests::pki::Pki;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, service_secret};

/// Sends SIGHUP and waits for one more log line holding `message`.
async fn reload(server: &mut TestServer, message: &str) {
    server.log_after(message, TestServer::hangup).await;
}

async fn connect(server: &TestServer, tls: ClientTls, secret: &str) -> Option<Client> {
    Client::builder(server.endpoint())
        .bearer(Secret::new(secret))
        .tls(tls)
        .connect_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(3))
        .connect()
        .await
        .ok()
}

async fn verifies(client: &mut Client, secret: &str) -> bool {
    let request = pb::VerifyBearerRequest {
        token: secret.to_owned(),
    };
    client.verify_bearer(request).await.is_ok()
}

async fn new_connection_verifies(server: &TestServer, tls: ClientTls, secret: &str) -> bool {
    match connect(server, tls, secret).await {
        Some(mut client) => verifies(&mut client, secret).await,
        None => false,
    }
}

#[tokio::test]
async fn sighup_serves_a_new_certificate_to_new_connections_only() {
    let (first, second) = (Pki::new(), Pki::new());
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new().service("SCHEDULER", &secret);
    let mut server = TestServer::start(&db, first.serve(options, dir.path(), false)).await;

    let mut existing = connect(&server, first.client(false), &secret)
        .await
        .expect("connect with the first CA");
    assert!(verifies(&mut existing, &secret).await);

    // The same paths, a certificate from another CA.
    second.server_env(dir.path(), false);
    reload(&mut server, "configuration reloaded").await;
    assert!(
        new_connection_verifies(&server, second.client(false), &secret).await,
        "a new connection gets the new certificate"
    );
    assert!(
        !new_connection_verifies(&server, first.client(false), &secret).await,
        "a new connection no longer gets the old certificate"
    );
    assert!(
        verifies(&mut existing, &secret).await,
        "the connection made before the reload keeps working"
    );

    // A key that does not match the certificate: the reload fails and the
    // second certificate stays.
    let third = Pki::new();
    std::fs::write(dir.path().join("server.key"), &third.server_key).expect("write key");
    reload(&mut server, "configuration reload failed").await;
    assert!(server.stderr().contains("TLS not reloaded"));
    assert!(
        new_connection_verifies(&server, second.client(false), &secret).await,
        "the certificate before the failed reload is still served"
    );
    assert!(!server.stderr().contains(third.server_key.trim()));
}

#[tokio::test]
async fn sighup_rereads_the_client_ca_of_mutual_tls() {
    let (first, second) = (Pki::new(), Pki::new());
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new().service("SCHEDULER", &secret);
    let mut server = TestServer::start(&db, first.serve(options, dir.path(), true)).await;
    assert!(new_connection_verifies(&server, first.client(true), &secret).await);

    // Certificate, key and client CA all from the second PKI.
    second.server_env(dir.path(), true);
    reload(&mut server, "configuration reloaded").await;
    assert!(
        new_connection_verifies(&server, second.client(true), &secret).await,
        "a client certificate from the new CA is accepted"
    );
    let old_identity = ClientTls::with_ca(second.ca.as_bytes())
        .identity(first.client_cert.as_bytes(), first.client_key.as_bytes());
    assert!(
        !new_connection_verifies(&server, old_identity, &secret).await,
        "a client certificate from the old CA is no longer accepted"
    );
}
