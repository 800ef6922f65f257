"""ListAuditEvents from grpcio: admins read the audit log newest first, with
filters, time bounds as google.protobuf.Timestamp and page tokens; and the
JSON-lines copy TESSERA_AUDIT_LOG=stdout writes beside the banner."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from support import SCHEDULER, field_violations, refused

ADMIN_EMAIL = "ada@example.com"


@pytest.fixture(scope="module")
def audited(start_server, caller):
    """A server with its first admin, who created three access tokens, and
    the scheduler, who minted a ticket; its audit log is copied to stdout."""
    server = start_server({"TESSERA_AUDIT_LOG": "stdout"})
    [token] = server.wait_for_banners(1)
    admin = caller(server, None).ConsumeInstallToken(
        install_token=token, admin_email=ADMIN_EMAIL, admin_name="Ada"
    )
    ada = caller(server, admin.admin_token)
    for i in range(3):
        ada.CreateAccessToken(name=f"t{i}", ttl_seconds=60)
        time.sleep(0.002)
    caller(server, SCHEDULER).MintTicket(user_id="u1", provider="github")
    return server, ada, admin.admin_token


def key(event):
    return (event.at.seconds, event.at.nanos, event.id)


def test_admins_page_through_newest_first(audited, caller):
    server, ada, _ = audited
    everything = ada.ListAuditEvents().events
    assert [key(e) for e in everything] == sorted((key(e) for e in everything), reverse=True)
    assert everything[0].action == "ticket.mint"
    assert everything[0].actor == "scheduler@system.local"

    seen, page_token = [], ""
    while True:
        page = ada.ListAuditEvents(action="access_token.create", page_size=2, page_token=page_token)
        seen.extend(page.events)
        page_token = page.next_page_token
        if not page_token:
            break
    assert [e.action for e in seen] == ["access_token.create"] * 3
    assert all(e.actor == ADMIN_EMAIL and e.outcome == "ok" for e in seen)

    # since is inclusive, until exclusive.
    middle = seen[1]
    since = ada.ListAuditEvents(action="access_token.create", since=middle.at).events
    assert [e.id for e in since] == [seen[0].id, middle.id]
    until = ada.ListAuditEvents(action="access_token.create", until=middle.at).events
    assert [e.id for e in until] == [seen[2].id]

    # A service in Admin reads it too.
    assert caller(server, SCHEDULER).ListAuditEvents(page_size=1).events


def test_refusals(audited, caller):
    server, ada, _ = audited
    refused(grpc.StatusCode.UNAUTHENTICATED, caller(server, None).ListAuditEvents)
    bad = refused(grpc.StatusCode.INVALID_ARGUMENT, ada.ListAuditEvents, actor="a\x00b")
    assert field_violations(bad) == ["actor"]
    first = ada.ListAuditEvents(page_size=1)
    other = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        ada.ListAuditEvents,
        page_size=1,
        action="ticket.mint",
        page_token=first.next_page_token,
    )
    assert field_violations(other) == ["page_token"]
    backwards = refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        ada.ListAuditEvents,
        since=Timestamp(seconds=10),
        until=Timestamp(seconds=5),
    )
    assert field_violations(backwards) == ["until"]


def test_the_stdout_copy_is_json_lines_beside_the_banner(audited):
    server, ada, admin_token = audited
    listed = ada.ListAuditEvents().events
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in server.stdout.splitlines() if line.startswith("{")]
        if len(lines) >= len(listed) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(e.action for e in listed) == sorted(line["action"] for line in lines)
    for line in lines:
        assert set(line) == {"at", "actor", "action", "resource", "outcome", "credential_id", "peer"}
        assert line["at"].endswith("Z")
    banner = [line for line in server.stdout.splitlines() if "INSTALL TOKEN:" in line]
    assert len(banner) == 1 and banner[0].startswith("INSTALL TOKEN: tsr_ins_")
    assert admin_token not in server.stdout
