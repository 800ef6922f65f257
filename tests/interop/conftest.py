"""Fixtures of the interop suite (see support.py for the server harness)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import PROTO_ROOT, Caller, TesseraServer

# --- the proto, compiled at test time ---------------------------------------


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """`tessera/v1/credentials.proto` compiled by grpc_tools.protoc into a
    temporary directory: `pb.msg` (messages) and `pb.grpc` (stubs)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("pb")
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO_ROOT / "tessera" / "v1" / "credentials.proto"),
    ]
    status = protoc.main(args)
    if status != 0:
        pytest.fail(f"grpc_tools.protoc failed with status {status} on {PROTO_ROOT}")
    for package in (out / "tessera", out / "tessera" / "v1"):
        (package / "__init__.py").touch()
    sys.path.insert(0, str(out))
    try:
        msg = importlib.import_module("tessera.v1.credentials_pb2")
        stubs = importlib.import_module("tessera.v1.credentials_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(msg=msg, grpc=stubs, out=out)


@pytest.fixture(scope="module")
def start_server():
    """Starts servers (`start_server(env)`); each test module's are stopped
    when it ends."""
    servers: list[TesseraServer] = []

    def start(env: dict[str, str] | None = None) -> TesseraServer:
        server = TesseraServer(env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def caller(pb):
    """`caller(server, token)` → a [`Caller`]."""

    def make(server: TesseraServer, token: str | None) -> Caller:
        return Caller(pb, server, token)

    return make
