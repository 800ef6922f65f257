//! The multi-secret inbound check (`InboundSecrets`, `WorkspaceFiles` as a
//! source, `InboundAuthLayer::from_files`) and the next / previous files:
//! which secret is accepted when, and how writes by another process are
//! picked up.
#![cfg(unix)]

use std::convert::Infallible;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use tessera_client::Secret;
use tessera_client::workspace::{
    ExpiringSecretFile, InboundAuthLayer, InboundSecretSource, REREAD_INTERVAL, WorkspaceFiles,
    inbound_authorized, inbound_authorized_any,
};
use tower::ServiceExt;

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn accepts(files: &WorkspaceFiles, secret: &str, now: SystemTime) -> bool {
    files
        .inbound_secrets()
        .authorizes_at(Some(&bearer(secret)), now)
}

fn files() -> (tempfile::TempDir, WorkspaceFiles) {
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path().join("configs"));
    (tmp, files)
}

#[test]
fn any_of_several_secrets_in_constant_time_and_the_single_check_unchanged() {
    let (a, b) = (Secret::new("a"), Secret::new("b"));
    assert!(inbound_authorized_any([&a, &b], Some("Bearer b")));
    assert!(inbound_authorized_any([&a, &b], Some("Bearer a")));
    assert!(!inbound_authorized_any([&a, &b], Some("Bearer c")));
    assert!(!inbound_authorized_any([&a, &b], None));
    assert!(!inbound_authorized_any([], Some("Bearer ")));
    assert!(!inbound_authorized_any([&Secret::new("")], Some("Bearer ")));
    assert!(inbound_authorized(Some(&a), Some("Bearer a")));
    assert!(!inbound_authorized(None, Some("Bearer a")));
}

#[test]
fn nothing_on_disk_rejects_everything() {
    let (_tmp, files) = files();
    let now = SystemTime::now();
    assert!(!files.inbound_secrets().authorizes_at(None, now));
    assert!(!files.inbound_secrets().authorizes_at(Some("Bearer "), now));
    assert!(!accepts(&files, "anything", now));
    assert!(!files.authorizes(Some("Bearer anything")));
    assert!(files.inbound_secrets().accepted_at(now).is_empty());
}

#[test]
fn current_next_and_previous_before_its_deadline_are_accepted() {
    let (_tmp, files) = files();
    let now = SystemTime::now();
    let deadline = now + Duration::from_secs(60);
    files.inbound_secret().save(&"tsr_wsi_cur".into()).unwrap();
    files
        .next_inbound_secret()
        .save(&"tsr_wsi_nxt".into())
        .unwrap();
    files
        .previous_inbound_secret()
        .save(&"tsr_wsi_old".into(), deadline)
        .unwrap();

    for secret in ["tsr_wsi_cur", "tsr_wsi_nxt", "tsr_wsi_old"] {
        assert!(accepts(&files, secret, now), "{secret}");
        assert!(files.authorizes(Some(&bearer(secret))), "{secret}");
    }
    assert!(!accepts(&files, "tsr_wsi_other", now));
    // The next one has no deadline.
    assert!(accepts(
        &files,
        "tsr_wsi_nxt",
        now + Duration::from_secs(1 << 30)
    ));

    // The previous one: until just before its deadline, never from it on,
    // although its file remains.
    assert!(accepts(
        &files,
        "tsr_wsi_old",
        deadline - Duration::from_nanos(1)
    ));
    assert!(!accepts(&files, "tsr_wsi_old", deadline));
    assert!(!accepts(
        &files,
        "tsr_wsi_old",
        deadline + Duration::from_secs(3600)
    ));
    assert!(files.previous_inbound_secret().path().exists());
    assert!(accepts(&files, "tsr_wsi_cur", deadline));

    // A single SecretFile source still means the current secret only.
    let single = files.inbound_secret().clone();
    assert!(single.authorizes(Some("Bearer tsr_wsi_cur")));
    assert!(!single.authorizes(Some("Bearer tsr_wsi_nxt")));
}

#[test]
fn the_new_files_follow_the_secret_file_rules() {
    let (_tmp, files) = files();
    let later = SystemTime::now() + Duration::from_secs(60);
    files
        .next_inbound_secret()
        .save(&"tsr_wsi_nxt".into())
        .unwrap();
    files
        .previous_inbound_secret()
        .save(&"tsr_wsi_old".into(), later)
        .unwrap();
    for path in [
        files.next_inbound_secret().path(),
        files.previous_inbound_secret().path(),
    ] {
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    assert_eq!(
        fs::metadata(files.dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Deadline and secret in one file.
    let raw = fs::read_to_string(files.previous_inbound_secret().path()).unwrap();
    let (deadline, secret) = raw.split_once('\n').unwrap();
    assert!(
        deadline.contains('.') && secret.trim() == "tsr_wsi_old",
        "{raw:?}"
    );
    let loaded = files.previous_inbound_secret().try_load().unwrap().unwrap();
    assert_eq!(loaded.secret.expose(), "tsr_wsi_old");
    // Written with nanosecond precision, read back exactly.
    assert_eq!(loaded.valid_until, later);
    assert!(!format!("{loaded:?}").contains("tsr_"));

    // Removal deletes the file and the cached value; a missing file is fine.
    files.next_inbound_secret().remove().unwrap();
    files.next_inbound_secret().remove().unwrap();
    assert!(!files.next_inbound_secret().path().exists());
    assert!(files.next_inbound_secret().load().is_none());
    assert!(!accepts(&files, "tsr_wsi_nxt", SystemTime::now()));
    files.previous_inbound_secret().remove().unwrap();
    assert!(!accepts(&files, "tsr_wsi_old", SystemTime::now()));
}

#[test]
fn symlinks_are_never_followed_nor_removed_through() {
    let (tmp, files) = files();
    files.inbound_secret().save(&"tsr_wsi_cur".into()).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::write(&elsewhere, "tsr_wsi_planted").unwrap();
    std::os::unix::fs::symlink(&elsewhere, files.next_inbound_secret().path()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, files.previous_inbound_secret().path()).unwrap();

    assert!(!accepts(&files, "tsr_wsi_planted", SystemTime::now()));
    assert!(files.next_inbound_secret().try_load().is_err());
    // Removing deletes the link, not its target.
    files.next_inbound_secret().remove().unwrap();
    assert!(fs::symlink_metadata(files.next_inbound_secret().path()).is_err());
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "tsr_wsi_planted");
    // Saving replaces the link, never writes through it.
    let later = SystemTime::now() + Duration::from_secs(60);
    files
        .previous_inbound_secret()
        .save(&"tsr_wsi_old".into(), later)
        .unwrap();
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "tsr_wsi_planted");
    assert!(accepts(&files, "tsr_wsi_old", SystemTime::now()));
}

#[test]
fn a_malformed_previous_file_is_refused_but_current_still_works() {
    let (_tmp, files) = files();
    files.inbound_secret().save(&"tsr_wsi_cur".into()).unwrap();
    // A bare secret without a deadline would otherwise be accepted forever.
    fs::write(files.previous_inbound_secret().path(), "tsr_wsi_old\n").unwrap();
    files.inbound_secrets().reset_cache();
    let now = SystemTime::now();
    assert!(!accepts(&files, "tsr_wsi_old", now));
    assert!(accepts(&files, "tsr_wsi_cur", now));
    let err = files.previous_inbound_secret().try_load().unwrap_err();
    assert!(!format!("{err:?} {err}").contains("tsr_wsi_old"));
    // A secret with a line break cannot be stored.
    let later = now + Duration::from_secs(60);
    assert!(
        ExpiringSecretFile::new(files.dir().join("x"))
            .save(&"a\nb".into(), later)
            .is_err()
    );
}

/// Another process (same directory, its own caches) writes the next secret
/// after this one cached "no next secret": the first call presenting it
/// triggers a re-read; further re-reads wait for the rate limit.
#[test]
fn a_secret_written_by_another_process_is_accepted_after_a_rate_limited_reread() {
    let (_tmp, files) = files();
    files.inbound_secret().save(&"tsr_wsi_cur".into()).unwrap();
    let now = SystemTime::now();
    assert!(accepts(&files, "tsr_wsi_cur", now));
    assert!(!files.next_inbound_secret().path().exists());

    // "Another process": a plain write, which resets no cache here.
    fs::write(files.next_inbound_secret().path(), "tsr_wsi_nxt1").unwrap();
    assert!(accepts(&files, "tsr_wsi_nxt1", now));
    let reread_at = Instant::now();

    fs::write(files.next_inbound_secret().path(), "tsr_wsi_nxt2").unwrap();
    let refused = !accepts(&files, "tsr_wsi_nxt2", now);
    if reread_at.elapsed() < REREAD_INTERVAL / 2 {
        assert!(refused, "re-read again within the rate limit");
    }
    // The cached value still works meanwhile.
    assert!(accepts(&files, "tsr_wsi_nxt1", now));
    std::thread::sleep(REREAD_INTERVAL);
    assert!(accepts(&files, "tsr_wsi_nxt2", now));
    assert!(!accepts(&files, "tsr_wsi_nxt1", now));
}

#[tokio::test]
async fn the_layer_from_files_accepts_the_next_secret_and_refuses_an_expired_previous() {
    let (_tmp, files) = files();
    files.inbound_secret().save(&"tsr_wsi_cur".into()).unwrap();
    files
        .next_inbound_secret()
        .save(&"tsr_wsi_nxt".into())
        .unwrap();
    let past = SystemTime::now() - Duration::from_secs(1);
    files
        .previous_inbound_secret()
        .save(&"tsr_wsi_old".into(), past)
        .unwrap();
    let inner = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    });
    let service = tower::Layer::layer(&InboundAuthLayer::from_files(&files), inner);
    let status = |secret: &str| {
        let request = http::Request::builder()
            .header("authorization", bearer(secret))
            .body(())
            .unwrap();
        let service = service.clone();
        async move { service.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(status("tsr_wsi_cur").await, 200);
    assert_eq!(status("tsr_wsi_nxt").await, 200);
    assert_eq!(status("tsr_wsi_old").await, 401);
    assert_eq!(status("tsr_wsi_other").await, 401);
}
