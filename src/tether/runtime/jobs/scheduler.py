"""The durable job scheduler: Dapr's Jobs API, firing jobs at the apps that scheduled them.

One task sleeps until the earliest job of an app it can deliver to is due (or until it is told
that jobs or apps changed; a slow poll catches what other replicas scheduled), then claims each
due occurrence in the store, which records it as a delivery leased to this scheduler (see
`store`). However many replicas run, one claims each occurrence; a second task renews this
scheduler's leases and takes over deliveries whose owner died, so an occurrence reaches its app
at least once however often runtimes crash or restart. A delivery that fails is retried per the
job's failure policy (daprd's default: every second, three times); an app that is unhealthy or
not registered here gets nothing claimed for it until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf import any_pb2

from tether import errors
from tether.runtime.apps import Apps
from tether.runtime.jobs.schedule import ScheduleError, parse_point, parse_schedule
from tether.runtime.jobs.store import Delivery, Job, JobStore
from tether.runtime.metrics import JobMetrics

log = logging.getLogger("tether.jobs")

_BATCH = 128
#: daprd's failure policy when the job names none.
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_MAX_RETRIES = 3
#: How long a claimed occurrence stays this scheduler's without a renewal; a runtime that dies
#: mid-delivery delays its redelivery by at most this much (seconds).
LEASE_SECONDS = 10.0


def _micros(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def first_fire(job: jobs_pb2.Job, now: datetime) -> tuple[int, int | None]:
    """(first occurrence, expiry) of a job being scheduled at `now`; raises JobInvalid."""
    try:
        schedule = parse_schedule(job.schedule) if job.HasField("schedule") else None
        due = parse_point(job.due_time, now) if job.HasField("due_time") else None
        expires = parse_point(job.ttl, now) if job.HasField("ttl") else None
    except ScheduleError as exc:
        raise errors.JobInvalid(f"failed to schedule job due to: {exc}") from exc
    if job.HasField("repeats") and job.repeats < 0:
        raise errors.JobInvalid("failed to schedule job due to: repeats must not be negative")
    if due is not None:
        first = due
    elif schedule is not None:
        try:
            first = schedule.next_after(now)
        except ScheduleError as exc:
            raise errors.JobInvalid(f"failed to schedule job due to: {exc}") from exc
    else:
        raise errors.JobScheduleEmpty("Schedule is empty")
    if expires is not None and expires < first:
        raise errors.JobInvalid(
            "failed to schedule job due to: ttl expires before the job's first occurrence"
        )
    return _micros(first), _micros(expires) if expires is not None else None


def following(job: Job, now: int) -> int | None:
    """The occurrence after `job.next_fire`, or None when that one is the last.

    Occurrences missed while no scheduler ran are skipped: an overdue job fires once, then keeps
    to its schedule.
    """
    if job.repeats and job.fired + 1 >= job.repeats:
        return None
    if not job.schedule:
        return None
    schedule = parse_schedule(job.schedule)
    nxt = schedule.next_after(_time(job.next_fire))
    if nxt <= _time(now):
        nxt = schedule.next_after(_time(now))
    at = _micros(nxt)
    if job.expires_at is not None and at > job.expires_at:
        return None
    return at


def to_proto(job: Job) -> jobs_pb2.Job:
    out = jobs_pb2.Job(name=job.name)
    if job.schedule is not None:
        out.schedule = job.schedule
    if job.due_time is not None:
        out.due_time = job.due_time
    if job.repeats is not None:
        out.repeats = job.repeats
    if job.ttl is not None:
        out.ttl = job.ttl
    if job.data:
        out.data.ParseFromString(job.data)
    if job.failure_policy:
        out.failure_policy.ParseFromString(job.failure_policy)
    return out


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        apps: Apps,
        poll_seconds: float = 30.0,
        lease_seconds: float = LEASE_SECONDS,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or JobMetrics()
        self._apps = apps
        self._poll = poll_seconds
        self._lease_us = int(lease_seconds * 1_000_000)
        #: Leases are renewed, and abandoned deliveries looked for, this often.
        self._keep_every = lease_seconds / 3
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: In-flight deliveries by (app ID, job name).
        self._deliveries: dict[tuple[str, str], set[asyncio.Task[None]]] = {}
        apps.on_change(lambda _app, _up: self.wake())

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.store.open()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="tether-jobs"),
            loop.create_task(self._keep(), name="tether-jobs-leases"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *(t for ts in self._deliveries.values() for t in ts)]
        self._tasks = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()

    # --- the Jobs API --------------------------------------------------------------------------

    async def schedule(self, app_id: str, job: jobs_pb2.Job, overwrite: bool) -> None:
        if not job.name.strip():
            raise errors.JobNameEmpty("Name is empty")
        if not job.HasField("schedule") and not job.HasField("due_time"):
            raise errors.JobScheduleEmpty("Schedule is empty")
        now = datetime.now(UTC)
        first, expires = first_fire(job, now)
        await self.store.put(
            Job(
                app_id=app_id,
                name=job.name,
                schedule=job.schedule if job.HasField("schedule") else None,
                due_time=job.due_time if job.HasField("due_time") else None,
                repeats=job.repeats if job.HasField("repeats") and job.repeats > 0 else None,
                ttl=job.ttl if job.HasField("ttl") else None,
                data=job.data.SerializeToString() if job.HasField("data") else b"",
                failure_policy=(
                    job.failure_policy.SerializeToString()
                    if job.HasField("failure_policy")
                    else b""
                ),
                created_at=_micros(now),
                next_fire=first,
                expires_at=expires,
                fired=0,
                generation=secrets.token_hex(8),
            ),
            overwrite,
        )
        self.wake()

    async def get(self, app_id: str, name: str) -> jobs_pb2.Job:
        if not name:
            raise errors.JobNameEmpty("Name is empty")
        job = await self.store.get(app_id, name)
        if job is None:
            raise errors.JobNotFound(f"job {name} not found")
        return to_proto(job)

    async def list_jobs(self, app_id: str) -> list[jobs_pb2.Job]:
        return [to_proto(job) for job in await self.store.list_jobs(app_id)]

    async def delete(self, app_id: str, name: str) -> None:
        if not name:
            raise errors.JobNameEmpty("Name is empty")
        await self.store.delete(app_id, name)
        self._cancel(lambda key: key == (app_id, name))
        self.wake()

    async def delete_prefix(self, app_id: str, prefix: str) -> int:
        """Delete the jobs of `app_id` whose names start with `prefix` (all of them for "")."""
        count = await self.store.delete_prefix(app_id, prefix)
        self._cancel(lambda key: key[0] == app_id and key[1].startswith(prefix))
        self.wake()
        return count

    def _cancel(self, match: Callable[[tuple[str, str]], bool]) -> None:
        """Stop retrying occurrences of deleted jobs here (other replicas notice at their next
        attempt, when their delivery row is gone)."""
        for key, tasks in list(self._deliveries.items()):
            if match(key):
                for task in tasks:
                    task.cancel()

    # --- firing --------------------------------------------------------------------------------

    def _ready_apps(self) -> list[str]:
        ready = []
        for app_id in self._apps.app_ids():
            channel = self._apps.channel(app_id)
            if channel is not None and channel.healthy:
                ready.append(app_id)
        return ready

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            timeout = self._poll
            try:
                ready = self._ready_apps()
                now = now_us()
                due = await self.store.due(now, ready, _BATCH)
                for job in due:
                    await self._claim(job, now)
                if len(due) == _BATCH:
                    timeout = 0.0
                else:
                    nxt = await self.store.next_due(ready)
                    if nxt is not None:
                        timeout = min(self._poll, max(0.0, (nxt - now_us()) / 1_000_000))
            except errors.TetherError as exc:
                log.error("job scheduler: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _keep(self) -> None:
        """Renew this scheduler's leases; take over deliveries whose owner stopped renewing."""
        while True:
            try:
                now = now_us()
                if self._deliveries:
                    await self.store.renew(self.owner, now + self._lease_us)
                for delivery in await self.store.expired(now, self._ready_apps(), _BATCH):
                    taken = await self.store.take(delivery, self.owner, now + self._lease_us)
                    if taken is not None:
                        self.metrics.redelivered.labels(taken.app_id).inc()
                        log.info("job %s of %s: redelivering the occurrence due at %s, whose "
                                 "runtime stopped before delivering it", taken.name, taken.app_id,
                                 _time(taken.fire_at).isoformat())  # fmt: skip
                        self._spawn(taken)
            except errors.TetherError as exc:
                log.error("job scheduler leases: %s", exc.message)
            await asyncio.sleep(self._keep_every)

    async def _claim(self, job: Job, now: int) -> None:
        try:
            nxt = following(job, now)
        except ScheduleError as exc:  # a row written by a newer or broken version
            log.error("job %s of %s has a bad schedule: %s", job.name, job.app_id, exc)
            nxt = None
        delivery = await self.store.claim(job, nxt, self.owner, now_us() + self._lease_us)
        if delivery is not None:  # else another replica took it, or the job changed meanwhile
            self.metrics.claimed.labels(delivery.app_id).inc()
            self._spawn(delivery)

    def _spawn(self, delivery: Delivery) -> None:
        key = (delivery.app_id, delivery.name)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._deliveries.setdefault(key, set()).add(task)

        def done(t: asyncio.Task[None]) -> None:
            tasks = self._deliveries.get(key)
            if tasks is not None:
                tasks.discard(t)
                if not tasks:
                    del self._deliveries[key]

        task.add_done_callback(done)

    async def _deliver(self, delivery: Delivery) -> None:
        data = any_pb2.Any()
        if delivery.data:
            data.ParseFromString(delivery.data)
        interval, retries = DEFAULT_RETRY_INTERVAL, DEFAULT_MAX_RETRIES
        if delivery.failure_policy:
            policy = common_pb2.JobFailurePolicy()
            policy.ParseFromString(delivery.failure_policy)
            if policy.HasField("drop"):
                retries = 0
            elif policy.HasField("constant"):
                c = policy.constant
                if c.HasField("interval"):
                    interval = c.interval.ToTimedelta().total_seconds()
                retries = c.max_retries if c.HasField("max_retries") else -1
        attempt = delivery.attempts
        name, app_id = delivery.name, delivery.app_id
        while True:
            channel = self._apps.channel(app_id)
            if channel is not None and await channel.deliver_job(name, data):
                log.debug("job %s fired at %s", name, app_id)
                self.metrics.delivered.labels(app_id).inc()
                await self._finish(delivery)
                return
            attempt += 1
            if 0 <= retries < attempt:
                log.error("job %s of %s was not delivered after %d attempts; dropping this "
                          "occurrence", name, app_id, attempt)  # fmt: skip
                self.metrics.dropped.labels(app_id).inc()
                await self._finish(delivery)
                return
            try:
                if not await self.store.attempted(delivery, attempt):
                    return  # the job was deleted, or another runtime took this occurrence over
            except errors.TetherError as exc:
                log.error("job %s of %s: %s", name, app_id, exc.message)
            self.metrics.retries.labels(app_id).inc()
            await asyncio.sleep(interval)

    async def _finish(self, delivery: Delivery) -> None:
        try:
            await self.store.finish(delivery)
        except errors.TetherError as exc:
            # The lease runs out and the occurrence is delivered again: at least once.
            log.error("job %s of %s: %s", delivery.name, delivery.app_id, exc.message)
