//! Encryption at rest of the inbound secrets, on SQLite and PostgreSQL:
//! what the database holds, what comes back, and `rewrap`.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tessera_client::Secret;
use tessera_server::store::sealing::Keyring;
use tessera_server::store::{
    AuthTokenChange, Confirmation, CredentialKind, CredentialRecord, CredentialStore, SeaStore,
    StoreError, WorkspaceRecord, WorkspaceStore,
};
use tessera_tests::{TestDatabase, sql};

tessera_tests::on_both_backends!(
    open =>
    the_database_holds_no_inbound_secret_in_the_clear,
    a_secret_copied_into_another_workspace_does_not_open,
    a_store_lacking_a_key_in_use_names_it,
    rewrap_seals_plaintext_and_old_keys_under_the_first,
    rotation_secrets_are_sealed_moved_and_rewrapped,
);

/// The test database's URL and a direct connection to it, migrated.
struct Fixture {
    url: String,
    raw: DatabaseConnection,
}

async fn open(db: &TestDatabase) -> Fixture {
    let url = db.url().to_owned();
    store(&url, "").await.close().await;
    Fixture {
        url,
        raw: db.connect().await,
    }
}

/// A store on `url` with the keys of `list` (comma-separated key bytes, as
/// `"1,2"`; empty: no key).
async fn store(url: &str, list: &str) -> SeaStore {
    let store = SeaStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.with_keys(Arc::new(keys(list)))
}

fn keys(list: &str) -> Keyring {
    if list.is_empty() {
        return Keyring::default();
    }
    let encoded: Vec<String> = list
        .split(',')
        .map(|byte| BASE64.encode([byte.parse::<u8>().expect("a byte"); 32]))
        .collect();
    Keyring::parse(&encoded.join(",")).expect("keys")
}

fn key_id(byte: &str) -> String {
    keys(byte).current_id().expect("id").to_owned()
}

fn secret_of(id: &str) -> Secret {
    Secret::new(format!("tsr_wsi_secret-of-{id}"))
}

/// Provisions workspace `id` with its secret, registration token
/// `registration-<id>` and auth token `auth-<id>`.
async fn provision(store: &SeaStore, id: &str) {
    let workspace = WorkspaceRecord {
        id: id.to_owned(),
        name: id.to_owned(),
        inbound_secret: Some(secret_of(id)),
        rotation: Default::default(),
        registration_hash: format!("registration-{id}"),
        auth_hash: Some(format!("auth-{id}")),
        created_at: 1,
        registered_at: None,
        last_registered_at: None,
    };
    let registration = credential(CredentialKind::WorkspaceRegistration, id);
    let inserted = store.insert_workspace(&workspace, &registration).await;
    assert!(inserted.expect("insert"), "workspace {id} inserted");
    let auth = credential(CredentialKind::WorkspaceAuth, id);
    store.insert_credential(&auth).await.expect("auth record");
}

fn credential(kind: CredentialKind, subject: &str) -> CredentialRecord {
    let hash = match kind {
        CredentialKind::WorkspaceAuth => format!("auth-{subject}"),
        _ => format!("registration-{subject}"),
    };
    common::credential(kind, &hash, subject)
}

/// What the `inbound_secret` column of workspace `id` holds.
async fn stored(raw: &DatabaseConnection, id: &str) -> String {
    let sql = format!("SELECT inbound_secret FROM workspaces WHERE id = '{id}'");
    let rows = sql::strings(raw, &sql, 1).await;
    rows.into_iter().next().expect("the row").remove(0)
}

/// The lookups that authenticate workspace `id`'s tokens find it, and
/// carry none of its secrets (so none is opened, or fails to).
async fn assert_authenticates_without_secrets(store: &SeaStore, id: &str) {
    let registration = format!("registration-{id}");
    let by_registration = store.workspace_by_registration(&registration).await;
    let by_auth = store.workspace_by_auth(&format!("auth-{id}")).await;
    for found in [by_registration, by_auth] {
        let (workspace, _) = found.expect("looked up").expect("found");
        assert_eq!(workspace.id, id);
        assert_eq!(workspace.inbound_secret, None);
        assert_eq!(workspace.rotation, Default::default());
    }
}

async fn the_database_holds_no_inbound_secret_in_the_clear(fixture: Fixture) {
    let store = store(&fixture.url, "1").await;
    provision(&store, "ws-a").await;
    let raw = stored(&fixture.raw, "ws-a").await;
    assert!(
        raw.starts_with(&format!("enc:v1:{}:", key_id("1"))),
        "{raw}"
    );
    assert!(!raw.contains(secret_of("ws-a").expose()), "{raw}");
    assert!(!raw.contains("secret-of"), "{raw}");
    let read = store.workspace("ws-a").await.expect("read").expect("found");
    assert_eq!(read.inbound_secret, Some(secret_of("ws-a")));
    assert_authenticates_without_secrets(&store, "ws-a").await;
    store.close().await;
}

async fn a_secret_copied_into_another_workspace_does_not_open(fixture: Fixture) {
    let store = store(&fixture.url, "1").await;
    provision(&store, "ws-a").await;
    provision(&store, "ws-b").await;
    let of_a = stored(&fixture.raw, "ws-a").await;
    let copy = format!("UPDATE workspaces SET inbound_secret = '{of_a}' WHERE id = 'ws-b'");
    fixture.raw.execute_unprepared(&copy).await.expect("copy");
    match store.workspace("ws-b").await {
        Err(StoreError::Sealing(message)) => {
            assert!(message.contains("ws-b"), "{message}");
            assert!(!message.contains("secret-of"), "{message}");
        }
        other => panic!("the copy must not open: {other:?}"),
    }
    // Its runtime still authenticates: no lookup of a token opens a secret.
    assert_authenticates_without_secrets(&store, "ws-b").await;
    let of_a = store.workspace("ws-a").await.expect("read").expect("found");
    assert_eq!(of_a.inbound_secret, Some(secret_of("ws-a")));
    store.close().await;
}

async fn a_store_lacking_a_key_in_use_names_it(fixture: Fixture) {
    let store_1 = store(&fixture.url, "1").await;
    provision(&store_1, "ws-a").await;
    store_1.close().await;
    for lacking in ["", "2"] {
        let store = store(&fixture.url, lacking).await;
        match store.check_keys().await {
            Err(StoreError::Sealing(message)) => {
                assert!(message.contains(&key_id("1")), "{message}");
            }
            other => panic!("keys {lacking:?} must be refused: {other:?}"),
        }
        store.close().await;
    }
    let census = store(&fixture.url, "2,1").await.check_keys().await;
    assert_eq!(census.expect("both keys").by_key.len(), 1);
}

async fn rewrap_seals_plaintext_and_old_keys_under_the_first(fixture: Fixture) {
    for (keys, id) in [("", "ws-plain"), ("1", "ws-old"), ("2,1", "ws-new")] {
        let store = store(&fixture.url, keys).await;
        provision(&store, id).await;
        store.close().await;
    }
    assert_eq!(
        stored(&fixture.raw, "ws-plain").await,
        secret_of("ws-plain").expose()
    );
    let both = store(&fixture.url, "2,1").await;
    let rewrapped = both.rewrap().await.expect("rewrap");
    let (old, new) = (key_id("1"), key_id("2"));
    assert_eq!(rewrapped.before.plaintext, 1);
    assert_eq!(rewrapped.before.by_key.get(&old), Some(&1));
    assert_eq!(rewrapped.moved.plaintext, 1);
    assert_eq!(rewrapped.moved.by_key.get(&old), Some(&1));
    assert_eq!(rewrapped.moved.total(), 2, "{rewrapped:?}");
    assert_eq!(rewrapped.after.plaintext, 0);
    assert_eq!(rewrapped.after.by_key.get(&new), Some(&3));
    assert_eq!(rewrapped.after.total(), 3);
    both.close().await;

    let new_only = store(&fixture.url, "2").await;
    new_only
        .check_keys()
        .await
        .expect("only the new key in use");
    for id in ["ws-plain", "ws-old", "ws-new"] {
        assert!(
            stored(&fixture.raw, id)
                .await
                .starts_with(&format!("enc:v1:{new}:"))
        );
        let read = new_only.workspace(id).await.expect("read").expect("found");
        assert_eq!(read.inbound_secret, Some(secret_of(id)));
    }
    let again = new_only.rewrap().await.expect("rewrap again");
    assert_eq!(again.moved.total(), 0, "nothing left to rewrap");
    new_only.close().await;
}

/// The next and previous secrets of a rotation are sealed like the
/// current one, survive the promotion that moves them between columns,
/// and are rewrapped with it.
async fn rotation_secrets_are_sealed_moved_and_rewrapped(fixture: Fixture) {
    let first = store(&fixture.url, "1").await;
    provision(&first, "ws-a").await;
    let next = Secret::new("tsr_wsi_the-next-one");
    let started = first.start_inbound_rotation("ws-a", &next, "wsi_next", 10, false);
    started.await.expect("rotate");
    let columns = "next_inbound_secret, inbound_secret";
    let sql = format!("SELECT {columns} FROM workspaces WHERE id = 'ws-a'");
    let raw = sql::strings(&fixture.raw, &sql, 2).await.concat().concat();
    assert!(
        !raw.contains("the-next-one") && !raw.contains("secret-of"),
        "{raw}"
    );
    let read = first.workspace("ws-a").await.expect("read").expect("found");
    assert_eq!(read.rotation.next.expect("next").secret, next);

    let confirmation = Confirmation {
        held_id: "wsi_next",
        previous_valid_until: i64::MAX,
    };
    let registered = first.record_registration(
        "ws-a",
        20,
        "workspace_registration_registration-ws-a",
        AuthTokenChange::Keep,
        Some(confirmation),
    );
    let registered = registered.await.expect("register").expect("live bearer");
    assert!(registered.promoted);
    assert_eq!(registered.workspace.inbound_secret, Some(next.clone()));
    let previous = registered.workspace.rotation.previous.expect("previous");
    assert_eq!(previous.0, secret_of("ws-a"));

    let rewrapped = store(&fixture.url, "2,1").await.rewrap().await;
    let after = rewrapped.expect("rewrap").after;
    assert_eq!(
        after.by_key.get(&key_id("2")),
        Some(&2),
        "current and previous"
    );
    assert_eq!((after.by_key.len(), after.plaintext), (1, 0));
    let only_new = store(&fixture.url, "2").await;
    let read = only_new
        .workspace("ws-a")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(read.inbound_secret, Some(next));
    assert_eq!(
        read.rotation.previous.expect("previous").0,
        secret_of("ws-a")
    );
    first.close().await;
}
