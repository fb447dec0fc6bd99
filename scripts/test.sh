#!/usr/bin/env bash
# The project's whole test suite, from nothing: set up .venv, check the library is in sync with the
# notebooks, run every notebook's tests, pytest, and an end-to-end `reproduce --preset tiny`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
t0=$(date +%s)
# a full disk shows up later as an odd torch.save error ("unexpected pos"): say up front how much there is (the suite writes several GB)
df -h . "${TMPDIR:-/tmp}" | awk 'NR == 1 || !seen[$0]++' | sed 's/^/   /'
echo "== nbdev_export: the library must match the notebooks"
nbdev_export
if [ -n "$(git status --porcelain -- fundus_mtl)" ]; then
  git status --porcelain -- fundus_mtl; git diff --stat -- fundus_mtl
  echo "FAIL: nbdev_export changed fundus_mtl/ (edit the notebooks, not the .py files, and commit the export)"; exit 1
fi
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== chromium (Debian's package) for the browser tests: the report screenshot and the local web page"
  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
    || echo "   chromium could not be installed: the browser tests skip"
fi
echo "== nbdev_test: every notebook's test cells"
# from nothing: the stage notebooks' runs (runs/nbtest-*) and the tiny synthetic data they share are reused by
# whatever finds them, and both are keyed by the config, not the code, so a reused checkout would check what older
# code made (the image cache is keyed by each file's mtime, so regenerated images get new entries)
rm -rf runs/nbtest-* data/synth/tiny-seed0
nbdev_test --do_print
rm -rf runs/nbtest-*   # the stage notebooks' tiny models: nothing after this reads them, and the disk CI runs on may be small
echo "== pytest"
pytest -ra tests
echo "== fundus-mtl reproduce --preset tiny --extensions"
rm -rf runs/ci-tiny
fundus-mtl reproduce --preset tiny --out runs/ci-tiny --extensions
echo "== all tests passed in $(( $(date +%s) - t0 )) s (after setup)"
