#!/usr/bin/env bash
# The main job: set up .venv if needed, then reproduce the paper's pipeline on the demo preset.
# Extra arguments go to `fundus-mtl reproduce` (e.g. --preset real --data-root ../shared/data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
if [ $# -eq 0 ]; then set -- --preset demo; fi
fundus-mtl reproduce "$@"
