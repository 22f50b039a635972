"""`configuration.redis`: items are Redis strings, changes arrive as keyspace notifications.

Metadata: the usual Redis connection keys (see `tether.components._redis`).

As in Dapr, an item is the string at its key, written `value` or `value||version`
(`SET orderId "100||1"`); keys holding other types are skipped. `get` with no keys scans the
whole database. Subscriptions listen on `__keyspace@<db>__:<key>` (all keys: a pattern) and read
the key again on every event, so a deleted or expired key arrives with an empty value. The store
turns on the keyspace notifications it needs (`notify-keyspace-events` gains `K$gxe`, keeping
what was set); where `CONFIG SET` is not allowed, enable them on the server yourself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components._options import Options
from tether.components._redis import RedisSettings
from tether.components.configuration.base import (
    ConfigItem,
    ConfigurationStore,
    UpdateHandler,
    new_subscription_id,
    notify,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tether.configuration.redis")
_NEEDED_EVENTS = "K$gxe"
_RETRY_SECONDS = 1.0


def parse_item(raw: bytes | str) -> ConfigItem:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    value, _, version = text.partition("||")
    return ConfigItem(value, version.split("||", 1)[0])


class RedisConfigurationStore(ConfigurationStore):
    def __init__(self, spec: ComponentSpec) -> None:
        self._settings = RedisSettings.from_options(Options(spec))
        self._name = spec.name
        self._client: Redis | None = None
        self._watches: dict[str, asyncio.Task[None]] = {}

    async def init(self) -> None:
        if self._client is not None:
            return
        self._client = await self._settings.connect(f"configuration store '{self._name}'")
        await self._enable_notifications()

    async def _enable_notifications(self) -> None:
        from redis.exceptions import RedisError

        client = self._redis()
        try:
            current = (await client.config_get("notify-keyspace-events")).get(
                "notify-keyspace-events", ""
            )
            flags = current.decode() if isinstance(current, bytes) else str(current)
            wanted = flags + "".join(c for c in _NEEDED_EVENTS if c not in flags)
            if "A" in flags:
                wanted = flags if "K" in flags else flags + "K"
            if wanted != flags:
                await client.config_set("notify-keyspace-events", wanted)
        except RedisError as exc:
            log.warning(
                "configuration store '%s': cannot enable keyspace notifications (%s); "
                "subscriptions receive nothing unless notify-keyspace-events includes K$gxe",
                self._name,
                exc,
            )

    async def close(self) -> None:
        for task in list(self._watches.values()):
            task.cancel()
        for task in list(self._watches.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _redis(self) -> Redis:
        if self._client is None:
            raise errors.Unavailable(f"configuration store '{self._name}' is not initialised")
        return self._client

    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> dict[str, ConfigItem]:
        from redis.exceptions import RedisError, ResponseError

        client = self._redis()
        try:
            names = list(keys) or [k.decode() async for k in client.scan_iter(count=500)]
            items: dict[str, ConfigItem] = {}
            for name in names:
                try:
                    raw = await client.get(name)
                except ResponseError:  # WRONGTYPE: not a configuration item
                    continue
                if raw is not None:
                    item = parse_item(raw)
                    if item.value:
                        items[name] = item
            return items
        except RedisError as exc:
            raise errors.Unavailable(f"Redis configuration error: {exc}") from exc

    async def subscribe(
        self, keys: Sequence[str], metadata: Mapping[str, str], handler: UpdateHandler
    ) -> str:
        self._redis()
        sub_id = new_subscription_id()
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._watch(sub_id, list(keys), handler, ready), name=f"tether-config-{sub_id}"
        )
        self._watches[sub_id] = task
        task.add_done_callback(lambda _: self._watches.pop(sub_id, None))
        # Return once the server confirmed the subscription, so a write made right after
        # `subscribe` returns is seen.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(ready), 5.0)
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        task = self._watches.pop(subscription_id, None)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def _watch(
        self, sub_id: str, keys: list[str], handler: UpdateHandler, ready: asyncio.Future[None]
    ) -> None:
        from redis.exceptions import RedisError

        prefix = f"__keyspace@{self._settings.db}__:"
        while True:
            pubsub = self._redis().pubsub()
            try:
                if keys:
                    await pubsub.subscribe(*(prefix + k for k in keys))
                else:
                    await pubsub.psubscribe(prefix + "*")
                confirmed = 0
                async for message in pubsub.listen():
                    kind = message.get("type")
                    if kind in ("subscribe", "psubscribe"):
                        confirmed += 1
                        if confirmed >= max(len(keys), 1) and not ready.done():
                            ready.set_result(None)
                        continue
                    if kind in ("message", "pmessage"):
                        await self._changed(
                            sub_id, _text(message["channel"])[len(prefix) :], handler
                        )
            except RedisError as exc:
                log.warning("configuration watch %s lost Redis (%s); retrying", sub_id, exc)
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _changed(self, sub_id: str, key: str, handler: UpdateHandler) -> None:
        try:
            items = await self.get([key], {})
        except errors.Unavailable as exc:
            log.warning("configuration store '%s': cannot read %s: %s", self._name, key, exc)
            return
        await notify(handler, sub_id, items or {key: ConfigItem("")})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
