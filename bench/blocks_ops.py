"""The operations ``bench.blocks`` times: state save/get and publish->delivery,
made through Tether (HTTP with aiohttp or httpx, gRPC with the SDK's generated
stubs on ``grpc.aio``) and directly with the backends' own clients (redis-py
asyncio, asyncpg).

Every network wait carries a timeout (``OP_TIMEOUT_S``), so a stuck server
fails an op instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

if TYPE_CHECKING:
    from redis.asyncio import Redis

OP_TIMEOUT_S = 10.0
# A ~100-byte JSON document: what a small app state or event payload looks like.
_PAD = "x" * 64
JSON = "application/json"


def value_bytes(i: int) -> bytes:
    return json.dumps({"i": i, "pad": _PAD}, separators=(",", ":")).encode()


def event_bytes(seq: int) -> bytes:
    return json.dumps({"seq": seq, "pad": _PAD}, separators=(",", ":")).encode()


def seq_of(data: bytes) -> int | None:
    """The ``seq`` an event carries, whether given its data or a whole CloudEvent."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        doc = doc["data"]
    seq = doc.get("seq") if isinstance(doc, dict) else None
    return seq if isinstance(seq, int) else None


class BenchError(RuntimeError):
    """An op answered, but not as it should: the figures would be meaningless."""


# --- HTTP clients ------------------------------------------------------------------------------


class Http(Protocol):
    """The two calls the HTTP paths make, so the client library can be swapped."""

    name: str

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def get(self, path: str) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    """aiohttp, the library the Dapr Python SDK's own HTTP client uses."""

    name = "aiohttp"

    def __init__(self, base_url: str, limit: int) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=OP_TIMEOUT_S),
        )
        self._json = {"content-type": JSON}

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self._session.post(path, data=body, headers=self._json) as resp:
            return resp.status, await resp.read()

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self._session.get(path) as resp:
            return resp.status, await resp.read()

    async def aclose(self) -> None:
        await self._session.close()


class HttpxClient:
    name = "httpx"

    def __init__(self, base_url: str, limit: int) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=OP_TIMEOUT_S,
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        )
        self._json = {"content-type": JSON}

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        resp = await self._client.post(path, content=body, headers=self._json)
        return resp.status_code, resp.content

    async def get(self, path: str) -> tuple[int, bytes]:
        resp = await self._client.get(path)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self._client.aclose()


HTTP_CLIENTS: dict[str, type[AiohttpClient] | type[HttpxClient]] = {
    "aiohttp": AiohttpClient,
    "httpx": HttpxClient,
}


# --- state -------------------------------------------------------------------------------------


class StateClient(Protocol):
    async def save(self, i: int) -> None: ...

    async def get(self, i: int) -> None: ...


@dataclass
class DirectRedisState:
    """SET / GET: what an app would write without Dapr."""

    redis: Redis
    prefix: str

    async def save(self, i: int) -> None:
        await self.redis.set(f"{self.prefix}{i}", value_bytes(i))

    async def get(self, i: int) -> None:
        if await self.redis.get(f"{self.prefix}{i}") is None:
            raise BenchError(f"direct redis: key {self.prefix}{i} missing")


PG_KV_DDL = "CREATE TABLE IF NOT EXISTS bench_kv (key TEXT PRIMARY KEY, value BYTEA NOT NULL)"
_PG_UPSERT = (
    "INSERT INTO bench_kv (key, value) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)
_PG_SELECT = "SELECT value FROM bench_kv WHERE key = $1"


@dataclass
class DirectPgState:
    """An upsert and a select on a two-column table, one pooled connection each
    (asyncpg prepares and caches both statements)."""

    pool: Any  # asyncpg.Pool
    prefix: str

    async def save(self, i: int) -> None:
        await self.pool.execute(_PG_UPSERT, f"{self.prefix}{i}", value_bytes(i))

    async def get(self, i: int) -> None:
        if await self.pool.fetchval(_PG_SELECT, f"{self.prefix}{i}") is None:
            raise BenchError(f"direct postgres: key {self.prefix}{i} missing")


@dataclass
class TetherHttpState:
    http: Http
    store: str
    prefix: str

    async def save(self, i: int) -> None:
        body = b'[{"key":"%s%d","value":%s}]' % (self.prefix.encode(), i, value_bytes(i))
        status, text = await self.http.post(f"/v1.0/state/{self.store}", body)
        if status != 204:
            raise BenchError(f"tether http save: {status} {text[:200]!r}")

    async def get(self, i: int) -> None:
        status, text = await self.http.get(f"/v1.0/state/{self.store}/{self.prefix}{i}")
        if status != 200 or not text:
            raise BenchError(f"tether http get {self.prefix}{i}: {status} {text[:200]!r}")


@dataclass
class TetherGrpcState:
    stub: Any  # dapr_pb2_grpc.DaprStub on a grpc.aio channel
    store: str
    prefix: str

    async def save(self, i: int) -> None:
        from dapr.proto.common.v1 import common_pb2
        from dapr.proto.runtime.v1 import state_pb2

        item = common_pb2.StateItem(key=f"{self.prefix}{i}", value=value_bytes(i))
        await self.stub.SaveState(
            state_pb2.SaveStateRequest(store_name=self.store, states=[item]),
            timeout=OP_TIMEOUT_S,
        )

    async def get(self, i: int) -> None:
        from dapr.proto.runtime.v1 import state_pb2

        resp = await self.stub.GetState(
            state_pb2.GetStateRequest(store_name=self.store, key=f"{self.prefix}{i}"),
            timeout=OP_TIMEOUT_S,
        )
        if not resp.data:
            raise BenchError(f"tether grpc get {self.prefix}{i}: empty")


# --- pub/sub -----------------------------------------------------------------------------------


class Deliveries:
    """Futures for the events expected, resolved with the time they arrived."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[float]] = {}
        self.stray = 0

    def expect(self, seq: int) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = fut
        return fut

    def arrived(self, seq: int | None, at: float) -> None:
        fut = self._waiting.pop(seq, None) if seq is not None else None
        if fut is None:
            self.stray += 1  # a redelivery, or an event nobody waits for any more
        elif not fut.done():
            fut.set_result(at)

    def forget(self) -> None:
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()


class Publisher(Protocol):
    async def publish(self, seq: int) -> None: ...


class Subscriber(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def failure(self) -> BaseException | None: ...


@dataclass
class DirectStreamPublisher:
    redis: Redis
    stream: str

    async def publish(self, seq: int) -> None:
        await self.redis.xadd(self.stream, {"data": event_bytes(seq)})


class DirectStreamSubscriber:
    """XREADGROUP in a loop on its own connection, XACK per entry: how Tether's
    ``pubsub.redis`` consumes, minus Tether."""

    def __init__(self, redis: Redis, stream: str, deliveries: Deliveries) -> None:
        self._redis = redis
        self._stream = stream
        self._group = "bench"
        self._deliveries = deliveries
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from redis.exceptions import ResponseError

        with contextlib.suppress(ResponseError):  # BUSYGROUP: already there
            await self._redis.xgroup_create(self._stream, self._group, id="$", mkstream=True)
        self._task = asyncio.create_task(self._read(), name="bench-direct-reader")

    async def _read(self) -> None:
        clock = time.perf_counter
        while True:
            batches: Any = await self._redis.xreadgroup(
                self._group, "c1", {self._stream: ">"}, count=100, block=1000
            )
            for _stream, entries in batches or ():
                now = clock()
                for _id, fields in entries:
                    self._deliveries.arrived(seq_of(fields.get(b"data", b"")), now)
                for entry_id, _fields in entries:
                    await self._redis.xack(self._stream, self._group, entry_id)

    async def close(self) -> None:
        await _stop(self._task)

    def failure(self) -> BaseException | None:
        return _failure(self._task)


@dataclass
class TetherHttpPublisher:
    http: Http
    pubsub: str
    topic: str

    async def publish(self, seq: int) -> None:
        status, text = await self.http.post(
            f"/v1.0/publish/{self.pubsub}/{self.topic}", event_bytes(seq)
        )
        if status != 204:
            raise BenchError(f"tether http publish: {status} {text[:200]!r}")


@dataclass
class TetherGrpcPublisher:
    stub: Any
    pubsub: str
    topic: str

    async def publish(self, seq: int) -> None:
        from dapr.proto.runtime.v1 import pubsub_pb2

        await self.stub.PublishEvent(
            pubsub_pb2.PublishEventRequest(
                pubsub_name=self.pubsub,
                topic=self.topic,
                data=event_bytes(seq),
                data_content_type=JSON,
            ),
            timeout=OP_TIMEOUT_S,
        )


class TetherStreamSubscriber:
    """A streaming subscription (``SubscribeTopicEventsAlpha1``, what
    ``DaprClient().subscribe`` opens), answering SUCCESS to every event."""

    def __init__(self, stub: Any, pubsub: str, topic: str, deliveries: Deliveries) -> None:
        self._stub = stub
        self._pubsub = pubsub
        self._topic = topic
        self._deliveries = deliveries
        self._answers: asyncio.Queue[str | None] = asyncio.Queue()
        self._call: Any = None
        self._task: asyncio.Task[None] | None = None

    async def _requests(self) -> Any:
        from dapr.proto.runtime.v1 import appcallback_pb2, pubsub_pb2

        yield pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
            initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
                pubsub_name=self._pubsub, topic=self._topic
            )
        )
        success = appcallback_pb2.TopicEventResponse(
            status=appcallback_pb2.TopicEventResponse.SUCCESS
        )
        while (event_id := await self._answers.get()) is not None:
            yield pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
                event_processed=pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(
                    id=event_id, status=success
                )
            )

    async def start(self) -> None:
        self._call = self._stub.SubscribeTopicEventsAlpha1(self._requests())
        first = await asyncio.wait_for(self._call.read(), OP_TIMEOUT_S)
        if not first.HasField("initial_response"):
            raise BenchError(f"streaming subscription: unexpected first answer {first!r}")
        self._task = asyncio.create_task(self._read(), name="bench-stream-reader")

    async def _read(self) -> None:
        import grpc

        clock = time.perf_counter
        # read(), not `async for`: grpc.aio refuses to mix the two on one call.
        while (resp := await self._call.read()) is not grpc.aio.EOF:
            if resp.HasField("event_message"):
                msg = resp.event_message
                self._deliveries.arrived(seq_of(msg.data), clock())
                self._answers.put_nowait(msg.id)

    async def close(self) -> None:
        self._answers.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        await _stop(self._task)

    def failure(self) -> BaseException | None:
        return _failure(self._task)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
        await asyncio.wait_for(task, OP_TIMEOUT_S)


def _failure(task: asyncio.Task[None] | None) -> BaseException | None:
    """Why a subscriber's reader stopped early, if it did."""
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception() or RuntimeError("the subscription stream ended")
