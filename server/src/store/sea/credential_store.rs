//! [`CredentialStore`] for [`SeaStore`]: the records of issued
//! credentials (`credentials.rs`), their revocation (`revocation.rs`) and
//! upkeep (`credential_upkeep.rs`).

use async_trait::async_trait;
use tessera_client::token::TokenKind;

use super::{SeaStore, credential_upkeep, credentials, revocation, service_secret_uses};
use crate::store::{
    CredentialKind, CredentialQuery, CredentialRecord, CredentialStore, Result, Revocation,
};

#[async_trait]
impl CredentialStore for SeaStore {
    async fn insert_credential(&self, credential: &CredentialRecord) -> Result<()> {
        self.gated(credentials::insert(&self.db, credential)).await
    }

    async fn credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        self.gated(credentials::by_id(&self.db, id)).await
    }

    async fn credential_by_hash(&self, hash: &str) -> Result<Option<CredentialRecord>> {
        self.gated(credentials::by_hash(&self.db, hash)).await
    }

    async fn list_credentials(&self, query: &CredentialQuery) -> Result<Vec<CredentialRecord>> {
        self.gated(credentials::list(&self.db, query)).await
    }

    async fn revoke_credential(
        &self,
        id: &str,
        now: i64,
        keep_admins_of: Option<&str>,
    ) -> Result<Revocation> {
        let revoke = revocation::revoke(&self.db, id, now, keep_admins_of);
        self.gated(revoke).await
    }

    async fn service_secret_last_used(&self, ids: &[String]) -> Result<Vec<(String, i64)>> {
        self.gated(service_secret_uses::last_used(&self.db, ids))
            .await
    }

    async fn record_last_used(&self, uses: &[(String, i64)]) -> Result<u64> {
        // Service secrets are configuration, with no record to update.
        let service = format!("{}_", TokenKind::Service.tag());
        let (services, issued): (Vec<_>, Vec<_>) = uses
            .iter()
            .cloned()
            .partition(|(id, _)| id.starts_with(&service));
        let mut changed = self
            .gated(credential_upkeep::record_last_used(&self.db, &issued))
            .await?;
        if !services.is_empty() {
            changed += self
                .gated(service_secret_uses::record(&self.db, &services))
                .await?;
        }
        Ok(changed)
    }

    async fn delete_credentials_ended_before(&self, cutoff: i64, limit: u64) -> Result<u64> {
        let delete = credential_upkeep::delete_ended_before(&self.db, cutoff, limit);
        self.gated(delete).await
    }

    async fn count_expiring_credentials(
        &self,
        now: i64,
        until: i64,
    ) -> Result<Vec<(CredentialKind, u64)>> {
        let count = credential_upkeep::count_expiring(&self.db, now, until);
        self.gated(count).await
    }
}
