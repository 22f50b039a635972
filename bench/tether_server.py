"""Start a Tether dev server for one store target (memory, sqlite, postgres).

Deliberately free of ``dapr`` imports: the process that starts the server
usually has not yet decided which endpoint the SDK should read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_ports
from bench.pg import throwaway_database
from bench.procs import server_process

STORES: tuple[str, ...] = ("memory", "sqlite", "postgres")
PG_DATABASE = "bench_tether"
READY_TIMEOUT_S = 60.0

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"


@dataclass(frozen=True)
class Endpoints:
    grpc_port: int
    http_port: int
    # The server process, for those who account for its CPU time.
    pid: int | None = None

    def dapr_env(self) -> dict[str, str]:
        # DAPR_GRPC_ENDPOINT wins in the SDK; the host/port pair is set too so
        # any code path that reads only those agrees with it.
        return {
            "DAPR_GRPC_ENDPOINT": f"127.0.0.1:{self.grpc_port}",
            "DAPR_HTTP_ENDPOINT": f"http://127.0.0.1:{self.http_port}",
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            "DAPR_GRPC_PORT": str(self.grpc_port),
            "DAPR_HTTP_PORT": str(self.http_port),
        }


def _in_src_tree() -> bool:
    return (SRC_DIR / "tether" / "__main__.py").is_file()


def _installed_has_main() -> bool:
    # Looks for the file rather than importing tether.__main__, which would
    # run the CLI, or even the package, whose import may be heavy.
    spec = importlib.util.find_spec("tether")
    if spec is None or spec.submodule_search_locations is None:
        return False
    return any((Path(p) / "__main__.py").is_file() for p in spec.submodule_search_locations)


def tether_missing() -> str | None:
    """Why ``python -m tether`` cannot run here, or None if it can."""
    if _in_src_tree() or _installed_has_main():
        return None
    return (
        "`python -m tether` unavailable: no tether/__main__.py installed or in "
        f"{SRC_DIR} (pip install -e . from the repo root)"
    )


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    # Lets an uninstalled checkout run `python -m tether` straight from src/.
    if _in_src_tree():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p
        )
    return env


def healthy(http_port: int) -> bool:
    url = f"http://127.0.0.1:{http_port}/v1.0/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def tether_server(
    store_url: str | None, work_dir: Path, extra_args: Sequence[str] = ()
) -> Iterator[Endpoints]:
    """Run ``python -m tether dev`` until the block exits.

    ``store_url`` None means Tether's default store, SQLite in the data dir;
    ``extra_args`` go on the command line as they are (``--resources``, ...).
    """
    grpc_port, http_port = free_ports(2)
    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "tether",
        "dev",
        "--data-dir",
        str(data_dir),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        # Per-request INFO lines would be work the peers are spared (their
        # servers and SDKs run at WARNING or quieter too).
        "--log-level",
        "WARNING",
    ]
    if store_url is not None:
        argv += ["--store", store_url]
    argv += extra_args
    with server_process(
        argv,
        work_dir / "tether.log",
        ready=lambda: healthy(http_port),
        ready_timeout_s=READY_TIMEOUT_S,
        env=_server_env(),
        cwd=REPO_ROOT,
    ) as proc:
        yield Endpoints(grpc_port, http_port, proc.pid)


@contextlib.contextmanager
def tether_for_store(store: str, work_dir: Path, pg_admin_url: str) -> Iterator[Endpoints]:
    """A server on the named store; for postgres, on a database made for it."""
    with contextlib.ExitStack() as stack:
        if store == "memory":
            url: str | None = "memory://"
        elif store == "sqlite":
            url = None
        elif store == "postgres":
            url = stack.enter_context(throwaway_database(pg_admin_url, PG_DATABASE))
        else:
            raise ValueError(f"unknown Tether store {store!r}; choose from {STORES}")
        yield stack.enter_context(tether_server(url, work_dir))
