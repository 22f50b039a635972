"""Start and reliably stop the server subprocesses the benchmarks talk to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

STOP_GRACE_S = 10.0


class ServerDied(RuntimeError):
    pass


@contextlib.contextmanager
def server_process(
    argv: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    ready_timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block exits, yielding once ``ready()`` is true.

    The server gets its own session so stopping it also stops anything it
    spawned, and its output goes to ``log_path`` so a failed start can be
    diagnosed without flooding the benchmark's own output.
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, ready, ready_timeout_s, log_path)
            yield proc
        finally:
            _stop(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout_s: float,
    log_path: Path,
) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            raise ServerDied(
                f"{proc.args!r} exited with {proc.returncode} before becoming ready; "
                f"last output:\n{tail(log_path)}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"{proc.args!r} not ready after {timeout_s:.0f}s; last output:\n{tail(log_path)}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # Signal the group we created (and only it): the server may have children.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE_S)


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
