"""Child processes for `tether run`: started, their output relayed, and stopped cleanly.

Each child runs in a session (and process group) of its own. A Ctrl-C in the terminal therefore
reaches `tether run` alone, which stops the apps in order: apps first, with SIGTERM to the whole
group so that wrappers (`npm start`, shell scripts) take their children with them, SIGKILL after
the grace period, and the dev server last so that apps can finish their in-flight calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tether.devloop.output import Output

_CHUNK = 64 * 1024
# How long an exited child's pipes may stay open (a background grandchild holding them) before
# its exit is reported anyway.
_DRAIN_SECONDS = 1.0


class StartError(Exception):
    """A command that could not be started at all (not found, not executable)."""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    #: Shown in the `[name]` prefix of every line the process prints.
    name: str
    argv: tuple[str, ...]
    cwd: Path
    #: The complete environment of the process.
    env: Mapping[str, str]


class Child:
    """A started process whose output is being relayed."""

    def __init__(
        self, spec: ProcessSpec, proc: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]]
    ) -> None:
        self.spec = spec
        self.proc = proc
        self._pumps = pumps
        #: Set once `stop` was asked for: the exit code then is the answer to it, not a failure.
        self.stopping = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def wait(self) -> int:
        """The exit code, once the process has exited and its output is printed.

        A code of -N (killed by signal N) is returned as 128+N, as a shell reports it.
        """
        code = await self.proc.wait()
        await self._drain()
        return 128 - code if code < 0 else code

    async def stop(self, grace: float) -> bool:
        """SIGTERM the process group, SIGKILL it after `grace` seconds. False if it had to be
        killed."""
        self.stopping = True
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
            graceful = True
        except TimeoutError:
            graceful = False
        # Also reaches what the app left behind in its group, whether or not it exited itself.
        self.signal(signal.SIGKILL)
        await self.proc.wait()
        await self._drain()
        return graceful

    async def _drain(self) -> None:
        if self._pumps:
            await asyncio.wait(self._pumps, timeout=_DRAIN_SECONDS)

    def signal(self, sig: int) -> None:
        # The child leads its own group (start_new_session), so its pid is the group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        """Stop relaying output (pipes held open by leftovers never reach end of file)."""
        for pump in self._pumps:
            pump.cancel()


async def start(spec: ProcessSpec, output: Output, log: BinaryIO | None = None) -> Child:
    """Start `spec` with its output relayed to `output`, or written straight to `log`."""
    if log is None:
        output.add_source(spec.name)
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            cwd=spec.cwd,
            env=dict(spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if log is None else log,
            stderr=asyncio.subprocess.PIPE if log is None else asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise StartError(f"command not found: {spec.argv[0]} (in {spec.cwd})") from exc
    except PermissionError as exc:
        raise StartError(f"not executable: {spec.argv[0]}") from exc
    except OSError as exc:
        raise StartError(f"cannot start {spec.argv[0]}: {exc}") from exc
    if log is not None:
        return Child(spec, proc, [])
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(_relay(proc.stdout, spec.name, output, False)),
        asyncio.create_task(_relay(proc.stderr, spec.name, output, True)),
    ]
    return Child(spec, proc, pumps)


async def _relay(stream: asyncio.StreamReader, name: str, output: Output, stderr: bool) -> None:
    # Read chunks rather than lines: StreamReader.readline fails on lines past its buffer limit,
    # and an app printing a huge JSON document must not take the relay down.
    pending = b""
    while chunk := await stream.read(_CHUNK):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            output.line(name, raw.decode(errors="replace").rstrip("\r"), stderr)
    if pending:
        output.line(name, pending.decode(errors="replace").rstrip("\r"), stderr)
