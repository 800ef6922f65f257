//! The gRPC methods an `rpc` input may call, read from the generated file
//! descriptor so that every unary RPC added to the proto is fuzzed without
//! touching this crate.

use prost::Message;
use prost_types::FileDescriptorSet;

/// Methods outside the credential service that go through the same layers:
/// a public one, and a path no service has (the auth layer's default rule,
/// then the router's `UNIMPLEMENTED`).
const EXTRA: [&str; 2] = [
    "/grpc.health.v1.Health/Check",
    "/tessera.v1.CredentialService/NoSuchMethod",
];

/// Paths (`/<package>.<Service>/<Method>`) of every unary method of
/// `tessera.v1`, in the order of the proto, then [`EXTRA`]. Streaming
/// methods are left out: a call to one may legitimately never end.
pub fn paths() -> Vec<String> {
    let set = FileDescriptorSet::decode(tessera_client::FILE_DESCRIPTOR_SET)
        .unwrap_or_else(|err| panic!("the generated descriptor set does not decode: {err}"));
    let mut paths = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                if method.client_streaming() || method.server_streaming() {
                    continue;
                }
                paths.push(format!("/{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    paths.extend(EXTRA.map(String::from));
    paths
}

/// The index of the method named `name` (its last path segment) in
/// `paths`.
///
/// # Panics
/// If there is no such method: a seed names one that was removed.
pub fn index_of(paths: &[String], name: &str) -> u8 {
    let index = paths
        .iter()
        .position(|path| path.rsplit('/').next() == Some(name))
        .unwrap_or_else(|| panic!("no method {name}"));
    u8::try_from(index).unwrap_or_else(|_| panic!("more than 256 methods"))
}
