"""The one place that names the Durable Task protocol's generated messages.

The stubs come from the pinned `dapr` package (its bundled copy of the Durable Task SDK). Field
numbers are wire-compatible with older SDK copies, so one set serves every supported worker.
"""

from __future__ import annotations

from typing import Any

from dapr.ext.workflow._durabletask.internal import (
    orchestrator_service_pb2_grpc as _svc_grpc,
)
from dapr.ext.workflow._durabletask.internal import protos as _protos

pb: Any = _protos
pb_grpc: Any = _svc_grpc

HistoryEvent: Any = pb.HistoryEvent
WorkItem: Any = pb.WorkItem

STATUS_RUNNING = 0
STATUS_COMPLETED = 1
STATUS_CONTINUED_AS_NEW = 2
STATUS_FAILED = 3
STATUS_CANCELED = 4
STATUS_TERMINATED = 5
STATUS_PENDING = 6
STATUS_SUSPENDED = 7
STATUS_STALLED = 8

CAPABILITY_STATEFUL_HISTORY = 2
CAPABILITY_HEALTH_PING = 3
