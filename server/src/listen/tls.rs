//! TLS for the accept loop: the rustls configuration tonic would build
//! from the same PEM files (ring, TLS 1.2 and 1.3, ALPN `h2`, client
//! certificates verified against the CA when one is set), and the
//! handshake, bounded in time.
//!
//! Tessera does the handshake itself, not through tonic's `tls_config`, so
//! that the preface deadline can sit above TLS (see [`super::preface`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

/// Where the TLS material is read from: at startup, and again on SIGHUP.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// `TESSERA_TLS_CERT`: the certificate chain.
    pub cert: PathBuf,
    /// `TESSERA_TLS_KEY`: its private key.
    pub key: PathBuf,
    /// `TESSERA_TLS_CLIENT_CA`: CA that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
}

/// The largest certificate, key or CA file read: a chain of a few
/// certificates is a few kilobytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

impl TlsFiles {
    /// Reads every file; an error names the file that failed.
    pub(crate) fn read(&self) -> Result<TlsSettings, String> {
        let read = |path: &Path| {
            crate::reload::read_bounded(path, MAX_PEM_BYTES)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))
        };
        Ok(TlsSettings {
            cert_pem: read(&self.cert)?,
            key_pem: read(&self.key)?,
            client_ca_pem: self.client_ca.as_deref().map(read).transpose()?,
            files: self.clone(),
        })
    }
}

/// PEM material for serving TLS. `Debug` never shows the key.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    /// Certificate chain.
    pub cert_pem: Vec<u8>,
    /// Private key.
    pub key_pem: Vec<u8>,
    /// CA that client certificates must chain to; `None`: no client certificates.
    pub client_ca_pem: Option<Vec<u8>>,
    /// Where they were read from.
    pub files: TlsFiles,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mutual", &self.client_ca_pem.is_some())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Why the TLS configuration could not be built; never shows key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsConfigError {
    /// `TESSERA_TLS_CERT` or `TESSERA_TLS_CLIENT_CA` holds no readable certificate.
    #[error("{0}: no PEM certificate could be read")]
    Certificates(&'static str),
    /// `TESSERA_TLS_KEY` holds no readable private key.
    #[error("TESSERA_TLS_KEY: no PEM private key could be read")]
    Key,
    /// rustls refused the combination (e.g. a key that does not match).
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// The server's TLS acceptor for `settings`.
pub(crate) fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsConfigError> {
    let rustls = |err: &dyn std::fmt::Display| TlsConfigError::Rustls(err.to_string());
    let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| rustls(&err))?;
    let builder = match &settings.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let (added, _) =
                roots.add_parsable_certificates(certificates(ca, "TESSERA_TLS_CLIENT_CA")?);
            if added == 0 {
                return Err(TlsConfigError::Certificates("TESSERA_TLS_CLIENT_CA"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(ring::default_provider()),
            )
            .build()
            .map_err(|err| rustls(&err))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = certificates(&settings.cert_pem, "TESSERA_TLS_CERT")?;
    let key = PrivateKeyDer::from_pem_slice(&settings.key_pem).map_err(|_| TlsConfigError::Key)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|err| rustls(&err))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificates in `pem`; at least one.
fn certificates(
    pem: &[u8],
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsConfigError::Certificates(setting))?;
    if certificates.is_empty() {
        return Err(TlsConfigError::Certificates(setting));
    }
    Ok(certificates)
}

/// The TLS session over `stream`, or `None` (logged at `debug`, as tonic
/// does: any peer can cause it) when the handshake fails or is not done
/// by `deadline`.
pub(crate) async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    deadline: Instant,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}
