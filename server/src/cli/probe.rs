//! `tessera health`: a `grpc.health.v1` probe for container health checks,
//! compose and scripts. One line on standard output when the server is
//! `SERVING` (exit 0), one line on standard error otherwise.
//!
//! Exit codes follow `grpc_health_probe`: 0 serving, 1 bad arguments,
//! 2 cannot connect or timed out, 3 the Check call failed (for example
//! `NOT_FOUND` for an unknown `--service`), 4 any other status.
//!
//! The connection is built in one place, [`endpoint`]: plain HTTP/2, or TLS
//! (optionally mutual) with `--tls-ca`, `--tls-cert`, `--tls-key`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::args::HealthArgs;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where `tessera serve` listens without `TESSERA_LISTEN`.
const DEFAULT_ADDR: &str = "127.0.0.1:50051";

const EXIT_SERVING: i32 = 0;
const EXIT_USAGE: i32 = 1;
const EXIT_CONNECT: i32 = 2;
const EXIT_RPC: i32 = 3;
const EXIT_UNHEALTHY: i32 = 4;

/// Probes once and returns the exit code, having written one line.
pub(crate) async fn health(args: &HealthArgs) -> i32 {
    let listen = std::env::var("TESSERA_LISTEN").ok();
    let authority = match authority(args.addr.as_deref(), listen.as_deref()) {
        Ok(authority) => authority,
        Err(message) => return report(EXIT_USAGE, &format!("tessera health: {message}")),
    };
    let label = format!("{authority} service {:?}", args.service);
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let deadline = Instant::now() + timeout;

    let endpoint = match endpoint(&authority, timeout, args) {
        Ok(endpoint) => endpoint,
        Err(message) => return report(EXIT_USAGE, &format!("tessera health: {message}")),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(err)) => {
            return report(
                EXIT_CONNECT,
                &format!("{label}: UNREACHABLE ({})", chain(&err)),
            );
        }
        Err(_) => return report(EXIT_CONNECT, &format!("{label}: UNREACHABLE (timed out)")),
    };

    let remaining = deadline.saturating_duration_since(Instant::now());
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    let mut client = HealthClient::new(channel);
    let response = match tokio::time::timeout(remaining, client.check(request)).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => {
            return report(
                EXIT_RPC,
                &format!(
                    "{label}: CHECK FAILED ({:?}: {})",
                    status.code(),
                    status.message()
                ),
            );
        }
        Err(_) => return report(EXIT_CONNECT, &format!("{label}: TIMED OUT")),
    };
    match ServingStatus::try_from(response.status) {
        Ok(ServingStatus::Serving) => report(EXIT_SERVING, &format!("{label}: SERVING")),
        Ok(status) => report(
            EXIT_UNHEALTHY,
            &format!("{label}: {}", status.as_str_name()),
        ),
        Err(_) => report(
            EXIT_UNHEALTHY,
            &format!("{label}: UNKNOWN STATUS {}", response.status),
        ),
    }
}

/// The `host:port` to connect to: `--addr` (an `http://` prefix allowed), or
/// the address the server listens on, or the default. Unspecified addresses
/// (`0.0.0.0`, `[::]`) are probed on loopback.
fn authority(addr: Option<&str>, listen: Option<&str>) -> Result<String, String> {
    let Some(addr) = addr.map(str::trim).filter(|addr| !addr.is_empty()) else {
        let listen = listen.map(str::trim).filter(|listen| !listen.is_empty());
        return match listen {
            Some(listen) => listen
                .parse::<SocketAddr>()
                .map(|socket| loopback_if_unspecified(socket).to_string())
                .map_err(|_| format!("TESSERA_LISTEN={listen:?} is not an address; use --addr")),
            None => Ok(DEFAULT_ADDR.to_owned()),
        };
    };
    let rest = if let Some(rest) = addr.strip_prefix("http://") {
        rest
    } else if addr.contains("://") {
        return Err(format!(
            "--addr {addr:?}: only plain http:// (host:port) is supported"
        ));
    } else {
        addr
    };
    let rest = rest.trim_end_matches('/');
    if let Ok(socket) = rest.parse::<SocketAddr>() {
        return Ok(loopback_if_unspecified(socket).to_string());
    }
    // A host name: `name:port`.
    match rest.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && !host.contains(['/', '@', '[', ']', ' '])
                && port.parse::<u16>().is_ok() =>
        {
            Ok(rest.to_owned())
        }
        _ => Err(format!("--addr {addr:?}: expected host:port")),
    }
}

fn loopback_if_unspecified(socket: SocketAddr) -> SocketAddr {
    match socket.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), socket.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), socket.port())
        }
        _ => socket,
    }
}

/// The connection settings: plain HTTP/2, or TLS when `--tls-ca` is set.
fn endpoint(authority: &str, timeout: Duration, args: &HealthArgs) -> Result<Endpoint, String> {
    let scheme = if args.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = Channel::from_shared(format!("{scheme}://{authority}"))
        .map_err(|err| format!("--addr {authority:?}: {err}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let Some(ca) = &args.tls_ca else {
        return Ok(endpoint);
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(domain) = &args.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    endpoint
        .tls_config(tls)
        .map_err(|err| format!("TLS settings: {err}"))
}

/// An error and its causes, `a: b: c` (tonic's own message is only
/// "transport error"). A cause that says what the one before it said (the
/// connector's layers repeat "tcp connect error") is written once.
pub(super) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if said != last {
            text.push_str(": ");
            text.push_str(&said);
            last = said;
        }
        source = cause.source();
    }
    text
}

/// Writes `line` (standard output for `SERVING`, standard error otherwise)
/// and returns `code`.
fn report(code: i32, line: &str) -> i32 {
    // A probe whose output is gone still answers with its exit code.
    let _ = if code == EXIT_SERVING {
        writeln!(std::io::stdout().lock(), "{line}")
    } else {
        writeln!(std::io::stderr().lock(), "{line}")
    };
    code
}

#[cfg(test)]
mod tests {
    use super::{authority, chain};

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|layer| layer as _)
        }
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        let refused = Layer("connection refused", None);
        let inner = Layer("tcp connect error", Some(Box::new(refused)));
        let outer = Layer("tcp connect error", Some(Box::new(inner)));
        let err = Layer("transport error", Some(Box::new(outer)));
        assert_eq!(
            chain(&err),
            "transport error: tcp connect error: connection refused"
        );
    }

    #[test]
    fn defaults_to_the_listen_address_on_loopback() {
        assert_eq!(authority(None, None).as_deref(), Ok("127.0.0.1:50051"));
        assert_eq!(
            authority(None, Some("0.0.0.0:6000")).as_deref(),
            Ok("127.0.0.1:6000")
        );
        assert_eq!(
            authority(None, Some("[::]:6000")).as_deref(),
            Ok("[::1]:6000")
        );
        assert_eq!(
            authority(None, Some("10.1.2.3:6000")).as_deref(),
            Ok("10.1.2.3:6000")
        );
        assert_eq!(
            authority(Some(""), Some("127.0.0.1:7")).as_deref(),
            Ok("127.0.0.1:7")
        );
        assert!(authority(None, Some("nonsense")).is_err());
    }

    #[test]
    fn explicit_addresses() {
        assert_eq!(
            authority(Some("0.0.0.0:1"), Some("10.0.0.1:2")).as_deref(),
            Ok("127.0.0.1:1")
        );
        assert_eq!(
            authority(Some("http://tessera-1:50051/"), None).as_deref(),
            Ok("tessera-1:50051")
        );
        assert_eq!(
            authority(Some("[::1]:50051"), None).as_deref(),
            Ok("[::1]:50051")
        );
        for bad in [
            "tessera",
            "tessera:",
            "tessera:port",
            "https://x:1",
            ":1",
            "a b:1",
        ] {
            assert!(authority(Some(bad), None).is_err(), "{bad}");
        }
    }
}
