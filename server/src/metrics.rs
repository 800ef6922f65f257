//! Prometheus metrics, served on `TESSERA_METRICS_LISTEN` when set.
//!
//! Request counts and latencies come from [`MetricsLayer`]; domain events
//! (tickets, install token, workspaces, failed authentications) are counted
//! where they happen with the `metrics` macros, which cost nothing while no
//! recorder is installed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use prost_types::FileDescriptorSet;
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

/// How often histogram samples are folded into their buckets. A scrape
/// folds them too, but without one they would pile up, a few bytes per
/// call, for as long as nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder and records the build info.
pub(crate) fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WRITE_BATCH_SIZE.into()), BATCH_BUCKETS)?
        .install_recorder()?;
    // Decoded now rather than by the first call.
    LazyLock::force(&METHODS);
    metrics::gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Serves `GET /metrics` on `listener`, and keeps the recorder's upkeep,
/// until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(upkeep(handle.clone(), stop.clone()));
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

/// Runs the recorder's upkeep every [`UPKEEP_EVERY`] until `stop` turns
/// true (or its sender is gone).
async fn upkeep(handle: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(UPKEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// Counts a domain event, e.g. `event("tessera_tickets_total", "minted")`.
pub(crate) fn event(name: &'static str, event: &'static str) {
    metrics::counter!(name, "event" => event).increment(1);
}

/// The `method` label of every call of a path no served method has.
const OTHER: &str = "other";

/// The encoded descriptor sets of the services the server serves: the
/// credential service, health, and reflection in both versions.
const SERVED: [&[u8]; 4] = [
    tessera_client::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// The path (`/<package>.<Service>/<Method>`) of every served method, with
/// its series, read from the generated descriptors so that a method added
/// to the proto is labelled without touching this.
static METHODS: LazyLock<HashMap<String, Method>> = LazyLock::new(|| {
    let methods = SERVED.iter().flat_map(|set| methods(set));
    methods
        .map(|(path, name)| (path, Method::new(name)))
        .collect()
});

/// The series of every call of a path no served method has.
static OTHER_METHOD: LazyLock<Method> = LazyLock::new(|| Method::new(OTHER.to_owned()));

/// A method's label and the handles of its series, registered on first
/// use rather than looked up by key and labels on every call (the recorder
/// is installed before the server serves).
struct Method {
    label: String,
    latency: OnceLock<Histogram>,
    requests: [OnceLock<Counter>; CODE_NAMES.len()],
}

impl Method {
    fn new(label: String) -> Self {
        Self {
            label,
            latency: OnceLock::new(),
            requests: Default::default(),
        }
    }

    /// Records one call that took `seconds` and ended with gRPC `code`.
    fn record(&'static self, seconds: f64, code: usize) {
        let method = self.label.as_str();
        let latency = self
            .latency
            .get_or_init(|| metrics::histogram!(REQUEST_SECONDS, "method" => method));
        latency.record(seconds);
        // A code gRPC does not define is counted as `Unknown` (2).
        let code = if code < CODE_NAMES.len() { code } else { 2 };
        if let (Some(cell), Some(name)) = (self.requests.get(code), CODE_NAMES.get(code)) {
            let requests = cell.get_or_init(|| {
                metrics::counter!("tessera_grpc_requests_total", "method" => method, "code" => *name)
            });
            requests.increment(1);
        }
    }
}

/// The methods of one encoded descriptor set, as in [`METHODS`]. The sets
/// are generated at build time; one that did not decode would only cost
/// its methods their labels (a unit test decodes them all).
fn methods(encoded: &[u8]) -> Vec<(String, String)> {
    let set = FileDescriptorSet::decode(encoded).unwrap_or_default();
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                methods.push((path, method.name().to_owned()));
            }
        }
    }
    methods
}

/// The series of an RPC path: the method's for the methods the server
/// serves, [`OTHER`]'s for any other path, so that callers cannot grow the
/// label set (a refused or unimplemented call is still counted).
fn method(path: &str) -> &'static Method {
    METHODS.get(path).unwrap_or(&OTHER_METHOD)
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
        let method = method(request.uri().path());
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
            method.record(started.elapsed().as_secs_f64(), code);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{SERVED, method, methods};

    fn method_label(path: &str) -> &'static str {
        method(path).label.as_str()
    }

    #[test]
    fn method_labels_are_bounded() {
        for set in SERVED {
            assert!(!methods(set).is_empty(), "a descriptor set did not decode");
        }
        assert_eq!(
            method_label("/tessera.v1.CredentialService/VerifyBearer"),
            "VerifyBearer"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(method_label("/grpc.health.v1.Health/Watch"), "Watch");
        for version in ["v1", "v1alpha"] {
            let path = format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo");
            assert_eq!(method_label(&path), "ServerReflectionInfo");
        }
        assert_eq!(method_label("/evil/../x"), "other");
        assert_eq!(method_label("/tessera.v1.CredentialService/a b"), "other");
        assert_eq!(
            method_label("/tessera.v1.CredentialService/NoSuchMethod"),
            "other"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Madeup"), "other");
        assert_eq!(method_label("/tessera.v1.CredentialService/"), "other");
    }
}
