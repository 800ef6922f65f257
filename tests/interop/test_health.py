"""The standard health service through grpcio-health-checking: Check, and a
Watch stream that sees NOT_SERVING when the server is told to stop."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "tessera.v1.CredentialService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Deadline of a Watch stream: every wait on it is bounded by this.
WATCH_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


@pytest.mark.parametrize("service", ["", SERVICE])
def test_check_reports_serving(server, service):
    health = health_pb2_grpc.HealthStub(server.channel())
    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == SERVING


def test_check_of_an_unknown_service_is_not_found(server):
    health = health_pb2_grpc.HealthStub(server.channel())
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_needs_no_credentials_and_ignores_bad_ones(server):
    health = health_pb2_grpc.HealthStub(server.channel())
    reply = health.Check(
        health_pb2.HealthCheckRequest(service=""),
        metadata=[("authorization", "Bearer garbage")],
        timeout=10,
    )
    assert reply.status == SERVING


def test_watch_sees_not_serving_on_sigterm_and_the_server_exits_zero(start_server):
    server = start_server()
    health = health_pb2_grpc.HealthStub(server.channel())
    streams = {
        name: health.Watch(health_pb2.HealthCheckRequest(service=name), timeout=WATCH_TIMEOUT) for name in ("", SERVICE)
    }
    try:
        for name, stream in streams.items():
            first = next(stream)
            assert first.status == SERVING, f"{name!r} starts {first}"

        server.terminate()

        for name, stream in streams.items():
            seen = []
            for update in stream:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(update.status))
                if update.status == NOT_SERVING:
                    break
            else:
                raise AssertionError(f"the Watch of {name!r} ended without NOT_SERVING; saw {seen}")
            assert seen[-1] == "NOT_SERVING", f"{name!r}: {seen}"
    except grpc.RpcError as error:
        raise AssertionError(
            f"the Watch stream failed before NOT_SERVING: {error.code()} {error.details()}\nstderr:\n{server.stderr}"
        ) from error
    finally:
        for stream in streams.values():
            stream.cancel()

    assert server.wait_exit() == 0, f"exit status {server.process.returncode}; stderr:\n{server.stderr}"
