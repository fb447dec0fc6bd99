"""The chapters' import graph flows one way: a module never imports one exported from a later chapter.

Chapters sort by their number and letter (`00a` < `00b` < `01a` ...); a stage chapter (one with a papermill
`parameters` cell, e.g. `07_evaluation`) comes after the lettered chapters of its number that it is built on
(`07a_scores`, `07b_stats`, ...). Lazy imports inside functions count too."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _chapters() -> dict:
    "module name -> (number, letter or '~' for a stage chapter, notebook name)"
    out = {}
    for p in (ROOT / "fundus_mtl").glob("*.py"):
        m = re.search(r"File to edit: \.\./nbs/(\w+)\.ipynb", p.read_text())
        if not m: continue
        nb = m.group(1)
        cells = json.loads((ROOT / "nbs" / f"{nb}.ipynb").read_text())["cells"]
        stage = any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
        num, letter = re.match(r"(\d+)([a-z]?)_", nb).groups()
        out[p.stem] = (num, "~" if stage else letter, nb)
    return out


def test_no_module_imports_a_later_chapter():
    ch = _chapters()
    assert {"config", "train", "cli", "efficiency"} <= set(ch)
    bad = []
    for mod, (num, letter, nb) in ch.items():
        for imp in set(re.findall(r"from (?:\.|fundus_mtl\.)(\w+) import", (ROOT / "fundus_mtl" / f"{mod}.py").read_text())):
            if imp in ch and ch[imp][:2] >= (num, letter):
                bad.append(f"{mod} ({nb}) imports {imp} ({ch[imp][2]})")
    assert not bad, "imports that run back up the chapters: " + "; ".join(sorted(bad))


def test_no_module_over_about_400_lines():
    long = {p.name: n for p in (ROOT / "fundus_mtl").glob("*.py") if p.name != "_modidx.py"
            and (n := len(p.read_text().splitlines())) > 420}
    assert not long, long
