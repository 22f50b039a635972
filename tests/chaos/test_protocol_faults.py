"""Crash windows the chaos test hits only by luck, made deterministic with a bare worker.

Each test drives `TaskHubSidecarService` directly (the SDK's own generated stubs) to put a
worker's answer exactly where a kill can put it, and asserts what durability requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb
from google.protobuf import empty_pb2, wrappers_pb2

from tests.fixtures.tether import TetherProcess

WAIT = 8.0


class RawWorker:
    """A bare worker: one connection, one work-item stream read into a queue."""

    def __init__(self, server: TetherProcess) -> None:
        self.channel = grpc.insecure_channel(server.grpc_address)
        self.stub = pb_grpc.TaskHubSidecarServiceStub(self.channel)
        self.stub.Hello(empty_pb2.Empty(), timeout=5)
        self.stream = self.stub.GetWorkItems(pb.GetWorkItemsRequest())
        self.items: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for item in self.stream:
                self.items.put(item)
        except grpc.RpcError:
            pass  # the stream ended: closed by us, or the server went away

    def next_item(self, timeout: float = WAIT) -> Any:
        try:
            return self.items.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no work item within {timeout}s")

    def answer(self, item: Any, *actions: Any, timeout: float = 5) -> None:
        res = pb.WorkflowResponse(
            instanceId=item.workflowRequest.instanceId,
            completionToken=item.completionToken,
            actions=list(actions),
        )
        self.stub.CompleteOrchestratorTask(res, timeout=timeout)

    def close(self) -> None:
        self.stream.cancel()
        self.channel.close()


def sidecar(server: TetherProcess) -> Any:
    return pb_grpc.TaskHubSidecarServiceStub(grpc.insecure_channel(server.grpc_address))


ROW_LOCK = "SELECT 1 FROM tether_wf_instances WHERE instance_id = $1 FOR UPDATE"
INBOX_LOCK = "LOCK TABLE tether_wf_inbox IN EXCLUSIVE MODE"
SCHEDULE_ACT = pb.WorkflowAction(id=1, scheduleTask=pb.ScheduleTaskAction(name="act"))
COMPLETE = pb.WorkflowAction(
    id=2,
    completeWorkflow=pb.CompleteWorkflowAction(workflowStatus=pb.ORCHESTRATION_STATUS_COMPLETED),
)


def test_a_completion_token_from_before_a_restart_is_refused(tmp_path: Path) -> None:
    """A worker may answer a work item of the previous server process after it reconnects.

    The 1.19 SDK sends every result on whatever connection is current, so an answer computed
    for a work item of a killed server arrives at its successor. It must be refused, not taken
    as the answer to the successor's work item (which showed other events): that would record
    the new events with a reply that never saw them, and the workflow would wait forever.
    """
    server = TetherProcess(tmp_path / "server").start()
    client = sidecar(server)
    worker: RawWorker | None = None
    try:
        client.StartInstance(pb.CreateInstanceRequest(instanceId="tok", name="wf"), timeout=5)
        worker = RawWorker(server)
        before = worker.next_item()
        # The answer to that first turn: nothing to do until an event arrives.
        stale = pb.WorkflowResponse(instanceId="tok", completionToken=before.completionToken)
        worker.close()
        server.kill()
        server.start()
        client.RaiseEvent(pb.RaiseEventRequest(instanceId="tok", name="go"), timeout=5)
        worker = RawWorker(server)
        after = worker.next_item()
        shown = [e.WhichOneof("eventType") for e in after.workflowRequest.newEvents]
        assert "eventRaised" in shown

        with pytest.raises(grpc.RpcError):
            worker.stub.CompleteOrchestratorTask(stale, timeout=5)
        worker.answer(after, COMPLETE)
        done = client.WaitForInstanceCompletion(
            pb.GetInstanceRequest(instanceId="tok"), timeout=WAIT
        )
        assert done.workflowState.workflowStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    finally:
        if worker is not None:
            worker.close()
        code = server.stop()
    assert code == 0, server.log()


class PgLock:
    """Holds a lock from another PostgreSQL session (`sql` runs in a transaction kept open until
    `release()`), so that the server's commits that need it wait."""

    def __init__(self, url: str, sql: str, *args: Any) -> None:
        self.url, self.sql, self.args = url, sql, args
        self.held, self.freed, self.done = threading.Event(), threading.Event(), threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True).start()
        assert self.held.wait(WAIT), f"could not take the lock: {sql}"

    async def _hold(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            async with conn.transaction():
                await conn.execute(self.sql, *self.args)
                self.held.set()
                await asyncio.to_thread(self.freed.wait, WAIT)
        finally:
            await conn.close()
            self.done.set()

    def release(self) -> None:
        self.freed.set()
        assert self.done.wait(WAIT)


@pytest.mark.postgres
def test_an_answer_whose_worker_vanishes_mid_commit_still_takes_effect(
    tmp_path: Path, pg_database_url: str
) -> None:
    """A worker killed right after sending its answer cancels the RPC while the server commits.

    The commit goes through; the engine must then also do what the answer asked (here: dispatch
    the activity). Found by the chaos test on PostgreSQL, where commits are asynchronous: the
    workflows stayed RUNNING forever with their activity recorded as scheduled and never run.
    A client deadline cancels the server's handler exactly as a dead worker's connection does.
    """
    server = TetherProcess(tmp_path / "server", store=pg_database_url).start()
    client = sidecar(server)
    workers: list[RawWorker] = []
    try:
        client.StartInstance(pb.CreateInstanceRequest(instanceId="mid", name="wf"), timeout=5)
        workers.append(RawWorker(server))
        first = workers[0].next_item()
        lock = PgLock(pg_database_url, ROW_LOCK, "mid")
        with pytest.raises(grpc.RpcError) as info:
            workers[0].answer(first, SCHEDULE_ACT, timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        lock.release()  # the commit of that answer now completes
        workers[0].close()

        workers.append(RawWorker(server))
        item = workers[1].next_item()
        while item.HasField("workflowRequest"):
            # A re-sent turn gets the answer the SDK would give again: the same pending action.
            # Refusing it (the turn is already recorded) is fine.
            with contextlib.suppress(grpc.RpcError):
                workers[1].answer(item, SCHEDULE_ACT)
            item = workers[1].next_item()
        assert item.activityRequest.name == "act"
    finally:
        for worker in workers:
            worker.close()
        code = server.stop()
    assert code == 0, server.log()


@pytest.mark.postgres
def test_an_activity_result_whose_worker_vanishes_mid_commit_is_not_lost(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The same window for an activity result: once the commit went through, the workflow must
    see the result (or the activity must run again); it must not wait forever."""
    server = TetherProcess(tmp_path / "server", store=pg_database_url).start()
    client = sidecar(server)
    workers: list[RawWorker] = []
    try:
        client.StartInstance(pb.CreateInstanceRequest(instanceId="act", name="wf"), timeout=5)
        workers.append(RawWorker(server))
        workers[0].answer(workers[0].next_item(), SCHEDULE_ACT)
        activity = workers[0].next_item()
        assert activity.activityRequest.name == "act"
        lock = PgLock(pg_database_url, INBOX_LOCK)
        result = pb.ActivityResponse(
            instanceId="act",
            taskId=activity.activityRequest.taskId,
            result=wrappers_pb2.StringValue(value="42"),
            completionToken=activity.completionToken,
        )
        with pytest.raises(grpc.RpcError) as info:
            workers[0].stub.CompleteActivityTask(result, timeout=0.5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        lock.release()
        workers[0].close()

        workers.append(RawWorker(server))
        item = workers[1].next_item()
        if item.HasField("workflowRequest"):
            shown = [e.WhichOneof("eventType") for e in item.workflowRequest.newEvents]
            assert "taskCompleted" in shown
        else:
            assert item.activityRequest.name == "act"  # run again: allowed, nothing is lost
    finally:
        for worker in workers:
            worker.close()
        code = server.stop()
    assert code == 0, server.log()
