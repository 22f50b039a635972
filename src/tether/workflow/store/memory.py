"""A store that keeps everything in process memory and persists nothing.

For tests and for measuring the engine's own cost; a restart loses every instance.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools

from tether import errors
from tether.workflow.model import (
    Activity,
    InboxItem,
    Instance,
    InstancePage,
    InstanceQuery,
    decode_cursor,
    encode_cursor,
)
from tether.workflow.store.base import Batch, Recovery, WorkflowStore


class MemoryStore(WorkflowStore):
    kind = "memory"

    def __init__(self) -> None:
        self._instances: dict[str, Instance] = {}
        self._history: dict[str, list[bytes]] = {}
        self._inbox: dict[str, dict[int, InboxItem]] = {}
        self._activities: dict[str, dict[tuple[str, int], Activity]] = {}
        self._seq = itertools.count(1)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def commit(self, batch: Batch) -> None:
        self._check(batch)
        for iid in batch.purge:
            self._drop(iid)
        for new in batch.creates:
            iid = new.instance.instance_id
            self._drop(iid)
            self._instances[iid] = copy.copy(new.instance)
            for item in new.inbox:
                item.seq = next(self._seq)
                self._inbox.setdefault(iid, {})[item.seq] = copy.copy(item)
        for inst in batch.instances:
            row = copy.copy(inst)
            if inst.instance_id in batch.expect_turn:
                row.turn = batch.expect_turn[inst.instance_id] + 1
            self._instances[inst.instance_id] = row
        for iid in batch.history_reset:
            self._history[iid] = []
        for iid, first, events in batch.history_append:
            hist = self._history.setdefault(iid, [])
            del hist[first:]
            hist.extend(events)
        for iid in batch.inbox_clear:
            self._inbox.pop(iid, None)
        for iid, seqs in batch.inbox_remove:
            box = self._inbox.get(iid, {})
            for seq in seqs:
                box.pop(seq, None)
        for iid, item in batch.inbox_add:
            item.seq = next(self._seq)
            self._inbox.setdefault(iid, {})[item.seq] = copy.copy(item)
        for iid in batch.activities_clear:
            self._activities.pop(iid, None)
        for iid, eid, tid in batch.activities_remove:
            self._activities.get(iid, {}).pop((eid, tid), None)
        for act in batch.activities_add:
            self._activities.setdefault(act.instance_id, {})[(act.execution_id, act.task_id)] = act

    def _check(self, batch: Batch) -> None:
        # Checks see the batch's own earlier parts (purge, then creates, then rows), as the SQL
        # stores do; `expect_turn` fences only the rows the batch writes.
        rows: dict[str, Instance | None] = dict.fromkeys(batch.purge)

        def current(iid: str) -> Instance | None:
            return rows[iid] if iid in rows else self._instances.get(iid)

        for new in batch.creates:
            old = current(new.instance.instance_id)
            if old is not None and not (old.terminal and new.replace_terminal):
                raise errors.InstanceAlreadyExists(new.instance.instance_id)
            rows[new.instance.instance_id] = new.instance
        for inst in batch.instances:
            turn = batch.expect_turn.get(inst.instance_id)
            if turn is not None:
                row = current(inst.instance_id)
                if row is None or row.turn != turn:
                    raise errors.StaleTurn(
                        f"instance '{inst.instance_id}' was changed by another writer"
                    )
                inst = dataclasses.replace(inst, turn=turn + 1)
            rows[inst.instance_id] = inst

    def _drop(self, iid: str) -> None:
        self._instances.pop(iid, None)
        self._history.pop(iid, None)
        self._inbox.pop(iid, None)
        self._activities.pop(iid, None)

    async def get_instance(self, instance_id: str) -> Instance | None:
        row = self._instances.get(instance_id)
        return copy.copy(row) if row else None

    async def get_history(self, instance_id: str) -> list[bytes]:
        return list(self._history.get(instance_id, []))

    async def get_inbox(self, instance_id: str) -> list[InboxItem]:
        items = self._inbox.get(instance_id, {}).values()
        return [copy.copy(i) for i in sorted(items, key=lambda i: (i.prio, i.seq))]

    async def get_activities(self, instance_id: str) -> list[Activity]:
        return list(self._activities.get(instance_id, {}).values())

    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        rows = sorted(
            self._instances.values(), key=lambda i: (i.created_at, i.instance_id), reverse=True
        )
        if query.cursor:
            ts, iid = decode_cursor(query.cursor)
            rows = [r for r in rows if (r.created_at, r.instance_id) < (ts, iid)]
        rows = [
            r
            for r in rows
            if (not query.statuses or r.status in query.statuses)
            and (query.name is None or r.name == query.name)
            and (query.created_from is None or r.created_at >= query.created_from)
            and (query.created_to is None or r.created_at < query.created_to)
            and (query.parent_id is None or r.parent_id == query.parent_id)
        ]
        page = [copy.copy(r) for r in rows[: query.limit]]
        cursor = encode_cursor(page[-1]) if len(rows) > query.limit and page else None
        return InstancePage(page, cursor)

    async def children(self, instance_id: str) -> list[str]:
        return [i.instance_id for i in self._instances.values() if i.parent_id == instance_id]

    async def recover(self) -> Recovery:
        rec = Recovery()
        for iid, box in self._inbox.items():
            dues = [i.visible_at for i in box.values()]
            if dues:
                rec.inbox_due[iid] = None if None in dues else min(d for d in dues if d)
        for acts in self._activities.values():
            rec.activities.extend(acts.values())
        return rec
