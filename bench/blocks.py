"""Building-block benchmark: state save/get and publish->delivery through Tether,
side by side with the same operations made directly on the backends.

    python -m bench.blocks                   # everything, default size (~2-3 minutes)
    python -m bench.blocks --scale 0.1       # smoke run
    python -m bench.blocks --blocks state-redis,pubsub

One Tether dev server runs with three components from a temporary resources
folder: `state.redis`, `state.postgresql` (in a throwaway `bench_blocks`
database) and `pubsub.redis`. Each case is timed twice: sequential ops for
p50/p99 latency, then a fixed number of ops kept IN_FLIGHT deep for
throughput. Paths:

  direct       redis-py asyncio (SET/GET, XADD + XREADGROUP/XACK) or asyncpg
               (upsert + select on a two-column table), in this process
  tether http  raw HTTP against /v1.0/state/{store} and /v1.0/publish/{pubsub}/{topic},
               with aiohttp (--http-client httpx for httpx)
  tether grpc  the SDK's generated stubs on a grpc.aio channel

Why aiohttp by default: it is what the Dapr SDK's HTTP client uses, and in
this venv (httpx 0.28.1, httpcore 1.0.9, anyio 4.16) an httpx.AsyncClient
request costs about ten times the client CPU an aiohttp one does, so with
httpx the "tether http" rows would mostly measure httpx. The "floor" block
shows both clients against GET /v1.0/healthz, which touches no backend.

Publish->delivery runs from just before the publish call to the moment the
subscriber in this process receives the event: a streaming subscription
(SubscribeTopicEventsAlpha1, what DaprClient().subscribe opens) for Tether,
an XREADGROUP loop for direct. Targets per Tether row: p50 at most 0.5 ms
above direct's, throughput at least 50% of direct's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.blocks_measure import CpuMark, CpuShare, Op, concurrent, latency_of, sequential
from bench.blocks_ops import (
    HTTP_CLIENTS,
    OP_TIMEOUT_S,
    PG_KV_DDL,
    BenchError,
    Deliveries,
    DirectPgState,
    DirectRedisState,
    DirectStreamPublisher,
    DirectStreamSubscriber,
    Http,
    Publisher,
    StateClient,
    Subscriber,
    TetherGrpcPublisher,
    TetherGrpcState,
    TetherHttpPublisher,
    TetherHttpState,
    TetherStreamSubscriber,
)
from bench.blocks_report import (
    DIRECT,
    GRPC,
    HTTP,
    TARGET_ADDED_P50_MS,
    TARGET_RATIO,
    Row,
    as_json,
    table,
    target_lines,
    verdicts,
)
from bench.common import deadline, positive_float
from bench.pg import DEFAULT_ADMIN_URL, throwaway_database
from bench.tether_server import Endpoints, tether_missing, tether_server

LATENCY_OPS = 2000
THROUGHPUT_OPS = 5000
MIN_OPS = 100  # keeps a p99 meaningful at small scales
IN_FLIGHT = 16
OTHER_CPU_WARN_CORES = 0.3

APP_ID = "bench-blocks"
PG_DATABASE = "bench_blocks"
REDIS_STATE = "bench-redis-state"
PG_STATE = "bench-pg-state"
PUBSUB = "bench-redis-pubsub"
COMPONENTS_TIMEOUT_S = 30.0

BLOCKS: dict[str, str] = {
    "state-redis": "state save/get on Redis",
    "state-postgres": "state save/get on PostgreSQL",
    "pubsub": "publish->delivery on Redis Streams",
    "floor": "Tether HTTP round trip with no backend (GET /v1.0/healthz), per HTTP client",
}


@dataclass(frozen=True)
class Sizes:
    latency: int
    throughput: int
    warmup: int
    in_flight: int

    @classmethod
    def scaled(cls, scale: float, in_flight: int) -> Sizes:
        lat = max(MIN_OPS, round(LATENCY_OPS * scale))
        tput = max(MIN_OPS, round(THROUGHPUT_OPS * scale))
        return cls(lat, tput, max(20, min(200, lat // 10)), in_flight)


@dataclass
class Context:
    sizes: Sizes
    server_pid: int | None
    rows: list[Row] = field(default_factory=list)
    case_timeout_s: float = 300.0

    def progress(self, message: str) -> None:
        print(f"  {message}", flush=True)


# --- one case ----------------------------------------------------------------------------------


async def _warm(op: Op, sizes: Sizes) -> None:
    # Sequential, then concurrent: pools open their extra connections here,
    # not inside the throughput figure.
    await sequential(op, range(sizes.warmup))
    await concurrent(op, range(max(sizes.warmup, 4 * sizes.in_flight)), sizes.in_flight)


async def _op_case(ctx: Context, row: Row, op: Op) -> None:
    s = ctx.sizes
    await _warm(op, s)
    lat = latency_of(await sequential(op, range(s.latency)))
    row.p50_ms, row.p99_ms = lat.p50_ms, lat.p99_ms
    before = CpuMark.now(ctx.server_pid)
    elapsed = await concurrent(op, range(s.throughput), s.in_flight)
    row.cpu = CpuMark.now(ctx.server_pid).since(before)
    row.ops_s = s.throughput / elapsed


async def _pubsub_case(
    ctx: Context,
    delivery: Row,
    call: Row,
    publisher: Publisher,
    subscriber: Subscriber,
    deliveries: Deliveries,
) -> None:
    s = ctx.sizes
    seqs = iter(range(10**9))

    async def one(_: int) -> tuple[float, float]:
        seq = next(seqs)
        fut = deliveries.expect(seq)
        t0 = time.perf_counter()
        await publisher.publish(seq)
        t1 = time.perf_counter()
        try:
            at = await asyncio.wait_for(fut, OP_TIMEOUT_S)
        except TimeoutError:
            why = subscriber.failure()
            raise BenchError(
                f"event {seq} not delivered within {OP_TIMEOUT_S:.0f}s"
                + (f" (subscriber: {why!r})" if why else "")
            ) from None
        return t1 - t0, at - t0

    async def warm_op(i: int) -> None:
        await one(i)

    await _warm(warm_op, s)
    calls: list[float] = []
    delivered: list[float] = []
    for i in range(s.latency):
        c, d = await one(i)
        calls.append(c)
        delivered.append(d)
    lat_d, lat_c = latency_of(delivered), latency_of(calls)
    delivery.p50_ms, delivery.p99_ms = lat_d.p50_ms, lat_d.p99_ms
    call.p50_ms, call.p99_ms = lat_c.p50_ms, lat_c.p99_ms

    # Throughput: publish everything IN_FLIGHT deep, count until the last arrives.
    base = next(seqs)
    futs = [deliveries.expect(base + i) for i in range(s.throughput)]

    async def publish(i: int) -> None:
        await publisher.publish(base + i)

    before = CpuMark.now(ctx.server_pid)
    t0 = time.perf_counter()
    published = await concurrent(publish, range(s.throughput), s.in_flight)
    try:
        arrivals = await asyncio.wait_for(asyncio.gather(*futs), max(30.0, s.throughput / 100.0))
    except TimeoutError:
        missing = sum(1 for f in futs if not f.done())
        raise BenchError(f"{missing} of {s.throughput} events not delivered in time") from None
    cpu = CpuMark.now(ctx.server_pid).since(before)
    delivery.ops_s = s.throughput / (max(arrivals) - t0)
    call.ops_s = s.throughput / published
    delivery.cpu = call.cpu = cpu
    if deliveries.stray:
        delivery.note = f"{deliveries.stray} redelivered/stray events ignored"


async def _run(ctx: Context, rows: Sequence[Row], body: Awaitable[None]) -> None:
    label = f"{rows[0].block} / {rows[0].backend} / {rows[0].path}"
    ctx.progress(f"{label} ...")
    started = time.perf_counter()
    try:
        await asyncio.wait_for(body, ctx.case_timeout_s)
    except Exception as exc:  # one case failing must not hide the others
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for r in rows:
            r.error = why
        ctx.progress(f"{label}: FAILED ({why})")
    else:
        for r in rows:
            ctx.progress(
                f"{r.block} / {r.backend} / {r.path}: p50 {r.p50_ms:.3f} ms, "
                f"p99 {r.p99_ms:.3f} ms, {r.ops_s:.0f} ops/s at {ctx.sizes.in_flight} in flight"
            )
        ctx.progress(f"  ({time.perf_counter() - started:.1f}s)")
    ctx.rows.extend(rows)


# --- the blocks --------------------------------------------------------------------------------


@dataclass
class Clients:
    ep: Endpoints
    run_id: str
    redis_host: str
    pg_url: str | None
    http_client: str
    http: Any = None  # Http
    channel: Any = None  # grpc.aio.Channel
    stub: Any = None  # DaprStub
    redis: Any = None  # redis.asyncio.Redis
    pool: Any = None  # asyncpg.Pool

    def redis_client(self) -> Any:
        from redis.asyncio import Redis

        host, _, port = self.redis_host.rpartition(":")
        return Redis(
            host=host, port=int(port), socket_timeout=OP_TIMEOUT_S, socket_connect_timeout=5.0
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ep.http_port}"


async def _state_block(ctx: Context, c: Clients, backend: str) -> None:
    direct: StateClient
    if backend == "redis":
        direct, store = DirectRedisState(c.redis, f"{c.run_id}:direct:"), REDIS_STATE
    else:
        import asyncpg

        c.pool = await asyncpg.create_pool(
            c.pg_url,
            min_size=1,
            max_size=ctx.sizes.in_flight,
            command_timeout=OP_TIMEOUT_S,
            timeout=OP_TIMEOUT_S,
        )
        await c.pool.execute(PG_KV_DDL)
        direct, store = DirectPgState(c.pool, f"{c.run_id}:direct:"), PG_STATE
    clients: list[tuple[str, StateClient]] = [
        (DIRECT, direct),
        (HTTP, TetherHttpState(c.http, store, f"{c.run_id}-http-")),
        (GRPC, TetherGrpcState(c.stub, store, f"{c.run_id}-grpc-")),
    ]
    # All saves before any get: each get reads keys its own path wrote.
    for block in ("state save", "state get"):
        for path, sc in clients:
            row = Row(block, backend, path)
            op: Op = sc.save if block == "state save" else sc.get
            await _run(ctx, [row], _op_case(ctx, row, op))


async def _pubsub_block(ctx: Context, c: Clients) -> None:
    for path in (DIRECT, HTTP, GRPC):
        await _pubsub_path(ctx, c, path)


async def _pubsub_path(ctx: Context, c: Clients, path: str) -> None:
    deliveries = Deliveries()
    topic = f"{c.run_id}-{path.replace(' ', '-')}"
    publisher: Publisher
    subscriber: Subscriber
    reader = None
    if path == DIRECT:
        reader = c.redis_client()
        publisher = DirectStreamPublisher(c.redis, topic)
        subscriber = DirectStreamSubscriber(reader, topic, deliveries)
    else:
        subscriber = TetherStreamSubscriber(c.stub, PUBSUB, topic, deliveries)
        publisher = (
            TetherHttpPublisher(c.http, PUBSUB, topic)
            if path == HTTP
            else TetherGrpcPublisher(c.stub, PUBSUB, topic)
        )
    backend = "redis streams"
    delivery = Row("publish->delivery", backend, path)
    call = Row("publish call", backend, path)

    async def body() -> None:
        await subscriber.start()
        await _pubsub_case(ctx, delivery, call, publisher, subscriber, deliveries)

    try:
        await _run(ctx, [delivery, call], body())
    finally:
        await subscriber.close()
        deliveries.forget()
        if reader is not None:
            await reader.aclose()


async def _floor_block(ctx: Context, c: Clients) -> None:
    for name, cls in HTTP_CLIENTS.items():
        http: Http = cls(c.base_url, 2 * ctx.sizes.in_flight)
        try:

            async def healthz(_: int, http: Http = http) -> None:
                status, _body = await http.get("/v1.0/healthz")
                if status != 204:
                    raise BenchError(f"healthz: {status}")

            row = Row("HTTP floor (healthz)", "none", f"tether http/{name}")
            await _run(ctx, [row], _op_case(ctx, row, healthz))
        finally:
            await http.aclose()


async def run_blocks(ctx: Context, blocks: Sequence[str], c: Clients) -> None:
    import grpc
    from dapr.proto.runtime.v1 import dapr_pb2_grpc

    c.http = HTTP_CLIENTS[c.http_client](c.base_url, 2 * ctx.sizes.in_flight)
    c.channel = grpc.aio.insecure_channel(f"127.0.0.1:{c.ep.grpc_port}")
    c.stub = dapr_pb2_grpc.DaprStub(c.channel)  # type: ignore[no-untyped-call]
    c.redis = c.redis_client()
    try:
        await asyncio.wait_for(c.channel.channel_ready(), OP_TIMEOUT_S)
        for name in blocks:
            print(f"==> {name}: {BLOCKS[name]}", flush=True)
            try:
                if name == "state-redis":
                    await _state_block(ctx, c, "redis")
                elif name == "state-postgres":
                    await _state_block(ctx, c, "postgres")
                elif name == "pubsub":
                    await _pubsub_block(ctx, c)
                elif name == "floor":
                    await _floor_block(ctx, c)
            except Exception as exc:  # set-up of a block (e.g. its pool) failed
                why = f"{type(exc).__name__}: {exc}"
                ctx.progress(f"{name}: FAILED ({why})")
                ctx.rows.append(Row(name, "-", "-", error=why))
    finally:
        await c.http.aclose()
        await c.channel.close()
        await c.redis.aclose()
        if c.pool is not None:
            await asyncio.wait_for(c.pool.close(), OP_TIMEOUT_S)


# --- set-up and tear-down ----------------------------------------------------------------------


def _component(name: str, kind: str, metadata: dict[str, str]) -> str:
    lines = [
        "apiVersion: dapr.io/v1alpha1",
        "kind: Component",
        "metadata:",
        f"  name: {name}",
        "spec:",
        f"  type: {kind}",
        "  version: v1",
        "  metadata:",
    ]
    for key, value in metadata.items():
        lines += [f"  - name: {key}", f"    value: {json.dumps(value)}"]
    return "\n".join(lines) + "\n"


def write_resources(
    folder: Path, redis_host: str | None, pg_url: str | None, in_flight: int
) -> list[str]:
    """The components the run needs (Redis ones only given a host, the
    PostgreSQL one only given a URL); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    if redis_host is not None:
        (folder / "redis-state.yaml").write_text(
            _component(REDIS_STATE, "state.redis", {"redisHost": redis_host})
        )
        (folder / "redis-pubsub.yaml").write_text(
            _component(PUBSUB, "pubsub.redis", {"redisHost": redis_host, "consumerID": APP_ID})
        )
        names += [REDIS_STATE, PUBSUB]
    if pg_url is not None:
        # The same pool ceiling as the direct asyncpg pool, so neither waits
        # for connections the other has.
        (folder / "pg-state.yaml").write_text(
            _component(
                PG_STATE,
                "state.postgresql",
                {"connectionString": pg_url, "maxConns": str(in_flight)},
            )
        )
        names.append(PG_STATE)
    return names


def wait_for_components(http_port: int, names: Sequence[str], timeout_s: float) -> None:
    give_up = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < give_up:
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            url = f"http://127.0.0.1:{http_port}/v1.0/metadata"
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                doc = json.loads(resp.read())
            seen = {str(c.get("name")) for c in doc.get("components") or ()}
            if set(names) <= seen:
                return
        time.sleep(0.2)
    missing = sorted(set(names) - seen)
    raise RuntimeError(
        f"components {missing} not loaded after {timeout_s:.0f}s (see the server log above)"
    )


def redis_reachable(host: str) -> str | None:
    import redis

    h, _, port = host.rpartition(":")
    try:
        client = redis.Redis(host=h, port=int(port), socket_timeout=3, socket_connect_timeout=3)
        with contextlib.closing(client):
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"Redis at {host} unreachable: {exc}"
    return None


def clean_redis(host: str, run_id: str) -> int:
    """Delete every key and stream this run wrote (their names hold run_id)."""
    import redis

    h, _, port = host.rpartition(":")
    client = redis.Redis(host=h, port=int(port), socket_timeout=10, socket_connect_timeout=3)
    deleted = 0
    with contextlib.closing(client):
        batch: list[Any] = []
        for key in client.scan_iter(match=f"*{run_id}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    return deleted


@contextlib.contextmanager
def _maybe_database(admin_url: str, wanted: bool) -> Iterator[str | None]:
    if not wanted:
        yield None
        return
    with throwaway_database(admin_url, PG_DATABASE) as url:
        yield url


# --- CLI ---------------------------------------------------------------------------------------


def _parse_blocks(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BLOCKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown block(s) {', '.join(unknown)}; choose from {','.join(BLOCKS)}"
        )
    return names


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.blocks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--blocks",
        type=_parse_blocks,
        default=list(BLOCKS),
        help=f"comma-separated, default all: {','.join(BLOCKS)}",
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        help=f"fraction of full size: {LATENCY_OPS} sequential ops per latency case, "
        f"{THROUGHPUT_OPS} per throughput case, at least {MIN_OPS} each (default 1.0)",
    )
    parser.add_argument(
        "--in-flight",
        type=_positive_int,
        default=IN_FLIGHT,
        help=f"ops outstanding at once in the throughput runs (default {IN_FLIGHT})",
    )
    parser.add_argument(
        "--http-client",
        choices=sorted(HTTP_CLIENTS),
        default="aiohttp",
        help="client for the tether http rows (default aiohttp; see above for why)",
    )
    parser.add_argument(
        "--redis-host",
        default="127.0.0.1:6379",
        help="host:port of the Redis used directly and by the components",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=DEFAULT_ADMIN_URL,
        help=f"where the throwaway {PG_DATABASE} database is created and dropped "
        f"(default {DEFAULT_ADMIN_URL})",
    )
    parser.add_argument(
        "--deadline",
        type=positive_float,
        default=900.0,
        help="seconds the whole measurement may take before the process dumps its stacks "
        "and exits (default 900)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = tether_missing()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    blocks: list[str] = args.blocks
    redis_needed = any(b in blocks for b in ("state-redis", "pubsub"))
    if redis_needed and (why := redis_reachable(args.redis_host)) is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    pg_wanted = "state-postgres" in blocks
    sizes = Sizes.scaled(args.scale, args.in_flight)
    run_id = f"bench-blocks-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
    cpus = os.cpu_count() or 1
    print(
        f"bench.blocks: {sizes.latency} sequential ops per latency case, {sizes.throughput} "
        f"ops {sizes.in_flight} in flight per throughput case, {sizes.warmup}+ warm-up; "
        f"{cpus} CPUs, load {load_before[0]:.2f}; run id {run_id}",
        flush=True,
    )
    ctx = Context(sizes, None)
    ctx.case_timeout_s = 120.0 + 0.05 * (sizes.latency + sizes.throughput + 2 * sizes.warmup)
    started = time.perf_counter()
    whole: CpuShare | None = None
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-blocks-")))
            pg_url = stack.enter_context(_maybe_database(args.pg_admin_url, pg_wanted))
            names = write_resources(
                tmp / "resources",
                args.redis_host if redis_needed else None,
                pg_url,
                sizes.in_flight,
            )
            extra = ["--resources", str(tmp / "resources"), "--app-id", APP_ID]
            ep = stack.enter_context(tether_server("memory://", tmp, extra))
            wait_for_components(ep.http_port, names, COMPONENTS_TIMEOUT_S)
            ctx.server_pid = ep.pid
            first = CpuMark.now(ep.pid)
            with deadline(args.deadline):
                clients = Clients(ep, run_id, args.redis_host, pg_url, args.http_client)
                asyncio.run(run_blocks(ctx, blocks, clients))
            whole = CpuMark.now(ep.pid).since(first)
    except Exception as exc:  # set-up or tear-down: no server, no database, ...
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if not ctx.rows:
            return 2
    finally:
        if redis_needed:
            with contextlib.suppress(Exception):
                print(f"cleaned up {clean_redis(args.redis_host, run_id)} Redis keys", flush=True)
    wall = time.perf_counter() - started

    rows = ctx.rows
    print()
    print(
        f"Building blocks (scale {args.scale}: {sizes.latency} sequential ops per latency, "
        f"{sizes.throughput} ops {sizes.in_flight} in flight per throughput; HTTP client "
        f"{args.http_client}; {cpus} CPUs; {wall:.0f}s total)"
    )
    print(table(rows, sizes.in_flight))
    notes = [f"  {r.block} / {r.backend} / {r.path}: {r.note}" for r in rows if r.note]
    if notes:
        print("\n".join(notes))
    print(
        "\ntether CPU ms/op = the Tether server's CPU time per op in the throughput run "
        "(for publish rows: per event, publish and delivery together).\n"
        "cores = average CPU cores used during the throughput run by this process (client), "
        "the Tether server, redis-server + postgres processes, and everything else "
        "(kernel I/O threads included); clock-tick resolution, so rough below ~1 s of run."
    )
    load_note = f"Machine: 1-minute load {load_before[0]:.2f} at start"
    if whole is not None and whole.other is not None:
        load_note += f"; other processes used {whole.other:.2f} cores on average during the run"
        if whole.other > OTHER_CPU_WARN_CORES:
            load_note += " (figures skewed by them)"
    print(load_note + ".")
    print(
        f"\nTargets: added p50 <= {TARGET_ADDED_P50_MS} ms over direct, "
        f"throughput >= {TARGET_RATIO:.0%} of direct"
    )
    lines = target_lines(rows, cpus)
    print("\n".join(lines) if lines else "  (no Tether row with a direct baseline)")
    missed = [v for v in verdicts(rows) if not (v.latency_ok and v.throughput_ok)]
    if missed:
        print(f"{len(missed)} of {len(verdicts(rows))} Tether rows miss a target.")
    failed = [r for r in rows if r.error is not None]
    if failed:
        print(f"{len(failed)} row(s) FAILED; see above.")

    if args.json is not None:
        meta = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "scale": args.scale,
            "http_client": args.http_client,
            "sizes": asdict(sizes),
            "cpus": cpus,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_1m_at_start": load_before[0],
            "other_cpu_cores": whole.other if whole else None,
            "wall_s": wall,
        }
        args.json.write_text(json.dumps(as_json(rows, meta), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
