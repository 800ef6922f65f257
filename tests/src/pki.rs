//! Certificates made at test time: a CA, a server certificate for
//! 127.0.0.1/localhost and a client certificate, and the environment and
//! client material that use them.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tessera_client::ClientTls;

use crate::ServerOptions;

/// A CA with one server and one client certificate, as PEM.
pub struct Pki {
    /// The CA certificate.
    pub ca: String,
    /// The server's certificate, for `localhost` and `127.0.0.1`.
    pub server_cert: String,
    /// Its key.
    pub server_key: String,
    /// A client certificate (`scheduler.internal`) signed by the CA.
    pub client_cert: String,
    /// Its key.
    pub client_key: String,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A fresh CA and its two certificates.
    pub fn new() -> Self {
        Self::with_server_names(&["localhost", "127.0.0.1"])
    }

    /// A fresh CA, a server certificate for `names` and a client
    /// certificate.
    pub fn with_server_names(names: &[&str]) -> Self {
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
        let (server_cert, server_key) = leaf(names.iter().map(|name| (*name).to_owned()).collect());
        let (client_cert, client_key) = leaf(vec!["scheduler.internal".into()]);
        Self {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// Writes the server's files into `dir` and returns its TLS environment
    /// (with `mutual`, client certificates from the CA are required).
    pub fn server_env(&self, dir: &Path, mutual: bool) -> Vec<(String, String)> {
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

    /// Client TLS trusting the CA, with the client certificate when
    /// `with_identity`.
    pub fn client(&self, with_identity: bool) -> ClientTls {
        let tls = ClientTls::with_ca(self.ca.as_bytes());
        if with_identity {
            tls.identity(self.client_cert.as_bytes(), self.client_key.as_bytes())
        } else {
            tls
        }
    }

    /// `options` serving TLS from files written into `dir`, the harness's
    /// clients trusting the CA (and presenting the client certificate when
    /// `mutual`).
    pub fn serve(&self, options: ServerOptions, dir: &Path, mutual: bool) -> ServerOptions {
        self.server_env(dir, mutual).iter().fold(
            options.client_tls(self.client(mutual)),
            |options, (k, v)| options.env(k, v),
        )
    }
}
