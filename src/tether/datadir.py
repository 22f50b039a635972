"""The data directory belongs to one server at a time.

SQLite stores (workflows, jobs, the default state store and pub/sub, app registrations) assume
one writer process: the workflow engine caches what it owns, and the job store takes back the
leases of its own earlier run when it opens. Two servers on one directory would break both, so
a server holds an exclusive lock on `<data-dir>/tether.lock` for as long as it runs. The kernel
drops the lock when the process dies, however it dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "tether.lock"


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, pid: str) -> None:
        owner = f" (pid {pid})" if pid else ""
        super().__init__(
            f"the data directory {data_dir} is in use by another Tether server{owner}: stop "
            "that server, or give this one another --data-dir"
        )


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `DataDirInUse` at once if another process holds it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(self.data_dir, pid) from None
        # For the message another server shows; the lock itself is what counts.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
