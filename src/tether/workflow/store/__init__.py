"""Workflow stores behind one contract (`base.WorkflowStore`), chosen by URL."""

from __future__ import annotations

from pathlib import Path

from tether import errors
from tether.workflow.store.base import Batch, NewInstance, Recovery, WorkflowStore

__all__ = ["Batch", "NewInstance", "Recovery", "WorkflowStore", "open_store"]


def open_store(url: str | None, data_dir: Path) -> WorkflowStore:
    """Build the store a URL names: `sqlite:///path`, `postgresql://...`, `memory://`.

    No URL means SQLite in `data_dir`. Drivers are imported lazily so that an embedded setup
    needs none of the optional ones.
    """
    if not url or url.startswith("sqlite:"):
        from tether.workflow.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://").removeprefix("sqlite:") if url else ""
        return SqliteStore(Path(path) if path else data_dir / "workflows.db")
    if url.startswith(("postgresql://", "postgres://")) or "host=" in url:
        from tether.workflow.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("memory:"):
        from tether.workflow.store.memory import MemoryStore

        return MemoryStore()
    raise errors.BadRequest(
        f"unsupported store URL '{url}': use sqlite:///PATH, postgresql://... or memory://"
    )
