//! A tower layer that guards an embedding server's routes with the inbound
//! check.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{InboundSecretSource, WorkspaceFiles};

/// Applies the inbound check to every request of the wrapped service, asking
/// an [`InboundSecretSource`] per request (so a secret saved by a later
/// registration takes effect at once). Built with
/// [`from_files`](Self::from_files), it accepts the current, next and
/// previous (until its deadline) secrets, so a rotation never refuses a
/// call.
///
/// Works for any `http` service whose response body has a `Default` (an
/// empty body), e.g. an axum `Router` (`router.layer(..)`) or a tonic server
/// (`Server::builder().layer(..)`). A rejected request never reaches the
/// wrapped service and is answered:
/// * for gRPC (`content-type: application/grpc…`): HTTP 200 with
///   `grpc-status: 16` (`UNAUTHENTICATED`), as gRPC clients expect;
/// * otherwise: `401 Unauthorized` with `www-authenticate: Bearer`.
///
/// Accepted requests pass through unchanged, `authorization` header included.
#[derive(Clone)]
pub struct InboundAuthLayer {
    source: Arc<dyn InboundSecretSource>,
}

impl InboundAuthLayer {
    /// A layer checking requests against `source`. With a single
    /// [`SecretFile`](super::SecretFile) (e.g. `files.inbound_secret().clone()`)
    /// only the current secret is accepted, which refuses calls during a
    /// rotation: prefer [`from_files`](Self::from_files).
    pub fn new(source: impl InboundSecretSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// A layer accepting every inbound secret of `files` valid now (see
    /// [`InboundSecrets`](super::InboundSecrets)).
    pub fn from_files(files: &WorkspaceFiles) -> Self {
        Self::new(files.inbound_secrets().clone())
    }
}

impl fmt::Debug for InboundAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundAuthLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for InboundAuthLayer {
    type Service = InboundAuth<S>;

    fn layer(&self, inner: S) -> InboundAuth<S> {
        InboundAuth {
            inner,
            source: Arc::clone(&self.source),
        }
    }
}

/// The service made by [`InboundAuthLayer`].
#[derive(Clone)]
pub struct InboundAuth<S> {
    inner: S,
    source: Arc<dyn InboundSecretSource>,
}

impl<S> InboundAuth<S> {
    fn authorized<B>(&self, request: &Request<B>) -> bool {
        let mut values = request.headers().get_all(AUTHORIZATION).iter();
        // Several authorization headers are ambiguous (which one would the
        // route see?), so they count as none. Non-ASCII bytes are allowed as
        // long as they are UTF-8, as `HeaderValue::to_str` would refuse them.
        let header = match (values.next(), values.next()) {
            (Some(value), None) => std::str::from_utf8(value.as_bytes()).ok(),
            _ => None,
        };
        self.source.authorizes(header)
    }
}

impl<S: fmt::Debug> fmt::Debug for InboundAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for InboundAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let kind = if self.authorized(&request) {
            Kind::Inner(Box::pin(self.inner.call(request)))
        } else {
            Kind::Rejected(Rejection::for_request(&request))
        };
        ResponseFuture {
            kind,
            body: PhantomData,
        }
    }
}

/// The future of [`InboundAuth`]: the wrapped service's response, or the
/// rejection.
pub struct ResponseFuture<F, B> {
    kind: Kind<F>,
    // `fn() -> B`: the body is produced, not owned, so B's auto traits do
    // not leak into the future's.
    body: PhantomData<fn() -> B>,
}

enum Kind<F> {
    // Boxed so the future is `Unpin` and can be polled without unsafe pin
    // projection (the crate forbids unsafe); one allocation per accepted
    // request is negligible next to the I/O.
    Inner(Pin<Box<F>>),
    Rejected(Rejection),
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Inner(future) => future.as_mut().poll(cx),
            Kind::Rejected(rejection) => Poll::Ready(Ok(rejection.response())),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = matches!(self.kind, Kind::Rejected(_));
        f.debug_struct("ResponseFuture")
            .field("rejected", &rejected)
            .finish_non_exhaustive()
    }
}

/// How to answer a rejected request: in the protocol it was made in.
#[derive(Clone, Copy, Debug)]
enum Rejection {
    Http,
    Grpc,
}

impl Rejection {
    fn for_request<B>(request: &Request<B>) -> Self {
        let grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if grpc { Self::Grpc } else { Self::Http }
    }

    fn response<B: Default>(self) -> Response<B> {
        match self {
            // A "trailers-only" gRPC response: the status travels in the
            // headers of an HTTP 200 with an empty body.
            Self::Grpc => tonic::Status::unauthenticated("missing or invalid platform credentials")
                .into_http(),
            Self::Http => {
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}
