"""The durable job scheduler: Dapr's Jobs API, firing jobs at the apps that scheduled them.

One task sleeps until the earliest job of an app it can deliver to is due (or until it is told
that jobs or apps changed; a slow poll catches what other replicas scheduled), then claims each
due occurrence in the store before delivering it (see `store`), so an occurrence fires once
however many replicas run and however often they restart. A delivery that fails is retried per
the job's failure policy (daprd's default: every second, three times); an app that is unhealthy
or not registered here gets nothing claimed for it until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf import any_pb2

from tether import errors
from tether.runtime.apps import Apps
from tether.runtime.jobs.schedule import ScheduleError, parse_point, parse_schedule
from tether.runtime.jobs.store import Job, JobStore

log = logging.getLogger("tether.jobs")

_BATCH = 128
#: daprd's failure policy when the job names none.
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_MAX_RETRIES = 3


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
    def __init__(self, store: JobStore, apps: Apps, poll_seconds: float = 30.0) -> None:
        self.store = store
        self._apps = apps
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        apps.on_change(lambda _app, _up: self.wake())

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.store.open()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tether-jobs")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._deliveries) if t is not None]
        self._task = None
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

    async def delete(self, app_id: str, name: str) -> None:
        if not name:
            raise errors.JobNameEmpty("Name is empty")
        await self.store.delete(app_id, name)
        self.wake()

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

    async def _claim(self, job: Job, now: int) -> None:
        try:
            nxt = following(job, now)
        except ScheduleError as exc:  # a row written by a newer or broken version
            log.error("job %s of %s has a bad schedule: %s", job.name, job.app_id, exc)
            nxt = None
        if not await self.store.claim(job, nxt):
            return  # another replica took this occurrence, or the job changed meanwhile
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job: Job) -> None:
        data = any_pb2.Any()
        if job.data:
            data.ParseFromString(job.data)
        interval, retries = DEFAULT_RETRY_INTERVAL, DEFAULT_MAX_RETRIES
        if job.failure_policy:
            policy = common_pb2.JobFailurePolicy()
            policy.ParseFromString(job.failure_policy)
            if policy.HasField("drop"):
                retries = 0
            elif policy.HasField("constant"):
                c = policy.constant
                if c.HasField("interval"):
                    interval = c.interval.ToTimedelta().total_seconds()
                retries = c.max_retries if c.HasField("max_retries") else -1
        attempt = 0
        while True:
            channel = self._apps.channel(job.app_id)
            if channel is not None and await channel.deliver_job(job.name, data):
                log.debug("job %s fired at %s", job.name, job.app_id)
                return
            attempt += 1
            if 0 <= retries < attempt:
                log.error("job %s of %s was not delivered after %d attempts; dropping this "
                          "occurrence", job.name, job.app_id, attempt)  # fmt: skip
                return
            await asyncio.sleep(interval)
