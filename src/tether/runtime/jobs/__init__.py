"""Dapr's Jobs API: a durable scheduler (`scheduler`) over SQLite or PostgreSQL (`store`)."""

from tether.runtime.jobs.scheduler import Scheduler
from tether.runtime.jobs.store import JobStore, open_job_store

__all__ = ["JobStore", "Scheduler", "open_job_store"]
