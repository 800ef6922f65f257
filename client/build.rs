//! Generates the Tessera gRPC code from `proto/` with protox (pure Rust), so
//! neither we nor embedders need a system `protoc`.

use std::path::PathBuf;

/// Messages that carry a secret: their `Debug` is written by hand in
/// `src/redact.rs` so that a token can never reach a log through `{:?}`.
const SECRET_BEARING: &[&str] = &[
    ".tessera.v1.VerifyBearerRequest",
    ".tessera.v1.MintTicketResponse",
    ".tessera.v1.ConsumeTicketRequest",
    ".tessera.v1.GetInternalCredentialResponse",
    ".tessera.v1.IssueInstallTokenResponse",
    ".tessera.v1.ConsumeInstallTokenRequest",
    ".tessera.v1.ConsumeInstallTokenResponse",
    ".tessera.v1.ProvisionWorkspaceResponse",
    ".tessera.v1.RegisterWorkspaceResponse",
    ".tessera.v1.GetInboundSecretResponse",
    ".tessera.v1.CreateAccessTokenResponse",
    ".tessera.v1.InviteUserResponse",
    ".tessera.v1.AcceptInviteRequest",
    ".tessera.v1.AcceptInviteResponse",
    ".tessera.v1.ReissueRegistrationTokenResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../proto");
    let proto_file = "tessera/v1/credentials.proto";
    println!(
        "cargo:rerun-if-changed={}",
        proto_root.join(proto_file).display()
    );

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_file(proto_file)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("tessera_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .skip_debug(SECRET_BEARING.iter().copied())
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
