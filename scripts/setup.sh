#!/usr/bin/env bash
# Create .venv if missing and install what the project needs: torch/torchvision first (the pinned
# wheels; other versions download gigabytes), then the project itself with its dev tools.
# Sourced by scripts/test.sh and scripts/reproduce.sh; re-installs only when setup.py or
# settings.ini changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=$(cat setup.py settings.ini pyproject.toml 2>/dev/null | sha1sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ] || ! .venv/bin/python -c "import fundus_mtl, torch, torchvision" 2>/dev/null; then
  echo "setup: installing torch==2.14.1 torchvision==0.29.1, then fundus_mtl[dev]"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import fundus_mtl, torch, torchvision" 
  echo "$stamp" > .venv/.setup-stamp
fi
export PATH="$PWD/.venv/bin:$PATH"
