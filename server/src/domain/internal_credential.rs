//! The internal credential: one per server process, for children the server
//! spawns. Multi-use and never expiring, but only while its process lives.
//!
//! The process keeps the credential in memory and its hash in the database
//! with a heartbeat, so every replica accepts it while the minting process
//! runs. A clean shutdown deletes the row; a process that died stops
//! heartbeating and its credential is refused once the heartbeat is older
//! than the liveness bound (and the reaper then deletes the row). A revoked
//! one is refused by every replica, its own process included (which reads
//! the row for it too), and that process mints a replacement on the next
//! GetInternalCredential.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};
use tokio::sync::Mutex;

use super::audit::{Auditor, Event, OK};
use super::error::{Error, Result};
use super::principal::Caller;
use crate::store::{InternalCredentialRecord, Store, StoreError};

struct Minted {
    secret: Secret,
    hash: String,
    created_at: i64,
}

impl Minted {
    /// The public id, from the hash already stored.
    fn credential_id(&self) -> String {
        token::credential_id_from_hex(TokenKind::Internal.tag(), &self.hash)
    }
}

/// This process's internal credential and the check for everyone's.
pub(crate) struct InternalCredentials {
    store: Arc<dyn Store>,
    audit: Auditor,
    instance_id: String,
    liveness: Duration,
    /// The credential of this process, once minted; replaced when revoked.
    mine: RwLock<Option<Arc<Minted>>>,
    /// Set once the credential is withdrawn; the lock also keeps a
    /// heartbeat, or a mint, from inserting the row after the withdrawal.
    retired: Mutex<bool>,
    /// The same, readable without waiting: a retiring process stops
    /// accepting its own credential too.
    withdrawn: AtomicBool,
}

impl InternalCredentials {
    /// `liveness`: how stale a heartbeat may be before the credential of
    /// another process is refused.
    pub(crate) fn new(store: Arc<dyn Store>, liveness: Duration) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            instance_id: hex::encode(rand::random::<[u8; 8]>()),
            liveness,
            mine: RwLock::new(None),
            retired: Mutex::new(false),
            withdrawn: AtomicBool::new(false),
        }
    }

    /// GetInternalCredential: this process's credential, minted and
    /// registered on first call; audited.
    pub(crate) async fn get(&self, caller: &Caller) -> Result<Secret> {
        let minted = self.get_or_mint().await?;
        let id = minted.credential_id();
        let event = Event {
            action: "internal_credential.get",
            resource: &id,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(minted.secret.clone())
    }

    async fn get_or_mint(&self) -> Result<Arc<Minted>> {
        // Minting holds the lock `retire` takes, so a credential is never
        // stored after (or while) it withdraws this process's credential.
        let retired = self.retired.lock().await;
        if *retired || self.withdrawn.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        if let Some(mine) = self.current() {
            let row = self.store.find_internal_credential(&mine.hash).await?;
            if row.is_some_and(|row| row.revoked_at.is_none()) {
                return Ok(mine);
            }
        }
        let minted = Arc::new(self.mint().await?);
        if let Ok(mut mine) = self.mine.write() {
            *mine = Some(minted.clone());
        }
        drop(retired);
        Ok(minted)
    }

    /// This process's credential, if one was minted.
    fn current(&self) -> Option<Arc<Minted>> {
        self.mine.read().ok().and_then(|mine| mine.clone())
    }

    async fn mint(&self) -> Result<Minted> {
        let secret = token::try_generate(TokenKind::Internal)?;
        let now = self.store.now_ms();
        let minted = Minted {
            hash: token::sha256_hex(secret.expose()),
            secret,
            created_at: now,
        };
        self.store
            .upsert_internal_credential(&self.record(&minted, now))
            .await?;
        tracing::info!(
            instance = %self.instance_id,
            credential_id = %minted.credential_id(),
            "internal credential minted"
        );
        Ok(minted)
    }

    /// When the credential `presented` was minted, if it is live: this
    /// process's own (compared in constant time) or a live one of another.
    /// `hash` is its hex SHA-256, which every caller has already worked
    /// out. A withdrawn credential (this process is shutting down) is
    /// refused here too; the others' are still accepted while they live.
    pub(crate) async fn check(
        &self,
        presented: &str,
        hash: &str,
    ) -> Result<Option<i64>, StoreError> {
        let own = self.current().filter(|mine| mine.secret.ct_eq(presented));
        if own.is_some() && self.withdrawn.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let cutoff = self.store.now_ms() - self.liveness_ms();
        // Its own credential is read from the row too: no copy in memory
        // may outlive a revocation. Its heartbeat is not judged: the
        // process is alive, it is answering. When the database cannot be
        // asked, the process vouches for its own credential, so children
        // keep reconnecting through an outage.
        let row = match self.store.find_internal_credential(hash).await {
            Ok(row) => row,
            Err(StoreError::Unavailable(_)) if own.is_some() => {
                return Ok(own.map(|mine| mine.created_at));
            }
            Err(err) => return Err(err),
        };
        Ok(row
            .filter(|row| row.revoked_at.is_none())
            .filter(|row| own.is_some() || row.heartbeat_at >= cutoff)
            .map(|row| row.created_at))
    }

    /// Tells the other replicas this process is alive (no-op before minting).
    pub(crate) async fn heartbeat(&self) -> Result<(), StoreError> {
        let retired = self.retired.lock().await;
        if *retired {
            return Ok(());
        }
        match self.current() {
            Some(mine) => {
                self.store
                    .upsert_internal_credential(&self.record(&mine, self.store.now_ms()))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Revokes this process's credential, when one was minted: a service
    /// secret that may have fetched it was retired, and what that service
    /// got must not outlive it. The next GetInternalCredential mints
    /// another, as after a RevokeCredential.
    pub(crate) async fn revoke_own(&self) -> Result<(), StoreError> {
        let Some(mine) = self.current() else {
            return Ok(());
        };
        let id = mine.credential_id();
        let hex = id.strip_prefix("int_").unwrap_or(&id);
        let revoked = self
            .store
            .revoke_internal_credential(hex, self.store.now_ms());
        revoked.await?;
        tracing::info!(credential_id = %id, "internal credential revoked: a service secret was retired");
        Ok(())
    }

    /// Withdraws this process's credential from the other replicas (at
    /// shutdown); heartbeats stop for good.
    pub(crate) async fn retire(&self) -> Result<(), StoreError> {
        self.withdrawn.store(true, Ordering::SeqCst);
        let mut retired = self.retired.lock().await;
        *retired = true;
        match self.current() {
            Some(mine) => self.store.delete_internal_credential(&mine.hash).await,
            None => Ok(()),
        }
    }

    /// Milliseconds after which a heartbeat is stale.
    pub(crate) fn liveness_ms(&self) -> i64 {
        i64::try_from(self.liveness.as_millis()).unwrap_or(i64::MAX)
    }

    fn record(&self, minted: &Minted, heartbeat_at: i64) -> InternalCredentialRecord {
        InternalCredentialRecord {
            hash: minted.hash.clone(),
            instance_id: self.instance_id.clone(),
            created_at: minted.created_at,
            heartbeat_at,
            revoked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SeaStore;

    const LIVENESS: Duration = Duration::from_secs(60);

    /// Two server processes on one database.
    async fn two_processes(db: &tessera_tests::TestDatabase) -> [InternalCredentials; 2] {
        let store = SeaStore::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let store: Arc<dyn Store> = Arc::new(store);
        [(); 2].map(|()| InternalCredentials::new(store.clone(), LIVENESS))
    }

    /// `process`'s verdict on `credential`.
    async fn checked(process: &InternalCredentials, credential: &Secret) -> Option<i64> {
        let hash = token::sha256_hex(credential.expose());
        process
            .check(credential.expose(), &hash)
            .await
            .expect("check")
    }

    #[tokio::test]
    async fn a_draining_process_still_accepts_the_others_credentials() {
        let db = tessera_tests::TestDatabase::sqlite();
        let [live, draining] = two_processes(&db).await;
        let theirs = live.get(&Caller::test_service()).await.expect("mint");
        let own = draining.get(&Caller::test_service()).await.expect("mint");
        draining.retire().await.expect("retire");
        let accepted = checked(&draining, &theirs).await;
        assert!(accepted.is_some(), "a live process's credential refused");
        let own = checked(&draining, &own).await;
        assert!(own.is_none(), "a withdrawn credential accepted");
    }

    #[tokio::test]
    async fn nothing_is_minted_after_the_withdrawal() {
        let db = tessera_tests::TestDatabase::sqlite();
        let [live, draining] = two_processes(&db).await;
        draining.retire().await.expect("retire");
        match draining.get(&Caller::test_service()).await {
            Err(Error::ShuttingDown) => {}
            Ok(minted) => {
                let elsewhere = checked(&live, &minted).await;
                panic!("minted during the drain; valid elsewhere: {elsewhere:?}");
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        draining.heartbeat().await.expect("heartbeat");
    }
}
