"""The job store contract, on SQLite and PostgreSQL: one occurrence, one claimer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether import errors
from tether.runtime.jobs.store import Job, JobStore, SqliteJobStore


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
    results = await asyncio.gather(*(store.claim(due, 20) for _ in range(8)))
    assert results.count(True) == 1
    moved = await store.get("app", "j")
    assert moved is not None and (moved.next_fire, moved.fired) == (20, 1)
    assert not await store.claim(due, 30)  # a stale view of the job claims nothing
    assert await store.claim(moved, None)  # the last occurrence removes the job
    assert await store.get("app", "j") is None


async def test_an_overwritten_job_cannot_be_claimed_through_the_old_row(store: JobStore) -> None:
    old = job("j", 10)
    await store.put(old, overwrite=False)
    await store.put(job("j", 10), overwrite=True)  # same due time, new generation
    assert not await store.claim(old, 20)
