//! `register_and_persist` and `keep_registered` during inbound secret
//! rotations, against the fake Tessera: what is saved, when the next secret
//! is confirmed (only once saved), and what stays accepted.
#![cfg(unix)]

mod common;

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{FakeTessera, GRACE, INBOUND_SECRET, REGISTRATION_TOKEN, WORKSPACE, inbound_id};
use tessera_client::tonic::Code;
use tessera_client::workspace::{
    Confirmation, RegisterError, Registration, Schedule, WorkspaceFiles, keep_registered,
    register_and_persist,
};
use tessera_client::{Client, Secret};

async fn register(client: &Client, files: &WorkspaceFiles) -> Result<Registration, RegisterError> {
    register_and_persist(client, WORKSPACE, &Secret::new(REGISTRATION_TOKEN), files).await
}

fn accepts(files: &WorkspaceFiles, secret: &str, now: SystemTime) -> bool {
    files
        .inbound_secrets()
        .authorizes_at(Some(&format!("Bearer {secret}")), now)
}

fn read(path: &std::path::Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

#[tokio::test]
async fn a_pending_rotation_is_saved_confirmed_and_promoted() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    let first = register(&client, &files).await.unwrap();
    assert_eq!(first.confirmation, Confirmation::NotNeeded);
    assert_eq!(first.register_again_within, None);

    let next = fake.rotate(false).unwrap();
    let registration = register(&client, &files).await.unwrap();
    assert_eq!(registration.confirmation, Confirmation::Promoted);
    // Confirmed with the id of what was saved, using the auth token.
    assert_eq!(fake.held_ids(), [inbound_id(&next)]);
    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2], (Some("tsr_wsa_issued1".into()), false));
    // The platform switches only now.
    assert_eq!(fake.platform_secret().as_deref(), Some(next.as_str()));
    // The promoted state is what is on disk and reported.
    assert_eq!(registration.inbound_secret.as_ref().unwrap().expose(), next);
    assert_eq!(registration.next_inbound_secret_id, None);
    assert_eq!(registration.register_again_within, None);
    let deadline = fake.state.lock().unwrap().previous.clone().unwrap().1;
    assert_eq!(registration.previous_valid_until, Some(deadline));
    assert_eq!(read(files.inbound_secret().path()).unwrap(), next);
    assert!(!files.next_inbound_secret().path().exists());
    let previous = files.previous_inbound_secret().try_load().unwrap().unwrap();
    assert_eq!(previous.secret.expose(), INBOUND_SECRET);
    assert_eq!(previous.valid_until, deadline);
    assert!(!format!("{registration:?}").contains("tsr_wsi"));

    let now = fake.now();
    assert!(accepts(&files, &next, now));
    assert!(accepts(&files, INBOUND_SECRET, now));
    assert!(!accepts(&files, INBOUND_SECRET, deadline));

    // Once the grace is over, Tessera stops reporting the previous secret
    // and its file goes.
    fake.advance(GRACE);
    let after = register(&client, &files).await.unwrap();
    assert_eq!(after.previous_valid_until, None);
    assert!(!files.previous_inbound_secret().path().exists());
    assert!(accepts(&files, &next, fake.now()));
}

#[tokio::test]
async fn no_confirmation_when_the_next_secret_cannot_be_saved() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    register(&client, &files).await.unwrap();
    // A directory where the next secret goes: the rename onto it fails.
    fs::create_dir(files.next_inbound_secret().path()).unwrap();
    let next = fake.rotate(false).unwrap();

    let err = register(&client, &files).await.unwrap_err();
    let RegisterError::Persist {
        source,
        registration,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(source.path(), files.next_inbound_secret().path());
    assert_eq!(registration.confirmation, Confirmation::NotSent);
    assert_eq!(
        registration.next_inbound_secret_id.as_deref(),
        Some(inbound_id(&next).as_str())
    );
    assert_eq!(registration.register_again_within, Some(GRACE / 2));
    assert!(fake.held_ids().is_empty());
    assert_eq!(fake.platform_secret().as_deref(), Some(INBOUND_SECRET));
    assert!(accepts(&files, INBOUND_SECRET, fake.now()));
    // A failure means retrying soon, whatever Tessera asked.
    let schedule = Schedule::new(Duration::from_secs(600), Duration::from_secs(5));
    assert_eq!(schedule.delay_after(&Err(err)), Duration::from_secs(5));

    // Once the directory is fixed, the next registration confirms.
    fs::remove_dir(files.next_inbound_secret().path()).unwrap();
    let registration = register(&client, &files).await.unwrap();
    assert_eq!(registration.confirmation, Confirmation::Promoted);
    assert_eq!(fake.platform_secret().as_deref(), Some(next.as_str()));
    assert!(accepts(&files, &next, fake.now()));
    assert!(accepts(&files, INBOUND_SECRET, fake.now()));
}

#[tokio::test]
async fn a_replaced_unconfirmed_next_secret_is_dropped() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    register(&client, &files).await.unwrap();
    fake.state.lock().unwrap().ignore_confirmations = true;
    let first = fake.rotate(false).unwrap();
    let registration = register(&client, &files).await.unwrap();
    assert_eq!(registration.confirmation, Confirmation::NotPromoted);
    assert_eq!(registration.register_again_within, Some(GRACE / 2));
    assert!(accepts(&files, &first, fake.now()));
    let schedule = Schedule::new(Duration::from_secs(3600), Duration::from_secs(5));
    // Within register_again_within, with a margin.
    let delay = schedule.delay_after(&Ok(registration));
    assert!(delay < GRACE / 2 && delay >= GRACE / 4, "{delay:?}");

    let second = fake.rotate(false).unwrap();
    register(&client, &files).await.unwrap();
    assert_eq!(read(files.next_inbound_secret().path()).unwrap(), second);
    assert!(!accepts(&files, &first, fake.now()));
    assert!(accepts(&files, &second, fake.now()));

    fake.state.lock().unwrap().ignore_confirmations = false;
    let registration = register(&client, &files).await.unwrap();
    assert_eq!(registration.confirmation, Confirmation::Promoted);
    assert_eq!(fake.platform_secret().as_deref(), Some(second.as_str()));
    assert!(!accepts(&files, &first, fake.now()));
}

#[tokio::test]
async fn a_forced_rotation_ends_the_grace_at_the_next_registration() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    register(&client, &files).await.unwrap();
    let first = fake.rotate(false).unwrap();
    register(&client, &files).await.unwrap();
    assert!(accepts(&files, INBOUND_SECRET, fake.now()));
    assert_eq!(
        fake.rotate(false).unwrap_err().code(),
        Code::FailedPrecondition
    );

    fake.rotate(true).unwrap();
    // Confirmation lost: the response reports no previous secret any more.
    fake.state.lock().unwrap().ignore_confirmations = true;
    let registration = register(&client, &files).await.unwrap();
    assert_eq!(registration.previous_valid_until, None);
    assert!(!files.previous_inbound_secret().path().exists());
    assert!(!accepts(&files, INBOUND_SECRET, fake.now()));
    assert!(accepts(&files, &first, fake.now()));
}

#[tokio::test]
async fn a_runtime_restarted_empty_recovers_the_rotation_state() {
    let fake = FakeTessera::new();
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    register(&client, &WorkspaceFiles::in_dir(tmp.path().join("a")))
        .await
        .unwrap();

    // Pending rotation: an empty runtime saves the next secret and confirms
    // it, with the auth token it was just issued.
    let next = fake.rotate(false).unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path().join("b"));
    let registration = register(&client, &files).await.unwrap();
    assert!(registration.used_registration_token);
    assert_eq!(registration.confirmation, Confirmation::Promoted);
    assert_eq!(
        fake.calls().last().unwrap(),
        &(Some("tsr_wsa_issued2".into()), false)
    );
    assert_eq!(read(files.auth_token().path()).unwrap(), "tsr_wsa_issued2");

    // During the grace: an empty runtime still accepts the old secret, until
    // its deadline only.
    let files = WorkspaceFiles::in_dir(tmp.path().join("c"));
    let registration = register(&client, &files).await.unwrap();
    let deadline = registration.previous_valid_until.unwrap();
    assert!(accepts(&files, &next, fake.now()));
    assert!(accepts(&files, INBOUND_SECRET, fake.now()));
    assert!(!accepts(&files, INBOUND_SECRET, deadline));
}

/// While a rotation waits, `keep_registered` registers again within
/// `register_again_within`, so the rotation finishes without a restart.
#[tokio::test]
async fn keep_registered_finishes_a_waiting_rotation_without_a_restart() {
    let fake = FakeTessera::new();
    // A short grace: register_again_within is 200 ms.
    fake.state.lock().unwrap().grace = Duration::from_millis(400);
    fake.state.lock().unwrap().ignore_confirmations = true;
    let client = fake.serve(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::in_dir(tmp.path());
    let next = fake.rotate(false).unwrap();

    let results = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&results);
    // Idle and retry far longer than the test: only register_again_within
    // can make it register again.
    let schedule = Schedule::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let task = tokio::spawn(keep_registered(
        client,
        WORKSPACE.into(),
        Secret::new(REGISTRATION_TOKEN),
        files.clone(),
        schedule,
        move |result| {
            let confirmation = result.as_ref().map(|r| r.confirmation).ok();
            seen.lock().unwrap().push(confirmation);
        },
    ));
    while results.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(results.lock().unwrap()[0], Some(Confirmation::NotPromoted));
    // The confirmation gets through from now on.
    fake.state.lock().unwrap().ignore_confirmations = false;
    tokio::time::timeout(Duration::from_secs(10), async {
        while fake.platform_secret().as_deref() != Some(next.as_str()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the rotation finished");
    // The promoting registration reports once it has also saved what the
    // promotion returned, a moment after the fake switched the platform.
    tokio::time::timeout(Duration::from_secs(10), async {
        while results.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the promoting registration was reported");
    task.abort();
    assert!(accepts(&files, &next, fake.now()));
}
