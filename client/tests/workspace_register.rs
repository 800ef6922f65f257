//! `register_and_persist` against a fake Tessera: bearer choice, re-issue,
//! recovery with an empty configs directory, persistence and failures.
#![cfg(unix)]

mod common;

use std::fs;

use common::{FakeTessera, INBOUND_SECRET, REGISTRATION_TOKEN, WORKSPACE};
use tessera_client::Secret;
use tessera_client::tonic::Code;
use tessera_client::workspace::{RegisterError, WorkspaceFiles, register_and_persist};

fn registration_token() -> Secret {
    Secret::new(REGISTRATION_TOKEN)
}

fn read(files: &WorkspaceFiles, auth: bool) -> Option<String> {
    let file = if auth {
        files.auth_token()
    } else {
        files.inbound_secret()
    };
    fs::read_to_string(file.path()).ok()
}

fn call(bearer: &str, reissue: bool) -> (Option<String>, bool) {
    (Some(bearer.to_owned()), reissue)
}

#[tokio::test]
async fn first_registration_uses_the_registration_token_and_persists_both() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path().join("configs"));

    let registration = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();
    assert!(registration.auth_token_issued);
    assert!(registration.used_registration_token);
    assert_eq!(
        registration.auth_token.as_ref().map(Secret::expose),
        Some("tsr_wsa_issued1")
    );
    assert_eq!(
        registration.inbound_secret.as_ref().map(Secret::expose),
        Some(INBOUND_SECRET)
    );
    assert!(registration.registered_at.is_some());
    assert_eq!(fake.calls(), [call(REGISTRATION_TOKEN, true)]);
    assert_eq!(read(&files, true).as_deref(), Some("tsr_wsa_issued1"));
    assert_eq!(read(&files, false).as_deref(), Some(INBOUND_SECRET));
    // The secret Debug output never shows a value.
    assert!(!format!("{registration:?}").contains("tsr_"));
}

#[tokio::test]
async fn later_registrations_use_the_stored_auth_token_without_reissue() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();

    // The platform rotates the inbound secret; a handle sharing the cache
    // (as the inbound layer would) sees the new value at once.
    let layer_view = files.inbound_secret().clone();
    assert_eq!(layer_view.load().unwrap().expose(), INBOUND_SECRET);
    fake.state.lock().unwrap().inbound_secret = Some("tsr_wsi_rotated".into());

    let registration = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();
    assert!(!registration.auth_token_issued);
    assert!(!registration.used_registration_token);
    assert_eq!(
        registration.auth_token.as_ref().map(Secret::expose),
        Some("tsr_wsa_issued1")
    );
    assert_eq!(
        fake.calls(),
        [
            call(REGISTRATION_TOKEN, true),
            call("tsr_wsa_issued1", false)
        ]
    );
    assert_eq!(read(&files, true).as_deref(), Some("tsr_wsa_issued1"));
    assert_eq!(layer_view.load().unwrap().expose(), "tsr_wsi_rotated");
}

#[tokio::test]
async fn an_emptied_configs_directory_recovers_with_the_registration_token() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    let files = WorkspaceFiles::in_dir(&dir);
    register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();

    // The container restarts with an empty /configs.
    fs::remove_dir_all(&dir).unwrap();
    let files = WorkspaceFiles::in_dir(&dir);
    let registration = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();
    assert!(registration.used_registration_token && registration.auth_token_issued);
    assert_eq!(fake.calls()[1], call(REGISTRATION_TOKEN, true));
    assert_eq!(read(&files, true).as_deref(), Some("tsr_wsa_issued2"));
    assert_eq!(read(&files, false).as_deref(), Some(INBOUND_SECRET));
    // The lost token was rotated away.
    assert_eq!(
        fake.state.lock().unwrap().auth_token.as_deref(),
        Some("tsr_wsa_issued2")
    );
}

#[tokio::test]
async fn a_refused_or_malformed_stored_token_falls_back_to_the_registration_token() {
    for (stored, first_call) in [
        ("tsr_wsa_stale", Some(call("tsr_wsa_stale", false))),
        (
            "tsr_wsa_other_workspace",
            Some(call("tsr_wsa_other_workspace", false)),
        ),
        // Not even a valid header value: no call is made with it.
        ("tsr_wsa_with space", None),
    ] {
        let fake = FakeTessera::new();
        let client = fake.serve(None).await;
        let tmp = tempfile::tempdir().unwrap();
        let files = WorkspaceFiles::in_dir(tmp.path());
        fs::write(files.auth_token().path(), stored).unwrap();

        let registration = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
            .await
            .unwrap();
        assert!(registration.used_registration_token, "{stored}");
        let expected: Vec<_> = first_call
            .into_iter()
            .chain([call(REGISTRATION_TOKEN, true)])
            .collect();
        assert_eq!(fake.calls(), expected);
        assert_eq!(read(&files, true).as_deref(), Some("tsr_wsa_issued1"));
    }
}

#[tokio::test]
async fn a_legacy_workspace_without_an_inbound_secret_keeps_the_file_alone() {
    let fake = FakeTessera::new();
    fake.state.lock().unwrap().inbound_secret = None;
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    fs::write(files.inbound_secret().path(), "tsr_wsi_from_provisioner").unwrap();

    let registration = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap();
    assert!(registration.inbound_secret.is_none());
    assert!(registration.auth_token_issued);
    assert_eq!(
        read(&files, false).as_deref(),
        Some("tsr_wsi_from_provisioner")
    );
}

#[tokio::test]
async fn refusals_are_reported_and_nothing_is_written() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    let files = WorkspaceFiles::in_dir(&dir);

    let err = register_and_persist(&client, WORKSPACE, &Secret::new("tsr_wsr_wrong"), &files)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegisterError::Rpc(s) if s.code() == Code::Unauthenticated),
        "{err:?}"
    );
    let err = register_and_persist(&client, "ws-2", &registration_token(), &files)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegisterError::Rpc(s) if s.code() == Code::PermissionDenied),
        "{err:?}"
    );
    let err = register_and_persist(&client, WORKSPACE, &Secret::new("bad token"), &files)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegisterError::InvalidRegistrationToken(_)),
        "{err:?}"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_failed_write_still_returns_the_registration() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    // The configs "directory" is a file, so nothing can be saved in it.
    let dir = tmp.path().join("configs");
    fs::write(&dir, "").unwrap();
    let files = WorkspaceFiles::in_dir(&dir);

    let err = register_and_persist(&client, WORKSPACE, &registration_token(), &files)
        .await
        .unwrap_err();
    let RegisterError::Persist {
        source,
        registration,
    } = err
    else {
        panic!("expected a persist error, got {err:?}");
    };
    assert_eq!(source.path(), files.auth_token().path());
    assert_eq!(
        registration.auth_token.as_ref().map(Secret::expose),
        Some("tsr_wsa_issued1")
    );
    assert_eq!(
        registration.inbound_secret.as_ref().map(Secret::expose),
        Some(INBOUND_SECRET)
    );
}
