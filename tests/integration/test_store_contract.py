"""The workflow store contract (`store/base.py`), checked the same way against every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tether import errors
from tether.workflow import protos as p
from tether.workflow.model import Activity, InboxItem, Instance, InstanceQuery
from tether.workflow.store import Batch, NewInstance, WorkflowStore, open_store
from tether.workflow.store.postgres import connect_args

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@dataclasses.dataclass
class Backend:
    name: str
    make: Callable[[], WorkflowStore]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        memory = open_store("memory://", tmp_path)
        return Backend("memory", lambda: memory)  # "reopening" keeps the same process memory
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'wf.db'}"
        return Backend("sqlite", lambda: open_store(url, tmp_path))
    url = request.getfixturevalue("pg_store_url")
    return Backend("postgres", lambda: open_store(url, tmp_path))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[WorkflowStore]:
    s = backend.make()
    await s.open()
    yield s
    await s.close()


def inst(
    iid: str,
    *,
    status: int = p.STATUS_RUNNING,
    name: str = "wf",
    created: datetime = T0,
    parent: str | None = None,
    turn: int = 0,
    execution: str = "e1",
) -> Instance:
    return Instance(
        iid, name, status, execution, created, created, parent_id=parent, turn=turn, app_id="app"
    )


def create(
    *instances: Instance, inbox: list[InboxItem] | None = None, replace: bool = True
) -> Batch:
    return Batch(creates=[NewInstance(i, list(inbox or []), replace) for i in instances])


async def snapshot(store: WorkflowStore, iid: str) -> tuple[object, ...]:
    acts = sorted(await store.get_activities(iid), key=lambda a: (a.execution_id, a.task_id))
    return (
        await store.get_instance(iid),
        await store.get_history(iid),
        await store.get_inbox(iid),
        acts,
    )


# --- create, replace, fencing ---------------------------------------------------------------


async def test_create_then_get_roundtrips_every_field(store: WorkflowStore) -> None:
    full = Instance(
        "full", "wf", p.STATUS_PENDING, "exec-1", T0, T0 + timedelta(microseconds=7),
        input='{"a": 1}', output="out", custom_status="cs", failure=b"\x00\xfffail",
        parent_id="parent", parent_task_id=3, parent_execution_id="pe",
        scheduled_start=T0 + timedelta(hours=1), completed_at=T0 + timedelta(days=1),
        version="v2", app_id="app", turn=4,
    )  # fmt: skip
    items = [InboxItem(0, b"start", prio=0), InboxItem(0, b"later", T0 + timedelta(seconds=5))]
    await store.commit(create(full, inbox=items))
    assert await store.get_instance("full") == full
    assert all(i.seq > 0 for i in items) and items[0].seq < items[1].seq
    assert await store.get_inbox("full") == items
    assert await store.get_instance("nope") is None
    assert await store.get_history("nope") == []
    assert await store.get_inbox("nope") == []
    assert await store.get_activities("nope") == []


async def test_duplicate_create_raises_and_changes_nothing(store: WorkflowStore) -> None:
    await store.commit(create(inst("a"), inbox=[InboxItem(0, b"x")]))
    await store.commit(Batch(history_append=[("a", 0, [b"h0"])]))
    before = await snapshot(store, "a")
    dup = create(inst("b"), inst("a", execution="e2"), inbox=[InboxItem(0, b"y")])
    dup.inbox_add.append(("a", InboxItem(0, b"z")))
    with pytest.raises(errors.InstanceAlreadyExists):
        await store.commit(dup)
    assert await snapshot(store, "a") == before
    assert await store.get_instance("b") is None
    # A terminal instance is only replaced when the create asks for it.
    await store.commit(Batch(instances=[inst("a", status=p.STATUS_COMPLETED)]))
    with pytest.raises(errors.InstanceAlreadyExists):
        await store.commit(create(inst("a", execution="e3"), replace=False))
    assert (await store.get_instance("a")) == inst("a", status=p.STATUS_COMPLETED)


async def test_replacing_a_terminal_instance_purges_its_old_rows(store: WorkflowStore) -> None:
    await store.commit(create(inst("a"), inbox=[InboxItem(0, b"old")]))
    await store.commit(
        Batch(
            instances=[inst("a", status=p.STATUS_FAILED)],
            history_append=[("a", 0, [b"h0", b"h1"])],
            activities_add=[Activity("a", "e1", 1, b"req")],
        )
    )
    new = inst("a", execution="e2", created=T0 + timedelta(seconds=1))
    fresh = InboxItem(0, b"new", prio=0)
    await store.commit(create(new, inbox=[fresh]))
    assert await snapshot(store, "a") == (new, [], [fresh], [])


async def test_purge_and_create_in_one_batch_replaces_a_live_instance(
    store: WorkflowStore,
) -> None:
    await store.commit(create(inst("a"), inbox=[InboxItem(0, b"old")]))
    batch = create(inst("a", execution="e2"))
    batch.purge.append("a")
    await store.commit(batch)
    assert await snapshot(store, "a") == (inst("a", execution="e2"), [], [], [])


async def test_expect_turn_fences_writes_and_bumps_the_turn(store: WorkflowStore) -> None:
    await store.commit(create(inst("a"), inst("other")))
    row = inst("a", status=p.STATUS_SUSPENDED)
    await store.commit(Batch(instances=[row], expect_turn={"a": 0}))
    got = await store.get_instance("a")
    assert got is not None and got.turn == 1 and got.status == p.STATUS_SUSPENDED
    assert row.turn == 0  # the caller's record is not touched

    before = {iid: await snapshot(store, iid) for iid in ("a", "other")}
    stale = Batch(
        purge=["other"],
        creates=[NewInstance(inst("c"), [InboxItem(0, b"c")])],
        instances=[inst("a", status=p.STATUS_COMPLETED)],
        expect_turn={"a": 0},
        history_reset=["a"],
        history_append=[("a", 0, [b"h"])],
        inbox_add=[("a", InboxItem(0, b"x"))],
        activities_add=[Activity("a", "e1", 1, b"r")],
    )
    with pytest.raises(errors.StaleTurn):
        await store.commit(stale)
    assert {iid: await snapshot(store, iid) for iid in ("a", "other")} == before
    assert await store.get_instance("c") is None

    with pytest.raises(errors.StaleTurn):
        await store.commit(Batch(instances=[inst("ghost")], expect_turn={"ghost": 0}))
    assert await store.get_instance("ghost") is None
    # Unfenced writes store the turn they carry.
    await store.commit(Batch(instances=[inst("a", turn=9)]))
    got = await store.get_instance("a")
    assert got is not None and got.turn == 9


async def test_checks_see_the_earlier_parts_of_their_own_batch(store: WorkflowStore) -> None:
    # Fields apply in declaration order: a fence sees a create or purge that precedes it.
    batch = create(inst("a"))
    batch.instances.append(inst("a", status=p.STATUS_SUSPENDED))
    batch.expect_turn["a"] = 0
    await store.commit(batch)
    got = await store.get_instance("a")
    assert got is not None and got.turn == 1 and got.status == p.STATUS_SUSPENDED
    with pytest.raises(errors.StaleTurn):
        await store.commit(Batch(purge=["a"], instances=[inst("a")], expect_turn={"a": 1}))
    assert await store.get_instance("a") == got
    with pytest.raises(errors.InstanceAlreadyExists):
        await store.commit(create(inst("b"), inst("b", execution="e2")))
    assert await store.get_instance("b") is None


# --- history, inbox, activities -------------------------------------------------------------


async def test_history_append_reset_and_overwrite(store: WorkflowStore) -> None:
    await store.commit(create(inst("a")))
    await store.commit(Batch(history_append=[("a", 0, [b"e0", b"e1", b"e2"])]))
    await store.commit(Batch(history_append=[("a", 2, [b"x2", b"x3"])]))
    assert await store.get_history("a") == [b"e0", b"e1", b"x2", b"x3"]
    await store.commit(Batch(history_append=[("a", 1, [b"y1"])]))
    assert await store.get_history("a") == [b"e0", b"y1"]
    await store.commit(Batch(history_append=[("a", 2, [b"z2"]), ("a", 1, [b"w1", b"w2"])]))
    assert await store.get_history("a") == [b"e0", b"w1", b"w2"]
    await store.commit(Batch(history_reset=["a"]))
    assert await store.get_history("a") == []
    await store.commit(Batch(history_append=[("a", 0, [b"a0"])]))
    await store.commit(Batch(history_reset=["a"], history_append=[("a", 0, [b"n0", b"n1"])]))
    assert await store.get_history("a") == [b"n0", b"n1"]


async def test_inbox_assigns_increasing_seqs_and_delivers_by_prio_then_seq(
    store: WorkflowStore,
) -> None:
    later = T0 + timedelta(minutes=1)
    first = [InboxItem(0, b"1"), InboxItem(0, b"2", prio=0)]
    await store.commit(create(inst("a"), inbox=first))
    second = [("a", InboxItem(0, b"3", later)), ("a", InboxItem(0, b"4", prio=0))]
    await store.commit(Batch(inbox_add=second))
    seqs = [i.seq for i in first] + [i.seq for _, i in second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    inbox = await store.get_inbox("a")
    assert [i.event for i in inbox] == [b"2", b"4", b"1", b"3"]
    assert [i.seq for i in inbox] == [seqs[1], seqs[3], seqs[0], seqs[2]]
    assert inbox[3].visible_at == later


async def test_inbox_remove_and_clear(store: WorkflowStore) -> None:
    items = [("a", InboxItem(0, bytes([n]))) for n in range(4)]
    await store.commit(Batch(creates=[NewInstance(inst("a"), [])], inbox_add=items))
    await store.commit(Batch(inbox_remove=[("a", [items[0][1].seq, items[2][1].seq])]))
    assert [i.event for i in await store.get_inbox("a")] == [b"\x01", b"\x03"]
    kept = InboxItem(0, b"after clear")
    await store.commit(Batch(inbox_clear=["a"], inbox_add=[("a", kept)]))
    assert await store.get_inbox("a") == [kept]
    await store.commit(Batch(inbox_clear=["a"]))
    assert await store.get_inbox("a") == []


async def test_activities_add_remove_clear(store: WorkflowStore) -> None:
    await store.commit(create(inst("a")))
    acts = [Activity("a", "e1", n, f"r{n}".encode()) for n in range(3)]
    await store.commit(Batch(activities_add=acts))
    await store.commit(
        Batch(activities_remove=[("a", "e1", 1)], activities_add=[Activity("a", "e1", 2, b"new")])
    )
    got = sorted(await store.get_activities("a"), key=lambda a: a.task_id)
    assert got == [acts[0], Activity("a", "e1", 2, b"new")]
    await store.commit(Batch(activities_clear=["a"], activities_add=[Activity("a", "e2", 1, b"x")]))
    assert await store.get_activities("a") == [Activity("a", "e2", 1, b"x")]


async def test_purge_removes_everything_of_one_instance(store: WorkflowStore) -> None:
    for iid in ("a", "b"):
        await store.commit(create(inst(iid), inbox=[InboxItem(0, b"i")]))
        await store.commit(
            Batch(history_append=[(iid, 0, [b"h"])], activities_add=[Activity(iid, "e1", 1, b"r")])
        )
    kept = await snapshot(store, "b")
    await store.commit(Batch(purge=["a"]))
    assert await snapshot(store, "a") == (None, [], [], [])
    assert await snapshot(store, "b") == kept


# --- queries --------------------------------------------------------------------------------


async def test_list_instances_filters_and_orders_newest_first(store: WorkflowStore) -> None:
    rows = [
        inst("a1", name="alpha", created=T0),
        inst("a2", name="alpha", created=T0 + timedelta(seconds=1), status=p.STATUS_COMPLETED),
        inst("b1", name="beta", created=T0 + timedelta(seconds=2), parent="a1"),
        inst("b2", name="beta", created=T0 + timedelta(seconds=3), status=p.STATUS_FAILED),
        inst("b3", name="beta", created=T0 + timedelta(seconds=3), parent="a1"),
    ]
    await store.commit(create(*rows))

    async def ids(**kw: object) -> list[str]:
        page = await store.list_instances(InstanceQuery(**kw))  # type: ignore[arg-type]
        return [i.instance_id for i in page.instances]

    assert await ids() == ["b3", "b2", "b1", "a2", "a1"]
    assert await ids(statuses=(p.STATUS_COMPLETED, p.STATUS_FAILED)) == ["b2", "a2"]
    assert await ids(name="alpha") == ["a2", "a1"]
    window = {"created_from": T0 + timedelta(seconds=1), "created_to": T0 + timedelta(seconds=3)}
    assert await ids(**window) == ["b1", "a2"]
    assert await ids(parent_id="a1") == ["b3", "b1"]
    assert await ids(name="beta", statuses=(p.STATUS_RUNNING,), parent_id="a1") == ["b3", "b1"]
    assert await ids(name="gamma") == []
    assert (await store.list_instances(InstanceQuery())).cursor is None


async def test_list_instances_pages_with_a_keyset_cursor(store: WorkflowStore) -> None:
    # Ties on created_at straddle page borders: the cursor must break them by id.
    rows = [inst(f"i{n:02}", created=T0 + timedelta(seconds=n // 3)) for n in range(23)]
    await store.commit(create(*rows))
    expected = sorted(rows, key=lambda i: (i.created_at, i.instance_id), reverse=True)
    seen: list[Instance] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_instances(InstanceQuery(limit=5, cursor=cursor))
        seen.extend(page.instances)
        pages += 1
        if page.cursor is None:
            break
        assert len(page.instances) == 5
        cursor = page.cursor
    assert seen == expected and pages == 5
    # Paging composes with filters.
    first = await store.list_instances(InstanceQuery(limit=2, created_to=T0 + timedelta(seconds=2)))
    rest = await store.list_instances(
        InstanceQuery(limit=10, created_to=T0 + timedelta(seconds=2), cursor=first.cursor)
    )
    assert [i.instance_id for i in first.instances + rest.instances] == [
        f"i{n:02}" for n in range(5, -1, -1)
    ]
    assert rest.cursor is None


async def test_children_lists_direct_children_only(store: WorkflowStore) -> None:
    await store.commit(
        create(
            inst("root"), inst("c1", parent="root"), inst("c2", parent="root"),
            inst("g1", parent="c1"),
        )
    )  # fmt: skip
    assert sorted(await store.children("root")) == ["c1", "c2"]
    assert await store.children("c1") == ["g1"]
    assert await store.children("g1") == []


async def test_recover_reports_due_inboxes_and_pending_activities(store: WorkflowStore) -> None:
    soon, later = T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)
    await store.commit(
        Batch(
            creates=[NewInstance(inst(i), []) for i in ("now", "timer", "idle")],
            inbox_add=[
                ("now", InboxItem(0, b"t", later)),
                ("now", InboxItem(0, b"e")),
                ("timer", InboxItem(0, b"t2", later)),
                ("timer", InboxItem(0, b"t1", soon)),
            ],
            activities_add=[Activity("now", "e1", 1, b"r1"), Activity("idle", "e1", 2, b"r2")],
        )
    )
    rec = await store.recover()
    assert rec.inbox_due == {"now": None, "timer": soon}
    assert sorted(rec.activities, key=lambda a: a.task_id) == [
        Activity("now", "e1", 1, b"r1"),
        Activity("idle", "e1", 2, b"r2"),
    ]


# --- group commit ---------------------------------------------------------------------------


async def test_concurrent_commits_all_land(store: WorkflowStore) -> None:
    n = 200
    await asyncio.gather(
        *(store.commit(create(inst(f"w{k}"), inbox=[InboxItem(0, b"s")])) for k in range(n))
    )
    await asyncio.gather(
        *(
            store.commit(
                Batch(
                    instances=[inst(f"w{k}", status=p.STATUS_COMPLETED)],
                    expect_turn={f"w{k}": 0},
                    history_append=[(f"w{k}", 0, [f"h{k}".encode()])],
                    inbox_clear=[f"w{k}"],
                    activities_add=[Activity(f"w{k}", "e1", 1, b"r")],
                )
            )
            for k in range(n)
        )
    )
    for k in range(0, n, 7):
        got = await store.get_instance(f"w{k}")
        assert got is not None and got.turn == 1 and got.status == p.STATUS_COMPLETED
        assert await store.get_history(f"w{k}") == [f"h{k}".encode()]
        assert await store.get_inbox(f"w{k}") == []
    page = await store.list_instances(InstanceQuery(limit=1000))
    assert len(page.instances) == n


async def test_a_failing_batch_fails_alone_among_concurrent_ones(store: WorkflowStore) -> None:
    await store.commit(create(inst("live"), inst("fenced", turn=3)))
    batches = [Batch(creates=[NewInstance(inst(f"n{k}"), [InboxItem(0, b"s")])]) for k in range(60)]
    batches[17] = create(inst("n17"), inst("live"))  # duplicate: must not create n17 either
    batches[40] = Batch(
        instances=[inst("fenced", status=p.STATUS_TERMINATED)],
        expect_turn={"fenced": 2},
        inbox_add=[("n0", InboxItem(0, b"stale"))],
    )
    results = await asyncio.gather(*(store.commit(b) for b in batches), return_exceptions=True)
    assert isinstance(results[17], errors.InstanceAlreadyExists)
    assert isinstance(results[40], errors.StaleTurn)
    assert all(r is None for k, r in enumerate(results) if k not in (17, 40))
    assert await store.get_instance("n17") is None
    assert [i.event for i in await store.get_inbox("n0")] == [b"s"]
    fenced = await store.get_instance("fenced")
    assert fenced is not None and fenced.turn == 3 and fenced.status == p.STATUS_RUNNING
    assert len((await store.list_instances(InstanceQuery(limit=100))).instances) == 60  # 58 new + 2


async def test_batches_of_one_group_apply_in_order(store: WorkflowStore) -> None:
    # Commits issued together may share a transaction; each must still see the ones before it.
    await store.commit(create(inst("x")))
    early, late = InboxItem(0, b"early"), InboxItem(0, b"late")
    await asyncio.gather(
        store.commit(create(inst("a"))),
        store.commit(Batch(instances=[inst("a", status=p.STATUS_SUSPENDED)], expect_turn={"a": 0})),
        store.commit(Batch(instances=[inst("a")], expect_turn={"a": 1})),
        store.commit(Batch(inbox_add=[("x", early)], activities_add=[Activity("x", "e", 1, b"")])),
        store.commit(Batch(inbox_clear=["x"], activities_clear=["x"])),
        store.commit(Batch(inbox_add=[("x", late)], history_append=[("x", 0, [b"0", b"1"])])),
        store.commit(Batch(history_append=[("x", 1, [b"one"])])),
    )
    a = await store.get_instance("a")
    assert a is not None and a.turn == 2 and a.status == p.STATUS_RUNNING
    assert early.seq < late.seq
    assert await snapshot(store, "x") == (inst("x"), [b"0", b"one"], [late], [])


async def test_close_waits_for_queued_commits_and_reopen_finds_them(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    pending = [asyncio.ensure_future(store.commit(create(inst(f"q{k}")))) for k in range(50)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*pending)
    reopened = backend.make()
    await reopened.open()
    try:
        page = await reopened.list_instances(InstanceQuery(limit=100))
        assert len(page.instances) == 50
    finally:
        await reopened.close()


async def test_sqlite_data_survives_close_and_reopen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'durable' / 'wf.db'}"
    first = open_store(url, tmp_path)
    await first.open()
    item = InboxItem(0, b"timer", T0 + timedelta(hours=1))
    await first.commit(create(inst("a"), inbox=[item]))
    await first.commit(
        Batch(
            instances=[inst("a", status=p.STATUS_SUSPENDED)],
            expect_turn={"a": 0},
            history_append=[("a", 0, [b"h0", b"h1"])],
            activities_add=[Activity("a", "e1", 1, b"req")],
        )
    )
    before = await snapshot(first, "a")
    await first.close()
    second = open_store(url, tmp_path)
    await second.open()
    try:
        assert await snapshot(second, "a") == before
        assert before[0] == dataclasses.replace(inst("a", status=p.STATUS_SUSPENDED), turn=1)
        assert (await second.recover()).inbox_due == {"a": item.visible_at}
    finally:
        await second.close()


# --- PostgreSQL specifics -------------------------------------------------------------------

pg_only = pytest.mark.postgres


def test_keyword_connection_strings_become_asyncpg_arguments() -> None:
    args = connect_args(
        "host=db.local port=5433 user=wf password='se cr\\'et' database=prod "
        "sslmode=require connect_timeout=3 pool_max_conns=8 application_name=tether"
    )
    assert args["timeout"] == 3.0
    assert args["dsn"] == (
        "postgresql://?host=db.local&port=5433&user=wf&password=se+cr%27et&sslmode=require"
        "&application_name=tether&dbname=prod"
    )
    assert connect_args("dbname=x") == {"dsn": "postgresql://?dbname=x"}
    assert connect_args("postgres://u@h/d") == {"dsn": "postgres://u@h/d"}
    with pytest.raises(errors.BadRequest):
        connect_args("host=a 'oops'")


@pg_only
async def test_postgres_accepts_the_keyword_form(pg_database_url: str, tmp_path: Path) -> None:
    parts = urlsplit(pg_database_url)
    keywords = (
        f"host={parts.hostname} port={parts.port or 5432} user={parts.username} "
        f"dbname={parts.path.lstrip('/')}"
    )
    # Two nodes creating the schema at once must not trip over each other.
    stores = [open_store(keywords, tmp_path), open_store(keywords, tmp_path)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].commit(create(inst("a")))
        assert await stores[1].get_instance("a") == inst("a")
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_unreachable_server_says_what_to_check(tmp_path: Path) -> None:
    store = open_store("postgresql://wf:hunter2@127.0.0.1:1/nodb", tmp_path)
    with pytest.raises(errors.StoreError) as caught:
        await store.open()
    assert "server is running" in caught.value.message
    assert "hunter2" not in caught.value.message and "127.0.0.1:1" in caught.value.message


async def _wait_for_lock_waiter(conn: asyncpg.Connection) -> None:
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the store never waited on the competing insert")


@pg_only
async def test_postgres_create_racing_another_node_fails_alone(
    pg_store_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_store_url, tmp_path)
    await store.open()
    other = await asyncpg.connect(pg_store_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO tether_wf_instances "
            "(instance_id, name, status, execution_id, created_at, updated_at) "
            "VALUES ('x', 'wf', 0, 'other-node', 0, 0)"
        )
        racing = asyncio.gather(
            store.commit(create(inst("x"))),
            store.commit(create(inst("y"))),
            return_exceptions=True,
        )
        await _wait_for_lock_waiter(other)  # the store found no 'x' and now waits on its insert
        await tx.commit()
        rx, ry = await racing
        assert isinstance(rx, errors.InstanceAlreadyExists) and ry is None
        x = await store.get_instance("x")
        assert x is not None and x.execution_id == "other-node"
        assert await store.get_instance("y") == inst("y")
    finally:
        await other.close()
        await store.close()


@pg_only
async def test_postgres_a_rejected_row_fails_only_its_batch(
    pg_store_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_store_url, tmp_path)
    await store.open()
    try:
        bad = inst("bad", name="nul\x00byte")  # PostgreSQL text cannot hold NUL
        results = await asyncio.gather(
            store.commit(create(inst("a"))),
            store.commit(create(bad)),
            store.commit(create(inst("b"))),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], errors.StoreError)
        assert await store.get_instance("bad") is None
        assert await store.get_instance("b") == inst("b")
    finally:
        await store.close()


@pg_only
async def test_postgres_recovers_from_lost_connections(pg_store_url: str, tmp_path: Path) -> None:
    store = open_store(pg_store_url, tmp_path)
    await store.open()
    admin = await asyncpg.connect(pg_store_url)
    try:
        await store.commit(create(inst("a")))
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        # The committer notices before COMMIT and retries on a new connection.
        await store.commit(Batch(instances=[inst("a")], expect_turn={"a": 0}))
        got = await store.get_instance("a")
        assert got is not None and got.turn == 1
    finally:
        await admin.close()
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_closed_store_refuses_work_instead_of_hanging(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'wf.db'}" if kind == "sqlite" else None
    store = open_store(url or request.getfixturevalue("pg_store_url"), tmp_path)
    await store.open()
    await store.close()
    with pytest.raises(errors.StoreError):
        await asyncio.wait_for(store.commit(create(inst("a"))), 5)
    with pytest.raises(errors.StoreError):
        await asyncio.wait_for(store.get_instance("a"), 5)
