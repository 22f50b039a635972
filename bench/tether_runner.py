"""Run the Dapr-SDK workloads against one Tether server, in a fresh process.

``bench.run`` starts the server and passes ``--grpc-port/--http-port``;
without them this starts its own server for ``--target``, so it also works
alone::

    python -m bench.tether_runner --target sqlite --workloads W1,W4 --scale 0.1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench.common import add_runner_args, progress, run_workloads
from bench.pg import DEFAULT_ADMIN_URL
from bench.tether_server import STORES, Endpoints, tether_for_store, tether_missing

WORKER_READY_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0


def _run(target: str, endpoints: Endpoints, args: argparse.Namespace) -> int:
    # The SDK captures DAPR_* at import, so this import must follow the update.
    os.environ.update(endpoints.dapr_env())
    from bench import workloads_dapr
    from bench.common import Sizes

    progress(target, f"connecting SDK worker to 127.0.0.1:{endpoints.grpc_port}")
    runtime = workloads_dapr.start_runtime(WORKER_READY_TIMEOUT_S)
    loads = workloads_dapr.DaprWorkloads()
    try:
        return run_workloads(
            target,
            args.workloads,
            Sizes.scaled(args.scale),
            loads.impls(),
            args.deadline,
            warmup=loads.warmup,
        )
    finally:
        loads.close()
        # Bounded, because a server that stops answering can hang the
        # worker's stream teardown, and the figures are already out.
        stopper = threading.Thread(target=runtime.shutdown, daemon=True)
        stopper.start()
        stopper.join(SHUTDOWN_TIMEOUT_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tether_runner", description=__doc__)
    parser.add_argument("--target", choices=STORES, required=True, help="Tether store")
    parser.add_argument("--grpc-port", type=int, help="use the server already on this port")
    parser.add_argument("--http-port", type=int, help="its HTTP port (with --grpc-port)")
    parser.add_argument(
        "--pg-admin-url",
        default=DEFAULT_ADMIN_URL,
        help="where to create the throwaway database when starting a postgres server",
    )
    add_runner_args(parser)
    args = parser.parse_args(argv)
    if (args.grpc_port is None) != (args.http_port is None):
        parser.error("--grpc-port and --http-port go together")

    target = f"tether-{args.target}"
    if args.grpc_port is not None:
        return _run(target, Endpoints(args.grpc_port, args.http_port), args)

    missing = tether_missing()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tether-")))
        progress(target, "starting Tether server")
        endpoints = stack.enter_context(tether_for_store(args.target, work_dir, args.pg_admin_url))
        return _run(target, endpoints, args)


if __name__ == "__main__":
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK worker's run loop is a non-daemon thread; if its shutdown
    # overran, a normal exit would wait on it forever.
    os._exit(code)
