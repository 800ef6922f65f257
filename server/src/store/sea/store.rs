//! [`Store`] for [`SeaStore`]: each method delegates to the queries beside
//! their tables, through the gate or the group commit.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> Result<()> {
        self.gated(ping::ping(&self.db, &self.clock)).await
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    async fn ensure_user(&self, user: &NewUser, groups: &[&str]) -> Result<Option<UserRecord>> {
        self.gated(users::ensure_user(&self.db, user, groups)).await
    }

    async fn insert_ticket(
        &self,
        ticket: &TicketRecord,
        audit: Option<&AuditRecord>,
    ) -> Result<()> {
        let write = Write::Ticket(ticket.clone(), audit.cloned());
        self.write(write).await.map(drop)
    }

    async fn take_ticket(&self, take: &TicketTake) -> Result<Verdict> {
        match self.write(Write::Take(take.clone())).await? {
            Written::Taken(verdict) => Ok(verdict),
            Written::Stored => Err(StoreError::Db("a take gave no verdict".to_owned())),
        }
    }

    async fn delete_expired_tickets(&self, now: i64, limit: u64) -> Result<u64> {
        self.gated(tickets::delete_expired_tickets(&self.db, now, limit))
            .await
    }

    async fn delete_audit_before(&self, cutoff: i64, limit: u64) -> Result<u64> {
        self.gated(audit::delete_audit_before(&self.db, cutoff, limit))
            .await
    }

    async fn upsert_internal_credential(&self, record: &InternalCredentialRecord) -> Result<()> {
        let upsert = internal_credentials::upsert_internal_credential(&self.db, record);
        self.gated(upsert).await
    }

    async fn find_internal_credential(
        &self,
        hash: &str,
    ) -> Result<Option<InternalCredentialRecord>> {
        let find = internal_credentials::find_internal_credential(&self.db, hash);
        self.gated(find).await
    }

    async fn revoke_internal_credential(
        &self,
        id_hex: &str,
        now: i64,
    ) -> Result<Option<InternalCredentialRecord>> {
        let revoke = internal_credentials::revoke_internal_credential(&self.db, id_hex, now);
        self.gated(revoke).await
    }

    async fn delete_internal_credential(&self, hash: &str) -> Result<()> {
        let delete = internal_credentials::delete_internal_credential(&self.db, hash);
        self.gated(delete).await
    }

    async fn delete_stale_internal_credentials(&self, cutoff: i64) -> Result<u64> {
        let delete = internal_credentials::delete_stale_internal_credentials(&self.db, cutoff);
        self.gated(delete).await
    }

    async fn any_human_user(&self) -> Result<bool> {
        self.gated(users::any_human_user(&self.db)).await
    }

    async fn user_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(UserRecord, CredentialState)>> {
        self.lookups.user(token_hash).await
    }

    async fn revoke_subject(
        &self,
        subject: &str,
        now: i64,
        disable: bool,
        keep_admins_of: &str,
    ) -> Result<SubjectRevoked> {
        let revoke = revocation::revoke_subject(&self.db, subject, now, disable, keep_admins_of);
        self.gated(revoke).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.gated(invites::user_by_email(&self.db, email)).await
    }

    async fn insert_user_credential(
        &self,
        token: &CredentialRecord,
        minted_with: Option<&str>,
    ) -> Result<bool> {
        let insert = invites::insert_user_credential(&self.db, token, minted_with);
        self.gated(insert).await
    }

    async fn enable_user(&self, id: &str) -> Result<bool> {
        self.gated(invites::enable_user(&self.db, id)).await
    }

    async fn invite_user(
        &self,
        user: &NewUser,
        groups: &[&str],
        invite: &CredentialRecord,
    ) -> Result<bool> {
        self.gated(invites::invite_user(&self.db, user, groups, invite))
            .await
    }

    async fn redeem_invite(
        &self,
        invite_hash: &str,
        now: i64,
        token: &CredentialRecord,
        admin_group: &str,
    ) -> Result<Redemption> {
        let redeem = invites::redeem_invite(&self.db, invite_hash, now, token, admin_group);
        self.gated(redeem).await
    }

    async fn install_token(&self) -> Result<Option<InstallTokenRecord>> {
        self.gated(users::install_token(&self.db)).await
    }

    async fn insert_install_token(&self, hash: &str, issued_at: i64) -> Result<bool> {
        self.gated(users::insert_install_token(&self.db, hash, issued_at))
            .await
    }

    async fn replace_install_token(&self, hash: &str, issued_at: i64) -> Result<bool> {
        self.gated(users::replace_install_token(&self.db, hash, issued_at))
            .await
    }

    async fn consume_install_token(
        &self,
        hash: &str,
        now: i64,
        admin: &NewAdmin,
        groups: &[&str],
    ) -> Result<InstallOutcome> {
        let consume = users::consume_install_token(&self.db, hash, now, admin, groups);
        self.gated(consume).await
    }

    fn pool_usage(&self) -> Option<(u32, usize)> {
        // The pool getters panic on the other backend: ask which it is first.
        match self.db.get_database_backend() {
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            _ => None,
        }
    }

    async fn add_auth_failures(&self, failures: &[(String, u32)]) -> Result<Vec<FailureTally>> {
        self.gated(auth_failures::add_auth_failures(&self.db, failures))
            .await
    }

    async fn delete_stale_auth_failures(&self, limit: u64) -> Result<u64> {
        self.gated(auth_failures::delete_stale_auth_failures(&self.db, limit))
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.write(Write::Audit(record.clone())).await.map(drop)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.gated(audit::list(&self.db, query)).await
    }
}
