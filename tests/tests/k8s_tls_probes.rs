//! The Kubernetes TLS variant (`deploy/k8s/tls/deployment.yaml`) run as a
//! kubelet would run its probes: the manifest's own probe commands and
//! environment, its mounted Secret replaced by a directory of test
//! certificates, against a real TLS server.

use std::path::Path;

use tessera_tests::pki::Pki;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, binary};
use yaml_rust2::{Yaml, YamlLoader};

const MANIFEST: &str = "../deploy/k8s/tls/deployment.yaml";

/// The manifest's container.
fn container() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    let text = std::fs::read_to_string(&path).expect("read the manifest");
    let docs = YamlLoader::load_from_str(&text).expect("YAML");
    docs[0]["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The container's environment, with paths under the `tls` volume's
/// mount moved to `dir`.
fn environment(container: &Yaml, dir: &Path) -> Vec<(String, String)> {
    let mounts = container["volumeMounts"].as_vec().expect("volume mounts");
    let tls = mounts.iter().find(|m| m["name"].as_str() == Some("tls"));
    let mount = tls
        .and_then(|m| m["mountPath"].as_str())
        .expect("tls mount");
    let env = container["env"].as_vec().expect("env");
    env.iter()
        .map(|var| {
            let name = var["name"].as_str().expect("name").to_owned();
            let value = var["value"].as_str().expect("value");
            let value = match value.strip_prefix(mount) {
                Some(rest) => format!("{}{rest}", dir.display()),
                None => value.to_owned(),
            };
            (name, value)
        })
        .collect()
}

/// Writes the Secret's three keys, as Kubernetes mounts them, into `dir`.
fn mount_secret(pki: &Pki, ca: &str, dir: &Path) {
    for (name, pem) in [
        ("tls.crt", &pki.server_cert),
        ("tls.key", &pki.server_key),
        ("ca.crt", &ca.to_owned()),
    ] {
        std::fs::write(dir.join(name), pem).expect("write the mounted secret");
    }
}

/// Runs `probe`'s command with `env`; its exit code.
fn run_probe(container: &Yaml, probe: &str, env: &[(String, String)]) -> Option<i32> {
    let command = container[probe]["exec"]["command"]
        .as_vec()
        .unwrap_or_else(|| panic!("{probe} is an exec probe"));
    let args: Vec<&str> = command[1..].iter().filter_map(Yaml::as_str).collect();
    let output = std::process::Command::new(binary())
        .args(&args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run the probe");
    output.status.code()
}

#[tokio::test]
async fn the_tls_manifests_probes_check_a_tls_server() {
    let container = container();
    // The certificate names the Service callers use and the harness's host.
    let pki = Pki::with_server_names(&["tessera", "localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    mount_secret(&pki, &pki.ca, dir.path());
    let env = environment(&container, dir.path());
    let server_env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(name, _)| name != "TESSERA_LISTEN")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .envs(&server_env)
        .client_tls(pki.client(false));
    let server = TestServer::start(&db, options).await;

    // Each probe, pointed at this server's port (the manifest's listens on
    // 0.0.0.0, which `tessera health` probes on the loopback).
    let mut probe_env = env.clone();
    for (name, value) in &mut probe_env {
        if name == "TESSERA_LISTEN" {
            *value = format!("0.0.0.0:{}", server.addr.port());
        }
    }
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(run_probe(&container, probe, &probe_env), Some(0), "{probe}");
    }

    // The probe verifies what it talks to: a CA that did not sign the
    // server's certificate fails it.
    let stranger = Pki::new();
    std::fs::write(dir.path().join("ca.crt"), &stranger.ca).expect("write");
    assert_ne!(
        run_probe(&container, "readinessProbe", &probe_env),
        Some(0),
        "a probe trusting another CA"
    );
}
