"""Start and reliably stop the server subprocesses the benchmarks talk to."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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

    The server's output goes to ``log_path`` so a failed start can be
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
            # Our own session so stopping the server also stops anything it
            # spawned (and a Ctrl-C meant for us reaches it only via _stop).
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_ready(proc, ready, ready_timeout_s, log_path)
            yield proc
            if proc.poll() is not None:
                # The log lives in a temp dir that is about to go, and a
                # crashed server explains the client errors the run reported.
                print(
                    f"server {argv[0]} exited with {proc.returncode} during the run; "
                    f"last output:\n{tail(log_path)}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            _stop(proc)


def _die_with_parent() -> None:
    # If whoever started the server is killed outright (a runner over its
    # time budget, a deadline's os._exit), no finally block runs; without
    # this the server would outlive the benchmark. Linux-only, best effort.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
