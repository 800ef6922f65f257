"""Harness of the interop suite: real `tessera serve` processes on
127.0.0.1:0, callers built on stubs that grpcio-tools generates from our
`proto/` at test time, and decoding of rich error details with grpcio-status.

Nothing here comes from our Rust client.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"

#: Deadline of every unary call made by the suite.
CALL_TIMEOUT = 10.0
#: How long a server may take to listen and report SERVING.
START_TIMEOUT = 30.0
#: How long a server may take to exit after SIGTERM.
EXIT_TIMEOUT = 15.0

BANNER_PREFIX = "INSTALL TOKEN: "


def service_secret(name: str) -> str:
    """A service secret of at least 32 characters, distinct per name."""
    return f"{name.lower():-<12}-interop-0123456789abcdef"


SCHEDULER = service_secret("scheduler")


# --- the tessera binary ------------------------------------------------------


def tessera_binary() -> Path:
    """TESSERA_BIN, else $CARGO_TARGET_DIR/debug/tessera, else target/debug/tessera."""
    if os.environ.get("TESSERA_BIN"):
        path = Path(os.environ["TESSERA_BIN"])
    elif os.environ.get("CARGO_TARGET_DIR"):
        path = Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "tessera"
    else:
        path = REPO / "target" / "debug" / "tessera"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.exit(
            f"tessera binary not found at {path}: build it with `cargo build -p tessera-server` or set TESSERA_BIN",
            returncode=2,
        )
    return path


class TesseraServer:
    """A running `tessera serve --listen 127.0.0.1:0` on its own SQLite file."""

    def __init__(self, env: dict[str, str] | None = None):
        self.dir = tempfile.TemporaryDirectory(prefix="tessera-interop-")
        self.db = Path(self.dir.name) / "tessera.db"
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": f"sqlite:{self.db}",
            "TESSERA_LOG_FORMAT": "json",
            "RUST_LOG": "info",
            "TESSERA_DB_CHECK_INTERVAL_MS": "200",
            "TESSERA_DRAIN_TIMEOUT_MS": "3000",
            "TESSERA_ANONYMOUS_RATE_PER_MINUTE": "100000",
            # The suite fails authentication on purpose, many times over.
            "TESSERA_AUTH_FAILURES_PER_MINUTE": "100000",
            "TESSERA_SERVICE_TOKEN_SCHEDULER": SCHEDULER,
        }
        full_env.update(env or {})
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._addr_found = threading.Event()
        self.addr: str | None = None
        self.process = subprocess.Popen(
            [str(tessera_binary()), "serve", "--listen", "127.0.0.1:0"],
            env=full_env,
            cwd=self.dir.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            preexec_fn=_die_with_parent,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self._stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.channels: list[grpc.Channel] = []
        try:
            self._wait_until_serving()
        except BaseException:
            self.kill()
            self.dir.cleanup()
            raise

    # -- output

    def _read(self, stream, sink: list[str], logs: bool) -> None:
        for line in stream:
            sink.append(line)
            if logs and self.addr is None:
                addr = _listening_addr(line)
                if addr:
                    self.addr = addr
                    self._addr_found.set()

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def banner_tokens(self) -> list[str]:
        """Every `INSTALL TOKEN: …` printed on stdout so far, in order."""
        return [
            line.strip()[len(BANNER_PREFIX) :]
            for line in self.stdout.splitlines()
            if line.strip().startswith(BANNER_PREFIX)
        ]

    def wait_for_banners(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tokens = self.banner_tokens()
            if len(tokens) >= count:
                return tokens
            time.sleep(0.05)
        raise AssertionError(f"expected {count} install-token banner(s) on stdout, got:\n{self.stdout}")

    # -- lifecycle

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._addr_found.wait(0.05):
            if self.process.poll() is not None:
                raise AssertionError(f"tessera exited with {self.process.returncode}; stderr:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"tessera did not report its address; stderr:\n{self.stderr}")
        with grpc.insecure_channel(self.addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if self.process.poll() is not None:
                    raise AssertionError(f"tessera exited with {self.process.returncode}; stderr:\n{self.stderr}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"tessera never became SERVING; stderr:\n{self.stderr}")
                time.sleep(0.05)

    def channel(self) -> grpc.Channel:
        """A new channel (its own connection) to the server, closed at teardown."""
        channel = grpc.insecure_channel(self.addr)
        self.channels.append(channel)
        return channel

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise AssertionError(f"tessera did not exit within {timeout} s; stderr:\n{self.stderr}") from err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        for channel in self.channels:
            channel.close()
        self.terminate()
        try:
            self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
        for reader in self._readers:
            reader.join(2)
        self.dir.cleanup()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a
    killed or timed-out run leaves no server behind (Linux prctl)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _listening_addr(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    fields = record.get("fields") if isinstance(record, dict) else None
    if isinstance(fields, dict) and fields.get("message") == "listening":
        addr = fields.get("addr")
        if isinstance(addr, str) and re.fullmatch(r"127\.0\.0\.1:\d+", addr):
            return addr
    return None


# --- calling -----------------------------------------------------------------


def bearer(token: str | None) -> list[tuple[str, str]]:
    """Call metadata carrying `authorization: Bearer <token>` (or nothing)."""
    return [] if token is None else [("authorization", f"Bearer {token}")]


class Caller:
    """Calls `CredentialService` on `server` as the holder of `token`, with a
    deadline on every call: `caller.VerifyBearer(token="…")`."""

    def __init__(self, pb, server: TesseraServer, token: str | None):
        self._pb = pb
        self._stub = pb.grpc.CredentialServiceStub(server.channel())
        self._metadata = bearer(token)

    def __getattr__(self, rpc: str):
        method = getattr(self._stub, rpc)
        request_type = getattr(self._pb.msg, f"{rpc}Request")

        def call(**fields):
            return method(request_type(**fields), metadata=self._metadata, timeout=CALL_TIMEOUT)

        return call


# --- refusals and their rich details -----------------------------------------


class Refusal:
    """A failed call: its code and message, and the `google.rpc.Status`
    details decoded by grpcio-status."""

    def __init__(self, error: grpc.RpcError):
        self.error = error
        self.code = error.code()
        self.message = error.details() or ""
        # Raises ValueError if the details disagree with the code or message.
        self.status = rpc_status.from_call(error)

    def _details(self, message_type):
        found = []
        if self.status is not None:
            for detail in self.status.details:
                if detail.Is(message_type.DESCRIPTOR):
                    unpacked = message_type()
                    detail.Unpack(unpacked)
                    found.append(unpacked)
        return found

    def error_info(self) -> error_details_pb2.ErrorInfo | None:
        infos = self._details(error_details_pb2.ErrorInfo)
        assert len(infos) <= 1, f"several ErrorInfo details: {infos}"
        return infos[0] if infos else None

    def bad_request(self) -> error_details_pb2.BadRequest | None:
        found = self._details(error_details_pb2.BadRequest)
        return found[0] if found else None

    def retry_info(self) -> error_details_pb2.RetryInfo | None:
        found = self._details(error_details_pb2.RetryInfo)
        return found[0] if found else None

    def __repr__(self) -> str:
        return f"Refusal({self.code}, {self.message!r}, {self.status})"


def refused(code: grpc.StatusCode, call, **fields) -> Refusal:
    """Calls `call(**fields)`, which must fail with `code`."""
    try:
        response = call(**fields)
    except grpc.RpcError as error:
        refusal = Refusal(error)
        assert refusal.code == code, f"expected {code}, got {refusal!r}"
        return refusal
    raise AssertionError(f"expected {code}, but the call succeeded: {response}")


def assert_ticket_refusal(refusal: Refusal, reason: str, ticket: str) -> None:
    """UNAUTHENTICATED with ErrorInfo `reason` in domain tessera.v1, naming
    at most the first 8 characters of `ticket`."""
    assert refusal.code == grpc.StatusCode.UNAUTHENTICATED, refusal
    info = refusal.error_info()
    assert info is not None, f"no google.rpc.ErrorInfo in {refusal!r}"
    assert info.reason == reason, f"reason {info.reason!r}, expected {reason!r}"
    assert info.domain == "tessera.v1", f"domain {info.domain!r}"
    everything = refusal.message + str(refusal.status) + str(refusal.error.trailing_metadata())
    if len(ticket) > 9:
        assert ticket[:9] not in everything, f"more than 8 characters of the ticket: {refusal!r}"
        body = ticket[8:]
        for start in range(len(body) - 11):
            assert body[start : start + 12] not in everything, f"the ticket leaks: {refusal!r}"


def field_violations(refusal: Refusal) -> list[str]:
    """The fields named by the BadRequest detail of an INVALID_ARGUMENT."""
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, refusal
    bad = refusal.bad_request()
    assert bad is not None, f"no google.rpc.BadRequest in {refusal!r}"
    assert all(v.description for v in bad.field_violations), bad
    return [v.field for v in bad.field_violations]
