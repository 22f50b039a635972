"""The state store contract, run against every backend (real Redis and PostgreSQL).

Stores are built through the component registry from a `ComponentSpec`, as the runtime does.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.fixtures.redis import host_port
from tests.fixtures.tether import free_port
from tether import errors
from tether.components import registry
from tether.components import state as state_components
from tether.components.state.base import (
    Concurrency,
    DeleteOp,
    Feature,
    SetOp,
    StateItem,
    StateStore,
)
from tether.components.state.query import parse_query
from tether.resources.component import ComponentSpec

BACKENDS = ["in-memory", "sqlite", "postgresql", "redis"]
QUERYABLE = {"in-memory", "sqlite", "postgresql"}
# Cases that only some backends have are parametrized over those backends, never skipped; what
# the others do instead (refuse, forget) is asserted by tests of their own.
on_queryable = pytest.mark.parametrize("backend", sorted(QUERYABLE), indirect=True)
on_persistent = pytest.mark.parametrize(
    "backend", [k for k in BACKENDS if k != "in-memory"], indirect=True
)
FIRST = Concurrency.FIRST_WRITE


@dataclass
class Backend:
    kind: str
    store: StateStore
    #: Prepended to every key, so tests sharing a server never see each other's keys.
    prefix: str
    #: Builds another store of this kind on the same data (None for in-memory).
    reopen: Callable[[], Awaitable[StateStore]] | None

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


def _metadata(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[dict[str, str], str]:
    if kind == "sqlite":
        return {"connectionString": str(tmp_path / "state.db")}, ""
    if kind == "postgresql":
        return {"connectionString": request.getfixturevalue("pg_database_url")}, ""
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return {"redisHost": host_port(url)}, request.getfixturevalue("redis_prefix")
    return {}, ""


async def _build(kind: str, metadata: dict[str, str]) -> StateStore:
    state_components.register()
    spec = ComponentSpec(name="statestore", type=f"state.{kind}", metadata=metadata)
    store = registry.build(spec)
    assert isinstance(store, StateStore)
    await store.init()
    return store


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    metadata, prefix = _metadata(kind, request, tmp_path)
    opened: list[StateStore] = []

    async def reopen() -> StateStore:
        store = await _build(kind, metadata)
        opened.append(store)
        return store

    store = await reopen()
    try:
        yield Backend(kind, store, prefix, None if kind == "in-memory" else reopen)
    finally:
        for one in opened:
            await one.close()


async def wait_for(probe: Callable[[], Awaitable[bool]], timeout: float = 6.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s")
        await asyncio.sleep(0.05)


async def value_of(b: Backend, name: str) -> bytes | None:
    item = await b.store.get(b.key(name))
    return None if item is None else item.value


# --- get / set ------------------------------------------------------------------------------


async def test_features(backend: Backend) -> None:
    features = backend.store.features()
    assert {Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL} <= features
    assert (Feature.QUERY_API in features) == (backend.kind in QUERYABLE)


async def test_missing_key_reads_as_none(backend: Backend) -> None:
    assert await backend.store.get(backend.key("nope")) is None


@pytest.mark.parametrize(
    "value",
    [
        b'{"b": 1,   "a": [1, 2.50, "x"]}',
        b"\xff\x00\x01 not utf-8",
        b"plain text",
        b'"json"',
        b"",
        b'{"n": 1e999, "smile": "\\ud83d\\ude00"}',
        b'"\\ud800 unpaired"',
        b'{"nul": "\\u0000"}',
    ],
    ids=["json", "binary", "text", "json-string", "empty", "big-number", "surrogate", "nul"],
)
async def test_values_round_trip_byte_for_byte(backend: Backend, value: bytes) -> None:
    etag = await backend.store.set(backend.key("k"), value)
    item = await backend.store.get(backend.key("k"))
    assert item == StateItem(backend.key("k"), value, etag, None)
    assert etag.isdigit()


async def test_every_write_changes_the_etag(backend: Backend) -> None:
    k = backend.key("k")
    etags = [await backend.store.set(k, b"v%d" % i) for i in range(3)]
    assert len(set(etags)) == 3
    item = await backend.store.get(k)
    assert item is not None and item.etag == etags[-1] and item.value == b"v2"


async def test_last_write_without_etag_overwrites(backend: Backend) -> None:
    k = backend.key("k")
    await backend.store.set(k, b"one")
    await backend.store.set(k, b"two", concurrency="last-write")
    assert await value_of(backend, "k") == b"two"


async def test_write_with_current_etag_succeeds_and_stale_etag_mismatches(
    backend: Backend,
) -> None:
    k = backend.key("k")
    first = await backend.store.set(k, b"one")
    second = await backend.store.set(k, b"two", etag=first)
    with pytest.raises(errors.ETagMismatch):
        await backend.store.set(k, b"three", etag=first)
    with pytest.raises(errors.ETagMismatch):
        await backend.store.set(k, b"three", etag=first, concurrency="first-write")
    assert await value_of(backend, "k") == b"two"
    await backend.store.set(k, b"three", etag=second, concurrency="first-write")
    assert await value_of(backend, "k") == b"three"


async def test_write_with_etag_to_missing_key_mismatches(backend: Backend) -> None:
    with pytest.raises(errors.ETagMismatch):
        await backend.store.set(backend.key("k"), b"v", etag="12345")
    assert await backend.store.get(backend.key("k")) is None


async def test_first_write_without_etag_only_creates(backend: Backend) -> None:
    k = backend.key("k")
    await backend.store.set(k, b"one", concurrency="first-write")
    with pytest.raises(errors.ETagMismatch) as raised:
        await backend.store.set(k, b"two", concurrency="first-write")
    assert raised.value.http_status == 409
    assert await value_of(backend, "k") == b"one"


@pytest.mark.parametrize("bad", ["not-an-etag", "-5", "1.5", "0x10", "1" * 25])
async def test_malformed_etags_are_invalid(backend: Backend, bad: str) -> None:
    k = backend.key("k")
    await backend.store.set(k, b"v")
    with pytest.raises(errors.ETagInvalid) as raised:
        await backend.store.set(k, b"w", etag=bad)
    assert raised.value.http_status == 400
    with pytest.raises(errors.DeleteETagInvalid):
        await backend.store.delete(k, etag=bad)
    assert await value_of(backend, "k") == b"v"


async def test_quoted_etag_from_http_is_accepted(backend: Backend) -> None:
    k = backend.key("k")
    etag = await backend.store.set(k, b"v")
    await backend.store.set(k, b"w", etag=f'"{etag}"')
    assert await value_of(backend, "k") == b"w"


async def test_empty_key_or_unknown_concurrency_is_a_bad_request(backend: Backend) -> None:
    with pytest.raises(errors.BadRequest):
        await backend.store.set("", b"v")
    with pytest.raises(errors.BadRequest, match="first-write or last-write"):
        await backend.store.set(backend.key("k"), b"v", concurrency="eventual")
    await backend.store.set(backend.key("k"), b"v", concurrency="")


# --- delete ---------------------------------------------------------------------------------


async def test_delete(backend: Backend) -> None:
    k = backend.key("k")
    await backend.store.delete(k)  # missing key, no etag: a no-op
    etag = await backend.store.set(k, b"v")
    with pytest.raises(errors.DeleteETagMismatch) as raised:
        await backend.store.delete(k, etag=str(int(etag) + 1))
    assert raised.value.code == "ERR_STATE_DELETE"
    assert await value_of(backend, "k") == b"v"
    await backend.store.delete(k, etag=etag)
    assert await backend.store.get(k) is None
    with pytest.raises(errors.DeleteETagMismatch):
        await backend.store.delete(k, etag=etag)
    await backend.store.set(k, b"again")
    await backend.store.delete(k)
    assert await backend.store.get(k) is None


async def test_etags_are_not_reused_after_delete(backend: Backend) -> None:
    k = backend.key("k")
    old = await backend.store.set(k, b"v")
    await backend.store.delete(k)
    new = await backend.store.set(k, b"v")
    assert new != old
    with pytest.raises(errors.ETagMismatch):
        await backend.store.set(k, b"w", etag=old)


# --- bulk get -------------------------------------------------------------------------------


async def test_bulk_get_answers_each_key_in_order(backend: Backend) -> None:
    a = await backend.store.set(backend.key("a"), b"A")
    c = await backend.store.set(backend.key("c"), b"C")
    keys = [backend.key(n) for n in ("c", "missing", "a", "c")]
    got = await backend.store.bulk_get(keys)
    assert [None if i is None else (i.value, i.etag) for i in got] == [
        (b"C", c),
        None,
        (b"A", a),
        (b"C", c),
    ]
    assert await backend.store.bulk_get([]) == []


async def test_bulk_get_of_many_keys(backend: Backend) -> None:
    await backend.store.transact(
        [SetOp(backend.key(f"k{i}"), b"%d" % i) for i in range(0, 1200, 2)]
    )
    got = await backend.store.bulk_get([backend.key(f"k{i}") for i in range(1200)])
    assert [i.value if i else None for i in got] == [
        b"%d" % i if i % 2 == 0 else None for i in range(1200)
    ]


# --- transactions ---------------------------------------------------------------------------


async def test_transaction_applies_every_operation(backend: Backend) -> None:
    k = backend.key
    b_etag = await backend.store.set(k("b"), b"B")
    await backend.store.set(k("c"), b"C")
    await backend.store.transact(
        [
            SetOp(k("a"), b"A", concurrency=FIRST),
            SetOp(k("b"), b"B2", etag=b_etag),
            DeleteOp(k("c")),
        ]
    )
    assert [await value_of(backend, n) for n in "abc"] == [b"A", b"B2", None]


async def test_transaction_is_all_or_nothing(backend: Backend) -> None:
    k = backend.key
    await backend.store.set(k("a"), b"A")
    b_etag = await backend.store.set(k("b"), b"B")
    await backend.store.set(k("c"), b"C")
    stale = str(int(b_etag) + 1)
    for failing in (SetOp(k("b"), b"B2", etag=stale), DeleteOp(k("b"), etag=stale)):
        with pytest.raises(errors.ETagMismatch):
            await backend.store.transact(
                [SetOp(k("a"), b"A2"), failing, DeleteOp(k("c")), SetOp(k("d"), b"D")]
            )
        assert [await value_of(backend, n) for n in "abcd"] == [b"A", b"B", b"C", None]
    item = await backend.store.get(k("b"))
    assert item is not None and item.etag == b_etag


async def test_transaction_checks_see_earlier_operations(backend: Backend) -> None:
    k = backend.key
    await backend.store.set(k("a"), b"A")
    await backend.store.transact([DeleteOp(k("a")), SetOp(k("a"), b"new", concurrency=FIRST)])
    assert await value_of(backend, "a") == b"new"
    with pytest.raises(errors.ETagMismatch):
        await backend.store.transact([SetOp(k("x"), b"1"), SetOp(k("x"), b"2", concurrency=FIRST)])
    assert await backend.store.get(k("x")) is None


async def test_transaction_with_a_bad_etag_changes_nothing(backend: Backend) -> None:
    with pytest.raises(errors.ETagInvalid):
        await backend.store.transact(
            [SetOp(backend.key("a"), b"A"), SetOp(backend.key("b"), b"B", etag="zzz")]
        )
    assert await backend.store.get(backend.key("a")) is None


# --- TTL ------------------------------------------------------------------------------------


async def test_items_expire_after_their_ttl(backend: Backend) -> None:
    k = backend.key("k")
    before = time.time()
    etag = await backend.store.set(k, b"short", ttl_seconds=1)
    await backend.store.set(backend.key("forever"), b"long")
    item = await backend.store.get(k)
    assert item is not None and item.value == b"short"
    assert item.expires_at is not None and before < item.expires_at <= time.time() + 1.5

    async def expired() -> bool:
        return await backend.store.get(k) is None

    await wait_for(expired)
    assert await backend.store.bulk_get([k]) == [None]
    assert await value_of(backend, "forever") == b"long"
    with pytest.raises(errors.ETagMismatch):  # an expired item has no etag to match
        await backend.store.set(k, b"x", etag=etag)
    await backend.store.set(k, b"fresh", concurrency="first-write")  # the key is free again
    assert await value_of(backend, "k") == b"fresh"


async def test_a_set_replaces_the_ttl(backend: Backend) -> None:
    k = backend.key("k")
    await backend.store.set(k, b"v", ttl_seconds=100)
    await backend.store.set(k, b"w")
    item = await backend.store.get(k)
    assert item is not None and item.expires_at is None
    await backend.store.transact([SetOp(k, b"x", ttl_seconds=50)])
    item = await backend.store.get(k)
    assert item is not None and item.expires_at is not None
    assert time.time() + 45 < item.expires_at < time.time() + 55


async def test_component_default_ttl_and_its_override(backend: Backend) -> None:
    backend.store.default_ttl = 100
    await backend.store.set(backend.key("a"), b"v")
    await backend.store.set(backend.key("b"), b"v", ttl_seconds=-1)
    a, b = await backend.store.bulk_get([backend.key("a"), backend.key("b")])
    assert a is not None and a.expires_at is not None and a.expires_at > time.time() + 90
    assert b is not None and b.expires_at is None


async def test_ttl_below_minus_one_is_a_bad_request(backend: Backend) -> None:
    with pytest.raises(errors.BadRequest):
        await backend.store.set(backend.key("k"), b"v", ttl_seconds=-2)


# --- concurrency ----------------------------------------------------------------------------


async def _race(writes: list[Awaitable[str]]) -> tuple[int, int]:
    results = await asyncio.gather(*writes, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, errors.ETagMismatch):
            raise r
    won = sum(isinstance(r, str) for r in results)
    return won, len(results) - won


async def test_concurrent_first_writes_have_one_winner(backend: Backend) -> None:
    k = backend.key("k")
    stores = [backend.store]
    if backend.reopen is not None:
        stores.append(await backend.reopen())  # a second runtime on the same data
    writes = [
        stores[i % len(stores)].set(k, b"%d" % i, concurrency="first-write") for i in range(20)
    ]
    assert await _race(writes) == (1, 19)


async def test_concurrent_updates_with_one_etag_have_one_winner(backend: Backend) -> None:
    k = backend.key("k")
    etag = await backend.store.set(k, b"start")
    stores = [backend.store]
    if backend.reopen is not None:
        stores.append(await backend.reopen())
    writes = [stores[i % len(stores)].set(k, b"%d" % i, etag=etag) for i in range(20)]
    assert await _race(writes) == (1, 19)


@on_persistent
async def test_data_survives_reopening(backend: Backend) -> None:
    assert backend.reopen is not None
    etag = await backend.store.set(backend.key("k"), b"kept")
    await backend.store.close()
    again = await backend.reopen()
    assert await again.get(backend.key("k")) == StateItem(backend.key("k"), b"kept", etag)


# --- query ----------------------------------------------------------------------------------

PEOPLE: dict[str, dict[str, Any]] = {
    "1": {"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"},
    "2": {"person": {"org": "Hardware", "id": 1028}, "city": "Portland", "state": "OR"},
    "3": {"person": {"org": "Finance", "id": 1071}, "city": "Sacramento", "state": "CA"},
    "4": {"person": {"org": "Dev Ops", "id": 1042}, "city": "Spokane", "state": "WA"},
    "5": {"person": {"org": "Hardware", "id": 1007}, "city": "Los Angeles", "state": "CA"},
    "6": {"person": {"org": "Finance", "id": 1094.5}, "city": "Eugene", "state": "OR"},
    "7": {"person": {"org": "Dev Ops", "id": 1015}, "city": "San Francisco", "state": "CA"},
    "8": {"person": {"org": "Hardware", "id": 1077}, "city": "Redmond", "state": "WA"},
    "9": {"person": {"org": "Finance", "id": 1002}, "city": "San Diego", "state": "CA"},
    "10": {"person": {"org": "Dev Ops", "id": 1054, "lead": True}, "city": "NYC", "state": "NY"},
}


async def _seed(b: Backend) -> None:
    ops: list[SetOp | DeleteOp] = [
        SetOp(b.key(f"app||{n}"), json.dumps(doc).encode()) for n, doc in PEOPLE.items()
    ]
    ops += [
        SetOp(b.key("app||binary"), b"\xff\x00 not json"),
        SetOp(b.key("app||scalar"), b'"just a string"'),
        SetOp(b.key("other||1"), json.dumps(PEOPLE["1"]).encode()),
    ]
    await b.store.transact(ops)


async def _names(b: Backend, query: dict[str, Any]) -> list[str]:
    result = await b.store.query(parse_query(query), key_prefix=b.key("app||"))
    assert result.token is None
    for item in result.items:
        assert item.etag.isdigit()
    return [item.key.removeprefix(b.key("app||")) for item in result.items]


def _expected(pred: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {n for n, doc in PEOPLE.items() if pred(doc)}


@pytest.fixture
async def people(backend: Backend) -> Backend:
    await _seed(backend)
    return backend


@pytest.mark.parametrize("backend", [k for k in BACKENDS if k not in QUERYABLE], indirect=True)
async def test_query_is_refused_where_there_is_no_query_api(backend: Backend) -> None:
    with pytest.raises(errors.QueryUnsupported):
        await backend.store.query(parse_query({}))


@on_queryable
async def test_query_filters(people: Backend) -> None:
    b = people
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"EQ": {"state": "CA"}}, _expected(lambda d: d["state"] == "CA")),
        ({"EQ": {"person.org": "Dev Ops"}}, _expected(lambda d: d["person"]["org"] == "Dev Ops")),
        ({"EQ": {"person.id": 1036}}, {"1"}),
        ({"EQ": {"person.id": "1036"}}, set()),  # types must agree
        ({"EQ": {"person.id": 1094.5}}, {"6"}),
        ({"EQ": {"person.lead": True}}, {"10"}),
        ({"EQ": {"person.missing": "x"}}, set()),
        ({"IN": {"state": ["CA", "WA"]}}, _expected(lambda d: d["state"] in ("CA", "WA"))),
        ({"GT": {"person.id": 1050}}, _expected(lambda d: d["person"]["id"] > 1050)),
        ({"LTE": {"person.id": 1028}}, _expected(lambda d: d["person"]["id"] <= 1028)),
        ({"GTE": {"state": "WA"}}, _expected(lambda d: d["state"] >= "WA")),
        ({"LT": {"city": "Portland"}}, _expected(lambda d: d["city"] < "Portland")),
        (
            {"AND": [{"EQ": {"person.org": "Finance"}}, {"IN": {"state": ["CA", "WA"]}}]},
            {"3", "9"},
        ),
        (
            {
                "OR": [
                    {"EQ": {"person.org": "Hardware"}},
                    {"AND": [{"EQ": {"person.org": "Finance"}}, {"IN": {"state": ["CA", "WA"]}}]},
                ]
            },
            {"2", "5", "8", "3", "9"},
        ),
    ]
    for flt, expected in cases:
        assert set(await _names(b, {"filter": flt})) == expected, flt
    # NEQ also matches documents without the field (the JSON string value here).
    neq = await _names(b, {"filter": {"NEQ": {"state": "CA"}}})
    assert set(neq) == _expected(lambda d: d["state"] != "CA") | {"scalar"}


@on_queryable
async def test_query_without_filter_returns_json_values_under_the_prefix(people: Backend) -> None:
    names = await _names(people, {})
    assert names == sorted([*PEOPLE, "scalar"])  # key order; not the binary one, not "other||"


@on_queryable
async def test_query_sorts(people: Backend) -> None:
    names = await _names(
        people, {"sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}]}
    )
    expected = sorted(PEOPLE, key=lambda n: PEOPLE[n]["person"]["id"])
    expected.sort(key=lambda n: PEOPLE[n]["state"], reverse=True)
    assert names == [*expected, "scalar"]  # items without the sort field come last
    by_id = await _names(
        people,
        {
            "filter": {"IN": {"state": ["CA", "OR"]}},
            "sort": [{"key": "person.id", "order": "DESC"}],
        },
    )
    assert by_id == ["6", "3", "2", "7", "5", "9"]


@on_queryable
async def test_query_pages(people: Backend) -> None:
    query: dict[str, Any] = {
        "filter": {"IN": {"state": ["CA", "WA", "OR"]}},
        "sort": [{"key": "person.id"}],
        "page": {"limit": 4},
    }
    pages: list[list[str]] = []
    while True:
        result = await people.store.query(parse_query(query), key_prefix=people.key("app||"))
        pages.append([i.key.removeprefix(people.key("app||")) for i in result.items])
        if result.token is None:
            break
        query["page"]["token"] = result.token
    expected = sorted(
        _expected(lambda d: d["state"] != "NY"), key=lambda n: PEOPLE[n]["person"]["id"]
    )
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [n for page in pages for n in page] == expected
    exact = await people.store.query(
        parse_query({"filter": {"EQ": {"state": "WA"}}, "page": {"limit": 3}}),
        key_prefix=people.key("app||"),
    )
    assert len(exact.items) == 3 and exact.token is None  # no empty last page


@on_queryable
async def test_query_results_carry_value_and_etag(people: Backend) -> None:
    result = await people.store.query(
        parse_query({"filter": {"EQ": {"person.id": 1036}}}), key_prefix=people.key("app||")
    )
    (item,) = result.items
    assert item == await people.store.get(people.key("app||1"))


@on_queryable
async def test_query_skips_expired_items(people: Backend) -> None:
    k = people.key("app||brief")
    await people.store.set(k, json.dumps({"state": "CA"}).encode(), ttl_seconds=1)
    assert "brief" in await _names(people, {"filter": {"EQ": {"state": "CA"}}})

    async def gone() -> bool:
        return "brief" not in await _names(people, {"filter": {"EQ": {"state": "CA"}}})

    await wait_for(gone)


@on_queryable
async def test_query_rejects_a_token_it_never_issued(people: Backend) -> None:
    with pytest.raises(errors.QueryInvalid):
        await people.store.query(parse_query({"page": {"limit": 2, "token": "abc"}}))


# --- backend specifics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "metadata", "message"),
    [
        ("sqlite", {"tableName": "bad name;"}, "metadata tableName='bad name;'"),
        ("sqlite", {"tableName": "main.state"}, "without a schema"),
        ("postgresql", {}, "metadata connectionString=''"),
        ("postgresql", {"connectionString": "host=x", "tableName": "a.b.c"}, "tableName"),
        ("postgresql", {"connectionString": "host='unterminated"}, "connectionString"),
        ("redis", {"redisHost": "nohost"}, "metadata redisHost='nohost' is not host:port"),
        ("redis", {"redisDB": "first"}, "metadata redisDB='first' is not an integer"),
        ("in-memory", {"ttlInSeconds": "soon"}, "ttlInSeconds must be an integer"),
    ],
)
def test_bad_metadata_is_reported_when_built(
    kind: str, metadata: dict[str, str], message: str
) -> None:
    state_components.register()
    spec = ComponentSpec(name="bad", type=f"state.{kind}", metadata=metadata)
    with pytest.raises(errors.StateComponentInvalid, match=re.escape(message)):
        registry.build(spec)


async def test_sqlite_defaults_to_the_data_dir(tmp_path: Path) -> None:
    store = await _build("sqlite", {"tetherDataDir": str(tmp_path)})
    try:
        await store.set("k", b"v")
    finally:
        await store.close()
    assert (tmp_path / "state" / "statestore.db").exists()


async def test_postgres_keyword_connection_string_and_schema_table(pg_database_url: str) -> None:
    url = urlsplit(pg_database_url)
    keywords = (
        f"host={url.hostname} port={url.port or 5432} user={url.username} "
        f"dbname='{url.path.lstrip('/')}' connect_timeout=5 pool_max_conns=4"
    )
    conn = await asyncpg.connect(pg_database_url)
    try:
        await conn.execute("CREATE SCHEMA app")
    finally:
        await conn.close()
    store = await _build("postgresql", {"connectionString": keywords, "tableName": "app.kv"})
    try:
        etag = await store.set("k", b"v")
        assert await store.get("k") == StateItem("k", b"v", etag)
    finally:
        await store.close()


async def test_postgres_refuses_a_table_it_did_not_create(pg_database_url: str) -> None:
    conn = await asyncpg.connect(pg_database_url)
    try:  # the layout Dapr's own PostgreSQL state store creates
        await conn.execute(
            "CREATE TABLE state (key text PRIMARY KEY, value jsonb NOT NULL, "
            "isbinary boolean NOT NULL, insertdate timestamptz, updatedate timestamptz)"
        )
    finally:
        await conn.close()
    with pytest.raises(errors.StateComponentInvalid, match="not created by Tether"):
        await _build("postgresql", {"connectionString": pg_database_url})


async def test_unreachable_backends_fail_init_clearly(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(errors.StateStoreFailed, match="cannot reach Redis"):
        await _build("redis", {"redisHost": f"127.0.0.1:{port}"})
    url = f"postgresql://postgres@127.0.0.1:{port}/x"
    with pytest.raises(errors.StateStoreFailed, match="PostgreSQL"):
        await _build("postgresql", {"connectionString": url})
    (tmp_path / "file").write_text("")
    with pytest.raises(errors.StateStoreFailed, match="SQLite"):
        await _build("sqlite", {"connectionString": str(tmp_path / "file" / "state.db")})
