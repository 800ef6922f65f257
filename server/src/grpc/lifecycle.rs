//! The credential-lifecycle RPCs, called from `credentials.rs`: decode,
//! call [`crate::domain::Credentials`], encode.

use tessera_client::pb;
use tonic::{Request, Response, Status};

use super::convert::{count, credential_kind, millis_of, timestamp};
use crate::domain::{AuditFilter, Caller, CredentialFilter, Invitation, InviteRedemption, Tessera};

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

/// RevokeSubject.
pub(super) async fn revoke_subject(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::RevokeSubjectRequest>,
) -> Reply<pb::RevokeSubjectResponse> {
    let body = request.get_ref();
    let revoked = app
        .users
        .revoke_subject(&caller, &body.subject, body.disable)
        .await?;
    Ok(Response::new(pb::RevokeSubjectResponse {
        revoked: count(revoked),
    }))
}

/// InviteUser.
pub(super) async fn invite_user(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::InviteUserRequest>,
) -> Reply<pb::InviteUserResponse> {
    let body = request.into_inner();
    let invitation = Invitation {
        email: body.email,
        display_name: body.display_name,
        groups: body.groups,
        ttl_seconds: body.ttl_seconds,
    };
    let invited = app.users.invite(&caller, &invitation).await?;
    Ok(Response::new(pb::InviteUserResponse {
        invite_token: invited.invite.expose().to_owned(),
        user: Some(invited.user.into()),
        expires_at: Some(timestamp(invited.expires_at)),
    }))
}

/// AcceptInvite: anonymous; the invite in the message is the credential.
pub(super) async fn accept_invite(
    app: &Tessera,
    request: Request<pb::AcceptInviteRequest>,
) -> Reply<pb::AcceptInviteResponse> {
    let (peer, charge) = super::credentials::redeemer(&request);
    let audit =
        |err: &crate::domain::Error| super::credentials::audit_refusal(charge.as_ref(), err);
    let body = request.get_ref();
    let redemption = InviteRedemption {
        peer,
        presented: &body.invite_token,
        token_name: &body.token_name,
        audit_refusal: &audit,
    };
    let (user, token) = app.users.accept(redemption).await?;
    Ok(Response::new(pb::AcceptInviteResponse {
        user: Some(user.into()),
        access_token: token.expose().to_owned(),
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
