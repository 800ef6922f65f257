//! Typed helpers for managing credentials: what an embedder calls instead
//! of building the messages (the generated methods stay available through
//! `Deref`).

use std::time::Duration;

use tonic::Status;

use crate::{Client, Secret, pb};

impl Client {
    /// CreateAccessToken: a new access token for the calling user, named
    /// `name`, lasting `ttl` (`Duration::ZERO`: the server's default;
    /// whole seconds, at most the server's maximum). The token comes back
    /// once, as a [`Secret`].
    pub async fn mint_access_token(
        &mut self,
        name: &str,
        ttl: Duration,
    ) -> Result<(Secret, pb::CredentialInfo), Status> {
        let ttl_seconds = u32::try_from(ttl.as_secs())
            .map_err(|_| Status::invalid_argument("ttl does not fit in 32 bits of seconds"))?;
        let request = pb::CreateAccessTokenRequest {
            name: name.to_owned(),
            ttl_seconds,
        };
        let response = self.create_access_token(request).await?.into_inner();
        let credential = response
            .credential
            .ok_or_else(|| Status::internal("the answer holds no credential"))?;
        Ok((Secret::new(response.access_token), credential))
    }

    /// ListCredentials with `filter`, every page: all the records the
    /// caller may see (`filter.page_token` is where it starts).
    pub async fn all_credentials(
        &mut self,
        mut filter: pb::ListCredentialsRequest,
    ) -> Result<Vec<pb::CredentialInfo>, Status> {
        let mut all = Vec::new();
        loop {
            let page = self.list_credentials(filter.clone()).await?.into_inner();
            all.extend(page.credentials);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            filter.page_token = page.next_page_token;
        }
    }

    /// RevokeCredential of `credential_id`: its record, with the time of
    /// the first revocation.
    pub async fn revoke(&mut self, credential_id: &str) -> Result<pb::CredentialInfo, Status> {
        let request = pb::RevokeCredentialRequest {
            credential_id: credential_id.to_owned(),
        };
        let response = self.revoke_credential(request).await?.into_inner();
        response
            .credential
            .ok_or_else(|| Status::internal("the answer holds no credential"))
    }
}
