"""One server per data directory: a second one is refused with a message naming the first, and a
crashed server's lock goes with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tether import REPO, TetherProcess, free_port
from tether.datadir import DataDirInUse, DataDirLock


def test_the_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "data")
    first.acquire()
    with pytest.raises(DataDirInUse, match=r"in use by another Tether server \(pid \d+\)"):
        DataDirLock(tmp_path / "data").acquire()
    first.release()
    with DataDirLock(tmp_path / "data"):
        pass


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = TetherProcess(tmp_path / "data").start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "tether", "dev", "--data-dir", str(first.data_dir),
             "--grpc-port", str(free_port()), "--http-port", str(free_port())],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert first.proc is not None
        assert f"in use by another Tether server (pid {first.proc.pid})" in second.stderr
        assert "another --data-dir" in second.stderr
        # The kernel drops the lock of a killed server: the next one starts on the same data.
        first.kill()
        first.start()
    finally:
        assert first.stop() == 0, first.log()
