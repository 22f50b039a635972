"""The Dapr gRPC service: one mixin per building block, composed here.

Each mixin implements its block's RPCs over the transport-neutral services in `runtime.api`;
RPCs no mixin implements answer UNIMPLEMENTED (see `registry`).
"""

from __future__ import annotations

import grpc
from dapr.proto.runtime.v1 import dapr_pb2, dapr_pb2_grpc

from tether.runtime.context import Runtime
from tether.runtime.grpc.bindings import BindingRpcs
from tether.runtime.grpc.configuration import ConfigurationRpcs
from tether.runtime.grpc.invoke import InvokeRpcs
from tether.runtime.grpc.jobs import JobRpcs
from tether.runtime.grpc.lock import LockRpcs
from tether.runtime.grpc.metadata import MetadataRpcs
from tether.runtime.grpc.pubsub import PubSubRpcs
from tether.runtime.grpc.registry import serve_service
from tether.runtime.grpc.secrets import SecretRpcs
from tether.runtime.grpc.state import StateRpcs
from tether.runtime.grpc.workflows import WorkflowRpcs


class DaprService(
    WorkflowRpcs,
    InvokeRpcs,
    JobRpcs,
    StateRpcs,
    SecretRpcs,
    ConfigurationRpcs,
    LockRpcs,
    BindingRpcs,
    MetadataRpcs,
    PubSubRpcs,
    dapr_pb2_grpc.DaprServicer,
):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt


#: The building block of each mixin's RPCs (the metrics' `api` label).
_BLOCKS: dict[type, str] = {
    WorkflowRpcs: "workflows",
    InvokeRpcs: "invoke",
    JobRpcs: "jobs",
    StateRpcs: "state",
    SecretRpcs: "secrets",
    ConfigurationRpcs: "configuration",
    LockRpcs: "lock",
    BindingRpcs: "bindings",
    MetadataRpcs: "metadata",
    PubSubRpcs: "pubsub",
}


def building_block(method: str) -> str:
    """The building block an RPC of the Dapr service belongs to; "other" for those no mixin
    implements (they answer UNIMPLEMENTED)."""
    return next((api for mixin, api in _BLOCKS.items() if method in vars(mixin)), "other")


def add_dapr_service(server: grpc.aio.Server, rt: Runtime) -> None:
    service = dapr_pb2.DESCRIPTOR.services_by_name["Dapr"]
    serve_service(
        server, service, DaprService(rt), dapr_pb2_grpc.DaprServicer, rt.metrics.api,
        building_block,
    )  # fmt: skip
