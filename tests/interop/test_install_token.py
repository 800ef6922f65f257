"""The first-admin install token: GetInstallTokenStatus, IssueInstallToken and
ConsumeInstallToken with the token from the boot banner, then what the first
administrator may do."""

from __future__ import annotations

import grpc
import pytest

from support import SCHEDULER, field_violations, refused

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

ADMIN_EMAIL = "ada@example.com"
ADMIN_NAME = "Ada Lovelace"


def test_issue_install_token_replaces_a_pending_one(pb, start_server, caller):
    server = start_server()
    [boot] = server.wait_for_banners(1)
    assert boot.startswith("tsr_ins_")
    anonymous = caller(server, None)
    service = caller(server, SCHEDULER)

    status = anonymous.GetInstallTokenStatus()
    assert status.state == pb.msg.INSTALL_TOKEN_STATE_PENDING
    assert status.HasField("issued_at")
    assert not status.HasField("consumed_at")

    # Admin only: no credentials, or an install token as bearer, are refused.
    refused(UNAUTHENTICATED, anonymous.IssueInstallToken, force=True)
    refused(UNAUTHENTICATED, caller(server, boot).IssueInstallToken, force=True)

    # force=false while one is pending: nothing minted.
    kept = service.IssueInstallToken(force=False)
    assert not kept.HasField("install_token")
    assert kept.state == pb.msg.INSTALL_TOKEN_STATE_PENDING
    assert kept.issued_at == status.issued_at

    # force=true mints a fresh one; a service never gets it back, the
    # server prints it on its standard output for the operator.
    forced = service.IssueInstallToken(force=True)
    assert not forced.HasField("install_token"), "an install token was returned to a service"
    assert forced.state == pb.msg.INSTALL_TOKEN_STATE_PENDING
    tokens = server.wait_for_banners(2)
    assert len(tokens) == 2, server.stdout
    fresh = tokens[1]
    assert fresh.startswith("tsr_ins_") and fresh != boot

    refused(
        UNAUTHENTICATED,
        anonymous.ConsumeInstallToken,
        install_token=boot,
        admin_email=ADMIN_EMAIL,
        admin_name=ADMIN_NAME,
    )
    admin = anonymous.ConsumeInstallToken(install_token=fresh, admin_email=ADMIN_EMAIL, admin_name=ADMIN_NAME)
    assert admin.admin_token.startswith("tsr_usr_")
    for token in (boot, fresh, admin.admin_token):
        assert token not in server.stderr, "a token reached the logs"


@pytest.fixture(scope="module")
def first_admin(pb, start_server, caller):
    """A server whose banner token was traded for the first administrator."""
    server = start_server()
    [token] = server.wait_for_banners(1)
    anonymous = caller(server, None)
    admin = anonymous.ConsumeInstallToken(install_token=token, admin_email=ADMIN_EMAIL, admin_name=ADMIN_NAME)
    return server, token, admin


@pytest.fixture(scope="module")
def pending(start_server):
    """A server whose boot token is pending (and stays so)."""
    return start_server()


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "tsr_ins_", "tsr_ins_" + "1" * 49, SCHEDULER, "x" * 100_000],
)
def test_wrong_install_tokens_are_unauthenticated(pb, pending, caller, token):
    anonymous = caller(pending, None)
    refused(
        UNAUTHENTICATED,
        anonymous.ConsumeInstallToken,
        install_token=token,
        admin_email=ADMIN_EMAIL,
        admin_name=ADMIN_NAME,
    )
    assert anonymous.GetInstallTokenStatus().state == pb.msg.INSTALL_TOKEN_STATE_PENDING


def test_invalid_admin_details_are_invalid_argument_and_keep_the_token(pb, start_server, caller):
    server = start_server()
    [token] = server.wait_for_banners(1)
    anonymous = caller(server, None)
    for email, name, field in [
        ("", ADMIN_NAME, "admin_email"),
        ("not-an-email", ADMIN_NAME, "admin_email"),
        ("someone@system.local", ADMIN_NAME, "admin_email"),
        (ADMIN_EMAIL, "n" * 300, "admin_name"),
        (ADMIN_EMAIL, "bell\a", "admin_name"),
    ]:
        refusal = refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            anonymous.ConsumeInstallToken,
            install_token=token,
            admin_email=email,
            admin_name=name,
        )
        assert field_violations(refusal) == [field], (email, name)
    assert anonymous.GetInstallTokenStatus().state == pb.msg.INSTALL_TOKEN_STATE_PENDING
    admin = anonymous.ConsumeInstallToken(install_token=token, admin_email=ADMIN_EMAIL, admin_name=ADMIN_NAME)
    assert admin.admin_token.startswith("tsr_usr_")


def test_consume_creates_the_first_admin(pb, first_admin):
    _, _, admin = first_admin
    principal = admin.admin
    assert principal.kind == pb.msg.PRINCIPAL_KIND_USER
    assert principal.email == ADMIN_EMAIL
    assert principal.display_name == ADMIN_NAME
    assert "Admin" in principal.groups
    assert principal.subject
    assert admin.admin_token.startswith("tsr_usr_")
    assert admin.admin_token not in str(principal)


def test_status_is_consumed_and_the_token_works_once(pb, first_admin, caller):
    server, token, _ = first_admin
    anonymous = caller(server, None)
    status = anonymous.GetInstallTokenStatus()
    assert status.state == pb.msg.INSTALL_TOKEN_STATE_CONSUMED
    assert status.HasField("issued_at") and status.HasField("consumed_at")
    assert status.consumed_at.seconds >= status.issued_at.seconds
    for email in (ADMIN_EMAIL, "eve@example.com"):
        refused(
            FAILED_PRECONDITION,
            anonymous.ConsumeInstallToken,
            install_token=token,
            admin_email=email,
            admin_name="Eve",
        )
    # Once a human exists no install token is issued again.
    refused(FAILED_PRECONDITION, caller(server, SCHEDULER).IssueInstallToken, force=True)


def test_the_admin_token_is_a_user_bearer(pb, first_admin, caller):
    server, _, admin = first_admin
    principal = caller(server, SCHEDULER).VerifyBearer(token=admin.admin_token).principal
    assert principal.kind == pb.msg.PRINCIPAL_KIND_USER
    assert principal.email == ADMIN_EMAIL
    assert principal.subject == admin.admin.subject


def test_what_the_admin_user_may_and_may_not_call(pb, first_admin, caller):
    server, _, admin = first_admin
    user = caller(server, admin.admin_token)
    own = admin.admin.subject
    # MintTicket: for its own user_id only.
    ticket = user.MintTicket(user_id=own, provider="local", purpose="", ttl_seconds=0).ticket
    assert ticket.startswith("tsr_tkt_")
    refused(PERMISSION_DENIED, user.MintTicket, user_id=own + "-other", provider="local")
    # Service-only RPCs.
    refused(PERMISSION_DENIED, user.VerifyBearer, token=admin.admin_token)
    refused(PERMISSION_DENIED, user.ConsumeTicket, ticket=ticket, purpose="")
    refused(PERMISSION_DENIED, user.GetInternalCredential)
    # Admin RPCs are open to it.
    provisioned = user.ProvisionWorkspace(workspace_id="ws-by-admin", name="By the admin")
    assert provisioned.registration_token.startswith("tsr_wsr_")
    secret = user.GetInboundSecret(workspace_id="ws-by-admin")
    assert secret.platform_inbound_secret == provisioned.platform_inbound_secret
    # The ticket the user minted is a real one.
    identity = caller(server, SCHEDULER).ConsumeTicket(ticket=ticket, purpose="").identity
    assert (identity.user_id, identity.provider) == (own, "local")


def test_anonymous_calls_are_throttled_with_retry_info(start_server, caller):
    server = start_server({"TESSERA_ANONYMOUS_RATE_PER_MINUTE": "3"})
    anonymous = caller(server, None)
    for _ in range(3):
        anonymous.GetInstallTokenStatus()
    refusal = refused(grpc.StatusCode.RESOURCE_EXHAUSTED, anonymous.GetInstallTokenStatus)
    retry = refusal.retry_info()
    assert retry is not None, f"no google.rpc.RetryInfo in {refusal!r}"
    delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    assert 0 < delay <= 60
    # Authenticated calls are not spent from the anonymous budget.
    service = caller(server, SCHEDULER)
    for _ in range(5):
        service.VerifyBearer(token=SCHEDULER)
