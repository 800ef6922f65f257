//! The install-token RPCs of [`Tessera`].

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::{INSTALL, OK, Tessera};
use crate::audit::Event;
use crate::error::{Error, Result};
use crate::install::{FirstAdmin, InstallStatus};
use crate::metrics;
use crate::principal::{Caller, PrincipalKind};

impl Tessera {
    /// At boot: mints the install token if nobody can log in yet and none
    /// is on file; returns it for the banner.
    pub async fn mint_install_token_at_boot(&self) -> Result<Option<Secret>> {
        let minted = self.install.mint_if_needed().await?;
        if let Some(token) = &minted {
            self.audit_install_issue("boot", "", "", token).await;
        }
        Ok(minted)
    }

    /// IssueInstallToken: with `force`, always a fresh token (while nobody
    /// can log in); otherwise one only when none is on file. A SERVICE
    /// caller never sees the token: it goes to the server's standard output
    /// like the boot banner, because a service that could trade it for the
    /// first admin's access token would hold a credential that outlives its
    /// own secret (seed 001).
    pub async fn issue_install_token(
        &self,
        caller: &Caller,
        force: bool,
    ) -> Result<(Option<Secret>, InstallStatus)> {
        let minted = if force {
            Some(self.install.regenerate().await?)
        } else {
            self.install.mint_if_needed().await?
        };
        if let Some(token) = &minted {
            let principal = &caller.principal;
            self.audit_install_issue(
                principal.actor(),
                &principal.credential_id,
                &caller.peer,
                token,
            )
            .await;
        }
        let status = self.install.status().await?;
        match minted {
            Some(token) if caller.principal.kind == PrincipalKind::Service => {
                crate::install::print_banner(&token);
                Ok((None, status))
            }
            minted => Ok((minted, status)),
        }
    }

    /// GetInstallTokenStatus.
    pub async fn install_token_status(&self) -> Result<InstallStatus> {
        self.install.status().await
    }

    /// ConsumeInstallToken: creates the first admin; audited either way.
    pub async fn consume_install_token(
        &self,
        peer: &str,
        presented: &str,
        email: &str,
        name: &str,
    ) -> Result<FirstAdmin> {
        let result = self.install.consume(presented, email, name).await;
        metrics::event(
            INSTALL,
            if result.is_ok() {
                "consumed"
            } else {
                "refused"
            },
        );
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::Unauthenticated(reason)) => reason,
            Err(Error::FailedPrecondition(_)) => "first admin exists",
            Err(Error::InvalidArgument { .. }) => "invalid argument",
            Err(_) => "error",
        };
        let credential_id = token::credential_id_of(presented).unwrap_or_default();
        let resource = match &result {
            Ok(admin) => format!("user:{}", admin.user.id),
            Err(_) => String::new(),
        };
        let event = Event {
            action: "install_token.consume",
            resource: &resource,
            outcome,
        };
        match &result {
            Ok(admin) => {
                self.audit
                    .as_actor(&admin.user.email, &credential_id, peer, event)
                    .await
            }
            Err(_) => self.audit.failed_auth(&credential_id, peer, event).await,
        }
        result
    }

    /// `tessera install-token regenerate`: a fresh token, replacing any.
    pub async fn regenerate_install_token(&self, actor: &str) -> Result<Secret> {
        let token = self.install.regenerate().await?;
        self.audit_install_issue(actor, "", "", &token).await;
        Ok(token)
    }

    async fn audit_install_issue(
        &self,
        actor: &str,
        credential_id: &str,
        peer: &str,
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
