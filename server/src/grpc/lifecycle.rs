//! The credential-lifecycle RPCs, called from `credentials.rs`: decode,
//! call [`crate::domain::Credentials`], encode.

use tessera_client::pb;
use tonic::{Request, Response, Status};

use super::convert::{credential_kind, millis_of};
use crate::domain::{AuditFilter, Caller, CredentialFilter, Tessera};

type Reply<T> = Result<Response<T>, Status>;

/// CreateAccessToken.
pub(super) async fn create_access_token(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::CreateAccessTokenRequest>,
) -> Reply<pb::CreateAccessTokenResponse> {
    let body = request.get_ref();
    let credentials = &app.credentials;
    let created = credentials.create_access_token(&caller, &body.name, body.ttl_seconds);
    let (token, record) = created.await?;
    Ok(Response::new(pb::CreateAccessTokenResponse {
        access_token: token.expose().to_owned(),
        credential: Some(record.into()),
    }))
}

/// ListCredentials.
pub(super) async fn list_credentials(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::ListCredentialsRequest>,
) -> Reply<pb::ListCredentialsResponse> {
    let body = request.into_inner();
    let filter = CredentialFilter {
        kind: credential_kind(body.kind)?,
        subject: body.subject,
        include_revoked: body.include_revoked,
        include_expired: body.include_expired,
        page_size: body.page_size,
        page_token: body.page_token,
    };
    let page = app.credentials.list(&caller, &filter).await?;
    Ok(Response::new(pb::ListCredentialsResponse {
        credentials: page.credentials.into_iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// RevokeCredential.
pub(super) async fn revoke_credential(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::RevokeCredentialRequest>,
) -> Reply<pb::RevokeCredentialResponse> {
    let id = &request.get_ref().credential_id;
    let record = app.credentials.revoke(&caller, id).await?;
    Ok(Response::new(pb::RevokeCredentialResponse {
        credential: Some(record.into()),
    }))
}

/// ListAuditEvents.
pub(super) async fn list_audit_events(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::ListAuditEventsRequest>,
) -> Reply<pb::ListAuditEventsResponse> {
    let body = request.into_inner();
    let filter = AuditFilter {
        since: body.since.map(|t| millis_of("since", &t)).transpose()?,
        until: body.until.map(|t| millis_of("until", &t)).transpose()?,
        actor: body.actor,
        credential_id: body.credential_id,
        action: body.action,
        page_size: body.page_size,
        page_token: body.page_token,
    };
    let page = app.audit_events.list(&caller, &filter).await?;
    Ok(Response::new(pb::ListAuditEventsResponse {
        events: page.events.into_iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}
