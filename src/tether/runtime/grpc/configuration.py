"""The configuration RPCs of the Dapr gRPC API, with `SubscribeConfiguration` as a stream.

The stream's first message carries the subscription id only; each change follows as one
message. The stream ends when the client cancels it or when `UnsubscribeConfiguration` names
its id; either way the store subscription is removed. Note that the Python SDK does not send
`dapr-api-token` on this stream: with API tokens required, it is refused as unauthenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import configuration_pb2

from tether import errors
from tether.components.configuration.base import ConfigItem
from tether.runtime.api.configuration import ConfigurationApi
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped


def _items(items: dict[str, ConfigItem]) -> dict[str, Any]:
    return {
        k: common_pb2.ConfigurationItem(value=v.value, version=v.version, metadata=v.metadata)
        for k, v in items.items()
    }


class ConfigurationRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime
    #: Open subscription streams by id: setting the event ends the stream.
    _config_streams: dict[str, asyncio.Event]

    def _streams(self) -> dict[str, asyncio.Event]:
        if not hasattr(self, "_config_streams"):
            self._config_streams = {}
        return self._config_streams

    @mapped
    async def GetConfiguration(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        items = await ConfigurationApi(self.rt.components).get(
            app_id, request.store_name, list(request.keys), dict(request.metadata)
        )
        return configuration_pb2.GetConfigurationResponse(items=_items(items))

    async def SubscribeConfiguration(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        api = ConfigurationApi(self.rt.components)
        updates: asyncio.Queue[dict[str, ConfigItem]] = asyncio.Queue()

        async def handler(_: str, items: dict[str, ConfigItem]) -> None:
            await updates.put(items)

        try:
            app_id = self.rt.callers.for_grpc(context)
            store, sub_id = await api.subscribe(
                app_id, request.store_name, list(request.keys), dict(request.metadata), handler
            )
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            return
        stop = asyncio.Event()
        self._streams()[sub_id] = stop
        try:
            yield configuration_pb2.SubscribeConfigurationResponse(id=sub_id)
            while True:
                next_update = asyncio.ensure_future(updates.get())
                stopped = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait({next_update, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in (next_update, stopped):
                        if not waiter.done():
                            waiter.cancel()
                if not next_update.done() or next_update.cancelled():
                    return
                yield configuration_pb2.SubscribeConfigurationResponse(
                    id=sub_id, items=_items(next_update.result())
                )
        finally:
            self._streams().pop(sub_id, None)
            with contextlib.suppress(Exception):
                await store.unsubscribe(sub_id)

    async def UnsubscribeConfiguration(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        stop = self._streams().pop(request.id, None)
        if stop is None:
            return configuration_pb2.UnsubscribeConfigurationResponse(
                ok=False,
                message=f"failed to unsubscribe to configuration request {request.id}: "
                "subscription does not exist",
            )
        stop.set()
        return configuration_pb2.UnsubscribeConfigurationResponse(ok=True)

    GetConfigurationAlpha1 = GetConfiguration
    SubscribeConfigurationAlpha1 = SubscribeConfiguration
    UnsubscribeConfigurationAlpha1 = UnsubscribeConfiguration
