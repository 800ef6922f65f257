"""Server reflection as other clients use it: grpcio-reflection's descriptor
database (which speaks grpc.reflection.v1alpha), the same exchange on the
grpc.reflection.v1 path, and a call built from reflected descriptors alone."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from support import CALL_TIMEOUT, SCHEDULER, bearer

SERVICE = "tessera.v1.CredentialService"
RPCS = {
    "VerifyBearer",
    "MintTicket",
    "ConsumeTicket",
    "GetInternalCredential",
    "IssueInstallToken",
    "GetInstallTokenStatus",
    "ConsumeInstallToken",
    "ProvisionWorkspace",
    "RegisterWorkspace",
    "GetInboundSecret",
    "CreateAccessToken",
    "ListCredentials",
    "RevokeCredential",
    "RevokeSubject",
    "InviteUser",
    "AcceptInvite",
    "ListAuditEvents",
    "RotateInboundSecret",
    "ReissueRegistrationToken",
    "DeleteWorkspace",
}


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


def reflection_database(channel) -> ProtoReflectionDescriptorDatabase:
    database = ProtoReflectionDescriptorDatabase(channel)
    try:
        database.get_services()
    except grpc.RpcError as error:
        raise AssertionError(
            "grpcio-reflection's client failed: the server must serve "
            "grpc.reflection.v1alpha.ServerReflection (grpcio-reflection and grpcurl "
            f"before 1.8.8 speak only v1alpha): {error.code()} {error.details()}"
        ) from error
    return database


def test_grpcio_reflection_lists_the_services(server):
    services = reflection_database(server.channel()).get_services()
    assert SERVICE in services, services
    assert "grpc.health.v1.Health" in services, services


def test_reflected_descriptors_match_our_proto(pb, server):
    pool = DescriptorPool(reflection_database(server.channel()))
    service = pool.FindServiceByName(SERVICE)
    assert {method.name for method in service.methods} == RPCS
    local = pb.msg.DESCRIPTOR.services_by_name["CredentialService"]
    for method in service.methods:
        theirs = local.methods_by_name[method.name]
        assert method.input_type.full_name == theirs.input_type.full_name
        assert method.output_type.full_name == theirs.output_type.full_name
    # Every message, field for field.
    for name, local_message in pb.msg.DESCRIPTOR.message_types_by_name.items():
        reflected = pool.FindMessageTypeByName(f"tessera.v1.{name}")
        fields = {(f.name, f.number, f.type) for f in reflected.fields}
        assert fields == {(f.name, f.number, f.type) for f in local_message.fields}, name


def test_a_call_built_from_reflection_alone(server):
    """What a generic client does: no proto files, only reflected types."""
    channel = server.channel()
    pool = DescriptorPool(reflection_database(channel))
    method = pool.FindServiceByName(SERVICE).methods_by_name["VerifyBearer"]
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{SERVICE}/VerifyBearer",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    reply = call(request_type(token=SCHEDULER), metadata=bearer(SCHEDULER), timeout=CALL_TIMEOUT)
    assert reply.principal.email == "scheduler@system.local"


def test_reflection_v1_lists_the_services(server):
    """grpc.reflection.v1 has the same messages as v1alpha; only the path
    differs, so the v1alpha classes speak it too."""
    channel = server.channel()
    exchange = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = iter(
        [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
        ]
    )
    listed, files = list(exchange(requests, timeout=CALL_TIMEOUT))
    names = {service.name for service in listed.list_services_response.service}
    assert SERVICE in names, names
    protos = []
    for raw in files.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(raw)
        protos.append(proto)
    ours = [p for p in protos if p.package == "tessera.v1"]
    assert ours, [p.name for p in protos]
    assert {m.name for m in ours[0].service[0].method} == RPCS
