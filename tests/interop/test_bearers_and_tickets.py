"""VerifyBearer, MintTicket, ConsumeTicket and GetInternalCredential through
grpcio stubs generated from our proto, with error details decoded by
grpcio-status."""

from __future__ import annotations

import time

import grpc
import pytest

from support import (
    SCHEDULER,
    assert_ticket_refusal,
    field_violations,
    refused,
    service_secret,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT

DEPLOYER_CURRENT = service_secret("deployer-current")
DEPLOYER_NEXT = service_secret("deployer-next")


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(
        {
            # Two secrets for one name: rotation without a window.
            "TESSERA_SERVICE_TOKEN_DEPLOYER": f" {DEPLOYER_CURRENT},{DEPLOYER_NEXT} ",
            # Too short: disabled with a warning.
            "TESSERA_SERVICE_TOKEN_SHORT": "too-short",
            # No reaper pass during the module: expiry is seen as TICKET_EXPIRED.
            "TESSERA_REAPER_INTERVAL_MS": "600000",
        }
    )


@pytest.fixture(scope="module")
def service(server, caller):
    return caller(server, SCHEDULER)


@pytest.fixture(scope="module")
def anonymous(server, caller):
    return caller(server, None)


def mint(service, user_id="user-42", provider="github", purpose="", ttl_seconds=0):
    return service.MintTicket(user_id=user_id, provider=provider, purpose=purpose, ttl_seconds=ttl_seconds)


def timestamp(value) -> float:
    return value.seconds + value.nanos / 1e9


# --- VerifyBearer ------------------------------------------------------------


def test_verify_bearer_resolves_a_service_secret(pb, service):
    principal = service.VerifyBearer(token=SCHEDULER).principal
    assert principal.kind == pb.msg.PRINCIPAL_KIND_SERVICE
    assert principal.email == "scheduler@system.local"
    assert principal.display_name.lower() == "scheduler"
    assert "Admin" in principal.groups
    assert principal.credential_id, "a public credential id"
    assert SCHEDULER not in str(principal)


def test_both_secrets_of_a_rotating_service_verify(pb, server, caller, service):
    for secret in (DEPLOYER_CURRENT, DEPLOYER_NEXT):
        principal = service.VerifyBearer(token=secret).principal
        assert principal.kind == pb.msg.PRINCIPAL_KIND_SERVICE
        assert principal.email == "deployer@system.local"
        # Each works as a caller credential too.
        assert caller(server, secret).VerifyBearer(token=SCHEDULER).principal.email == "scheduler@system.local"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "too-short", "tsr_usr_", "Bearer " + SCHEDULER, SCHEDULER + "x", SCHEDULER.upper(), "x" * 100_000],
)
def test_verify_bearer_refuses_anything_else_as_unauthenticated(service, token):
    refusal = refused(UNAUTHENTICATED, service.VerifyBearer, token=token)
    assert len(refusal.message) < 200, "the input is not echoed"


@pytest.mark.parametrize(
    "credential",
    [None, "garbage", "too-short", "", SCHEDULER[:-1]],
)
def test_callers_without_valid_credentials_are_unauthenticated(server, caller, credential):
    refused(UNAUTHENTICATED, caller(server, credential).VerifyBearer, token=SCHEDULER)


def test_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused(pb, server):
    stub = pb.grpc.CredentialServiceStub(server.channel())
    request = pb.msg.VerifyBearerRequest(token=SCHEDULER)
    for header in (f"bearer {SCHEDULER}", f"BEARER {SCHEDULER}"):
        reply = stub.VerifyBearer(request, metadata=[("authorization", header)], timeout=10)
        assert reply.principal.email == "scheduler@system.local"
    for header in (SCHEDULER, f"Basic {SCHEDULER}", f"Bearer Bearer {SCHEDULER}", f"Bearer{SCHEDULER}"):
        with pytest.raises(grpc.RpcError) as info:
            stub.VerifyBearer(request, metadata=[("authorization", header)], timeout=10)
        assert info.value.code() == UNAUTHENTICATED, header


# --- MintTicket / ConsumeTicket ------------------------------------------------


def test_mint_and_consume_a_ticket_once(service):
    before = time.time()
    minted = mint(service, purpose="ws-upgrade")
    after = time.time()
    assert minted.ticket.startswith("tsr_tkt_")
    expires = timestamp(minted.expires_at)
    assert before + 29 <= expires <= after + 31, "default lifetime is 30 s"

    identity = service.ConsumeTicket(ticket=minted.ticket, purpose="ws-upgrade").identity
    assert (identity.user_id, identity.provider, identity.internal) == ("user-42", "github", False)
    assert before - 1 <= timestamp(identity.minted_at) <= after + 1

    replay = refused(UNAUTHENTICATED, service.ConsumeTicket, ticket=minted.ticket, purpose="ws-upgrade")
    assert_ticket_refusal(replay, "TICKET_REPLAYED", minted.ticket)


def test_tickets_are_consumed_on_any_connection(server, caller, service):
    ticket = mint(service, user_id="user-9").ticket
    other = caller(server, SCHEDULER)
    assert other.ConsumeTicket(ticket=ticket, purpose="").identity.user_id == "user-9"


def test_purpose_mismatch_is_reported_and_spends_the_ticket(service):
    ticket = mint(service, purpose="ws-upgrade").ticket
    wrong = refused(UNAUTHENTICATED, service.ConsumeTicket, ticket=ticket, purpose="other")
    assert_ticket_refusal(wrong, "TICKET_PURPOSE_MISMATCH", ticket)
    again = refused(UNAUTHENTICATED, service.ConsumeTicket, ticket=ticket, purpose="ws-upgrade")
    assert_ticket_refusal(again, "TICKET_REPLAYED", ticket)


def test_unknown_and_malformed_tickets(service):
    real = mint(service, user_id="user-m").ticket
    for bad in ("garbage", "", "tsr_tkt_", real[:-1], real + "x", real.replace("tsr_tkt_", "tsr_usr_", 1), " " + real):
        refusal = refused(UNAUTHENTICATED, service.ConsumeTicket, ticket=bad, purpose="")
        assert_ticket_refusal(refusal, "TICKET_MALFORMED", bad)
        assert_ticket_refusal(refusal, "TICKET_MALFORMED", real)
    # None of that spent the real ticket.
    assert service.ConsumeTicket(ticket=real, purpose="").identity.user_id == "user-m"


def test_expired_ticket_is_refused_with_ticket_expired(service):
    ticket = mint(service, user_id="user-e", ttl_seconds=1).ticket
    time.sleep(1.5)
    refusal = refused(UNAUTHENTICATED, service.ConsumeTicket, ticket=ticket, purpose="")
    assert_ticket_refusal(refusal, "TICKET_EXPIRED", ticket)


def test_ttl_within_the_maximum_is_honoured(service):
    before = time.time()
    minted = mint(service, ttl_seconds=300)
    assert before + 299 <= timestamp(minted.expires_at) <= time.time() + 301


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": ""}, "user_id"),
        ({"provider": ""}, "provider"),
        ({"ttl_seconds": 301}, "ttl_seconds"),
        ({"ttl_seconds": 4_294_967_295}, "ttl_seconds"),
        ({"user_id": "u" * 100_000}, "user_id"),
    ],
)
def test_invalid_mint_requests_carry_bad_request(service, fields, field):
    request = {"user_id": "user-1", "provider": "github", "purpose": "", "ttl_seconds": 0, **fields}
    refusal = refused(INVALID_ARGUMENT, service.MintTicket, **request)
    assert field_violations(refusal) == [field]
    assert len(refusal.message) < 300, "the input is not echoed"


def test_mint_and_consume_need_a_service(server, caller):
    anonymous = caller(server, None)
    refused(UNAUTHENTICATED, anonymous.MintTicket, user_id="u", provider="p")
    refused(UNAUTHENTICATED, anonymous.ConsumeTicket, ticket="tsr_tkt_x")
    refused(UNAUTHENTICATED, caller(server, "garbage").MintTicket, user_id="u", provider="p")


# --- GetInternalCredential -----------------------------------------------------


def test_internal_credential_is_stable_multi_use_and_not_consumed(pb, service):
    first = service.GetInternalCredential().credential
    assert first.startswith("tsr_int_")
    assert service.GetInternalCredential().credential == first, "stable for the process"
    for _ in range(3):
        identity = service.ConsumeTicket(ticket=first, purpose="").identity
        assert identity.internal is True
        assert (identity.user_id, identity.provider) == ("server-internal", "server-internal")
    principal = service.VerifyBearer(token=first).principal
    assert principal.kind == pb.msg.PRINCIPAL_KIND_INTERNAL


def test_internal_credential_needs_a_service(server, caller, service):
    refused(UNAUTHENTICATED, caller(server, None).GetInternalCredential)
    refused(UNAUTHENTICATED, caller(server, "garbage").GetInternalCredential)
    # The internal credential is a bearer, but not a service: no further credential.
    internal = service.GetInternalCredential().credential
    refused(PERMISSION_DENIED, caller(server, internal).GetInternalCredential)
    refused(PERMISSION_DENIED, caller(server, internal).VerifyBearer, token=SCHEDULER)
