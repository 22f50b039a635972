"""The workflow store contract: what every backend (memory, SQLite, PostgreSQL) must do.

The engine decides; the store records. Each engine decision is one `Batch`, applied all or
nothing. Backends are free to apply many batches in one transaction (group commit) as long as a
failing batch fails alone and every batch is durable before `commit` returns.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime

from tether.workflow.model import Activity, InboxItem, Instance, InstancePage, InstanceQuery


@dataclass(slots=True)
class NewInstance:
    """Create `instance` with its opening inbox items.

    If the id is taken by a terminal instance and `replace_terminal` is set, the old one is
    purged first; otherwise `InstanceAlreadyExists` is raised and the batch changes nothing.
    """

    instance: Instance
    inbox: list[InboxItem]
    replace_terminal: bool = True


@dataclass(slots=True)
class Batch:
    """One atomic change. Fields are applied in the order they are declared."""

    purge: list[str] = field(default_factory=list)
    creates: list[NewInstance] = field(default_factory=list)
    # Status rows to write. When `expect_turn` holds an entry for the id, the row is written only
    # if its stored `turn` still equals it (else `StaleTurn`); the written turn is then +1.
    instances: list[Instance] = field(default_factory=list)
    expect_turn: dict[str, int] = field(default_factory=dict)
    history_reset: list[str] = field(default_factory=list)
    # (instance_id, first index, serialized events) appended at consecutive indexes.
    history_append: list[tuple[str, int, list[bytes]]] = field(default_factory=list)
    inbox_clear: list[str] = field(default_factory=list)
    inbox_remove: list[tuple[str, list[int]]] = field(default_factory=list)
    # Items get their `seq` assigned by the store during `commit`.
    inbox_add: list[tuple[str, InboxItem]] = field(default_factory=list)
    activities_clear: list[str] = field(default_factory=list)
    activities_remove: list[tuple[str, str, int]] = field(default_factory=list)
    activities_add: list[Activity] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.purge,
                self.creates,
                self.instances,
                self.history_reset,
                self.history_append,
                self.inbox_clear,
                self.inbox_remove,
                self.inbox_add,
                self.activities_clear,
                self.activities_remove,
                self.activities_add,
            )
        )


@dataclass(slots=True)
class Recovery:
    """What a freshly opened store owes the engine: instances with inbox items, and activities."""

    inbox_due: dict[str, datetime | None] = field(default_factory=dict)
    activities: list[Activity] = field(default_factory=list)


class WorkflowStore(abc.ABC):
    """Durable home of instances, histories, inboxes and scheduled activities."""

    #: A short name for logs and metadata ("sqlite", "postgresql", "memory").
    kind: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if it is missing. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish in-flight commits and release connections."""

    @abc.abstractmethod
    async def commit(self, batch: Batch) -> None:
        """Apply `batch` atomically and durably.

        Raises `InstanceAlreadyExists` (a create hit a live instance) or `StaleTurn` (a fenced
        write lost to another writer); in both cases nothing of the batch is applied.
        """

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> Instance | None:
        """The status row, or None if there is none."""

    @abc.abstractmethod
    async def get_history(self, instance_id: str) -> list[bytes]:
        """The serialized history events in order; empty if the instance has none."""

    @abc.abstractmethod
    async def get_inbox(self, instance_id: str) -> list[InboxItem]:
        """All inbox items, visible or not, in delivery order (prio, then seq)."""

    @abc.abstractmethod
    async def get_activities(self, instance_id: str) -> list[Activity]:
        """Scheduled, not yet completed activities of the instance."""

    @abc.abstractmethod
    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        """Instances matching the query, newest first, one page at a time."""

    @abc.abstractmethod
    async def children(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is `instance_id`."""

    @abc.abstractmethod
    async def recover(self) -> Recovery:
        """Everything the engine must resume after a restart."""
