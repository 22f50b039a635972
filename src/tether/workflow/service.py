"""The workflow operations callers use, transport-neutral.

The gRPC sidecar, the Dapr HTTP and gRPC workflow APIs and the management API all call this; it
validates input and turns each request into engine and store operations.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tether import errors
from tether.aio import settle
from tether.workflow import events as ev
from tether.workflow import protos as p
from tether.workflow import rerun
from tether.workflow.engine import Engine, Live
from tether.workflow.model import (
    STATUS_NAMES,
    TERMINAL,
    InboxItem,
    Instance,
    InstancePage,
    InstanceQuery,
    utcnow,
    validate_instance_id,
)
from tether.workflow.rerun import RerunRequest
from tether.workflow.store import Batch, NewInstance

MAX_PAGE = 1000
log = logging.getLogger("tether.workflow")


@dataclass(frozen=True, slots=True)
class StartRequest:
    name: str
    instance_id: str | None = None
    input: str | None = None
    scheduled_start: datetime | None = None
    app_id: str = ""
    # Refuse to replace even a finished instance with the same id.
    unique: bool = False


class WorkflowService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    async def _commit(self, batch: Batch) -> None:
        await settle(self.store.commit(batch))

    # --- starting ---------------------------------------------------------------------------

    async def start(self, req: StartRequest) -> str:
        if not req.name:
            raise errors.WorkflowNameMissing("a workflow name is required to start a workflow")
        iid = validate_instance_id(req.instance_id) if req.instance_id else uuid.uuid4().hex
        cached = self.engine.live_cached(iid)
        if cached is not None and not cached.inst.terminal:
            raise errors.InstanceAlreadyExists(iid)
        now = utcnow()
        exec_id = uuid.uuid4().hex
        scheduled = (
            req.scheduled_start if req.scheduled_start and req.scheduled_start > now else None
        )
        inst = Instance(
            iid, req.name, p.STATUS_PENDING, exec_id, now, now, input=req.input,
            scheduled_start=scheduled, app_id=req.app_id,
        )  # fmt: skip
        start = ev.execution_started(now, req.name, iid, exec_id, req.input, scheduled=scheduled)
        item = InboxItem(0, start.SerializeToString(), scheduled, prio=0)
        await self._commit(Batch(creates=[NewInstance(inst, [item], not req.unique)]))
        self.engine.evict(iid)
        self.engine.adopt(Live(inst, [], [item]))
        self.engine.metrics.instances_started.inc()
        return iid

    # --- events and lifecycle ---------------------------------------------------------------

    async def raise_event(self, instance_id: str, name: str, data: str | None) -> None:
        if not name:
            raise errors.EventNameMissing("an event name is required to raise an event")
        live = await self._require(instance_id)
        if live.inst.terminal:
            return  # nothing will ever read it; Dapr accepts and drops such events too
        now = utcnow()
        item = InboxItem(0, ev.event_raised(now, name, data).SerializeToString())
        await self._commit(Batch(inbox_add=[(instance_id, item)]))
        self.engine.deliver(instance_id, item, now)

    async def terminate(self, instance_id: str, output: str | None, recursive: bool = True) -> None:
        await self.engine.terminate(instance_id, output, recursive)

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        await self._set_suspended(instance_id, reason, True)

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        await self._set_suspended(instance_id, reason, False)

    async def _set_suspended(self, instance_id: str, reason: str | None, suspend: bool) -> None:
        live = await self._require(instance_id)
        async with live.lock:
            inst = live.inst
            if suspend and inst.status not in (p.STATUS_RUNNING, p.STATUS_PENDING):
                return
            if not suspend and inst.status != p.STATUS_SUSPENDED:
                return  # a stray resume would make the SDK fail the workflow
            now = utcnow()
            if suspend:
                status, event = p.STATUS_SUSPENDED, ev.suspended(now, reason)
            else:
                status = p.STATUS_RUNNING if live.history else p.STATUS_PENDING
                event = ev.resumed(now, reason)
            row = replace(inst, status=status, updated_at=now)
            item = InboxItem(0, event.SerializeToString())
            batch = Batch(instances=[row], expect_turn={instance_id: inst.turn})
            batch.inbox_add.append((instance_id, item))
            await self._commit(batch)
            row.turn = inst.turn + 1
            live.inst = row
        self.engine.deliver(instance_id, item, now)
        self.engine.notify(row)

    # --- reading ----------------------------------------------------------------------------

    async def get(self, instance_id: str) -> Instance | None:
        return await self.engine.get(instance_id)

    async def history(self, instance_id: str) -> list[Any]:
        live = self.engine.live_cached(instance_id)
        if live is not None:
            return list(live.history)
        if await self.store.get_instance(instance_id) is None:
            raise errors.InstanceNotFound(instance_id)
        return [ev.parse(raw) for raw in await self.store.get_history(instance_id)]

    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        if not 0 < query.limit <= MAX_PAGE:
            raise errors.BadRequest(f"page size must be between 1 and {MAX_PAGE}")
        return await self.store.list_instances(query)

    async def wait_started(self, instance_id: str, timeout: float | None) -> Instance | None:
        return await self.engine.wait(instance_id, lambda i: i.status != p.STATUS_PENDING, timeout)

    async def wait_completed(self, instance_id: str, timeout: float | None) -> Instance | None:
        return await self.engine.wait(instance_id, lambda i: i.status in TERMINAL, timeout)

    # --- rerun ------------------------------------------------------------------------------

    async def rerun(self, req: RerunRequest) -> str:
        source = await self.engine.get(req.source_id)
        if source is None:
            raise errors.InstanceNotFound(req.source_id)
        history = await self.history(req.source_id)
        plan = rerun.plan(source, history, req, utcnow())
        iid = plan.instance.instance_id
        if await self.engine.get(iid) is not None:
            raise errors.InstanceAlreadyExists(iid)
        now = utcnow()
        batch = Batch(creates=[NewInstance(plan.instance, plan.inbox, replace_terminal=False)])
        batch.history_append.append((iid, 0, plan.history))
        batch.activities_add.extend(plan.activities)
        fresh: list[tuple[str, InboxItem]] = []
        children = await self.engine.start_children(plan.instance, plan.children, batch, fresh, now)
        batch.inbox_add.extend(fresh)
        await self._commit(batch)
        live = Live(plan.instance, [ev.parse(raw) for raw in plan.history], plan.inbox)
        self.engine.adopt(live)
        for child in children:
            self.engine.adopt(child)
        for target, item in fresh:
            self.engine.deliver(target, item, now)
        for act in plan.activities:
            self.engine.queue_activity(plan.instance.app_id, act)
        return iid

    # --- purging ----------------------------------------------------------------------------

    async def purge(self, instance_id: str, recursive: bool = True, force: bool = False) -> int:
        """Delete a finished instance (and its descendants); returns how many were deleted."""
        inst = await self.engine.get(instance_id)
        if inst is None:
            return 0
        if not inst.terminal and not force:
            raise errors.InstanceNotTerminal(
                f"workflow '{instance_id}' is {p_name(inst.status)}; only finished workflows "
                "can be purged: terminate it first"
            )
        ids = [instance_id]
        if recursive:
            ids += await self._descendants(instance_id)
        if not force:
            for iid in ids[1:]:
                child = await self.engine.get(iid)
                if child is not None and not child.terminal:
                    raise errors.InstanceNotTerminal(
                        f"child workflow '{iid}' of '{instance_id}' is still "
                        f"{p_name(child.status)}; terminate it first"
                    )
        await self._commit(Batch(purge=ids))
        for iid in ids:
            self.engine.evict(iid)
        return len(ids)

    async def purge_where(
        self,
        statuses: tuple[int, ...],
        created_from: datetime | None,
        created_to: datetime | None,
    ) -> int:
        """Bulk purge of finished instances matching a filter; running ones are never touched."""
        wanted = tuple(s for s in (statuses or tuple(TERMINAL)) if s in TERMINAL)
        if not wanted:
            raise errors.BadRequest("bulk purge only deletes finished workflows")
        deleted = 0
        query = InstanceQuery(
            statuses=wanted, created_from=created_from, created_to=created_to, limit=500
        )
        while True:
            page = await self.store.list_instances(query)
            for inst in page.instances:
                try:
                    deleted += await self.purge(inst.instance_id, recursive=True, force=False)
                except errors.InstanceNotTerminal as exc:
                    # One instance with a live child must not stop the sweep of all the others.
                    log.warning("bulk purge skipped an instance", extra={"reason": exc.message})
            if not page.cursor:
                return deleted
            query = replace(query, cursor=page.cursor)

    async def _descendants(self, instance_id: str) -> list[str]:
        out: list[str] = []
        frontier = [instance_id]
        while frontier:
            nxt: list[str] = []
            for iid in frontier:
                nxt.extend(await self.store.children(iid))
            out.extend(nxt)
            frontier = nxt
        return out

    async def _require(self, instance_id: str) -> Live:
        live = await self.engine.live(instance_id)
        if live is None:
            raise errors.InstanceNotFound(instance_id)
        return live


def p_name(status: int) -> str:
    return STATUS_NAMES.get(status, str(status))
