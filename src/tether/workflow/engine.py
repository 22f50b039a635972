"""The workflow engine: owns instances, hands turns and activities to workers, records results.

Every instance this engine touches is cached as a `Live` record (status row, history, inbox)
while it is active, so a step costs one commit and no reads. The store stays the source of
truth: a restart rebuilds everything from `store.recover()`.

Concurrency model: one asyncio loop. Writes that change an instance's status row take that
instance's lock; plain inbox appends (activity results, events) do not, so many of them share a
group commit. At most one workflow work item per instance is outstanding (`Live.lease`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tether import errors
from tether.aio import settle
from tether.metrics import Registry
from tether.workflow import events as ev
from tether.workflow import protos as p
from tether.workflow import turn
from tether.workflow.activities import ActivityQueue
from tether.workflow.dispatcher import Dispatcher, Lease, Stream
from tether.workflow.metrics import WorkflowMetrics
from tether.workflow.model import Activity, InboxItem, Instance, utcnow
from tether.workflow.protos import pb
from tether.workflow.store import Batch, NewInstance, WorkflowStore
from tether.workflow.timers import TimerWheel

log = logging.getLogger("tether.workflow")

MAX_EVENTS_PER_TURN = 1000
RETRY_DELAY = 1.0


@dataclass(slots=True, eq=False)
class Live:
    """An instance's state while this engine holds it in memory."""

    inst: Instance
    history: list[ev.Event]
    inbox: list[InboxItem]
    confirmed: set[int] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)
    lease: Lease | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.confirmed = {e.eventId for e in self.history if ev.kind(e) in ev.ACTION_EVENTS}
        self.seqs = {i.seq for i in self.inbox}

    def add_inbox(self, item: InboxItem) -> None:
        if item.seq in self.seqs:
            return
        self.seqs.add(item.seq)
        self.inbox.append(item)
        if item.prio == 0:
            self.inbox.sort(key=lambda i: (i.prio, i.seq))

    def remove_inbox(self, seqs: set[int]) -> None:
        self.inbox = [i for i in self.inbox if i.seq not in seqs]
        self.seqs -= seqs

    def deliverable(self, now: datetime) -> list[InboxItem]:
        out = [i for i in self.inbox if i.visible_at is None or i.visible_at <= now]
        return out[:MAX_EVENTS_PER_TURN]


class Engine:
    """Public operations are coroutines; worker protocol handling is in `worker_*` methods."""

    def __init__(self, store: WorkflowStore, registry: Registry | None = None) -> None:
        self.store = store
        self.dispatcher = Dispatcher(self._leases_lost)
        self.timers = TimerWheel(self.wake)
        self._live: dict[str, Live] = {}
        self._loading: dict[str, asyncio.Future[Live | None]] = {}
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._parked: dict[str, set[str]] = {}
        self.activities = ActivityQueue(self.dispatcher)
        self._waiters: dict[str, list[tuple[Callable[[Instance], bool], asyncio.Future[Instance]]]]
        self._waiters = {}
        self._pump_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.metrics = WorkflowMetrics(registry)
        self.metrics.watch(
            lambda: len(self._live), lambda: len(self.dispatcher.leases()), lambda: len(self.timers)
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        self.timers.start()
        rec = await self.store.recover()
        now = utcnow()
        for iid, due in rec.inbox_due.items():
            if due is None or due <= now:
                self.wake(iid)
            else:
                self.timers.add(due, iid)
        for act in rec.activities:
            self.spawn(self._recover_activity(act))
        log.info(
            "workflow engine started",
            extra={"store": self.store.kind, "resumed": len(rec.inbox_due),
                   "activities": len(rec.activities)},
        )  # fmt: skip

    async def stop(self) -> None:
        await self.timers.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background engine task failed", exc_info=task.exception())

    # --- loading and readiness ---------------------------------------------------------------

    async def live(self, instance_id: str) -> Live | None:
        """The cached state of an instance, loaded from the store on a miss."""
        hit = self._live.get(instance_id)
        if hit is not None:
            return hit
        pending = self._loading.get(instance_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Live | None] = asyncio.get_running_loop().create_future()
        self._loading[instance_id] = fut
        try:
            inst = await self.store.get_instance(instance_id)
            loaded: Live | None = None
            if inst is not None:
                history = [ev.parse(raw) for raw in await self.store.get_history(instance_id)]
                inbox = await self.store.get_inbox(instance_id)
                loaded = self._live.setdefault(instance_id, Live(inst, history, inbox))
                if not inst.terminal:
                    await self._resume_activities(loaded)
            fut.set_result(loaded)
            return loaded
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved; callers got it via the raise below
            raise
        finally:
            del self._loading[instance_id]

    async def _commit(self, batch: Batch) -> None:
        """Commit; the memory updates that follow every commit must happen once it lands."""
        await settle(self.store.commit(batch))

    def live_cached(self, instance_id: str) -> Live | None:
        return self._live.get(instance_id)

    def adopt(self, live: Live) -> None:
        """Cache a state the caller just committed, and schedule its inbox."""
        iid = live.inst.instance_id
        self._live[iid] = live
        now = utcnow()
        if live.deliverable(now):
            self.wake(iid)
        else:
            self._rearm(live, now)

    def evict(self, instance_id: str) -> None:
        self._live.pop(instance_id, None)

    def wake(self, instance_id: str) -> None:
        if instance_id in self._queued:
            return
        self._queued.add(instance_id)
        self._ready.append(instance_id)
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        now = utcnow()
        while self._ready:
            iid = self._ready.popleft()
            self._queued.discard(iid)
            live = self._live.get(iid)
            if live is None:
                self.spawn(self._load_and_wake(iid))
                continue
            self._dispatch_turn(live, now)

    async def _load_and_wake(self, instance_id: str) -> None:
        live = await self.live(instance_id)
        if live is not None:
            self.wake(instance_id)

    def _dispatch_turn(self, live: Live, now: datetime) -> None:
        inst = live.inst
        if live.lease is not None or inst.terminal:
            return
        items = live.deliverable(now)
        if not items:
            self._rearm(live, now)
            return
        # A bare workflowStarted in the inbox only asks for a turn; it is not shown.
        shown = [e for i in items if not (e := ev.parse(i.event)).HasField("workflowStarted")]
        for event in shown:
            if event.HasField("executionTerminated"):
                # Termination is the engine's job, not the worker's: it works with no worker,
                # and on suspended and stalled instances too.
                term = event.executionTerminated
                self.spawn(self.terminate(inst.instance_id, ev.opt(term, "input"), term.recurse))
                return
        if inst.status in (p.STATUS_SUSPENDED, p.STATUS_STALLED):
            return
        stream = self.dispatcher.pick(inst.app_id)
        if stream is None:
            self._parked.setdefault(inst.app_id, set()).add(inst.instance_id)
            return
        lease = self.dispatcher.lease(stream, inst.instance_id, inst.execution_id)
        lease.seqs = [i.seq for i in items]
        lease.shown = [ev.workflow_started(now), *shown]
        live.lease = lease
        self.dispatcher.send(lease, pb.WorkItem(workflowRequest=self._request(live, lease)))

    def _request(self, live: Live, lease: Lease) -> Any:
        inst = live.inst
        req = pb.WorkflowRequest(
            instanceId=inst.instance_id,
            executionId=ev.sv(inst.execution_id),
            newEvents=lease.shown,
        )
        stream = lease.stream
        key = (inst.instance_id, inst.execution_id)
        known = stream.cached.get(key) if stream.stateful else None
        if known is not None and known <= len(live.history):
            req.cachedHistory.eventCount = known
            req.pastEvents.extend(live.history[known:])
        else:
            req.pastEvents.extend(live.history)
        if stream.stateful:
            stream.cached[key] = len(live.history)
        return req

    def _rearm(self, live: Live, now: datetime) -> None:
        dues = [i.visible_at for i in live.inbox if i.visible_at is not None and i.visible_at > now]
        if dues:
            self.timers.add(min(dues), live.inst.instance_id)

    def _leases_lost(self, leases: list[Lease]) -> None:
        for lease in leases:
            if lease.is_activity:
                self.spawn(self._redispatch_activity(lease))
                continue
            live = self._live.get(lease.instance_id)
            if live is not None and live.lease is lease:
                live.lease = None
                self.wake(lease.instance_id)

    # --- workers --------------------------------------------------------------------------------

    def worker_connected(self, app_id: str, capabilities: frozenset[int]) -> Stream:
        stream = self.dispatcher.open(app_id, capabilities)
        for iid in self._parked.pop(app_id, set()):
            self.wake(iid)
        for live in list(self._live.values()):
            if live.inst.app_id == app_id and live.inst.status == p.STATUS_STALLED:
                live.inst.status = p.STATUS_RUNNING
                self.wake(live.inst.instance_id)
        self.activities.drain(app_id)
        return stream

    def worker_disconnected(self, stream: Stream) -> None:
        self.dispatcher.close(stream)

    async def worker_complete_turn(self, res: Any) -> None:
        lease = self.dispatcher.peek(res.completionToken)
        if lease is None or lease.is_activity:
            raise errors.WorkItemUnknown(
                f"no outstanding workflow work item has completion token '{res.completionToken}'"
            )
        if res.instanceId != lease.instance_id:
            raise errors.WorkerResponseInvalid(
                f"completion token '{res.completionToken}' belongs to instance "
                f"'{lease.instance_id}', not '{res.instanceId}'"
            )
        live = self._live.get(lease.instance_id)
        if live is None or live.lease is not lease:
            self.dispatcher.release(lease)
            return  # superseded: terminated, purged or re-dispatched meanwhile
        async with live.lock:
            if live.lease is not lease:
                self.dispatcher.release(lease)
                return
            try:
                await self._commit_turn(live, lease, res)
            except errors.WorkerResponseInvalid:
                self.metrics.worker_errors.inc()
                self._retry_later(live, lease)
                raise
            except errors.StaleTurn:
                self._release_turn(live, lease)
                self.evict(live.inst.instance_id)
                self.wake(live.inst.instance_id)
            except Exception:
                self._retry_later(live, lease)
                raise

    def _release_turn(self, live: Live, lease: Lease) -> None:
        self.dispatcher.release(lease)
        if live.lease is lease:
            live.lease = None

    def _retry_later(self, live: Live, lease: Lease) -> None:
        self._release_turn(live, lease)
        asyncio.get_running_loop().call_later(RETRY_DELAY, self.wake, live.inst.instance_id)

    async def _commit_turn(self, live: Live, lease: Lease, res: Any) -> None:
        now = utcnow()
        inst = live.inst
        out = turn.apply(inst, live.confirmed, lease.shown, res, now)
        if out.stalled:
            self._release_turn(live, lease)
            live.inst = replace(inst, status=p.STATUS_STALLED, updated_at=now)
            log.warning(
                "workflow stalled: no worker has its version", extra={"instance": inst.instance_id}
            )
            self.notify(live.inst)
            return
        batch = Batch()
        row = replace(
            inst, status=out.status, custom_status=out.custom_status, version=out.version,
            updated_at=now,
        )  # fmt: skip
        fresh: list[tuple[str, InboxItem]] = []
        removed = set(lease.seqs)
        if out.continue_as_new is not None:
            removed = self._continue_as_new(
                live, lease, out.continue_as_new, row, batch, fresh, now
            )
        else:
            batch.history_append.append(
                (inst.instance_id, len(live.history), [e.SerializeToString() for e in out.appended])
            )
            batch.inbox_remove.append((inst.instance_id, lease.seqs))
            batch.activities_add.extend(
                Activity(inst.instance_id, inst.execution_id, task_id, request.SerializeToString())
                for task_id, request in out.activities
            )
            for due, fired in out.timers:
                fresh.append((inst.instance_id, InboxItem(0, fired.SerializeToString(), due)))
            if out.finished:
                row.output, row.completed_at = out.output, now
                row.failure = out.failure.SerializeToString() if out.failure is not None else None
                batch.inbox_clear.append(inst.instance_id)
                batch.activities_clear.append(inst.instance_id)
                fresh = []
                await self._to_parent(row, out.status, out.output, out.failure, batch, fresh, now)
        children = await self.start_children(live.inst, out.children, batch, fresh, now)
        for target, raised in out.sends:
            if await self.live(target) is not None:
                fresh.append((target, InboxItem(0, raised.SerializeToString())))
        for target, reason, recurse in out.terminates:
            if await self.live(target) is not None:
                term = ev.terminated(now, reason, recurse)
                fresh.append((target, InboxItem(0, term.SerializeToString())))
        batch.inbox_add.extend(fresh)
        batch.instances.append(row)
        batch.expect_turn[inst.instance_id] = inst.turn
        await self._commit(batch)

        # Durable now: bring memory in line and start what the turn asked for.
        self.metrics.turns.inc()
        row.turn = inst.turn + 1
        live.inst = row
        self._release_turn(live, lease)
        if out.continue_as_new is None:
            live.history.extend(out.appended)
            live.confirmed.update(e.eventId for e in out.appended if ev.kind(e) in ev.ACTION_EVENTS)
        else:
            live.history, live.confirmed = [], set()
        live.remove_inbox(removed)
        for child in children:
            self.adopt(child)
        for target, item in fresh:
            self.deliver(target, item, now)
        for act in batch.activities_add:
            self.queue_activity(inst.app_id, act)
        if row.terminal:
            self.evict(inst.instance_id)
        else:
            self.wake(inst.instance_id)
        self.notify(row)

    def _continue_as_new(
        self,
        live: Live,
        lease: Lease,
        can: tuple[str | None, list[ev.Event]],
        row: Instance,
        batch: Batch,
        fresh: list[tuple[str, InboxItem]],
        now: datetime,
    ) -> set[int]:
        """Start the next generation: fresh history, carried-over events first, no lost events.

        Returns the inbox seqs the new generation must not see.
        """
        new_input, carry = can
        inst = live.inst
        row.execution_id = uuid.uuid4().hex
        row.input, row.output, row.failure = new_input, None, None
        row.status = p.STATUS_RUNNING if inst.status != p.STATUS_SUSPENDED else inst.status
        consumed = set(lease.seqs)
        # Results and timers answer actions of the old generation; their ids would collide.
        stale = {
            i.seq for i in live.inbox
            if i.seq not in consumed and ev.kind(ev.parse(i.event)) in ev.RESULT_EVENTS
        }  # fmt: skip
        batch.history_reset.append(inst.instance_id)
        batch.inbox_remove.append((inst.instance_id, sorted(consumed | stale)))
        batch.activities_clear.append(inst.instance_id)
        opening = [
            ev.execution_started(now, inst.name, inst.instance_id, row.execution_id, new_input),
            *carry,
        ]
        # The parent link survives: the new generation still answers the same parent task.
        started = opening[0].executionStarted
        if inst.parent_id:
            started.parentInstance.taskScheduledId = inst.parent_task_id or 0
            started.parentInstance.workflowInstance.instanceId = inst.parent_id
        fresh.extend(
            (inst.instance_id, InboxItem(0, e.SerializeToString(), None, prio=0)) for e in opening
        )
        return consumed | stale

    async def _to_parent(
        self,
        child: Instance,
        status: int,
        output: str | None,
        failure: Any | None,
        batch: Batch,
        fresh: list[tuple[str, InboxItem]],
        now: datetime,
    ) -> None:
        """Tell the parent its child finished, in the child's own commit."""
        if not child.parent_id or child.parent_task_id is None:
            return
        parent = await self.live(child.parent_id)
        if parent is None or parent.inst.terminal:
            return
        if child.parent_execution_id and parent.inst.execution_id != child.parent_execution_id:
            return  # the parent continued as new; this result answers nothing any more
        if status == p.STATUS_COMPLETED:
            event = ev.child_completed(now, child.parent_task_id, output)
        else:
            if failure is None:
                reason = "terminated" if status == p.STATUS_TERMINATED else "failed"
                failure = ev.failure(
                    "ChildWorkflowTerminated" if status == p.STATUS_TERMINATED else "ChildFailed",
                    f"child workflow '{child.instance_id}' {reason}",
                )
            event = ev.child_failed(now, child.parent_task_id, failure)
        fresh.append((child.parent_id, InboxItem(0, event.SerializeToString())))

    async def start_children(
        self,
        pinst: Instance,
        starts: list[turn.ChildStart],
        batch: Batch,
        fresh: list[tuple[str, InboxItem]],
        now: datetime,
    ) -> list[Live]:
        """Add the creation of `starts` to the parent's batch; adopt the result after commit."""
        out: list[Live] = []
        for spec in starts:
            existing = await self.live(spec.instance_id)
            if existing is not None and not existing.inst.terminal:
                failure = ev.failure(
                    "InstanceAlreadyExists",
                    f"a workflow with ID '{spec.instance_id}' is already running",
                )
                event = ev.child_failed(now, spec.task_id, failure)
                fresh.append((pinst.instance_id, InboxItem(0, event.SerializeToString())))
                continue
            exec_id = uuid.uuid4().hex
            child = Instance(
                spec.instance_id, spec.name, p.STATUS_PENDING, exec_id, now, now,
                input=spec.input, parent_id=pinst.instance_id, parent_task_id=spec.task_id,
                parent_execution_id=pinst.execution_id, version=spec.version, app_id=pinst.app_id,
            )  # fmt: skip
            parent_info = pb.ParentInstanceInfo(
                taskScheduledId=spec.task_id,
                name=ev.sv(pinst.name),
                workflowInstance=pb.WorkflowInstance(
                    instanceId=pinst.instance_id, executionId=ev.sv(pinst.execution_id)
                ),
            )
            start = ev.execution_started(
                now, spec.name, spec.instance_id, exec_id, spec.input, parent=parent_info
            )
            item = InboxItem(0, start.SerializeToString(), None, prio=0)
            batch.creates.append(NewInstance(child, [item]))
            if existing is not None:
                self.evict(spec.instance_id)
            out.append(Live(child, [], [item]))
        return out

    def deliver(self, target: str, item: InboxItem, now: datetime) -> None:
        live = self._live.get(target)
        if live is None:
            if item.visible_at is None or item.visible_at <= now:
                self.wake(target)
            else:
                self.timers.add(item.visible_at, target)
            return
        live.add_inbox(item)
        if item.visible_at is not None and item.visible_at > now:
            self.timers.add(item.visible_at, target)
        else:
            self.wake(target)

    # --- activities -------------------------------------------------------------------------

    def queue_activity(self, app_id: str, act: Activity) -> None:
        self.activities.add(app_id, act)

    async def _recover_activity(self, act: Activity) -> None:
        live = await self.live(act.instance_id)
        if live is None or live.inst.terminal or live.inst.execution_id != act.execution_id:
            await self._commit(
                Batch(activities_remove=[(act.instance_id, act.execution_id, act.task_id)])
            )
            return
        self.queue_activity(live.inst.app_id, act)

    async def _resume_activities(self, live: Live) -> None:
        """After a reload, queue what the store says is scheduled and nobody is running."""
        inst = live.inst
        for act in await self.store.get_activities(inst.instance_id):
            if act.execution_id == inst.execution_id:
                self.activities.add(inst.app_id, act)

    async def _redispatch_activity(self, lease: Lease) -> None:
        live = await self.live(lease.instance_id)
        task_id = lease.task_id or 0
        if live is None or live.inst.terminal or live.inst.execution_id != lease.execution_id:
            self.activities.done(lease.instance_id, lease.execution_id, task_id)
            return
        act = Activity(lease.instance_id, lease.execution_id, task_id, lease.shown[0])
        self.activities.again(live.inst.app_id, act)

    async def worker_complete_activity(self, res: Any) -> None:
        lease = self.dispatcher.peek(res.completionToken)
        if lease is None or not lease.is_activity:
            raise errors.WorkItemUnknown(
                f"no outstanding activity work item has completion token '{res.completionToken}'"
            )
        if res.instanceId != lease.instance_id or res.taskId != lease.task_id:
            raise errors.WorkerResponseInvalid(
                f"completion token '{res.completionToken}' belongs to activity {lease.task_id} "
                f"of '{lease.instance_id}', not {res.taskId} of '{res.instanceId}'"
            )
        self.dispatcher.release(lease)
        iid, exec_id, task_id = lease.instance_id, lease.execution_id, res.taskId
        self.activities.done(iid, exec_id, task_id)
        now = utcnow()
        if res.HasField("failureDetails"):
            event = ev.task_failed(now, task_id, res.failureDetails, "")
        else:
            event = ev.task_completed(now, task_id, ev.opt(res, "result"), "")
        request = pb.ActivityRequest()
        request.ParseFromString(lease.shown[0])
        field_ = event.taskFailed if res.HasField("failureDetails") else event.taskCompleted
        field_.taskExecutionId = request.taskExecutionId
        batch = Batch(activities_remove=[(iid, exec_id, task_id)])
        live = await self.live(iid)
        item: InboxItem | None = None
        if live is not None and not live.inst.terminal and live.inst.execution_id == exec_id:
            item = InboxItem(0, event.SerializeToString())
            batch.inbox_add.append((iid, item))
        try:
            await self._commit(batch)
        except Exception:
            # The worker drops a result we refuse; hand the activity out again instead.
            self.spawn(self._redispatch_activity(lease))
            raise
        self.metrics.activities_completed.inc()
        if item is not None:
            current = self._live.get(iid)
            if current is not None and current.inst.execution_id == exec_id:
                self.deliver(iid, item, now)

    # --- waiting --------------------------------------------------------------------------------

    def notify(self, inst: Instance) -> None:
        waiters = self._waiters.get(inst.instance_id)
        if not waiters:
            return
        keep = []
        for pred, fut in waiters:
            if fut.done():
                continue
            if pred(inst):
                fut.set_result(inst)
            else:
                keep.append((pred, fut))
        if keep:
            self._waiters[inst.instance_id] = keep
        else:
            del self._waiters[inst.instance_id]

    async def wait(
        self, instance_id: str, pred: Callable[[Instance], bool], timeout: float | None
    ) -> Instance | None:
        """Wait until the instance satisfies `pred`; None if it does not exist.

        Raises TimeoutError when `timeout` passes first.
        """
        inst = await self.get(instance_id)
        if inst is None or pred(inst):
            return inst
        fut: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            if not fut.done():
                fut.cancel()

    async def get(self, instance_id: str) -> Instance | None:
        live = self._live.get(instance_id)
        if live is not None:
            return live.inst
        return await self.store.get_instance(instance_id)

    # --- termination ------------------------------------------------------------------------

    async def terminate(self, instance_id: str, output: str | None, recursive: bool) -> None:
        """Make the instance TERMINATED now, with or without a worker; children follow.

        Children are told through their inboxes in the same commit, so a crash cannot leave
        them running once the parent is recorded as terminated.
        """
        live = await self.live(instance_id)
        if live is None:
            raise errors.InstanceNotFound(instance_id)
        async with live.lock:
            inst = live.inst
            if inst.terminal:
                return
            now = utcnow()
            row = replace(
                inst, status=p.STATUS_TERMINATED, output=output, failure=None,
                updated_at=now, completed_at=now,
            )  # fmt: skip
            # An instance that never ran keeps its start in history, so it still shows its input.
            opening = [
                e
                for i in live.inbox
                if not live.history and (e := ev.parse(i.event)).HasField("executionStarted")
            ]
            events = [
                *opening,
                ev.terminated(now, output, recursive),
                ev.completed(now, p.STATUS_TERMINATED, output, None),
            ]
            batch = Batch(instances=[row], expect_turn={instance_id: inst.turn})
            batch.history_append.append(
                (instance_id, len(live.history), [e.SerializeToString() for e in events])
            )
            batch.inbox_clear.append(instance_id)
            batch.activities_clear.append(instance_id)
            fresh: list[tuple[str, InboxItem]] = []
            await self._to_parent(row, p.STATUS_TERMINATED, output, None, batch, fresh, now)
            if recursive:
                for child_id in await self.store.children(instance_id):
                    child = await self.get(child_id)
                    if child is not None and not child.terminal:
                        item = InboxItem(0, ev.terminated(now, output, True).SerializeToString())
                        fresh.append((child_id, item))
            batch.inbox_add.extend(fresh)
            try:
                await self._commit(batch)
            except errors.StaleTurn:
                self.evict(instance_id)
                raise errors.Unavailable(
                    f"instance '{instance_id}' changed while terminating; retry"
                ) from None
            row.turn = inst.turn + 1
            if live.lease is not None:
                self.dispatcher.release(live.lease)
                live.lease = None
            live.inst = row
            self.evict(instance_id)
        for target, item in fresh:
            self.deliver(target, item, now)
        self.notify(row)
