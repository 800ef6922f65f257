//! The first-admin install token: minted once when nobody can log in yet,
//! traded once for the first administrator and its access token.
//!
//! Redeeming it is in `redeem.rs`.
//!
//! A SERVICE caller never receives the token: it goes to the banner sink
//! like the boot banner, because a service that could trade it for the
//! first admin's access token would hold a user credential that outlives
//! its own secret.

mod redeem;

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::audit::{Auditor, Event, OK};
use super::banner::BannerSink;
use super::credentials::AccessTokenPolicy;
use super::error::Result;
use super::principal::{Caller, PrincipalKind};
use crate::metrics;
use crate::store::Store;

pub(crate) use redeem::Redemption;
use redeem::first_admin_exists;

/// Counter of install-token events.
const INSTALL: &str = "tessera_install_token_events_total";

/// Where the install token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallState {
    /// None minted yet.
    NotIssued,
    /// Minted, not used.
    Pending,
    /// Used to create the first admin.
    Consumed,
}

/// State and times of the install token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InstallStatus {
    /// The state.
    pub state: InstallState,
    /// When the token on file was minted.
    pub issued_at: Option<i64>,
    /// When it was consumed.
    pub consumed_at: Option<i64>,
}

/// The install-token RPCs and operator commands.
pub(crate) struct Install {
    store: Arc<dyn Store>,
    audit: Auditor,
    banner: BannerSink,
    access_tokens: AccessTokenPolicy,
}

impl Install {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        banner: BannerSink,
        access_tokens: AccessTokenPolicy,
    ) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            banner,
            access_tokens,
        }
    }

    /// GetInstallTokenStatus.
    pub(crate) async fn status(&self) -> Result<InstallStatus> {
        let record = self.store.install_token().await?;
        Ok(match record {
            None => InstallStatus {
                state: InstallState::NotIssued,
                issued_at: None,
                consumed_at: None,
            },
            Some(record) => InstallStatus {
                state: match record.consumed_at {
                    Some(_) => InstallState::Consumed,
                    None => InstallState::Pending,
                },
                issued_at: Some(record.issued_at),
                consumed_at: record.consumed_at,
            },
        })
    }

    /// At boot: mints the install token if nobody can log in yet and none
    /// is on file, and shows its banner.
    pub(crate) async fn mint_at_boot(&self) -> Result<()> {
        if let Some(token) = self.mint_if_needed().await? {
            self.audit_issue("boot", "", None, &token).await;
            self.banner.show(&token);
            let id = token::credential_id(TokenKind::Install.tag(), token.expose());
            tracing::info!(credential_id = %id, "install token minted; the banner on standard output shows it once");
        }
        Ok(())
    }

    /// IssueInstallToken: with `force`, always a fresh token (while nobody
    /// can log in); otherwise one only when none is on file.
    pub(crate) async fn issue(
        &self,
        caller: &Caller,
        force: bool,
    ) -> Result<(Option<Secret>, InstallStatus)> {
        caller.require_admin()?;
        let minted = if force {
            Some(self.regenerate().await?)
        } else {
            self.mint_if_needed().await?
        };
        if let Some(token) = &minted {
            let principal = &caller.principal;
            let (actor, credential_id) = (principal.actor(), &principal.credential_id);
            self.audit_issue(actor, credential_id, caller.peer, token)
                .await;
        }
        let status = self.status().await?;
        match minted {
            Some(token) if caller.principal.kind == PrincipalKind::Service => {
                self.banner.show(&token);
                Ok((None, status))
            }
            minted => Ok((minted, status)),
        }
    }

    /// `tessera install-token regenerate`: a fresh token, replacing any,
    /// shown on the banner sink.
    pub(crate) async fn regenerate_by(&self, actor: &str) -> Result<()> {
        let token = self.regenerate().await?;
        self.audit_issue(actor, "", None, &token).await;
        self.banner.show(&token);
        Ok(())
    }

    /// Mints a token when no human user exists and none is on file (pending
    /// or consumed); of racing callers, exactly one gets `Some`.
    async fn mint_if_needed(&self) -> Result<Option<Secret>> {
        if self.store.any_human_user().await? || self.store.install_token().await?.is_some() {
            return Ok(None);
        }
        let token = token::try_generate(TokenKind::Install)?;
        let hash = token::sha256_hex(token.expose());
        let filed = self
            .store
            .insert_install_token(&hash, self.store.now_ms())
            .await?;
        Ok(filed.then_some(token))
    }

    /// Mints a fresh token, replacing a pending one. Once a human user
    /// exists no token could ever be used, so none is minted.
    async fn regenerate(&self) -> Result<Secret> {
        if self.store.any_human_user().await? {
            return Err(first_admin_exists());
        }
        let token = token::try_generate(TokenKind::Install)?;
        let hash = token::sha256_hex(token.expose());
        if !self
            .store
            .replace_install_token(&hash, self.store.now_ms())
            .await?
        {
            return Err(first_admin_exists());
        }
        Ok(token)
    }

    async fn audit_issue(
        &self,
        actor: &str,
        credential_id: &str,
        peer: Option<SocketAddr>,
        token: &Secret,
    ) {
        metrics::event(INSTALL, "issued");
        let id = token::credential_id(TokenKind::Install.tag(), token.expose());
        let event = Event {
            action: "install_token.issue",
            resource: &id,
            outcome: OK,
        };
        self.audit.as_actor(actor, credential_id, peer, event).await;
    }
}

#[cfg(test)]
mod banner_tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SeaStore;

    async fn install(
        db: &tessera_tests::TestDatabase,
    ) -> (Install, Arc<std::sync::Mutex<Vec<String>>>) {
        let store = SeaStore::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (sink, shown) = BannerSink::buffer();
        (
            Install::new(Arc::new(store), sink, AccessTokenPolicy::default()),
            shown,
        )
    }

    #[tokio::test]
    async fn the_boot_banner_is_shown_once_and_a_service_never_gets_the_token() {
        let db = tessera_tests::TestDatabase::sqlite();
        let (install, shown) = install(&db).await;
        install.mint_at_boot().await.expect("first boot");
        install.mint_at_boot().await.expect("second boot");
        assert_eq!(
            shown.lock().expect("lock").len(),
            1,
            "one banner for two boots"
        );

        let (token, status) = install
            .issue(&Caller::test_service(), true)
            .await
            .expect("issue");
        assert!(
            token.is_none(),
            "a service is never handed the install token"
        );
        assert_eq!(status.state, InstallState::Pending);
        let shown = shown.lock().expect("lock");
        assert_eq!(
            shown.len(),
            2,
            "the forced token went to the banner instead"
        );
        assert!(shown[1].contains("INSTALL TOKEN: tsr_ins_"));
    }
}
