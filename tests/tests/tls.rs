//! TLS and mutual TLS, with certificates made at test time.

use std::path::Path;
use std::time::Duration;

use tessera_client::pb;
use tessera_client::{Client, ClientTls, Secret};
use tessera_tests::peers::closed_within;
use tessera_tests::pki::Pki;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, run_tessera, service_secret};

async fn start(db: &TestDatabase, pki: &Pki, dir: &Path, mutual: bool, secret: &str) -> TestServer {
    let options = ServerOptions::new().service("SCHEDULER", secret);
    TestServer::start(db, pki.serve(options, dir, mutual)).await
}

async fn verify_with(client: Result<Client, tessera_client::ConnectError>, secret: &str) -> bool {
    let Ok(mut client) = client else { return false };
    let request = pb::VerifyBearerRequest {
        token: secret.to_owned(),
    };
    client.verify_bearer(request).await.is_ok()
}

fn builder(endpoint: String, secret: &str) -> tessera_client::ClientBuilder {
    Client::builder(endpoint)
        .bearer(Secret::new(secret))
        .connect_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(3))
}

#[tokio::test]
async fn tls_serves_verified_clients_and_refuses_plaintext() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let server = start(&db, &pki, dir.path(), false, &secret).await;

    let good = builder(server.endpoint(), &secret)
        .tls(pki.client(false))
        .connect()
        .await;
    assert!(
        verify_with(good, &secret).await,
        "a client trusting the CA is served"
    );

    let plaintext = builder(format!("http://{}", server.addr), &secret)
        .connect()
        .await;
    assert!(
        !verify_with(plaintext, &secret).await,
        "plaintext is refused"
    );

    let other_ca = Pki::new();
    let untrusted = builder(server.endpoint(), &secret)
        .tls(other_ca.client(false))
        .connect()
        .await;
    assert!(
        !verify_with(untrusted, &secret).await,
        "a server cert from an unknown CA is refused"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let server = start(&db, &pki, dir.path(), true, &secret).await;

    let with_cert = builder(server.endpoint(), &secret)
        .tls(pki.client(true))
        .connect()
        .await;
    assert!(
        verify_with(with_cert, &secret).await,
        "a client certificate from the CA is served"
    );

    let without_cert = builder(server.endpoint(), &secret)
        .tls(pki.client(false))
        .connect()
        .await;
    assert!(
        !verify_with(without_cert, &secret).await,
        "no client certificate is refused"
    );

    let stranger = Pki::new();
    let foreign = ClientTls::with_ca(pki.ca.as_bytes()).identity(
        stranger.client_cert.as_bytes(),
        stranger.client_key.as_bytes(),
    );
    let foreign = builder(server.endpoint(), &secret)
        .tls(foreign)
        .connect()
        .await;
    assert!(
        !verify_with(foreign, &secret).await,
        "a certificate from another CA is refused"
    );

    // Health is served over mutual TLS too (the harness probed it to start),
    // and `tessera health` can probe it with the same material.
    assert!(server.health_status("").await.is_some());
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write");
        path.display().to_string()
    };
    let ca = write("probe-ca.pem", &pki.ca);
    let cert = write("probe.pem", &pki.client_cert);
    let key = write("probe.key", &pki.client_key);
    let addr = server.addr.to_string();
    let probe = |extra: &[&str]| {
        let mut args = vec!["health", "--addr", addr.as_str(), "--tls-ca", ca.as_str()];
        args.extend_from_slice(extra);
        run_tessera(&args, &[]).status.code()
    };
    assert_eq!(probe(&["--tls-cert", &cert, "--tls-key", &key]), Some(0));
    assert_ne!(probe(&[]), Some(0), "no client certificate: not healthy");
    let plain = run_tessera(&["health", "--addr", &addr], &[]);
    assert_ne!(
        plain.status.code(),
        Some(0),
        "plaintext probe of a TLS server fails"
    );
}

#[tokio::test]
async fn half_a_tls_configuration_does_not_start() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = dir.path().join("missing.pem");
    let database = format!("sqlite:{}", dir.path().join("t.db").display());
    let out = run_tessera(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", &database),
            ("TESSERA_TLS_CERT", &cert.display().to_string()),
        ],
    );
    assert!(
        !out.status.success(),
        "a certificate without a key is refused"
    );
    let out = run_tessera(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", &database),
            ("TESSERA_TLS_CERT", &cert.display().to_string()),
            ("TESSERA_TLS_KEY", &cert.display().to_string()),
        ],
    );
    assert!(!out.status.success(), "unreadable files are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM").expect("write");
    let garbage = garbage.display().to_string();
    let out = run_tessera(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", &database),
            ("TESSERA_TLS_CERT", &garbage),
            ("TESSERA_TLS_KEY", &garbage),
        ],
    );
    assert!(!out.status.success(), "files without PEM are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TESSERA_TLS_CERT"));
}

/// A TLS server (no client certificates) with the extra environment `env`.
async fn tls_server_with(
    pki: &Pki,
    dir: &Path,
    db: &TestDatabase,
    env: &[(&str, &str)],
) -> TestServer {
    let options = ServerOptions::new().envs(env);
    TestServer::start(db, pki.serve(options, dir, false)).await
}

/// A peer that opens a connection and never completes the TLS handshake is
/// dropped after the handshake timeout, so idle sockets cannot pile up.
#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped() {
    let (pki, dir, db) = (
        Pki::new(),
        tempfile::tempdir().expect("dir"),
        TestDatabase::sqlite(),
    );
    let env = [("TESSERA_TLS_HANDSHAKE_TIMEOUT_MS", "300")];
    let server = tls_server_with(&pki, dir.path(), &db, &env).await;
    let silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    assert!(
        closed_within(silent, Duration::from_secs(5)).await,
        "the silent connection stayed open"
    );
}

/// A peer that completes the TLS handshake and then sends nothing (no
/// HTTP/2 preface) is closed after the preface timeout.
#[tokio::test]
async fn a_tls_connection_silent_after_its_handshake_is_closed() {
    let (pki, dir, db) = (
        Pki::new(),
        tempfile::tempdir().expect("dir"),
        TestDatabase::sqlite(),
    );
    let env = [("TESSERA_PREFACE_TIMEOUT_MS", "300")];
    let server = tls_server_with(&pki, dir.path(), &db, &env).await;
    let silent = tls_handshake_only(&pki, server.addr).await;
    assert!(
        closed_within(silent, Duration::from_secs(2)).await,
        "the connection stayed open after its handshake"
    );
}

/// A TLS connection to `addr` (trusting `pki`'s CA, offering `h2`) whose
/// handshake is complete.
async fn tls_handshake_only(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).expect("ca pem"))
        .expect("ca");
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}
