//! The credential-lifecycle RPCs as the tests call them, and users made
//! straight in the database for them.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Status;

use crate::install::{bootstrap_admin, insert_human};
use crate::{ServerOptions, TestDatabase, TestServer};

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

/// InviteUser of `email` into `groups`, the invite lasting `ttl_seconds`
/// (0: the default).
pub async fn invite_user(
    client: &mut Client,
    email: &str,
    groups: &[&str],
    ttl_seconds: u32,
) -> Result<pb::InviteUserResponse, Status> {
    let request = pb::InviteUserRequest {
        email: email.to_owned(),
        display_name: String::new(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ttl_seconds,
    };
    Ok(client.invite_user(request).await?.into_inner())
}

/// AcceptInvite of `invite_token`, its access token named `token_name`.
pub async fn accept_invite(
    client: &mut Client,
    invite_token: &str,
    token_name: &str,
) -> Result<pb::AcceptInviteResponse, Status> {
    let request = pb::AcceptInviteRequest {
        invite_token: invite_token.to_owned(),
        token_name: token_name.to_owned(),
    };
    Ok(client.accept_invite(request).await?.into_inner())
}

/// RevokeSubject of `subject`; how many credentials it revoked.
pub async fn revoke_subject(
    client: &mut Client,
    subject: &str,
    disable: bool,
) -> Result<u32, Status> {
    let request = pb::RevokeSubjectRequest {
        subject: subject.to_owned(),
        disable,
    };
    Ok(client.revoke_subject(request).await?.into_inner().revoked)
}

/// A running server whose first admin, Ada, exists: for the tests of the
/// credential lifecycle.
pub struct WithAdmin {
    /// The database's URL.
    pub db_url: String,
    /// The server.
    pub server: TestServer,
    /// Ada's access token.
    pub admin_token: String,
    /// Ada's user id.
    pub admin_subject: String,
}

impl WithAdmin {
    /// Starts a server on `db` with `options` and makes Ada its first admin.
    pub async fn start(db: &TestDatabase, options: ServerOptions) -> Self {
        let server = TestServer::start(db, options).await;
        let admin = bootstrap_admin(&server).await;
        WithAdmin {
            db_url: db.url().to_owned(),
            admin_subject: admin.admin.expect("admin").subject,
            admin_token: admin.admin_token,
            server,
        }
    }

    /// A client calling as Ada.
    pub async fn admin(&self) -> Client {
        self.server.client(Some(&self.admin_token)).await
    }

    /// A client without credentials.
    pub async fn anonymous(&self) -> Client {
        self.server.client(None).await
    }

    /// A direct connection to the database.
    pub async fn conn(&self) -> DatabaseConnection {
        sea_orm::Database::connect(&self.db_url)
            .await
            .expect("connect")
    }

    /// `email` invited by Ada into `groups`, and the invite redeemed: its
    /// user id and access token.
    pub async fn user(&self, email: &str, groups: &[&str]) -> (String, String) {
        let invited = invite_user(&mut self.admin().await, email, groups, 0)
            .await
            .expect("invite");
        let accepted = accept_invite(&mut self.anonymous().await, &invited.invite_token, "first")
            .await
            .expect("accept");
        (accepted.user.expect("user").subject, accepted.access_token)
    }
}
