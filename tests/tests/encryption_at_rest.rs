//! Encryption at rest of the inbound secrets, end to end: the `tessera`
//! binary with `TESSERA_ENCRYPTION_KEY`, restarts without the key in use,
//! `tessera rewrap`, and keys that never reach a log.

use std::process::Output;
use std::time::Duration;

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::{Code, Status};
use tessera_tests::grpc::provision_workspace;
use tessera_tests::{
    ServerOptions, ServerProcess, TestDatabase, TestServer, run_tessera_async, service_secret, sql,
};

const KEY: &str = "TESSERA_ENCRYPTION_KEY";
const STOP: Duration = Duration::from_secs(10);

/// A fresh key from `tessera gen-secret --key`.
async fn gen_key() -> String {
    let out = run_tessera_async(&["gen-secret", "--key"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(key.len(), 44, "32 bytes in padded base64: {key}");
    key
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn options(db: &TestDatabase, keys: Option<&str>) -> ServerOptions {
    let options = ServerOptions::new()
        .service("PLATFORM", &service_secret("platform"))
        .database_url(db.url());
    match keys {
        Some(keys) => options.env(KEY, keys),
        None => options,
    }
}

async fn start(db: &TestDatabase, keys: Option<&str>) -> (TestServer, Client) {
    let server = TestServer::start_with(options(db, keys)).await;
    let platform = server.client(Some(&service_secret("platform"))).await;
    (server, platform)
}

/// Stops `server` cleanly and returns everything it wrote.
async fn stop(mut server: TestServer) -> String {
    server.terminate();
    server.wait_exit_zero(STOP).await;
    format!("{}{}", server.stdout(), server.stderr())
}

/// Provisions `id` and returns its inbound secret.
async fn provision(platform: &mut Client, id: &str) -> String {
    let provisioned = provision_workspace(platform, id, id)
        .await
        .expect("provision");
    provisioned.platform_inbound_secret
}

async fn inbound_secret(platform: &mut Client, id: &str) -> Result<String, Status> {
    let request = pb::GetInboundSecretRequest {
        workspace_id: id.to_owned(),
    };
    let answer = platform.get_inbound_secret(request).await?.into_inner();
    Ok(answer.platform_inbound_secret.unwrap_or_default())
}

/// What the `inbound_secret` column of workspace `id` holds.
async fn stored(db: &TestDatabase, id: &str) -> String {
    let raw = db.connect().await;
    let query = format!("SELECT inbound_secret FROM workspaces WHERE id = '{id}'");
    let rows = sql::strings(&raw, &query, 1).await;
    rows.into_iter().next().expect("the row").remove(0)
}

/// The key id a stored value names (`enc:v1:<key id>:…`).
fn key_id_in(stored: &str) -> String {
    let mut parts = stored.split(':');
    assert_eq!(
        (parts.next(), parts.next()),
        (Some("enc"), Some("v1")),
        "{stored}"
    );
    parts.next().expect("a key id").to_owned()
}

/// Starts a server on `db` with `keys`, which must refuse to start; returns
/// what it wrote.
async fn refused(db: &TestDatabase, keys: Option<&str>) -> String {
    let mut process = ServerProcess::spawn(&options(db, keys));
    let status = process.wait_exit(STOP).await;
    assert!(!status.success(), "must refuse to start");
    format!("{}{}", process.stdout(), process.stderr())
}

#[tokio::test]
async fn a_secret_is_stored_encrypted_and_a_server_lacking_its_key_refuses_to_start() {
    let db = TestDatabase::sqlite();
    let key = gen_key().await;
    let (server, mut platform) = start(&db, Some(&key)).await;
    let secret = provision(&mut platform, "ws-1").await;
    let other = provision(&mut platform, "ws-2").await;
    assert_eq!(
        inbound_secret(&mut platform, "ws-1").await.expect("read"),
        secret
    );
    let raw = stored(&db, "ws-1").await;
    assert!(!raw.contains(&secret), "{raw}");
    let key_id = key_id_in(&raw);

    // ws-1's ciphertext in ws-2's row: an error, never ws-1's secret.
    let raw_2 = stored(&db, "ws-2").await;
    let copy = format!("UPDATE workspaces SET inbound_secret = '{raw}' WHERE id = 'ws-2'");
    sea_orm::ConnectionTrait::execute_unprepared(&db.connect().await, &copy)
        .await
        .expect("copy");
    let status = inbound_secret(&mut platform, "ws-2")
        .await
        .expect_err("no secret");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!status.message().contains(&secret) && !status.message().contains("tsr_"));
    let restore = format!("UPDATE workspaces SET inbound_secret = '{raw_2}' WHERE id = 'ws-2'");
    sea_orm::ConnectionTrait::execute_unprepared(&db.connect().await, &restore)
        .await
        .expect("restore");
    assert_eq!(
        inbound_secret(&mut platform, "ws-2").await.expect("read"),
        other
    );
    let mut logs = stop(server).await;

    let other_key = gen_key().await;
    for keys in [None, Some(other_key.as_str())] {
        let output = refused(&db, keys).await;
        assert!(output.contains(&key_id), "names key id {key_id}: {output}");
        logs.push_str(&output);
    }
    let env = [("DATABASE_URL", db.url())];
    let status = run_tessera_async(&["install-token", "status"], &env).await;
    assert!(
        !status.status.success() && text(&status).contains(&key_id),
        "{}",
        text(&status)
    );

    let (server, mut platform) = start(&db, Some(&format!("{other_key},{key}"))).await;
    assert_eq!(
        inbound_secret(&mut platform, "ws-1").await.expect("read"),
        secret
    );
    logs.push_str(&stop(server).await);
    for key in [&key, &other_key] {
        assert!(!logs.contains(key.as_str()), "a key in the logs: {logs}");
    }
    assert!(!logs.contains(&secret), "a secret in the logs");
}

#[tokio::test]
async fn rewrap_moves_plaintext_and_old_keys_under_the_new_key_and_reports_it() {
    let db = TestDatabase::sqlite();
    let (server, mut platform) = start(&db, None).await;
    let plain = provision(&mut platform, "ws-plain").await;
    let mut logs = stop(server).await;
    assert_eq!(
        stored(&db, "ws-plain").await,
        plain,
        "no key: plaintext as before"
    );

    let old = gen_key().await;
    let (server, mut platform) = start(&db, Some(&old)).await;
    let sealed = provision(&mut platform, "ws-old").await;
    assert_eq!(
        inbound_secret(&mut platform, "ws-plain")
            .await
            .expect("legacy"),
        plain
    );
    logs.push_str(&stop(server).await);
    let old_id = key_id_in(&stored(&db, "ws-old").await);

    let url = ("DATABASE_URL", db.url());
    let without_key = run_tessera_async(&["rewrap"], &[url]).await;
    assert!(!without_key.status.success());
    assert!(
        text(&without_key).contains("no encryption key"),
        "{}",
        text(&without_key)
    );

    let new = gen_key().await;
    let both = format!("{new},{old}");
    let out = run_tessera_async(&["rewrap"], &[url, (KEY, &both)]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    logs.push_str(&text(&out));
    let new_id = key_id_in(&stored(&db, "ws-old").await);
    assert_ne!(new_id, old_id);
    assert!(
        report.contains(&format!(
            "rewrapped 2 value(s): 1 plaintext, 1 under key {old_id}"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("after: 2 under key {new_id} (current)")),
        "{report}"
    );
    assert_eq!(key_id_in(&stored(&db, "ws-plain").await), new_id);

    // The old key dropped: everything reads under the new one alone.
    let (server, mut platform) = start(&db, Some(&new)).await;
    assert_eq!(
        inbound_secret(&mut platform, "ws-plain")
            .await
            .expect("read"),
        plain
    );
    assert_eq!(
        inbound_secret(&mut platform, "ws-old").await.expect("read"),
        sealed
    );
    logs.push_str(&stop(server).await);
    for key in [&old, &new] {
        assert!(!logs.contains(key.as_str()), "a key in the logs: {logs}");
    }
}

#[tokio::test]
async fn bad_key_settings_are_refused_naming_the_variable_not_the_value() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("key");
    let key = gen_key().await;
    std::fs::write(&file, format!("{key}\n")).expect("key file");
    let file = file.to_str().expect("utf-8 path");
    let url = ("DATABASE_URL", db.url());
    let file_var = ("TESSERA_ENCRYPTION_KEY_FILE", file);

    let out = run_tessera_async(&["migrate"], &[url, file_var]).await;
    assert!(out.status.success(), "a key file works: {}", text(&out));
    let short = "c2hvcnQta2V5LWJ5dGVz";
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[url, (KEY, &key), file_var], "are both set"),
        (&[url, (KEY, "not base64!")], "not standard base64"),
        (&[url, (KEY, short)], "not 32"),
    ];
    for (env, expected) in cases {
        let out = run_tessera_async(&["migrate"], env).await;
        let shown = text(&out);
        assert!(!out.status.success(), "{shown}");
        assert!(shown.contains(KEY) && shown.contains(expected), "{shown}");
        assert!(!shown.contains(&key) && !shown.contains(short), "{shown}");
    }
}
