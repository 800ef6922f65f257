"""The credential lifecycle from Python grpcio: access tokens created,
listed page by page and revoked; users invited, an invite redeemed once;
everything of a user revoked; a service refused wherever a user credential
would come out of the call."""

from __future__ import annotations

import grpc
import pytest

from support import SCHEDULER, refused

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def admin(start_server, caller):
    """A server and its first administrator's access token."""
    server = start_server()
    [token] = server.wait_for_banners(1)
    made = caller(server, None).ConsumeInstallToken(
        install_token=token, admin_email="ada@example.com", admin_name="Ada"
    )
    return server, made.admin_token


def test_access_tokens_are_created_listed_and_revoked(pb, admin, caller):
    server, admin_token = admin
    ada = caller(server, admin_token)
    created = ada.CreateAccessToken(name="ci", ttl_seconds=3600)
    assert created.access_token.startswith("tsr_usr_")
    info = created.credential
    assert info.kind == pb.msg.CREDENTIAL_KIND_USER_ACCESS
    assert info.name == "ci"
    assert info.expires_at.seconds - info.created_at.seconds == 3600

    seen = []
    page_token = ""
    while True:
        page = ada.ListCredentials(page_size=1, page_token=page_token)
        seen.extend(c.credential_id for c in page.credentials)
        if not page.next_page_token:
            break
        page_token = page.next_page_token
    assert info.credential_id in seen
    assert len(seen) == len(set(seen))
    refused(INVALID_ARGUMENT, ada.ListCredentials, page_token="not-a-page-token")

    revoked = ada.RevokeCredential(credential_id=info.credential_id)
    assert revoked.credential.HasField("revoked_at")
    again = ada.RevokeCredential(credential_id=info.credential_id)
    assert again.credential.revoked_at == revoked.credential.revoked_at
    refused(UNAUTHENTICATED, caller(server, created.access_token).ListCredentials)
    refused(NOT_FOUND, ada.RevokeCredential, credential_id="usr_0000000000000000")
    refused(INVALID_ARGUMENT, ada.CreateAccessToken, name="long", ttl_seconds=400 * 86400)
    assert created.access_token not in server.stderr


def test_an_invite_is_redeemed_once_and_a_service_never_invites(pb, admin, caller):
    server, admin_token = admin
    ada = caller(server, admin_token)
    service = caller(server, SCHEDULER)
    denied = refused(PERMISSION_DENIED, service.InviteUser, email="eve@example.com")
    assert "service never" in denied.message
    refused(PERMISSION_DENIED, service.CreateAccessToken, name="svc")

    invited = ada.InviteUser(email="Bob@Example.com", groups=["Ops"])
    assert invited.invite_token.startswith("tsr_inv_")
    assert invited.user.email == "bob@example.com"
    anonymous = caller(server, None)
    accepted = anonymous.AcceptInvite(invite_token=invited.invite_token, token_name="laptop")
    assert accepted.access_token.startswith("tsr_usr_")
    assert accepted.user.subject == invited.user.subject
    refused(UNAUTHENTICATED, anonymous.AcceptInvite, invite_token=invited.invite_token)
    verified = service.VerifyBearer(token=accepted.access_token)
    assert verified.principal.kind == pb.msg.PRINCIPAL_KIND_USER
    assert list(verified.principal.groups) == ["Ops"]

    assert service.RevokeSubject(subject=invited.user.subject).revoked == 1
    refused(UNAUTHENTICATED, service.VerifyBearer, token=accepted.access_token)
    admin_subject = service.VerifyBearer(token=admin_token).principal.subject
    refused(FAILED_PRECONDITION, service.RevokeSubject, subject=admin_subject)
    for token in (invited.invite_token, accepted.access_token):
        assert token not in server.stderr
