"""Plain records the engine and its stores exchange: instances, inbox items, activities."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether import errors
from tether.workflow import protos as p

STATUS_NAMES: dict[int, str] = {
    p.STATUS_RUNNING: "RUNNING",
    p.STATUS_COMPLETED: "COMPLETED",
    p.STATUS_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
    p.STATUS_FAILED: "FAILED",
    p.STATUS_CANCELED: "CANCELED",
    p.STATUS_TERMINATED: "TERMINATED",
    p.STATUS_PENDING: "PENDING",
    p.STATUS_SUSPENDED: "SUSPENDED",
    p.STATUS_STALLED: "STALLED",
}
STATUS_BY_NAME: dict[str, int] = {v: k for k, v in STATUS_NAMES.items()}
TERMINAL = frozenset({p.STATUS_COMPLETED, p.STATUS_FAILED, p.STATUS_TERMINATED, p.STATUS_CANCELED})

MAX_INSTANCE_ID = 64
_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
# Durable Task's "wait forever" timer: recorded in history, never scheduled.
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def status_from_name(name: str) -> int:
    """Parse a status name as users write it (`running`, `COMPLETED`, `ORCHESTRATION_STATUS_X`)."""
    key = name.strip().upper().removeprefix("ORCHESTRATION_STATUS_")
    if key not in STATUS_BY_NAME:
        raise errors.BadRequest(
            f"unknown workflow status '{name}'; use one of {', '.join(STATUS_BY_NAME)}"
        )
    return STATUS_BY_NAME[key]


def validate_instance_id(instance_id: str) -> str:
    if not instance_id:
        raise errors.InstanceIdInvalid("the workflow instance ID is empty")
    if len(instance_id) > MAX_INSTANCE_ID:
        raise errors.InstanceIdTooLong(
            f"workflow instance ID '{instance_id[:16]}...' is longer than {MAX_INSTANCE_ID} chars"
        )
    if not _ID_RE.match(instance_id):
        raise errors.InstanceIdInvalid(
            f"workflow instance ID '{instance_id}' is invalid: use only letters, digits, "
            "'-' and '_'"
        )
    return instance_id


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Instance:
    """The status row of one workflow instance (one per instance id, across generations)."""

    instance_id: str
    name: str
    status: int
    execution_id: str
    created_at: datetime
    updated_at: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure: bytes | None = None  # serialized TaskFailureDetails
    parent_id: str | None = None
    parent_task_id: int | None = None
    parent_execution_id: str | None = None
    scheduled_start: datetime | None = None
    completed_at: datetime | None = None
    version: str | None = None
    app_id: str = ""
    turn: int = 0  # bumped by every commit that owns the instance; a fencing token

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(slots=True)
class InboxItem:
    """An event waiting to be handed to the workflow; invisible until `visible_at`."""

    seq: int
    event: bytes
    visible_at: datetime | None = None
    # 0 for the events that open a generation (start, carried-over events), 1 otherwise.
    prio: int = 1


@dataclass(slots=True)
class Activity:
    """An activity scheduled by a committed turn and not yet completed."""

    instance_id: str
    execution_id: str
    task_id: int
    request: bytes  # serialized ActivityRequest


@dataclass(frozen=True, slots=True)
class InstanceQuery:
    statuses: tuple[int, ...] = ()
    name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    parent_id: str | None = None
    limit: int = 100
    # Opaque keyset cursor: "<created_at iso>|<instance_id>" of the last row of the prior page.
    cursor: str | None = None


@dataclass(slots=True)
class InstancePage:
    instances: list[Instance] = field(default_factory=list)
    cursor: str | None = None


def encode_cursor(inst: Instance) -> str:
    return f"{inst.created_at.isoformat()}|{inst.instance_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ts, _, iid = cursor.partition("|")
        return datetime.fromisoformat(ts), iid
    except ValueError as exc:
        raise errors.BadRequest(f"invalid continuation token '{cursor}'") from exc
