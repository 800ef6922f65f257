//! The credential-lifecycle RPCs as the tests call them, and users made
//! straight in the database for them.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Status;

use crate::install::insert_human;

/// CreateAccessToken named `name` lasting `ttl_seconds` (0: the default).
pub async fn create_access_token(
    client: &mut Client,
    name: &str,
    ttl_seconds: u32,
) -> Result<pb::CreateAccessTokenResponse, Status> {
    let request = pb::CreateAccessTokenRequest {
        name: name.to_owned(),
        ttl_seconds,
    };
    Ok(client.create_access_token(request).await?.into_inner())
}

/// ListCredentials.
pub async fn list_credentials(
    client: &mut Client,
    request: pb::ListCredentialsRequest,
) -> Result<pb::ListCredentialsResponse, Status> {
    Ok(client.list_credentials(request).await?.into_inner())
}

/// Every page of ListCredentials with `request`'s filters, `page_size` at
/// a time, in order.
pub async fn list_all(
    client: &mut Client,
    mut request: pb::ListCredentialsRequest,
) -> Result<Vec<pb::CredentialInfo>, Status> {
    let mut all = Vec::new();
    loop {
        let page = list_credentials(client, request.clone()).await?;
        all.extend(page.credentials);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        request.page_token = page.next_page_token;
    }
}

/// RevokeCredential of `credential_id`; the record.
pub async fn revoke_credential(
    client: &mut Client,
    credential_id: &str,
) -> Result<pb::CredentialInfo, Status> {
    let request = pb::RevokeCredentialRequest {
        credential_id: credential_id.to_owned(),
    };
    let response = client.revoke_credential(request).await?.into_inner();
    Ok(response
        .credential
        .expect("credential in a successful response"))
}

/// A human user `id` (not in `Admin`) with `email`, made in the database
/// with one access token that expires at `expires_at` (Unix ms; `None`:
/// never), as an operator could before invitations existed; the token.
pub async fn insert_user_with_token(
    conn: &DatabaseConnection,
    id: &str,
    email: &str,
    expires_at: Option<i64>,
) -> String {
    insert_human(conn, id, email).await;
    let secret = token::generate(TokenKind::UserAccess);
    let hash = token::sha256_hex(secret.expose());
    let credential_id = token::credential_id("usr", secret.expose());
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "INSERT INTO credentials (id, hash, kind, subject, name, created_at, created_by, \
         expires_at) VALUES ($1, $2, 'user_access', $3, 'seeded', 0, 'test', $4)",
        [
            credential_id.into(),
            hash.into(),
            id.into(),
            expires_at.into(),
        ],
    ))
    .await
    .expect("insert an access token");
    secret.expose().to_owned()
}
