//! The tower layer that authenticates and authorizes every call before its
//! handler runs, and hands the [`Caller`] to the handler in the request
//! extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::Throttle;
use super::policy::{self, Rule};
use crate::app::Tessera;
use crate::principal::Caller;

/// Adds caller authentication and the policy table to a tonic server.
#[derive(Clone)]
pub struct AuthLayer {
    app: Arc<Tessera>,
    throttle: Arc<Throttle>,
}

impl AuthLayer {
    /// Authenticates with `app`'s verifier; `throttle` limits the calls
    /// anyone may make.
    pub fn new(app: Arc<Tessera>, throttle: Throttle) -> Self {
        Self {
            app,
            throttle: Arc::new(throttle),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            app: self.app.clone(),
            throttle: self.throttle.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the router.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    app: Arc<Tessera>,
    throttle: Arc<Throttle>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let rule = policy::rule_for(request.uri().path());
        match rule {
            Rule::Public => return Box::pin(self.inner.call(request)),
            Rule::Anonymous => {
                let peer = remote_addr(&request).map(|addr| addr.ip());
                return match self.throttle.check(peer) {
                    Ok(()) => Box::pin(self.inner.call(request)),
                    Err(wait) => Box::pin(std::future::ready(Ok(throttled(wait).into_http()))),
                };
            }
            _ => {}
        }
        // The clone that was polled ready is the one that must serve.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let app = self.app.clone();
        let path = request.uri().path().to_owned();
        let peer = peer_of(&request);
        let bearer = bearer_of(&request).unwrap_or_default().to_owned();
        Box::pin(async move {
            match authorize(&app, &path, &bearer, peer, rule).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

async fn authorize(
    app: &Tessera,
    path: &str,
    bearer: &str,
    peer: String,
    rule: Rule,
) -> Result<Caller, Status> {
    let principal = if rule == Rule::Workspace {
        app.authenticate_registrant(bearer, path, &peer).await?
    } else {
        app.authenticate(bearer, path, &peer).await?
    };
    let caller = Caller { principal, peer };
    if policy::allows(rule, &caller.principal) {
        Ok(caller)
    } else {
        app.audit_denied(&caller, path).await;
        Err(Status::permission_denied("caller may not call this method"))
    }
}

/// The caller's address, when the transport recorded it.
fn remote_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
}

/// The caller's address as text, empty when unknown.
fn peer_of<B>(request: &http::Request<B>) -> String {
    remote_addr(request)
        .map(|addr| addr.to_string())
        .unwrap_or_default()
}

/// `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` saying when to retry.
fn throttled(wait: Duration) -> Status {
    tracing::info!(retry_after_ms = wait.as_millis() as u64, "caller throttled");
    Status::with_error_details(
        Code::ResourceExhausted,
        "too many requests; retry later",
        ErrorDetails::with_retry_info(Some(wait)),
    )
}

/// The token of an `authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110); anything else yields `None`.
fn bearer_of<B>(request: &http::Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}
