//! SIGHUP rereads `TESSERA_SERVICE_TOKENS_FILE`: added names, rotated and
//! dropped secrets take effect for the next call, calls keep succeeding
//! across reloads, and a file that cannot be used keeps the old secrets.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tessera_client::pb;
use tessera_client::tonic::Code;
use tessera_tests::credentials::list_all;
use tessera_tests::grpc::{internal_credential, verify_as, verify_bearer};
use tessera_tests::metrics::{metrics_addr, sample, scrape};
use tessera_tests::{ServerOptions, ServerProcess, TestDatabase, TestServer, service_secret};

/// What the server logs when a reload ends, either way.
const RELOAD_ENDED: &str = "configuration reload";

fn line(name: &str, value: &str) -> String {
    format!("TESSERA_SERVICE_TOKEN_{name}={value}\n")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write tokens file");
}

async fn start(db: &TestDatabase, file: &Path, extra: &[(&str, &str)]) -> TestServer {
    let options = ServerOptions::new()
        .env("TESSERA_SERVICE_TOKENS_FILE", &file.display().to_string())
        .envs(extra);
    TestServer::start(db, options).await
}

/// Sends SIGHUP and waits until the reload it asked for has ended.
async fn reload(server: &mut TestServer) {
    server.log_after(RELOAD_ENDED, TestServer::hangup).await;
}

async fn accepted(server: &TestServer, caller: &str, token: &str) -> Option<String> {
    match verify_as(server, caller, token).await {
        Ok(principal) => Some(principal.email),
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            None
        }
    }
}

/// The slots of the listed service secrets of `email`, sorted.
async fn slots(server: &TestServer, admin: &str, email: &str) -> Vec<String> {
    let mut client = server.client(Some(admin)).await;
    let request = pb::ListCredentialsRequest {
        kind: pb::CredentialKind::ServiceSecret.into(),
        ..Default::default()
    };
    let listed = list_all(&mut client, request).await.expect("list");
    let mut slots: Vec<String> = listed
        .into_iter()
        .filter(|c| c.subject == email)
        .map(|c| c.slot)
        .collect();
    slots.sort();
    slots
}

#[tokio::test]
async fn the_tokens_file_replaces_the_environment_and_is_reread_on_sighup() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let (old, new, billing) = (
        service_secret("old"),
        service_secret("new"),
        service_secret("billing"),
    );
    let from_env = service_secret("from-env");
    write(&file, &format!("# services\n\n{}", line("SCHEDULER", &old)));
    let db = TestDatabase::sqlite();
    let env = [("TESSERA_SERVICE_TOKEN_ENVONLY", from_env.as_str())];
    let mut server = start(&db, &file, &env).await;

    let scheduler = Some("scheduler@system.local".to_owned());
    assert_eq!(accepted(&server, &old, &old).await, scheduler);
    assert_eq!(accepted(&server, &old, &from_env).await, None);
    let logs = server.stderr();
    assert!(logs.contains("TESSERA_SERVICE_TOKEN_ENVONLY"), "{logs}");
    assert!(logs.contains("readable by others"), "{logs}");

    // A second name: seeded and accepted, listed beside the first.
    write(
        &file,
        &(line("SCHEDULER", &old) + &line("BILLING", &billing)),
    );
    reload(&mut server).await;
    let billing_user = Some("billing@system.local".to_owned());
    assert_eq!(accepted(&server, &billing, &billing).await, billing_user);
    assert_eq!(
        slots(&server, &old, "billing@system.local").await,
        ["current"]
    );

    // Rotation: the new secret first, the old one still accepted.
    let pair = format!("{new},{old}");
    write(
        &file,
        &(line("SCHEDULER", &pair) + &line("BILLING", &billing)),
    );
    reload(&mut server).await;
    assert_eq!(accepted(&server, &new, &new).await, scheduler);
    assert_eq!(accepted(&server, &new, &old).await, scheduler);
    assert_eq!(
        slots(&server, &new, "scheduler@system.local").await,
        ["current", "previous"]
    );

    // The old secret dropped, and BILLING with it.
    write(&file, &line("SCHEDULER", &new));
    reload(&mut server).await;
    assert_eq!(accepted(&server, &new, &new).await, scheduler);
    assert_eq!(accepted(&server, &new, &old).await, None);
    assert_eq!(accepted(&server, &new, &billing).await, None);
    assert_eq!(
        slots(&server, &new, "scheduler@system.local").await,
        ["current"]
    );
    assert!(
        slots(&server, &new, "billing@system.local")
            .await
            .is_empty()
    );

    let logs = server.stderr();
    for secret in [&old, &new, &billing, &from_env] {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
}

#[tokio::test]
async fn calls_keep_succeeding_across_twenty_reloads() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let secret = service_secret("scheduler");
    let other = service_secret("other");
    write(&file, &line("SCHEDULER", &secret));
    let db = TestDatabase::sqlite();
    let mut server = start(&db, &file, &[]).await;

    let mut client = server.client(Some(&secret)).await;
    let token = secret.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let counted = calls.clone();
    let caller = tokio::spawn(async move {
        // Bounded: at most 3,000 calls, whatever happens to the reloads.
        for call in 0..3_000 {
            if *stop.borrow() {
                return;
            }
            verify_bearer(&mut client, &token)
                .await
                .unwrap_or_else(|status| panic!("call {call} failed: {status:?}"));
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    for n in 0..20 {
        // Some calls between any two reloads, so calls overlap each one.
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::Relaxed) < 15 * n {
            assert!(
                Instant::now() < deadline && !caller.is_finished(),
                "caller stalled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Every other file adds a second name, so the set really changes.
        let text = if n % 2 == 0 {
            line("SCHEDULER", &secret) + &line("OTHER", &other)
        } else {
            line("SCHEDULER", &secret)
        };
        write(&file, &text);
        reload(&mut server).await;
    }
    let _ = stop_tx.send(true);
    caller.await.expect("no call failed");
    let calls = calls.load(Ordering::Relaxed);
    assert!(calls >= 285, "only {calls} calls");
    assert_eq!(
        server.stderr().matches("configuration reloaded").count(),
        20
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_used_keeps_the_old_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let (secret, next) = (service_secret("scheduler"), service_secret("next"));
    write(&file, &line("SCHEDULER", &secret));
    let db = TestDatabase::sqlite();
    let metrics = [("TESSERA_METRICS_LISTEN", "127.0.0.1:0")];
    let mut server = start(&db, &file, &metrics).await;
    let scheduler = Some("scheduler@system.local".to_owned());

    // A line without `=` refuses the whole file, by line number.
    write(
        &file,
        &format!("# rotated\nTESSERA_SERVICE_TOKEN_SCHEDULER {next}\n"),
    );
    reload(&mut server).await;
    assert_eq!(accepted(&server, &secret, &secret).await, scheduler);
    assert_eq!(accepted(&server, &secret, &next).await, None);
    assert!(server.stderr().contains("line 2"), "{}", server.stderr());

    // A file that is gone.
    std::fs::remove_file(&file).expect("remove");
    reload(&mut server).await;
    assert_eq!(accepted(&server, &secret, &secret).await, scheduler);
    assert!(server.stderr().contains("cannot read"));

    let text = scrape(metrics_addr(&server).await);
    let failed = "tessera_config_reloads_total{outcome=\"failed\"}";
    assert_eq!(sample(&text, failed), 2.0, "{text}");

    // A short secret disables its name with a warning naming the
    // variable; the reload itself succeeds.
    write(
        &file,
        &(line("SCHEDULER", &secret) + &line("SHORT", "short-secret")),
    );
    reload(&mut server).await;
    assert_eq!(accepted(&server, &secret, "short-secret").await, None);
    let text = scrape(metrics_addr(&server).await);
    let ok = "tessera_config_reloads_total{outcome=\"ok\"}";
    assert_eq!(sample(&text, ok), 1.0, "{text}");
    assert!(sample(&text, "tessera_config_reload_timestamp_seconds") > 0.0);

    let logs = server.stderr();
    assert!(logs.contains("TESSERA_SERVICE_TOKEN_SHORT"), "{logs}");
    for value in [next.as_str(), "short-secret"] {
        assert!(!logs.contains(value), "a secret was logged:\n{logs}");
    }
}

/// A FIFO swapped in for the file would wait for a writer forever, and
/// with it every later reload: it is refused at once, and the next reload
/// (which retires a secret) takes effect.
#[tokio::test]
async fn a_fifo_in_place_of_the_file_holds_up_no_reload() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let (secret, retired) = (service_secret("scheduler"), service_secret("alpha"));
    write(
        &file,
        &(line("SCHEDULER", &secret) + &line("ALPHA", &retired)),
    );
    let db = TestDatabase::sqlite();
    let mut server = start(&db, &file, &[]).await;
    let alpha = Some("alpha@system.local".to_owned());
    assert_eq!(accepted(&server, &secret, &retired).await, alpha);

    std::fs::remove_file(&file).expect("remove");
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    reload(&mut server).await;
    assert!(
        server.stderr().contains("not a regular file"),
        "{}",
        server.stderr()
    );
    assert_eq!(
        accepted(&server, &secret, &retired).await,
        alpha,
        "old secrets kept"
    );

    std::fs::remove_file(&file).expect("remove the FIFO");
    write(&file, &line("SCHEDULER", &secret));
    reload(&mut server).await;
    assert_eq!(accepted(&server, &secret, &retired).await, None, "retired");
}

/// What a retired service secret obtained must not outlive it: the
/// process's internal credential (which it may have fetched) is revoked by
/// the reload that retires it, and a fresh one is minted on the next call.
/// A reload that retires nothing keeps it.
/// The subject `token` verifies as, through a new connection as `caller`.
async fn subject(server: &TestServer, caller: &str, token: &str) -> Option<String> {
    let mut client = server.client(Some(caller)).await;
    verify_bearer(&mut client, token)
        .await
        .ok()
        .map(|p| p.subject)
}

#[tokio::test]
async fn retiring_a_service_secret_revokes_the_internal_credential() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let (secret, retired) = (service_secret("scheduler"), service_secret("alpha"));
    let both = line("SCHEDULER", &secret) + &line("ALPHA", &retired);
    write(&file, &both);
    let db = TestDatabase::sqlite();
    let mut server = start(&db, &file, &[]).await;
    let mut alpha = server.client(Some(&retired)).await;
    let fetched = internal_credential(&mut alpha).await.expect("fetched");
    let internal = Some("server-internal".to_owned());

    // Nothing retired (the same file): the credential stays.
    reload(&mut server).await;
    assert_eq!(subject(&server, &secret, &fetched).await, internal);

    write(&file, &line("SCHEDULER", &secret));
    reload(&mut server).await;
    assert_eq!(subject(&server, &secret, &fetched).await, None, "revoked");
    let mut scheduler = server.client(Some(&secret)).await;
    let fresh = internal_credential(&mut scheduler)
        .await
        .expect("a new one");
    assert_ne!(fresh, fetched);
    assert_eq!(subject(&server, &secret, &fresh).await, internal);
}

#[tokio::test]
async fn a_bad_tokens_file_stops_the_server_at_startup() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tokens.env");
    let secret = service_secret("scheduler");
    write(
        &file,
        &format!("TESSERA_SERVICE_TOKEN_SCHEDULER {secret}\n"),
    );
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .database_url(db.url())
        .env("TESSERA_SERVICE_TOKENS_FILE", &file.display().to_string());
    let mut process = ServerProcess::spawn(&options);
    let status = process.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "started with a bad tokens file");
    let logs = process.stderr();
    assert!(logs.contains("TESSERA_SERVICE_TOKENS_FILE"), "{logs}");
    assert!(logs.contains("line 1"), "{logs}");
    assert!(!logs.contains(&secret), "a secret was logged");
}
