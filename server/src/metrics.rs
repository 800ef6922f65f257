//! Prometheus metrics, served on `TESSERA_METRICS_LISTEN` when set.
//!
//! Request counts and latencies come from [`MetricsLayer`]; domain events
//! (tickets, install token, workspaces, failed authentications) are counted
//! where they happen with the `metrics` macros, which cost nothing while no
//! recorder is installed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Layer, Service};

/// Latency buckets in seconds: 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
];

/// Writes per group commit: powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Name of the histogram of writes committed together (tickets and audit
/// entries; see the store's group commit).
pub(crate) const WRITE_BATCH_SIZE: &str = "tessera_db_write_batch_size";

/// gRPC status code names by number, for the `code` label.
const CODE_NAMES: [&str; 17] = [
    "Ok",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Name of the request latency histogram.
const REQUEST_SECONDS: &str = "tessera_grpc_request_duration_seconds";

/// Installs the process-wide recorder and records the build info.
pub(crate) fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WRITE_BATCH_SIZE.into()), BATCH_BUCKETS)?
        .install_recorder()?;
    metrics::gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %err, "metrics endpoint failed");
    }
}

/// Counts a domain event, e.g. `event("tessera_tickets_total", "minted")`.
pub(crate) fn event(name: &'static str, event: &'static str) {
    metrics::counter!(name, "event" => event).increment(1);
}

/// The method label of an RPC path; anything outside Tessera's services is
/// `other`, so callers cannot grow the label set.
fn method_label(path: &str) -> String {
    const KNOWN: [&str; 4] = [
        "/tessera.v1.CredentialService/",
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    ];
    KNOWN
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .filter(|method| method.len() <= 64 && method.chars().all(|c| c.is_ascii_alphanumeric()))
        .map_or_else(|| "other".to_owned(), str::to_owned)
}

/// Counts requests by method and gRPC code and times them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered { inner }
    }
}

/// The service [`MetricsLayer`] wraps.
#[derive(Clone, Debug)]
pub(crate) struct Metered<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Metered<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // Errors come "trailers-only", with the status as a header; a
            // success carries it in trailers after the body.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let code = CODE_NAMES.get(code).copied().unwrap_or("Unknown");
            metrics::histogram!(REQUEST_SECONDS, "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("tessera_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(
            method_label("/tessera.v1.CredentialService/VerifyBearer"),
            "VerifyBearer"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(method_label("/evil/../x"), "other");
        assert_eq!(method_label("/tessera.v1.CredentialService/a b"), "other");
    }
}
