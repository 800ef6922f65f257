//! The writes to credential records no request waits for, on SQLite and
//! PostgreSQL: last-used times, pruning of ended records, the count of
//! those about to expire.

mod common;

use std::sync::Arc;

use common::credential;
use tessera_server::store::{
    CredentialKind, CredentialRecord, CredentialStore, SeaStore, WorkspaceRecord, WorkspaceStore,
};
use tessera_tests::TestDatabase;

tessera_tests::on_both_backends!(
    open =>
    last_used_times_only_move_forward,
    ended_records_are_pruned_in_chunks_but_not_a_workspace_s_own,
    expiring_credentials_are_counted_per_kind,
);

async fn open(db: &TestDatabase) -> Arc<SeaStore> {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// A user access token's record expiring at `expires_at`; its id.
async fn user_token(store: &SeaStore, hash: &str, expires_at: Option<i64>) -> String {
    let record = CredentialRecord {
        expires_at,
        ..credential(CredentialKind::UserAccess, hash, "u1")
    };
    store.insert_credential(&record).await.expect("insert");
    record.id
}

async fn last_used(store: &SeaStore, id: &str) -> Option<i64> {
    let record = store.credential(id).await.expect("read").expect("record");
    record.last_used_at
}

async fn last_used_times_only_move_forward(store: Arc<SeaStore>) {
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(user_token(&store, &format!("h{i}"), None).await);
    }
    let mut uses: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), 120_000)).collect();
    uses.push(("usr_unknown".to_owned(), 120_000));
    assert_eq!(store.record_last_used(&uses).await.expect("record"), 300);
    for id in [&ids[0], &ids[150], &ids[299]] {
        assert_eq!(last_used(&store, id).await, Some(120_000));
    }
    let again = store.record_last_used(&uses).await.expect("record again");
    assert_eq!(again, 0, "a use already recorded changes nothing");
    let older = [(ids[0].clone(), 60_000)];
    assert_eq!(store.record_last_used(&older).await.expect("older"), 0);
    assert_eq!(last_used(&store, &ids[0]).await, Some(120_000));
    let newer = [(ids[0].clone(), 180_000)];
    assert_eq!(store.record_last_used(&newer).await.expect("newer"), 1);
    assert_eq!(last_used(&store, &ids[0]).await, Some(180_000));
    assert_eq!(last_used(&store, &ids[1]).await, Some(120_000));
    assert_eq!(store.record_last_used(&[]).await.expect("nothing"), 0);
}

/// Stores workspace `id` with its registration and auth tokens' records,
/// the auth token expiring at `auth_expires_at`; their ids.
async fn workspace(store: &SeaStore, id: &str, auth_expires_at: Option<i64>) -> (String, String) {
    let registration = credential(
        CredentialKind::WorkspaceRegistration,
        &format!("reg-{id}"),
        id,
    );
    let auth = CredentialRecord {
        expires_at: auth_expires_at,
        ..credential(CredentialKind::WorkspaceAuth, &format!("auth-{id}"), id)
    };
    let record = WorkspaceRecord {
        id: id.to_owned(),
        name: id.to_owned(),
        inbound_secret: None,
        rotation: Default::default(),
        registration_hash: registration.hash.clone(),
        auth_hash: Some(auth.hash.clone()),
        created_at: 1,
        registered_at: None,
        last_registered_at: None,
    };
    let inserted = store.insert_workspace(&record, &registration).await;
    assert!(inserted.expect("insert workspace"));
    store.insert_credential(&auth).await.expect("auth record");
    (registration.id, auth.id)
}

async fn ended_records_are_pruned_in_chunks_but_not_a_workspace_s_own(store: Arc<SeaStore>) {
    for i in 0..24 {
        user_token(&store, &format!("expired-{i}"), Some(10)).await;
    }
    let revoked = user_token(&store, "revoked", None).await;
    store
        .revoke_credential(&revoked, 10, None)
        .await
        .expect("revoke");
    let recently_revoked = user_token(&store, "recently-revoked", None).await;
    store
        .revoke_credential(&recently_revoked, 1_500, None)
        .await
        .expect("revoke");
    let later = user_token(&store, "later", Some(5_000)).await;
    let forever = user_token(&store, "forever", None).await;
    let (registration, auth) = workspace(&store, "ws", None).await;
    // Revoking the auth token takes it off the workspace; the revoked
    // registration token stays on it.
    store
        .revoke_credential(&registration, 10, None)
        .await
        .expect("r");
    store
        .revoke_credential(&auth, 10, None)
        .await
        .expect("revoke");
    // An expired auth token its workspace still holds is refused as
    // expired, not forgotten.
    let (_, held) = workspace(&store, "ws2", Some(10)).await;

    let mut chunks = Vec::new();
    for _ in 0..4 {
        let deleted = store.delete_credentials_ended_before(1_000, 10).await;
        chunks.push(deleted.expect("prune"));
    }
    assert_eq!(
        chunks,
        [10, 10, 6, 0],
        "24 expired, 1 revoked, 1 auth token"
    );
    for gone in [&revoked, &auth] {
        assert!(
            store.credential(gone).await.expect("read").is_none(),
            "{gone}"
        );
    }
    for kept in [&recently_revoked, &later, &forever, &registration, &held] {
        assert!(
            store.credential(kept).await.expect("read").is_some(),
            "{kept}"
        );
    }
}

async fn expiring_credentials_are_counted_per_kind(store: Arc<SeaStore>) {
    for (hash, expires_at) in [
        ("soon", Some(1_500)),
        ("at-the-bound", Some(2_000)),
        ("after", Some(2_001)),
        ("already", Some(1_000)),
        ("never", None),
    ] {
        user_token(&store, hash, expires_at).await;
    }
    let revoked = user_token(&store, "revoked", Some(1_500)).await;
    store
        .revoke_credential(&revoked, 900, None)
        .await
        .expect("revoke");
    let auth = CredentialRecord {
        expires_at: Some(1_200),
        ..credential(CredentialKind::WorkspaceAuth, "auth", "ws")
    };
    store.insert_credential(&auth).await.expect("insert");
    let mut counts = store
        .count_expiring_credentials(1_000, 2_000)
        .await
        .expect("count");
    counts.sort_by_key(|(kind, _)| kind.as_str());
    assert_eq!(
        counts,
        [
            (CredentialKind::UserAccess, 2),
            (CredentialKind::WorkspaceAuth, 1)
        ]
    );
}
