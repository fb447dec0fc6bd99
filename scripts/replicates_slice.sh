#!/usr/bin/env bash
# One slice of a replicate study that lands: frozen code runs from a git worktree at COMMIT, the study trains in
# the main checkout's runs/, and every replicate that finishes is copied (without model files) into RESULTS and
# committed on branch main of this checkout at once, with the across-replicate tables and the README blocks
# between <!-- replicates:start --> and <!-- replicates:end --> regenerated (COMMIT needs replicate_tables.update_block).
#
# usage: bash scripts/replicates_slice.sh COMMIT STUDY RESULTS [fundus-mtl replicates options ...]
#   e.g. bash scripts/replicates_slice.sh 1a2b3c4 runs/replicates-real results/real/replicates \
#          --data-root ../shared/data --arm scratch --n 3 --budget-minutes 55
# A killed slice loses at most the replicate it was training (the next slice resumes it from its last epoch).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MAIN=$PWD
[ $# -ge 3 ] || { sed -n 2,10p "$0"; exit 2; }
COMMIT=$(git rev-parse --verify "$1^{commit}"); STUDY=$(realpath -m "$2"); RESULTS=$(realpath -m "$3"); shift 3
git merge-base --is-ancestor "$COMMIT" main || { echo "commit $COMMIT is not on main"; exit 2; }
WT="$MAIN/runs/worktrees/${COMMIT:0:12}"
[ -d "$WT" ] || git worktree add --detach "$WT" "$COMMIT" >/dev/null
source "$MAIN/scripts/setup.sh"                 # the main checkout's .venv; PYTHONPATH puts the frozen code first
export PYTHONPATH="$WT"

land() {   # copy every finished replicate not yet in RESULTS, regenerate the tables, commit on main
  mkdir -p "$RESULTS"
  local new=()
  for rec in "$STUDY"/replicates/*/seed_*/replicate.json; do
    [ -e "$rec" ] || continue
    local rel=${rec#"$STUDY"/}; rel=${rel%/replicate.json}
    [ -e "$RESULTS/$rel/replicate.json" ] && continue
    mkdir -p "$RESULTS/$rel"
    (cd "$STUDY/$rel" && find . -type f ! -name '*.pt' -print0 | xargs -0 -I{} cp --parents {} "$RESULTS/$rel/")
    new+=("$rel")
  done
  [ ${#new[@]} -gt 0 ] || return 0
  cp "$STUDY/protocol.json" "$STUDY/config.json" "$RESULTS/"
  for opt in "$STUDY"/preprocessing/*/; do   # what the protocol decided on: Teacher histories, the pseudo-labels
    o=$(basename "$opt"); mkdir -p "$RESULTS/preprocessing/$o"
    for f in teacher/history.csv pseudo_labels.csv; do [ -e "$opt/$f" ] && cp "$opt/$f" "$RESULTS/preprocessing/$o/${f//\//_}"; done
  done
  # the tables, then the generated "replicates" block of every README that holds one (the project's, the results' and their parent's)
  local readmes=()
  for f in "$MAIN/README.md" "$(dirname "$RESULTS")/README.md" "$RESULTS/README.md"; do grep -q '<!-- replicates:start -->' "$f" 2>/dev/null && readmes+=("$f"); done
  (cd "$WT" && python - "$RESULTS" "${readmes[@]}" <<'PY'
import sys
from fundus_mtl.replicate_tables import write_seeds, update_block
from fundus_mtl.rundir import RunDir
write_seeds(sys.argv[1])
for f in sys.argv[2:]: update_block(f, "replicates", (RunDir(sys.argv[1]).tables/"seeds_verdict.md").read_text())
PY
  )
  for i in 1 2 3 4 5; do   # the main checkout may be busy with another git command
    git -C "$MAIN" add -- "$RESULTS" "${readmes[@]}" && git -C "$MAIN" commit -q -m "results: replicate(s) ${new[*]} of $(basename "$STUDY") (code ${COMMIT:0:7}); tables and README blocks regenerated" -- "$RESULTS" "${readmes[@]}" && break
    sleep 5
  done
  echo "landed: ${new[*]}"
}

(cd "$WT" && fundus-mtl replicates "$STUDY" "$@") &
pid=$!
trap 'kill $pid 2>/dev/null || true' INT TERM
while kill -0 $pid 2>/dev/null; do land; sleep 20; done
rc=0; wait $pid || rc=$?
land
exit $rc
