"""The job store contract, on SQLite and PostgreSQL: one claimer per occurrence, and a
delivery that outlives its claimer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether import errors
from tether.runtime.jobs.sqlite import SqliteJobStore
from tether.runtime.jobs.store import Delivery, Job, JobStore


def job(name: str, next_fire: int, app_id: str = "app", **kw: object) -> Job:
    fields: dict[str, object] = {
        "app_id": app_id, "name": name, "schedule": "@every 1s", "due_time": None,
        "repeats": None, "ttl": None, "data": b"\x00data", "failure_policy": b"",
        "created_at": 1, "next_fire": next_fire, "expires_at": None, "fired": 0,
        "generation": secrets.token_hex(4),
    }  # fmt: skip
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        s: JobStore = SqliteJobStore(tmp_path / "jobs.db")
    else:
        from tether.runtime.jobs.postgres import PostgresJobStore

        s = PostgresJobStore(request.getfixturevalue("pg_database_url"))
    await s.open()
    yield s
    await s.close()


async def test_put_get_delete(store: JobStore) -> None:
    first = job("a", 100)
    await store.put(first, overwrite=False)
    assert await store.get("app", "a") == first
    assert await store.get("other-app", "a") is None
    with pytest.raises(errors.JobExists):
        await store.put(job("a", 200), overwrite=False)
    replaced = job("a", 300)
    await store.put(replaced, overwrite=True)
    assert await store.get("app", "a") == replaced
    assert await store.delete("app", "a")
    assert not await store.delete("app", "a")


async def test_due_and_next_due_only_for_the_given_apps(store: JobStore) -> None:
    await store.put(job("late", 50), overwrite=False)
    await store.put(job("early", 10), overwrite=False)
    await store.put(job("future", 500), overwrite=False)
    await store.put(job("elsewhere", 5, app_id="other"), overwrite=False)
    assert [j.name for j in await store.due(100, ["app"], 10)] == ["early", "late"]
    assert [j.name for j in await store.due(100, ["app"], 1)] == ["early"]
    assert await store.next_due(["app"]) == 10
    assert await store.next_due(["app", "other"]) == 5
    assert await store.next_due([]) is None
    assert await store.due(100, [], 10) == []


async def test_an_occurrence_is_claimed_once(store: JobStore) -> None:
    await store.put(job("j", 10), overwrite=False)
    (due,) = await store.due(10, ["app"], 10)
    results = await asyncio.gather(*(store.claim(due, 20, f"o{i}", 1000) for i in range(8)))
    (won,) = [d for d in results if d is not None]
    assert (won.fire_at, won.data, won.attempts, won.lease_until) == (10, b"\x00data", 0, 1000)
    moved = await store.get("app", "j")
    assert moved is not None and (moved.next_fire, moved.fired) == (20, 1)
    assert await store.claim(due, 30, "late", 1000) is None  # a stale view claims nothing
    last = await store.claim(moved, None, "o", 1000)  # the last occurrence removes the job
    assert last is not None and last.fire_at == 20
    assert await store.get("app", "j") is None
    # ...but both occurrences stay until delivered, each with its own copy of the payload.
    assert [d.fire_at for d in await store.expired(1000, ["app"], 10)] == [10, 20]


async def test_an_overwritten_job_cannot_be_claimed_through_the_old_row(store: JobStore) -> None:
    old = job("j", 10)
    await store.put(old, overwrite=False)
    await store.put(job("j", 10), overwrite=True)  # same due time, new generation
    assert await store.claim(old, 20, "o", 1000) is None


async def claimed(store: JobStore, name: str, owner: str, lease_until: int) -> Delivery:
    await store.put(job(name, 10), overwrite=False)
    (due,) = await store.due(10, ["app"], 10)
    delivery = await store.claim(due, 20, owner, lease_until)
    assert delivery is not None
    return delivery


async def test_a_finished_delivery_is_gone(store: JobStore) -> None:
    delivery = await claimed(store, "j", "me", 100)
    assert await store.deliveries(None) == [delivery]
    assert await store.deliveries("app") == [delivery]
    assert await store.deliveries("other") == []
    assert await store.expired(99, ["app"], 10) == []
    assert await store.expired(100, ["other"], 10) == []
    assert await store.expired(100, ["app"], 10) == [delivery]
    await store.finish(delivery)
    assert await store.expired(10**12, ["app"], 10) == []


async def test_a_renewed_lease_is_not_expired(store: JobStore) -> None:
    mine = await claimed(store, "a", "me", 100)
    theirs = await claimed(store, "b", "them", 100)
    assert await store.renew("me", 500) == 1
    assert [d.name for d in await store.expired(200, ["app"], 10)] == ["b"]
    assert await store.renew("nobody", 500) == 0
    await store.finish(mine)
    await store.finish(theirs)


async def test_an_expired_delivery_is_taken_over_once(store: JobStore) -> None:
    dead = await claimed(store, "j", "dead", 100)
    (expired,) = await store.expired(150, ["app"], 10)
    takers = await asyncio.gather(*(store.take(expired, f"t{i}", 400) for i in range(6)))
    (taken,) = [d for d in takers if d is not None]
    assert taken.owner.startswith("t") and (taken.lease_until, taken.fire_at) == (400, 10)
    assert await store.expired(399, ["app"], 10) == []
    # The dead owner, had it come back, no longer owns the occurrence.
    assert not await store.attempted(dead, 1)
    await store.finish(dead)  # a no-op: the row is the taker's
    assert [d.owner for d in await store.expired(400, ["app"], 10)] == [taken.owner]
    assert await store.attempted(taken, 2)
    (again,) = await store.expired(400, ["app"], 10)
    assert again.attempts == 2
    await store.finish(taken)
    assert await store.expired(10**12, ["app"], 10) == []


async def test_deleting_a_job_drops_its_pending_deliveries(store: JobStore) -> None:
    delivery = await claimed(store, "j", "me", 100)
    assert await store.delete("app", "j")
    assert await store.expired(10**12, ["app"], 10) == []
    assert not await store.attempted(delivery, 1)


async def test_list_and_delete_by_prefix(store: JobStore) -> None:
    for name in ("b-1", "a-2", "a-1", "a%_", "ab"):
        await store.put(job(name, 10), overwrite=False)
    await store.put(job("a-9", 10, app_id="other"), overwrite=False)
    assert [j.name for j in await store.list_jobs("app")] == ["a%_", "a-1", "a-2", "ab", "b-1"]
    (due,) = [j for j in await store.due(10, ["app"], 10) if j.name == "a-1"]
    assert await store.claim(due, 20, "me", 100) is not None
    assert await store.delete_prefix("app", "a-") == 2
    assert await store.expired(10**12, ["app"], 10) == []  # a-1's occurrence went with it
    assert await store.delete_prefix("app", "a%") == 1  # % is a character, not a pattern
    assert [j.name for j in await store.list_jobs("app")] == ["ab", "b-1"]
    assert [j.name for j in await store.list_jobs("other")] == ["a-9"]
    everyone = [(j.app_id, j.name) for j in await store.list_jobs(None)]
    assert everyone == [("app", "ab"), ("app", "b-1"), ("other", "a-9")]
    assert await store.delete_prefix("app", "") == 2
    assert await store.list_jobs("app") == []


async def test_sqlite_releases_its_own_leases_when_it_reopens(tmp_path: Path) -> None:
    first = SqliteJobStore(tmp_path / "jobs.db")
    await first.open()
    await claimed(first, "j", "earlier-run", 10**15)
    await first.close()
    second = SqliteJobStore(tmp_path / "jobs.db")
    await second.open()
    try:
        (expired,) = await second.expired(0, ["app"], 10)
        assert expired.owner == "earlier-run"
    finally:
        await second.close()
