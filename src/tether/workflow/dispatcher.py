"""Worker streams and the work items handed out on them.

A worker opens `GetWorkItems` and reads a stream; each work item carries a completion token the
worker must echo. Everything handed out and not yet completed is remembered with its stream, so
when a stream goes away its items are handed back to the engine for re-dispatch.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.workflow import protos as p


@dataclass(slots=True, eq=False)
class Stream:
    """One connected worker's work-item stream."""

    id: int
    app_id: str
    capabilities: frozenset[int]
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    # (instance id, execution id) -> history length the worker has cached for it.
    cached: dict[tuple[str, str], int] = field(default_factory=dict)
    outstanding: set[str] = field(default_factory=set)
    closed: bool = False

    @property
    def stateful(self) -> bool:
        return p.CAPABILITY_STATEFUL_HISTORY in self.capabilities

    @property
    def pings(self) -> bool:
        return p.CAPABILITY_HEALTH_PING in self.capabilities


@dataclass(slots=True)
class Lease:
    """A work item handed to a stream and not yet completed."""

    token: str
    stream: Stream
    instance_id: str
    execution_id: str
    # Workflow items: the inbox seqs consumed and the events shown. Activity items: the task id.
    seqs: list[int] = field(default_factory=list)
    shown: list[Any] = field(default_factory=list)
    task_id: int | None = None

    @property
    def is_activity(self) -> bool:
        return self.task_id is not None


class Dispatcher:
    """Tracks streams and leases; knows nothing of what the work means."""

    def __init__(self, on_lost: Callable[[list[Lease]], None]) -> None:
        self._streams: dict[str, list[Stream]] = {}
        self._leases: dict[str, Lease] = {}
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self._on_lost = on_lost
        self._boot = uuid.uuid4().hex[:12]
        self.connected = asyncio.Event()

    def open(self, app_id: str, capabilities: frozenset[int]) -> Stream:
        stream = Stream(next(self._ids), app_id, capabilities)
        self._streams.setdefault(app_id, []).append(stream)
        self.connected.set()
        return stream

    def close(self, stream: Stream) -> None:
        if stream.closed:
            return
        stream.closed = True
        peers = self._streams.get(stream.app_id, [])
        if stream in peers:
            peers.remove(stream)
        if not any(self._streams.values()):
            self.connected.clear()
        lost = [self._leases.pop(t) for t in list(stream.outstanding) if t in self._leases]
        stream.outstanding.clear()
        if lost:
            self._on_lost(lost)

    def streams(self, app_id: str) -> list[Stream]:
        return self._streams.get(app_id, [])

    def pick(self, app_id: str) -> Stream | None:
        """Round robin over the app's live streams."""
        peers = self._streams.get(app_id)
        if not peers:
            return None
        return peers[next(self._rr) % len(peers)]

    def lease(self, stream: Stream, instance_id: str, execution_id: str) -> Lease:
        # The boot id keeps a token from a previous server process from matching a new one.
        token = f"{self._boot}.{stream.id}.{next(self._ids)}"
        lease = Lease(token, stream, instance_id, execution_id)
        self._leases[token] = lease
        stream.outstanding.add(token)
        return lease

    def send(self, lease: Lease, item: Any) -> None:
        item.completionToken = lease.token
        lease.stream.queue.put_nowait(item)

    def peek(self, token: str) -> Lease | None:
        return self._leases.get(token)

    def release(self, lease: Lease) -> None:
        self._leases.pop(lease.token, None)
        lease.stream.outstanding.discard(lease.token)

    def leases(self) -> list[Lease]:
        return list(self._leases.values())
