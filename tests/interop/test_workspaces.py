"""ProvisionWorkspace, RegisterWorkspace and GetInboundSecret through grpcio."""

from __future__ import annotations

import grpc
import pytest

from support import SCHEDULER, field_violations, refused

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


@pytest.fixture(scope="module")
def platform(server, caller):
    return caller(server, SCHEDULER)


def provision(platform, workspace_id):
    return platform.ProvisionWorkspace(workspace_id=workspace_id, name=f"Workspace {workspace_id}")


def test_provision_register_and_read_the_secret_back(pb, server, caller, platform):
    provisioned = provision(platform, "ws-1")
    assert provisioned.workspace_id == "ws-1"
    assert provisioned.registration_token.startswith("tsr_wsr_")
    assert provisioned.platform_inbound_secret.startswith("tsr_wsi_")

    runtime = caller(server, provisioned.registration_token)
    first = runtime.RegisterWorkspace(workspace_id="ws-1", reissue_auth_token=False)
    assert first.HasField("auth_token"), "an auth token on first registration"
    assert first.auth_token.startswith("tsr_wsa_")
    assert first.HasField("platform_inbound_secret")
    assert first.platform_inbound_secret == provisioned.platform_inbound_secret
    assert first.HasField("registered_at")

    # Again, with the registration token or the auth token: same secret, no token.
    for token in (provisioned.registration_token, first.auth_token):
        again = caller(server, token).RegisterWorkspace(workspace_id="ws-1")
        assert not again.HasField("auth_token")
        assert again.platform_inbound_secret == provisioned.platform_inbound_secret

    principal = platform.VerifyBearer(token=first.auth_token).principal
    assert principal.kind == pb.msg.PRINCIPAL_KIND_WORKSPACE
    assert principal.subject == "ws-1"
    # Registration tokens and inbound secrets are not bearers.
    for not_bearer in (provisioned.registration_token, provisioned.platform_inbound_secret):
        refused(UNAUTHENTICATED, platform.VerifyBearer, token=not_bearer)

    secret = platform.GetInboundSecret(workspace_id="ws-1")
    assert secret.HasField("platform_inbound_secret")
    assert secret.platform_inbound_secret == provisioned.platform_inbound_secret


def test_reissue_rotates_the_auth_token(server, caller, platform):
    provisioned = provision(platform, "ws-rotate")
    registration = caller(server, provisioned.registration_token)
    old = registration.RegisterWorkspace(workspace_id="ws-rotate").auth_token
    rotated = registration.RegisterWorkspace(workspace_id="ws-rotate", reissue_auth_token=True)
    assert rotated.HasField("auth_token")
    new = rotated.auth_token
    assert new != old
    refused(UNAUTHENTICATED, platform.VerifyBearer, token=old)
    refused(UNAUTHENTICATED, caller(server, old).RegisterWorkspace, workspace_id="ws-rotate")
    assert platform.VerifyBearer(token=new).principal.subject == "ws-rotate"


def test_duplicate_provisioning_is_already_exists(platform):
    provision(platform, "ws-dup")
    refusal = refused(
        grpc.StatusCode.ALREADY_EXISTS,
        platform.ProvisionWorkspace,
        workspace_id="ws-dup",
        name="Again",
    )
    assert "ws-dup" in refusal.message


@pytest.mark.parametrize("workspace_id", ["", "bad id", "-leading-dash", "é", "x" * 1000, "a/b"])
def test_invalid_workspace_ids_carry_bad_request(platform, workspace_id):
    refusal = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        platform.ProvisionWorkspace,
        workspace_id=workspace_id,
        name="n",
    )
    assert field_violations(refusal) == ["workspace_id"]


def test_invalid_workspace_name_carries_bad_request(platform):
    refusal = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        platform.ProvisionWorkspace,
        workspace_id="ws-name",
        name="bell\a",
    )
    assert field_violations(refusal) == ["name"]


def test_unknown_workspace_secret_is_not_found(platform):
    refused(grpc.StatusCode.NOT_FOUND, platform.GetInboundSecret, workspace_id="ws-never-provisioned")


def test_a_workspace_token_cannot_register_another_workspace(server, caller, platform):
    a = provision(platform, "ws-a")
    provision(platform, "ws-b")
    a_auth = caller(server, a.registration_token).RegisterWorkspace(workspace_id="ws-a").auth_token
    for token in (a.registration_token, a_auth):
        refused(
            PERMISSION_DENIED,
            caller(server, token).RegisterWorkspace,
            workspace_id="ws-b",
            reissue_auth_token=True,
        )
    # Neither a service secret (a known caller without the right) nor
    # garbage registers a workspace.
    refused(PERMISSION_DENIED, caller(server, SCHEDULER).RegisterWorkspace, workspace_id="ws-a")
    for token in ("garbage", None):
        refused(UNAUTHENTICATED, caller(server, token).RegisterWorkspace, workspace_id="ws-a")


def test_workspace_tokens_are_not_admins(server, caller, platform):
    provisioned = provision(platform, "ws-plain")
    auth = caller(server, provisioned.registration_token).RegisterWorkspace(workspace_id="ws-plain").auth_token
    workspace = caller(server, auth)
    refused(PERMISSION_DENIED, workspace.ProvisionWorkspace, workspace_id="ws-evil", name="x")
    refused(PERMISSION_DENIED, workspace.GetInboundSecret, workspace_id="ws-plain")
    refused(PERMISSION_DENIED, workspace.VerifyBearer, token=auth)
    for rpc in ("ProvisionWorkspace", "GetInboundSecret"):
        refused(UNAUTHENTICATED, getattr(caller(server, None), rpc), workspace_id="ws-plain")


def test_inbound_secret_rotation_switches_after_confirmation(server, caller, platform):
    provisioned = provision(platform, "ws-inbound")
    old = provisioned.platform_inbound_secret
    runtime = caller(server, provisioned.registration_token)
    runtime.RegisterWorkspace(workspace_id="ws-inbound")
    read = platform.GetInboundSecret(workspace_id="ws-inbound")
    assert read.HasField("refresh_before")
    assert read.inbound_secret_id.startswith("wsi_")

    started = platform.RotateInboundSecret(workspace_id="ws-inbound")
    assert started.next_inbound_secret_id.startswith("wsi_")
    learned = runtime.RegisterWorkspace(workspace_id="ws-inbound")
    assert learned.HasField("next_platform_inbound_secret")
    assert learned.next_inbound_secret_id == started.next_inbound_secret_id
    assert learned.HasField("register_again_within")
    assert platform.GetInboundSecret(workspace_id="ws-inbound").platform_inbound_secret == old

    confirmed = runtime.RegisterWorkspace(
        workspace_id="ws-inbound", held_inbound_secret_id=started.next_inbound_secret_id
    )
    assert confirmed.platform_inbound_secret == learned.next_platform_inbound_secret
    assert confirmed.previous_platform_inbound_secret == old
    assert confirmed.HasField("previous_valid_until")
    switched = platform.GetInboundSecret(workspace_id="ws-inbound")
    assert switched.platform_inbound_secret == learned.next_platform_inbound_secret
    refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        platform.RotateInboundSecret,
        workspace_id="ws-inbound",
    )


def test_reissue_registration_token_and_delete(server, caller, platform):
    provisioned = provision(platform, "ws-leak")
    auth = caller(server, provisioned.registration_token).RegisterWorkspace(
        workspace_id="ws-leak"
    ).auth_token
    reissued = platform.ReissueRegistrationToken(workspace_id="ws-leak", revoke_auth_tokens=True)
    assert reissued.registration_token.startswith("tsr_wsr_")
    assert reissued.revoked == 2
    refused(
        UNAUTHENTICATED,
        caller(server, provisioned.registration_token).RegisterWorkspace,
        workspace_id="ws-leak",
    )
    refused(UNAUTHENTICATED, platform.VerifyBearer, token=auth)

    fresh = caller(server, reissued.registration_token).RegisterWorkspace(workspace_id="ws-leak")
    assert platform.DeleteWorkspace(workspace_id="ws-leak").revoked == 2
    refused(UNAUTHENTICATED, platform.VerifyBearer, token=fresh.auth_token)
    refused(grpc.StatusCode.NOT_FOUND, platform.GetInboundSecret, workspace_id="ws-leak")
    refused(grpc.StatusCode.NOT_FOUND, platform.DeleteWorkspace, workspace_id="ws-leak")
