"""The secrets RPCs of the Dapr gRPC API."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import secret_pb2

from tether.runtime.api.secrets import SecretsApi
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped


class SecretRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @mapped
    async def GetSecret(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        data = await SecretsApi(self.rt.components).get(
            app_id, request.store_name, request.key, dict(request.metadata)
        )
        return secret_pb2.GetSecretResponse(data=data)

    @mapped
    async def GetBulkSecret(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        secrets = await SecretsApi(self.rt.components).bulk_get(
            app_id, request.store_name, dict(request.metadata)
        )
        return secret_pb2.GetBulkSecretResponse(
            data={k: secret_pb2.SecretResponse(secrets=v) for k, v in secrets.items()}
        )
