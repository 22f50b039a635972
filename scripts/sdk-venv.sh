#!/usr/bin/env bash
# Create .venv-sdk118: the previous Dapr Python SDK (dapr 1.18.3 + dapr-ext-workflow 1.18.3,
# no health-ping or stateful-history capability), for tests/compat. Idempotent: a venv that
# already holds the pinned versions is left alone. Needs PyPI the first time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${SDK118_VENV:-$ROOT/.venv-sdk118}"
PINS=(dapr==1.18.3 dapr-ext-workflow==1.18.3)
stamp="$VENV/.sdk118-installed"

if [ -f "$stamp" ] && [ -x "$VENV/bin/python" ] \
  && "$VENV/bin/python" -c 'import dapr.ext.workflow' 2>/dev/null; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PY" -m venv "$VENV"
fi
echo "==> installing ${PINS[*]} into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md

for dist in ("dapr", "dapr-ext-workflow"):
    version = md.version(dist)
    assert version == "1.18.3", f"{dist} is {version}, wanted 1.18.3"
EOF
touch "$stamp"
