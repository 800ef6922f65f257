//! TLS and mutual TLS, with certificates made at test time.

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tessera_client::pb;
use tessera_client::{Client, ClientTls, Secret};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, run_tessera, service_secret};

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate, as PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().expect("key");
            let params = CertificateParams::new(names).expect("params");
            let cert = params.signed_by(&key, &ca).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert, client_key) = leaf(vec!["scheduler.internal".into()]);
        Self {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// Writes the server's files into `dir` and returns its TLS environment.
    fn server_env(&self, dir: &Path, mutual: bool) -> Vec<(String, String)> {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path.display().to_string()
        };
        let mut env = vec![
            (
                "TESSERA_TLS_CERT".to_owned(),
                write("server.pem", &self.server_cert),
            ),
            (
                "TESSERA_TLS_KEY".to_owned(),
                write("server.key", &self.server_key),
            ),
        ];
        if mutual {
            env.push((
                "TESSERA_TLS_CLIENT_CA".to_owned(),
                write("ca.pem", &self.ca),
            ));
        }
        env
    }

    fn client(&self, with_identity: bool) -> ClientTls {
        let tls = ClientTls::with_ca(self.ca.as_bytes());
        if with_identity {
            tls.identity(self.client_cert.as_bytes(), self.client_key.as_bytes())
        } else {
            tls
        }
    }
}

async fn start(db: &TestDatabase, pki: &Pki, dir: &Path, mutual: bool, secret: &str) -> TestServer {
    let mut options = ServerOptions::new()
        .service("SCHEDULER", secret)
        .client_tls(pki.client(mutual));
    for (key, value) in pki.server_env(dir, mutual) {
        options = options.env(&key, &value);
    }
    TestServer::start(db, options).await
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
    let out = run_tessera(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            (
                "DATABASE_URL",
                &format!("sqlite:{}", dir.path().join("t.db").display()),
            ),
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
            (
                "DATABASE_URL",
                &format!("sqlite:{}", dir.path().join("t.db").display()),
            ),
            ("TESSERA_TLS_CERT", &cert.display().to_string()),
            ("TESSERA_TLS_KEY", &cert.display().to_string()),
        ],
    );
    assert!(!out.status.success(), "unreadable files are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
}

/// A peer that opens a connection and never completes the TLS handshake is
/// dropped after the handshake timeout, so idle sockets cannot pile up.
#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped() {
    use tokio::io::AsyncReadExt;

    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::sqlite();
    let mut options = ServerOptions::new().env("TESSERA_TLS_HANDSHAKE_TIMEOUT_MS", "300");
    options = options.client_tls(pki.client(false));
    for (key, value) in pki.server_env(dir.path(), false) {
        options = options.env(&key, &value);
    }
    let server = TestServer::start(&db, options).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the silent connection stayed open: {closed:?}"
    );
}
