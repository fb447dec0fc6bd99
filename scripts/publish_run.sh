#!/usr/bin/env bash
# Copy a finished run's small outputs into a results folder (never model files): config, the data stage's manifest
# and summary, the stage ledger, tables, figures, every model folder's history.csv, predictions and chosen.json,
# and the executed stage notebooks (papermill's output, figures embedded; nbdev_clean strips the noisy metadata and
# keeps the outputs). The run's layout is kept, so a path in the run is the same path under the results folder.
#
# usage: bash scripts/publish_run.sh RUN RESULTS        e.g. bash scripts/publish_run.sh runs/real results/real
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -eq 2 ] || { sed -n 2,7p "$0"; exit 2; }
RUN=$(realpath "$1"); OUT=$(realpath -m "$2")
[ -e "$RUN/config.json" ] || { echo "$RUN is not a run directory (no config.json)"; exit 2; }
source scripts/setup.sh
mkdir -p "$OUT"
(cd "$RUN" && find . -type f \( -name '*.csv' -o -name '*.json' -o -name '*.md' -o -name '*.png' -o -name '*.ipynb' \) \
   ! -path './data/*.csv' ! -name '.*' -print0 | xargs -0 -I{} cp --parents {} "$OUT/")
cp "$RUN/data/summary.csv" "$OUT/data/summary.csv"
if [ -d "$OUT/notebooks" ]; then nbdev_clean --fname "$OUT/notebooks" >/dev/null; fi
du -sh "$OUT" | sed 's/^/published: /'
# the README's generated block of tables (<!-- tables:start --> ... <!-- tables:end -->), when it has one
if grep -q '<!-- tables:start -->' "$OUT/README.md" 2>/dev/null; then
  python - "$OUT" <<'PY'
import sys
from pathlib import Path
from fundus_mtl.replicate_tables import update_block
out = Path(sys.argv[1])
order = ["table2_overall", "table3_per_class", "table4_details", "table4_details_bad", "table5_interobserver", "table5_agreement", "table5_kappa", "pseudo_labels"]
mds = [out/"tables"/f"{s}.md" for s in order if (out/"tables"/f"{s}.md").exists()]
update_block(out/"README.md", "tables", "\n\n".join(f"#### `tables/{m.name}`\n\n{m.read_text().strip()}" for m in mds))
print(f"README tables block: {len(mds)} tables")
PY
fi
