//! The tower layer that authenticates and authorizes every call before its
//! handler runs, and hands the [`Caller`] to the handler in the request
//! extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tessera_client::Secret;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::Throttle;
use super::authenticate::{Authenticator, Refusal};
use super::failures::{Charge, FailureKeys, FailureThrottle, Scope};
use super::header::parse_bearer;
use super::policy::{self, Rule};
use super::refusals::{self, RefusalCharge};
use super::streams::HoldingPlace;
use crate::domain::Error;
use crate::grpc::CallerAtFault;
use crate::peers::{PeerPlaces, peer_address, peer_block};

/// Adds caller authentication and the policy table to a tonic server.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    failures: Arc<FailureThrottle>,
    watches: Arc<PeerPlaces>,
}

impl AuthLayer {
    /// Authenticates with `auth`; `throttle` limits the calls anyone may
    /// make, `failures` the failed authentications of a peer or credential,
    /// `watches` the health `Watch` streams of a peer.
    pub(crate) fn new(
        auth: Arc<Authenticator>,
        throttle: Throttle,
        failures: Arc<FailureThrottle>,
        watches: Arc<PeerPlaces>,
    ) -> Self {
        Self {
            auth,
            throttle: Arc::new(throttle),
            failures,
            watches,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            auth: self.auth.clone(),
            throttle: self.throttle.clone(),
            failures: self.failures.clone(),
            watches: self.watches.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the router.
#[derive(Clone)]
pub(crate) struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    failures: Arc<FailureThrottle>,
    watches: Arc<PeerPlaces>,
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
        let addr = remote_addr(&request);
        let peer_ip = addr.map(|a| peer_address(a.ip()));
        if rule == Rule::Public {
            return self.public(request, peer_ip);
        }
        let bearer = Secret::new(bearer_of(&request).unwrap_or_default());
        // Failures are charged to the peer's /64 for IPv6 (see `peers.rs`): only
        // failing calls are refused by it, so hosts sharing one cannot deny
        // each other service.
        let keys = FailureKeys::new(peer_ip.map(peer_block), bearer);
        // A credential that keeps failing is refused wherever it comes from.
        // A peer that keeps failing is refused only on the calls that fail
        // again (below): a valid credential is never refused for what others
        // behind the same address did.
        let refusal = match self.failures.blocked(&keys, Scope::Credential) {
            Some(wait) => Some(wait),
            None if rule == Rule::Anonymous => self.throttle.check(peer_ip).err(),
            None => None,
        };
        if let Some(wait) = refusal {
            return Box::pin(std::future::ready(Ok(throttled(wait).into_http())));
        }
        // A redemption's credential is in the message, and its handler
        // checks and audits it: its refusal is charged as it is made.
        let redemption =
            (rule == Rule::Redeem).then(|| RefusalCharge::new(self.failures.clone(), keys.clone()));
        if let Some(redemption) = &redemption {
            request.extensions_mut().insert(redemption.clone());
        }
        // The clone that was polled ready is the one that must serve.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (auth, failures) = (self.auth.clone(), self.failures.clone());
        Box::pin(async move {
            // A failure is charged when the caller's own credential fails,
            // and whether its peer was over budget is decided then (see
            // `FailureThrottle::record`). Bad tokens that an authenticated
            // service relays (VerifyBearer, ConsumeTicket) are not charged:
            // blocking the relay would let anyone who can make a service
            // present garbage lock that service out.
            let answer = |charge: Charge| async move {
                let shared = charge.counted.wait().await;
                let refused = charge.peer_refused.max(shared);
                refused.map(|wait| throttled(wait).into_http())
            };
            let response = if matches!(rule, Rule::Anonymous | Rule::Redeem) {
                // The credential is in the message (an install token): a
                // call refused for what its caller sent (a wrong token, or
                // any token once the first admin exists) is charged to the
                // peer, so a flood of them is bounded. The bearer header, if
                // any, belongs to whoever relays the call and is not charged.
                let response = inner.call(request).await?;
                if refused_for_the_caller(&response) {
                    let charge = redemption.as_ref().and_then(RefusalCharge::take);
                    let charge = charge.unwrap_or_else(|| failures.record(&keys, Scope::Peer));
                    answer(charge).await.unwrap_or(response)
                } else {
                    response
                }
            } else {
                let bearer = keys.bearer().expose();
                let mut charged = None;
                // Only a credential that failed is charged (not one that
                // could not be checked).
                let audit = |err: &Error| {
                    let failed = matches!(err, Error::Unauthenticated(_));
                    let (audit, charge) = refusals::charge(&failures, &keys, Scope::Both, failed);
                    charged = charge;
                    audit
                };
                let path = request.uri().path();
                match auth.caller(rule, bearer, path, addr, audit).await {
                    Ok(caller) => {
                        request.extensions_mut().insert(caller);
                        inner.call(request).await?
                    }
                    Err(Refusal::Unauthenticated(err)) => {
                        let refused = match charged {
                            Some(charge) => answer(charge).await,
                            None => None,
                        };
                        refused.unwrap_or_else(|| Status::from(err).into_http())
                    }
                    Err(Refusal::Unverified(err)) => Status::from(err).into_http(),
                    Err(Refusal::PermissionDenied) => {
                        Status::permission_denied(policy::denial(rule)).into_http()
                    }
                }
            };
            Ok(response)
        })
    }
}

/// The long-lived streams anyone may open: health `Watch` and both
/// versions of server reflection.
const PUBLIC_STREAMS: [&str; 3] = [
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

impl<S> Auth<S> {
    /// A call anyone may make. A long-lived stream (see [`PUBLIC_STREAMS`])
    /// also needs one of its peer's places, held until its body is dropped.
    fn public<B>(
        &mut self,
        request: http::Request<B>,
        peer_ip: Option<IpAddr>,
    ) -> BoxFuture<S::Response, S::Error>
    where
        S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
    {
        if !PUBLIC_STREAMS.contains(&request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let Some(place) = self.watches.acquire(peer_ip) else {
            let status = Status::resource_exhausted("too many open streams from this address");
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| tonic::body::Body::new(HoldingPlace::new(body, place))))
        })
    }
}

/// True when the handler refused the call for what its caller sent: the
/// status it returned carries [`CallerAtFault`] as its source.
fn refused_for_the_caller<B>(response: &http::Response<B>) -> bool {
    let status = response.extensions().get::<Status>();
    let source = status.and_then(|status| std::error::Error::source(status));
    source.is_some_and(<dyn std::error::Error>::is::<CallerAtFault>)
}

/// The caller's address, when the transport recorded it.
fn remote_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .and_then(TcpConnectInfo::remote_addr)
}

/// `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` saying when to retry.
fn throttled(wait: Duration) -> Status {
    metrics::counter!("tessera_throttled_total").increment(1);
    // Debug, not info: a flood would otherwise write a line per refused
    // call (the counter above and the bounded audit entries tell it).
    tracing::debug!(
        retry_after_ms = super::throttle::millis(wait),
        "caller throttled"
    );
    Status::with_error_details(
        Code::ResourceExhausted,
        "too many requests; retry later",
        ErrorDetails::with_retry_info(Some(wait)),
    )
}

/// The token of an `authorization: Bearer <token>` header (see
/// [`parse_bearer`]); `None` when the header is missing or not visible ASCII.
fn bearer_of<B>(request: &http::Request<B>) -> Option<&str> {
    let mut values = request
        .headers()
        .get_all(http::header::AUTHORIZATION)
        .iter();
    let value = values.next()?.to_str().ok()?;
    // Two credentials make "which one counts" ambiguous: accept neither.
    if values.next().is_some() {
        return None;
    }
    parse_bearer(value)
}
