"""Activities waiting for a worker, and the ones handed out.

Every scheduled activity is known here exactly once by (instance, execution, task id) from the
moment it is queued until its result is recorded, so that reloading an instance or recovering
after a restart cannot hand the same activity out twice at the same time.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tether.workflow.dispatcher import Dispatcher
from tether.workflow.model import Activity
from tether.workflow.protos import pb

Key = tuple[str, str, int]


class ActivityQueue:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._waiting: dict[str, deque[Activity]] = {}
        self._known: set[Key] = set()

    def __len__(self) -> int:
        return len(self._known)

    def add(self, app_id: str, act: Activity) -> None:
        """Queue a newly scheduled (or recovered) activity; a known one is ignored."""
        key = (act.instance_id, act.execution_id, act.task_id)
        if key in self._known:
            return
        self._known.add(key)
        self._waiting.setdefault(app_id, deque()).append(act)
        self.drain(app_id)

    def again(self, app_id: str, act: Activity) -> None:
        """Queue an activity whose worker went away before answering."""
        self._known.add((act.instance_id, act.execution_id, act.task_id))
        self._waiting.setdefault(app_id, deque()).append(act)
        self.drain(app_id)

    def done(self, instance_id: str, execution_id: str, task_id: int) -> None:
        self._known.discard((instance_id, execution_id, task_id))

    def drain(self, app_id: str) -> None:
        """Hand queued activities to the app's workers, round robin."""
        queue = self._waiting.get(app_id)
        while queue:
            stream = self._dispatcher.pick(app_id)
            if stream is None:
                return
            act = queue.popleft()
            lease = self._dispatcher.lease(stream, act.instance_id, act.execution_id)
            lease.task_id = act.task_id
            lease.shown = [act.request]
            request: Any = pb.ActivityRequest()
            request.ParseFromString(act.request)
            self._dispatcher.send(lease, pb.WorkItem(activityRequest=request))
