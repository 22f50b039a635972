"""Where jobs live: one row per (App ID, job name) with the time of its next occurrence, and one
row per occurrence that is being delivered.

Each occurrence is delivered at least once, across crashes, restarts and replicas:

- A scheduler *claims* an occurrence in one transaction: it moves the job's `next_fire` on (or
  deletes the job after its last occurrence) with a conditional statement
  (`... WHERE app_id = ? AND name = ? AND generation = ? AND next_fire = ?`), and records the
  occurrence as a *delivery* leased to itself until `lease_until`. Only one claim can win.
  `generation` changes whenever the job is (re)scheduled, so a claim based on an overwritten
  job's row fails even if the new one is due at the same instant.
- While it delivers, the owner renews its leases. The delivery row is deleted once the app took
  the occurrence (or the failure policy gave up on it).
- A delivery whose lease ran out belongs to a scheduler that died mid-delivery: any scheduler may
  *take* it (a conditional update on the old lease) and deliver it again.

An app may therefore see an occurrence twice when a runtime dies after the app took it but before
the delivery row was deleted; it never sees none.

Times are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Job:
    app_id: str
    name: str
    #: As the caller wrote them, returned by get.
    schedule: str | None
    due_time: str | None
    repeats: int | None
    ttl: str | None
    #: A serialized `google.protobuf.Any`: what the app receives.
    data: bytes
    #: A serialized `dapr.proto.common.v1.JobFailurePolicy`, or empty for the default.
    failure_policy: bytes
    created_at: int
    #: When the next occurrence is due.
    next_fire: int
    #: When the job expires (its `ttl`), if ever.
    expires_at: int | None
    #: Occurrences claimed so far.
    fired: int
    generation: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed occurrence of a job, until the app has it. It carries its own copy of the
    payload and failure policy: the job itself may be gone (a last occurrence) or rescheduled."""

    app_id: str
    name: str
    generation: str
    #: The occurrence: when it was due.
    fire_at: int
    data: bytes
    failure_policy: bytes
    #: Failed attempts so far.
    attempts: int
    owner: str
    lease_until: int


COLUMNS = (
    "app_id, name, schedule, due_time, repeats, ttl, data, failure_policy, created_at, "
    "next_fire, expires_at, fired, generation"
)
DELIVERY_COLUMNS = (
    "app_id, name, generation, fire_at, data, failure_policy, attempts, owner, lease_until"
)


def row_to_job(row: Sequence[Any]) -> Job:
    values = list(row)
    values[6], values[7] = bytes(values[6]), bytes(values[7])
    return Job(*values)


def row_to_delivery(row: Sequence[Any]) -> Delivery:
    values = list(row)
    values[4], values[5] = bytes(values[4]), bytes(values[5])
    return Delivery(*values)


def delivery_of(job: Job, owner: str, lease_until: int) -> Delivery:
    return Delivery(
        app_id=job.app_id,
        name=job.name,
        generation=job.generation,
        fire_at=job.next_fire,
        data=job.data,
        failure_policy=job.failure_policy,
        attempts=0,
        owner=owner,
        lease_until=lease_until,
    )


class JobStore(abc.ABC):
    kind: str

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def put(self, job: Job, overwrite: bool) -> None:
        """Create the job, or replace it when `overwrite`; raises `JobExists` otherwise."""

    @abc.abstractmethod
    async def get(self, app_id: str, name: str) -> Job | None: ...

    @abc.abstractmethod
    async def list_jobs(self, app_id: str | None) -> list[Job]:
        """The jobs of `app_id` (of every App ID for None), by App ID and name."""

    @abc.abstractmethod
    async def deliveries(self, app_id: str | None) -> list[Delivery]:
        """Occurrences being delivered (of every App ID for None), oldest first."""

    @abc.abstractmethod
    async def delete(self, app_id: str, name: str) -> bool:
        """Remove the job and any of its occurrences not yet delivered. True if it existed."""

    @abc.abstractmethod
    async def delete_prefix(self, app_id: str, prefix: str) -> int:
        """Remove every job of `app_id` whose name starts with `prefix` (as `delete` does);
        how many there were."""

    @abc.abstractmethod
    async def due(self, now: int, app_ids: Sequence[str], limit: int) -> list[Job]:
        """Jobs of `app_ids` whose next occurrence is at or before `now`, earliest first."""

    @abc.abstractmethod
    async def next_due(self, app_ids: Sequence[str]) -> int | None:
        """The earliest `next_fire` among the jobs of `app_ids`."""

    @abc.abstractmethod
    async def claim(
        self, job: Job, next_fire: int | None, owner: str, lease_until: int
    ) -> Delivery | None:
        """Take the occurrence `job.next_fire`: move the job to `next_fire` (delete it when
        None) and record the occurrence's delivery, leased to `owner`, in one transaction.
        None when another scheduler took it first or the job changed meanwhile."""

    @abc.abstractmethod
    async def expired(self, now: int, app_ids: Sequence[str], limit: int) -> list[Delivery]:
        """Deliveries of `app_ids` whose lease ran out at or before `now`, oldest first."""

    @abc.abstractmethod
    async def take(self, delivery: Delivery, owner: str, lease_until: int) -> Delivery | None:
        """Lease an expired delivery to `owner`; None when another scheduler took it first or
        it was finished meanwhile."""

    @abc.abstractmethod
    async def renew(self, owner: str, lease_until: int) -> int:
        """Extend every lease `owner` holds; how many it holds."""

    @abc.abstractmethod
    async def attempted(self, delivery: Delivery, attempts: int) -> bool:
        """Record a failed attempt. False when the delivery is no longer `delivery.owner`'s
        (its lease was taken, or its job deleted): the caller must stop delivering it."""

    @abc.abstractmethod
    async def finish(self, delivery: Delivery) -> None:
        """The occurrence is delivered (or given up on): forget it, if still ours."""


def open_job_store(url: str | None, data_dir: Path) -> JobStore:
    """The job store for the server's store URL: PostgreSQL when the workflow store is, else
    SQLite (`jobs.db` in the data directory; in memory for `memory://`)."""
    if url and (url.startswith(("postgresql://", "postgres://")) or "host=" in url):
        from tether.runtime.jobs.postgres import PostgresJobStore

        return PostgresJobStore(url)
    from tether.runtime.jobs.sqlite import SqliteJobStore

    if url and url.startswith("memory:"):
        return SqliteJobStore(":memory:")
    return SqliteJobStore(data_dir / "jobs.db")
