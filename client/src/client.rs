//! A connected Tessera client that attaches a bearer to every call.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::Secret;
use crate::pb::credential_service_client::CredentialServiceClient;
use crate::redact::Redacted;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The generated stub, as [`Client`] dereferences to it.
type Stub = CredentialServiceClient<InterceptedService<Channel, BearerInterceptor>>;

/// Why a [`Client`] (or a [`BearerInterceptor`]) could not be built.
///
/// No variant ever carries the bearer, so the error is safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint is not an `http://host[:port]` URI or a `unix:` path.
    #[error("invalid Tessera endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given to [`Client::builder`].
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection could not be established (see the error's source).
    #[error("cannot connect to Tessera")]
    Transport(#[from] tonic::transport::Error),
    /// The bearer is empty or not visible ASCII without whitespace.
    #[error("invalid bearer: it must be non-empty visible ASCII without whitespace")]
    InvalidBearer,
}

/// A [`tonic::service::Interceptor`] that sends `authorization: Bearer <secret>`
/// with every request, or nothing when built with [`BearerInterceptor::unauthenticated`]
/// (or `Default`).
///
/// The header value is built once, so a call never re-validates the secret,
/// and it is marked sensitive, so HTTP/2 never puts it in the HPACK dynamic
/// table and tonic/hyper do not print it. `Debug` shows only whether a bearer
/// is set.
#[derive(Clone, Default)]
pub struct BearerInterceptor {
    value: Option<AsciiMetadataValue>,
}

impl BearerInterceptor {
    /// Builds the interceptor for `secret`.
    ///
    /// Fails with [`ConnectError::InvalidBearer`] unless the secret is
    /// non-empty visible ASCII without whitespace (RFC 6750 token syntax).
    /// Such a bearer could never match on the server, which trims configured
    /// secrets, so failing here points at the misconfiguration (a stray
    /// newline or space) instead of at a later UNAUTHENTICATED; and non-ASCII
    /// bytes would otherwise go out as raw header octets.
    pub fn new(secret: &Secret) -> Result<Self, ConnectError> {
        let raw = secret.expose();
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnectError::InvalidBearer);
        }
        // The parse error is dropped on purpose: it is the only place that
        // could echo the secret back.
        let mut value = AsciiMetadataValue::try_from(format!("Bearer {}", secret.expose()))
            .map_err(|_| ConnectError::InvalidBearer)?;
        value.set_sensitive(true);
        Ok(Self { value: Some(value) })
    }

    /// An interceptor that leaves requests untouched, for the RPCs that need
    /// no credentials (e.g. `GetInstallTokenStatus`).
    pub fn unauthenticated() -> Self {
        Self::default()
    }

    /// True when a bearer is attached to requests.
    pub fn is_authenticated(&self) -> bool {
        self.value.is_some()
    }
}

impl Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            // `insert`, not `append`: a second authorization entry set by the
            // caller would make which one the server reads ambiguous.
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl fmt::Debug for BearerInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerInterceptor")
            .field("bearer", &self.value.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// Configures and connects a [`Client`]; made by [`Client::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    endpoint: String,
    // `Secret`'s Debug is redacted, so deriving Debug here is safe.
    bearer: Option<Secret>,
    connect_timeout: Duration,
    request_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<crate::ClientTls>,
}

impl ClientBuilder {
    /// Connects over TLS (the endpoint must be `https://`), verifying the
    /// server with `tls`'s CA and presenting its identity if it has one.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sends `authorization: Bearer <secret>` on every call. Without it,
    /// calls carry no credentials.
    pub fn bearer(mut self, secret: Secret) -> Self {
        self.bearer = Some(secret);
        self
    }

    /// Limit on establishing the TCP connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limit on each call, from sending to the full response (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connects now, so an unreachable server fails here rather than on the
    /// first call.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let (endpoint, bearer) = self.prepare()?;
        let channel = endpoint.connect().await?;
        Ok(Client::from_channel(channel, bearer))
    }

    /// Returns a client that connects on its first call (and reconnects as
    /// needed), for services that start before Tessera is up. The endpoint
    /// and bearer are still validated here.
    ///
    /// Must be called from within a Tokio runtime: tonic spawns the channel's
    /// worker task here.
    pub fn connect_lazy(&self) -> Result<Client, ConnectError> {
        let (endpoint, bearer) = self.prepare()?;
        Ok(Client::from_channel(endpoint.connect_lazy(), bearer))
    }

    /// Validates everything that can be checked without the network.
    fn prepare(&self) -> Result<(Endpoint, BearerInterceptor), ConnectError> {
        let bearer = match &self.bearer {
            Some(secret) => BearerInterceptor::new(secret)?,
            None => BearerInterceptor::unauthenticated(),
        };
        let invalid = |reason| ConnectError::InvalidEndpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let endpoint =
            Endpoint::from_shared(self.endpoint.clone()).map_err(|_| invalid("not a valid URI"))?;
        // `unix:` paths become a placeholder URI inside tonic; nothing to check.
        if !self.endpoint.starts_with("unix:") {
            let uri = endpoint.uri();
            // Without a TLS configuration tonic would speak cleartext even to
            // an https:// endpoint and expose the bearer, and a TLS
            // configuration on http:// would be silently unused.
            let https = match uri.scheme_str() {
                Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
                Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
                _ => return Err(invalid("expected http(s)://host[:port] or unix:<path>")),
            };
            if https != self.uses_tls() {
                return Err(invalid(
                    "https:// needs a TLS configuration (`tls`, feature \"tls\") and http:// must not have one",
                ));
            }
            if uri.host().is_none_or(str::is_empty) {
                return Err(invalid("missing host"));
            }
        }
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout);
        #[cfg(feature = "tls")]
        let endpoint = match &self.tls {
            Some(tls) => endpoint.tls_config(tls.config())?,
            None => endpoint,
        };
        Ok((endpoint, bearer))
    }

    fn uses_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }
}

/// A Tessera client: the generated `CredentialServiceClient` (reached through
/// `Deref`, e.g. `client.verify_bearer(request).await`) over a channel that
/// attaches the configured bearer to every call.
///
/// Cloning is cheap and clones share the connection.
#[derive(Clone)]
pub struct Client {
    stub: Stub,
    channel: Channel,
    authenticated: bool,
}

impl Client {
    /// Starts configuring a client for `endpoint`, e.g.
    /// `http://tessera:50051` or `unix:/run/tessera.sock`.
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            bearer: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Wraps a channel built elsewhere (custom transport, tests).
    pub fn from_channel(channel: Channel, bearer: BearerInterceptor) -> Self {
        Self {
            authenticated: bearer.is_authenticated(),
            stub: CredentialServiceClient::with_interceptor(channel.clone(), bearer),
            channel,
        }
    }

    /// A client on the same connection that authenticates with `secret`
    /// instead, e.g. a workspace runtime switching from its registration
    /// token to its auth token.
    pub fn with_bearer(&self, secret: Secret) -> Result<Client, ConnectError> {
        Ok(Self::from_channel(
            self.channel(),
            BearerInterceptor::new(&secret)?,
        ))
    }

    /// The underlying channel, to run other services (e.g. gRPC health) on
    /// the same connection. It carries no bearer by itself.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

impl Deref for Client {
    type Target = Stub;

    fn deref(&self) -> &Stub {
        &self.stub
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Stub {
        &mut self.stub
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}
