//! One storage test suite, run against SQLite and against PostgreSQL.

mod common;

use std::sync::Arc;

use common::credential;
use tessera_server::store::{
    AuditDraft, AuditRecord, CallerWaiting, CredentialKind, CredentialStore, InstallOutcome,
    InternalCredentialRecord, NewAdmin, NewUser, SeaStore, Store, TicketRecord, TicketRejection,
    TicketTake, UserKind, Verdict, WorkspaceRecord, WorkspaceStore,
};
use tessera_tests::TestDatabase;

tessera_tests::on_both_backends!(
    open =>
    migrations_are_idempotent,
    ensure_user_is_idempotent_under_races,
    a_ticket_is_taken_at_most_once,
    concurrent_writes_each_get_their_own_answer,
    concurrent_lookups_each_get_their_own_answer,
    a_take_is_judged_and_audited_with_its_verdict,
    expired_tickets_are_deleted,
    old_audit_entries_are_pruned_in_bounded_chunks,
    internal_credentials_heartbeat_and_expire,
    audit_entries_come_back_newest_first,
    one_install_token_is_filed_under_races,
    the_install_token_creates_one_admin,
);

async fn open(db: &TestDatabase) -> Arc<SeaStore> {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// The service user `svc@system.local`, with a fresh id.
fn service_user() -> NewUser {
    NewUser {
        id: random_id(),
        email: "svc@system.local".into(),
        display_name: "Svc".into(),
        kind: UserKind::Service,
        created_at: 1_000,
    }
}

fn ticket(hash: &str, expires_at: i64) -> TicketRecord {
    TicketRecord {
        hash: hash.to_owned(),
        user_id: "u1".into(),
        provider: "github".into(),
        purpose: "ws-upgrade".into(),
        minted_at: 1_000,
        expires_at,
    }
}

async fn migrations_are_idempotent(store: Arc<SeaStore>) {
    store.migrate().await.expect("second migration run");
    store.ping().await.expect("ping");
}

async fn ensure_user_is_idempotent_under_races(store: Arc<SeaStore>) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ensure_user(&service_user(), &["Admin"]).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let user = task.await.expect("join").expect("ensure_user");
        let user = user.expect("a service user");
        assert_eq!(user.groups, vec!["Admin".to_owned()]);
        assert_eq!(user.kind, UserKind::Service);
        ids.push(user.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one user row for one e-mail");
}

async fn a_ticket_is_taken_at_most_once(store: Arc<SeaStore>) {
    let record = ticket("h-once", i64::MAX);
    store.insert_ticket(&record, None).await.expect("insert");
    assert!(
        store.insert_ticket(&record, None).await.is_err(),
        "duplicate hash refused"
    );
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { take(&store, "h-once", "take").await })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        match task.await.expect("join") {
            Ok(row) => taken.push(row),
            // In the winner's batch or after it: the losers find its tombstone.
            Err(rejection) => assert_eq!(rejection, TicketRejection::Replayed),
        }
    }
    assert_eq!(taken, vec![record]);
    assert_eq!(store.count_tickets_for_tests().await.expect("count"), 0);
}

/// Many writes at once are committed together (see the store's group
/// commit): each caller must still get its own answer, a shared ticket must
/// still go to one caller, and one failing write must fail alone.
async fn concurrent_writes_each_get_their_own_answer(store: Arc<SeaStore>) {
    const CALLERS: usize = 200;
    let shared = ticket("h-shared", i64::MAX);
    store
        .insert_ticket(&shared, None)
        .await
        .expect("insert shared");
    let kept = ticket("h-kept", i64::MAX);
    store.insert_ticket(&kept, None).await.expect("insert kept");
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let store = store.clone();
            let shared = shared.clone();
            let kept = kept.clone();
            tokio::spawn(async move {
                if i == CALLERS / 2 {
                    // A duplicate hash, in the middle of the crowd: refused,
                    // and its audit entry with it.
                    let entry = audit_entry("duplicate");
                    let refused = store.insert_ticket(&kept, Some(&entry)).await;
                    assert!(refused.is_err(), "duplicate");
                    return false;
                }
                let own = ticket(&format!("h-{i}"), i64::MAX);
                let minted = audit_entry(&format!("mint-{i}"));
                store
                    .insert_ticket(&own, Some(&minted))
                    .await
                    .expect("insert own");
                let (mine, theirs) = tokio::join!(
                    take(&store, &own.hash, "take-own"),
                    take(&store, &shared.hash, "take-shared")
                );
                assert_eq!(mine, Ok(own));
                let entry = audit_entry(&format!("batch-{i}"));
                store.append_audit(&entry).await.expect("audit");
                theirs.is_ok()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("join"));
    }
    assert_eq!(winners, 1, "the shared ticket went to exactly one caller");
    assert_eq!(
        store.count_tickets_for_tests().await.expect("count"),
        1,
        "h-kept"
    );
    let audited = store.recent_audit_for_tests(1_000).await.expect("recent");
    let count = |prefix: &str| {
        let matching = audited
            .iter()
            .filter(|entry| entry.action.starts_with(prefix));
        matching.count()
    };
    assert_eq!(count("batch-"), CALLERS - 1);
    assert_eq!(count("mint-"), CALLERS - 1);
    assert_eq!(count("duplicate"), 0, "audit entry of a refused insert");
    // Every take wrote its entry, with the outcome its caller got.
    let outcomes = |action: &str, outcome: &str| {
        let matching = audited
            .iter()
            .filter(|entry| entry.action == action && entry.outcome == outcome);
        matching.count()
    };
    assert_eq!(outcomes("take-own", "ok"), CALLERS - 1);
    assert_eq!(outcomes("take-shared", "ok"), 1);
    let replays = audited.iter().filter(|entry| {
        entry.action == "take-shared"
            && entry
                .outcome
                .starts_with("TICKET_REPLAYED (first consumed by ")
    });
    assert_eq!(replays.count(), CALLERS - 2);
}

/// Token lookups are answered in batches: each caller still gets the
/// record of its own hash, a hash asked for twice gets it twice, and a hash
/// no token has (even one JSON would need escaped) gets none.
async fn concurrent_lookups_each_get_their_own_answer(store: Arc<SeaStore>) {
    const WORKSPACES: usize = 40;
    for i in 0..WORKSPACES {
        insert_workspace(&store, &format!("ws-{i}"), Some(format!("auth-{i}"))).await;
    }
    insert_workspace(&store, "ws-none", None).await;
    let admin = new_admin("admin@example.com", "user-token");
    store
        .insert_install_token("install", 1)
        .await
        .expect("file");
    let outcome = store.consume_install_token("install", 2, &admin, &["Admin", "Ops"]);
    assert!(matches!(
        outcome.await.expect("install"),
        InstallOutcome::Created(_)
    ));

    let mut asked: Vec<String> = (0..WORKSPACES).map(|i| format!("auth-{i}")).collect();
    asked.extend(asked.clone());
    asked.extend((0..WORKSPACES).map(|i| format!("missing-{i}")));
    asked.extend(["we\"ird\\".to_owned(), "user-token".to_owned()]);
    let tasks: Vec<_> = asked
        .iter()
        .map(|hash| {
            let (store, hash) = (store.clone(), hash.clone());
            tokio::spawn(async move {
                let workspace = store.workspace_by_auth(&hash).await.expect("workspace");
                let user = store.user_by_token(&hash).await.expect("user");
                (
                    workspace.map(|w| w.0.id),
                    user.map(|u| (u.0.email, u.0.groups)),
                )
            })
        })
        .collect();
    for (hash, task) in asked.iter().zip(tasks) {
        let (workspace, user) = task.await.expect("join");
        let expected_workspace = hash.strip_prefix("auth-").map(|i| format!("ws-{i}"));
        assert_eq!(workspace, expected_workspace, "workspace for {hash}");
        let expected_user = (hash == "user-token").then(|| {
            let groups = vec!["Admin".to_owned(), "Ops".to_owned()];
            ("admin@example.com".to_owned(), groups)
        });
        assert_eq!(user, expected_user, "user for {hash}");
    }
}

/// Stores workspace `id`, its registration token's record and, with
/// `auth_hash`, the record of an auth token with that hash.
async fn insert_workspace(store: &SeaStore, id: &str, auth_hash: Option<String>) {
    let registration_hash = format!("registration-{id}");
    let workspace = WorkspaceRecord {
        id: id.to_owned(),
        name: id.to_owned(),
        inbound_secret: None,
        rotation: Default::default(),
        registration_hash: registration_hash.clone(),
        auth_hash: auth_hash.clone(),
        created_at: 1,
        registered_at: None,
        last_registered_at: None,
    };
    let registration = credential(
        CredentialKind::WorkspaceRegistration,
        &registration_hash,
        id,
    );
    let inserted = store.insert_workspace(&workspace, &registration).await;
    assert!(inserted.expect("insert"), "workspace {id} inserted");
    if let Some(hash) = auth_hash {
        let auth = credential(CredentialKind::WorkspaceAuth, &hash, id);
        store.insert_credential(&auth).await.expect("auth record");
    }
}

/// A first admin `email` whose access token hashes to `token_hash`.
fn new_admin(email: &str, token_hash: &str) -> NewAdmin {
    let id = random_id();
    NewAdmin {
        token: credential(CredentialKind::UserAccess, token_hash, &id),
        id,
        email: email.to_owned(),
        display_name: "Admin".into(),
    }
}

/// Takes the ticket `hash` at time 1,000 expecting purpose `ws-upgrade`,
/// audited as `action`: the verdict (a store error fails the test).
async fn take(store: &SeaStore, hash: &str, action: &str) -> Verdict {
    let take = ticket_take(hash, "ws-upgrade", action);
    store.take_ticket(&take).await.expect("take")
}

/// A take at time 1,000 of `hash` expecting `purpose`, audited as `action`.
fn ticket_take(hash: &str, purpose: &str, action: &str) -> TicketTake {
    TicketTake {
        hash: hash.to_owned(),
        purpose: purpose.to_owned(),
        now: 1_000,
        audit: draft(action),
        caller: CallerWaiting::default(),
    }
}

fn draft(action: &str) -> AuditDraft {
    AuditDraft {
        at: 1,
        actor: "svc@system.local".into(),
        action: action.into(),
        resource: "r".into(),
        credential_id: "svc_0123".into(),
        peer: "127.0.0.1:1".into(),
    }
}

fn audit_entry(action: &str) -> AuditRecord {
    draft(action).with_outcome("ok")
}

/// A take is judged where the row is deleted: an expired ticket or one
/// presented for another purpose is refused, spent all the same, and its
/// audit entry says why.
async fn a_take_is_judged_and_audited_with_its_verdict(store: Arc<SeaStore>) {
    store
        .insert_ticket(&ticket("h-expired", 1_000), None)
        .await
        .expect("insert");
    store
        .insert_ticket(&ticket("h-other", i64::MAX), None)
        .await
        .expect("insert");
    let expired = ticket_take("h-expired", "ws-upgrade", "take-expired");
    let verdict = store.take_ticket(&expired).await.expect("take");
    assert_eq!(verdict, Err(TicketRejection::Expired));
    let mismatch = ticket_take("h-other", "download", "take-other");
    let verdict = store.take_ticket(&mismatch).await.expect("take");
    assert_eq!(verdict, Err(TicketRejection::PurposeMismatch));
    assert_eq!(
        store.count_tickets_for_tests().await.expect("count"),
        0,
        "both spent"
    );
    let audited = store.recent_audit_for_tests(10).await.expect("recent");
    let outcomes: Vec<_> = audited
        .iter()
        .map(|entry| (entry.action.as_str(), entry.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("take-other", "TICKET_PURPOSE_MISMATCH"),
            ("take-expired", "TICKET_EXPIRED")
        ]
    );
}

/// The reaper deletes in bounded chunks, so it never holds the write lock
/// for long however many tickets expired.
async fn expired_tickets_are_deleted(store: Arc<SeaStore>) {
    let expired = (0..25).map(|i| (format!("old-{i}"), 10 + i));
    for (hash, expires_at) in expired.chain([("live".to_owned(), 5_000)]) {
        store
            .insert_ticket(&ticket(&hash, expires_at), None)
            .await
            .expect("insert");
    }
    let mut chunks = Vec::new();
    for _ in 0..4 {
        chunks.push(store.delete_expired_tickets(1_000, 10).await.expect("reap"));
    }
    assert_eq!(chunks, [10, 10, 5, 0]);
    assert_eq!(store.count_tickets_for_tests().await.expect("count"), 1);
    assert!(take(&store, "live", "take").await.is_ok());
}

/// Audit entries older than the retention are pruned, oldest first and in
/// bounded chunks; newer ones stay.
async fn old_audit_entries_are_pruned_in_bounded_chunks(store: Arc<SeaStore>) {
    for at in 0..25 {
        let entry = AuditRecord {
            at,
            ..audit_entry(&format!("old-{at}"))
        };
        store.append_audit(&entry).await.expect("append");
    }
    let recent = AuditRecord {
        at: 5_000,
        ..audit_entry("recent")
    };
    store.append_audit(&recent).await.expect("append");
    let mut chunks = Vec::new();
    for _ in 0..4 {
        chunks.push(store.delete_audit_before(1_000, 10).await.expect("prune"));
    }
    assert_eq!(chunks, [10, 10, 5, 0]);
    let left = store.recent_audit_for_tests(100).await.expect("recent");
    let actions: Vec<_> = left.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["recent"]);
}

async fn internal_credentials_heartbeat_and_expire(store: Arc<SeaStore>) {
    let mut record = InternalCredentialRecord {
        hash: "int-a".into(),
        instance_id: "instance-a".into(),
        created_at: 100,
        heartbeat_at: 100,
        revoked_at: None,
    };
    store
        .upsert_internal_credential(&record)
        .await
        .expect("insert");
    record.heartbeat_at = 900;
    store
        .upsert_internal_credential(&record)
        .await
        .expect("heartbeat");
    let found = store.find_internal_credential("int-a").await.expect("find");
    assert_eq!(found, Some(record.clone()));

    // A revocation stays: a later heartbeat does not undo it, nor a second
    // revocation move its time.
    let revoked = store
        .revoke_internal_credential("int-a", 950)
        .await
        .expect("revoke");
    assert_eq!(revoked.and_then(|r| r.revoked_at), Some(950));
    store
        .upsert_internal_credential(&record)
        .await
        .expect("heartbeat");
    let again = store
        .revoke_internal_credential("int-a", 990)
        .await
        .expect("revoke");
    assert_eq!(again.and_then(|r| r.revoked_at), Some(950));
    let missing = store
        .revoke_internal_credential("int-z", 990)
        .await
        .expect("revoke");
    assert_eq!(missing, None);

    let stale = InternalCredentialRecord {
        hash: "int-b".into(),
        heartbeat_at: 200,
        ..record.clone()
    };
    store
        .upsert_internal_credential(&stale)
        .await
        .expect("insert stale");
    assert_eq!(
        store
            .delete_stale_internal_credentials(500)
            .await
            .expect("reap"),
        1
    );
    assert!(
        store
            .find_internal_credential("int-b")
            .await
            .expect("find")
            .is_none()
    );

    store
        .delete_internal_credential("int-a")
        .await
        .expect("delete");
    assert!(
        store
            .find_internal_credential("int-a")
            .await
            .expect("find")
            .is_none()
    );
}

async fn audit_entries_come_back_newest_first(store: Arc<SeaStore>) {
    for action in ["first", "second", "third"] {
        store
            .append_audit(&audit_entry(action))
            .await
            .expect("append");
    }
    let recent = store.recent_audit_for_tests(2).await.expect("recent");
    let actions: Vec<_> = recent.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["third", "second"]);
}

async fn one_install_token_is_filed_under_races(store: Arc<SeaStore>) {
    assert!(store.install_token().await.expect("read").is_none());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_install_token(&format!("hash-{i}"), i).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("join").expect("insert"));
    }
    assert_eq!(winners, 1);
    let filed = store.install_token().await.expect("read").expect("filed");
    assert_eq!(filed.consumed_at, None);

    assert!(
        store
            .replace_install_token("fresh", 99)
            .await
            .expect("replace")
    );
    let replaced = store.install_token().await.expect("read").expect("filed");
    assert_eq!((replaced.hash.as_str(), replaced.issued_at), ("fresh", 99));
}

async fn the_install_token_creates_one_admin(store: Arc<SeaStore>) {
    store
        .ensure_user(&service_user(), &["Admin"])
        .await
        .expect("service");
    assert!(
        !store.any_human_user().await.expect("humans"),
        "service users are not human"
    );
    assert!(
        store
            .insert_install_token("install-hash", 1)
            .await
            .expect("file")
    );
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let admin = new_admin(&format!("admin{i}@example.com"), &format!("token-{i}"));
                store
                    .consume_install_token("install-hash", 5, &admin, &["Admin"])
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.expect("join").expect("consume") {
            InstallOutcome::Created(user) => created.push(user),
            // The losers are told the admin exists, not that the token
            // they presented was wrong.
            InstallOutcome::HumanExists => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one admin");
    let admin = &created[0];
    assert_eq!(admin.kind, UserKind::Human);
    assert_eq!(admin.groups, vec!["Admin".to_owned()]);
    assert!(store.any_human_user().await.expect("humans"));
    let token_hash = format!(
        "token-{}",
        admin
            .email
            .trim_start_matches("admin")
            .trim_end_matches("@example.com")
    );
    let found = store.user_by_token(&token_hash).await.expect("lookup");
    assert_eq!(found.as_ref().map(|(user, _)| user), Some(admin));
    assert_eq!(
        store
            .install_token()
            .await
            .expect("read")
            .and_then(|t| t.consumed_at),
        Some(5)
    );

    // A consumed token is never replaced, even by a racing regeneration.
    assert!(
        !store
            .replace_install_token("late", 7)
            .await
            .expect("replace")
    );
    let after = store.install_token().await.expect("read").expect("filed");
    assert_eq!(
        (after.hash.as_str(), after.consumed_at),
        ("install-hash", Some(5))
    );

    // A wrong hash changes nothing; the admin exists, and that is the answer.
    let other = new_admin("x@example.com", "t");
    assert_eq!(
        store
            .consume_install_token("wrong", 6, &other, &[])
            .await
            .expect("consume"),
        InstallOutcome::HumanExists
    );
}

#[tokio::test]
async fn pool_usage_is_reported_on_sqlite() {
    let db = TestDatabase::sqlite();
    let store = open(&db).await;
    let usage = store.pool_usage();
    assert!(usage.is_some_and(|(open, _)| open >= 1), "{usage:?}");
}

fn random_id() -> String {
    tessera_client::token::random_id().expect("OS randomness")
}
