"""Row <-> record conversions shared by the SQL stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tether.workflow.model import Instance

INSTANCE_COLUMNS = (
    "instance_id, name, status, execution_id, created_at, updated_at, input, output, "
    "custom_status, failure, parent_id, parent_task_id, parent_execution_id, scheduled_start, "
    "completed_at, version, app_id, turn"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(ts: datetime | None) -> int | None:
    """Timestamps are stored as integer microseconds since the epoch (UTC): exact and sortable."""
    if ts is None:
        return None
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


def row_to_instance(row: Sequence[Any]) -> Instance:
    created = from_micros(row[4])
    updated = from_micros(row[5])
    assert created is not None and updated is not None
    return Instance(
        instance_id=row[0],
        name=row[1],
        status=row[2],
        execution_id=row[3],
        created_at=created,
        updated_at=updated,
        input=row[6],
        output=row[7],
        custom_status=row[8],
        failure=bytes(row[9]) if row[9] is not None else None,
        parent_id=row[10],
        parent_task_id=row[11],
        parent_execution_id=row[12],
        scheduled_start=from_micros(row[13]),
        completed_at=from_micros(row[14]),
        version=row[15],
        app_id=row[16],
        turn=row[17],
    )
