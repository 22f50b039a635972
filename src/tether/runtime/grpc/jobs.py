"""The Jobs RPCs of the Dapr gRPC API: stable (`ScheduleJob`, `GetJob`, `DeleteJob`, `ListJobs`,
`DeleteJobsByPrefix`) and their Alpha1 twins."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import jobs_pb2

from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped


class JobRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @mapped
    async def ScheduleJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self.rt.jobs.schedule(app_id, request.job, request.overwrite)
        return jobs_pb2.ScheduleJobResponse()

    @mapped
    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        return jobs_pb2.GetJobResponse(job=await self.rt.jobs.get(app_id, request.name))

    @mapped
    async def DeleteJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self.rt.jobs.delete(app_id, request.name)
        return jobs_pb2.DeleteJobResponse()

    @mapped
    async def ListJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        return jobs_pb2.ListJobsResponse(jobs=await self.rt.jobs.list_jobs(app_id))

    @mapped
    async def DeleteJobsByPrefix(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self.rt.jobs.delete_prefix(app_id, request.name_prefix)
        return jobs_pb2.DeleteJobsByPrefixResponse()

    ScheduleJobAlpha1 = ScheduleJob
    GetJobAlpha1 = GetJob
    DeleteJobAlpha1 = DeleteJob

    # These two Alpha1 RPCs have messages of their own (the same fields).
    @mapped
    async def ListJobsAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        return jobs_pb2.ListJobsResponseAlpha1(jobs=await self.rt.jobs.list_jobs(app_id))

    @mapped
    async def DeleteJobsByPrefixAlpha1(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self.rt.jobs.delete_prefix(app_id, request.name_prefix)
        return jobs_pb2.DeleteJobsByPrefixResponseAlpha1()
