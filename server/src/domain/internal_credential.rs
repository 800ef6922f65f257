//! The internal credential: one per server process, for children the server
//! spawns. Multi-use and never expiring, but only while its process lives.
//!
//! The process keeps the credential in memory and its hash in the database
//! with a heartbeat, so every replica accepts it while the minting process
//! runs. A clean shutdown deletes the row; a process that died stops
//! heartbeating and its credential is refused once the heartbeat is older
//! than the liveness bound (and the reaper then deletes the row).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};
use tokio::sync::{Mutex, OnceCell};

use super::audit::{Auditor, Event, OK};
use super::clock::now_ms;
use super::error::{Error, Result};
use super::principal::Caller;
use crate::store::{InternalCredentialRecord, Store, StoreError};

struct Minted {
    secret: Secret,
    hash: String,
    created_at: i64,
}

/// This process's internal credential and the check for everyone's.
pub(crate) struct InternalCredentials {
    store: Arc<dyn Store>,
    audit: Auditor,
    instance_id: String,
    liveness: Duration,
    mine: OnceCell<Minted>,
    /// Set once the credential is withdrawn; the lock also keeps a
    /// heartbeat from re-inserting the row after the withdrawal.
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
            mine: OnceCell::new(),
            retired: Mutex::new(false),
            withdrawn: AtomicBool::new(false),
        }
    }

    /// GetInternalCredential: this process's credential, minted and
    /// registered on first call; audited.
    pub(crate) async fn get(&self, caller: &Caller) -> Result<Secret> {
        let credential = self.get_or_mint().await?;
        let id = token::credential_id(TokenKind::Internal.tag(), credential.expose());
        let event = Event {
            action: "internal_credential.get",
            resource: &id,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(credential)
    }

    async fn get_or_mint(&self) -> Result<Secret> {
        let minted = self
            .mine
            .get_or_try_init(|| async {
                let secret = token::try_generate(TokenKind::Internal)?;
                let now = now_ms();
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
                    credential_id = %token::credential_id("int", minted.secret.expose()),
                    "internal credential minted"
                );
                Ok::<_, Error>(minted)
            })
            .await?;
        Ok(minted.secret.clone())
    }

    /// When the credential `presented` was minted, if it is live: this
    /// process's own (compared in constant time) or a live one of another.
    pub(crate) async fn check(&self, presented: &str) -> Result<Option<i64>, StoreError> {
        if self.withdrawn.load(Ordering::SeqCst) {
            return Ok(None);
        }
        if let Some(mine) = self.mine.get()
            && mine.secret.ct_eq(presented)
        {
            return Ok(Some(mine.created_at));
        }
        let hash = token::sha256_hex(presented);
        let cutoff = now_ms() - self.liveness_ms();
        Ok(self
            .store
            .find_internal_credential(&hash)
            .await?
            .filter(|row| row.heartbeat_at >= cutoff)
            .map(|row| row.created_at))
    }

    /// Tells the other replicas this process is alive (no-op before minting).
    pub(crate) async fn heartbeat(&self) -> Result<(), StoreError> {
        let retired = self.retired.lock().await;
        if *retired {
            return Ok(());
        }
        match self.mine.get() {
            Some(mine) => {
                self.store
                    .upsert_internal_credential(&self.record(mine, now_ms()))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Withdraws this process's credential from the other replicas (at
    /// shutdown); heartbeats stop for good.
    pub(crate) async fn retire(&self) -> Result<(), StoreError> {
        self.withdrawn.store(true, Ordering::SeqCst);
        let mut retired = self.retired.lock().await;
        *retired = true;
        match self.mine.get() {
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
        }
    }
}
