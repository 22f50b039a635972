"""`GetMetadata` of the Dapr gRPC API: the same document as `GET /v1.0/metadata`."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import metadata_pb2

from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped


def _subscription(doc: dict[str, Any]) -> Any:
    # The HTTP document lists rules flat, as daprd's HTTP API does; the proto nests them.
    found = doc.get("rules") or []
    rules = (found.get("rules") or []) if isinstance(found, dict) else found
    kind = str(doc.get("type", ""))
    return metadata_pb2.PubsubSubscription(
        type=dict(metadata_pb2.PubsubSubscriptionType.items()).get(kind, metadata_pb2.UNKNOWN),
        pubsub_name=str(doc.get("pubsubname", "")),
        topic=str(doc.get("topic", "")),
        metadata={str(k): str(v) for k, v in (doc.get("metadata") or {}).items()},
        rules=metadata_pb2.PubsubSubscriptionRules(
            rules=[
                metadata_pb2.PubsubSubscriptionRule(
                    match=str(r.get("match", "")), path=str(r.get("path", ""))
                )
                for r in rules
            ]
        ),
        dead_letter_topic=str(doc.get("deadLetterTopic", "")),
    )


class MetadataRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @mapped
    async def GetMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        doc = self.rt.metadata(app_id)
        components = [
            metadata_pb2.RegisteredComponents(
                name=c["name"],
                type=c["type"],
                version=c.get("version", ""),
                capabilities=c.get("capabilities", []),
            )
            for c in doc.get("components", [])
        ]
        return metadata_pb2.GetMetadataResponse(
            id=doc.get("id", app_id),
            runtime_version=doc.get("runtimeVersion", ""),
            enabled_features=doc.get("enabledFeatures", []),
            registered_components=components,
            extended_metadata={str(k): str(v) for k, v in (doc.get("extended") or {}).items()},
            subscriptions=[_subscription(s) for s in doc.get("subscriptions", [])],
        )
