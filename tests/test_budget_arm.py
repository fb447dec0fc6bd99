"""`scripts/budget_arm.py`, the label-budget item on two starts (issue 16, results/real/budget/): an arm reads its
source run's data, Teacher and pseudo-labels through hard links and never changes them; its students start from its
own weights; a repeated call trains nothing, rewrites the same tables and records its cost beside the first; a changed
recipe is refused; `compare` pairs exactly what both arms finished."""
import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fundus_mtl.config import load_config
from fundus_mtl.models import build_model
from fundus_mtl.pretrain import content_hash

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "fundus-mtl"
# tiny made smaller (one setting, 32 px, fewer images), with two budgets and one seed: the arm's logic is the same at any size
SMALL = ['settings=["eyeq"]', "lambda_grid=[[1.0,1.0]]", "checkpoint=last", "image_size=32", "synth_size=64", "n_detail=80",
         "n_eyeq_train=96", "n_eyeq_test=48", "n_eyeqd=32", "n_deepdrid=[12,8,8]", "epochs_teacher=1", "epochs_st=1",
         "epochs_mt=1", "bootstrap=50", "budget_fractions=[0.5,1.0]", "budget_seeds=[0]"]


def _script():
    spec = importlib.util.spec_from_file_location("budget_arm", ROOT / "scripts" / "budget_arm.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def _snapshot(root:Path) -> dict:
    "Every file under `root`: its SHA-256 and modification time."
    return {p.relative_to(root): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    "A finished tiny run (data, Teacher, students) that both arms start from."
    tmp = tmp_path_factory.mktemp("budget_source")
    run = tmp / "real"
    subprocess.run([str(EXE), "reproduce", "--preset", "tiny", "--out", str(run), "--stages", "data", "teacher", "student",
                    "--set", *SMALL, f"data_dir={tmp / 'data'}"], check=True, capture_output=True, text=True)
    return run


def test_two_arms_share_the_source_and_compare_pairs_them(source, tmp_path):
    ba, before = _script(), _snapshot(source)
    results = tmp_path / "results"
    rec = ba.arm(str(tmp_path / "scratch"), str(source), "", None, str(results / "scratch"), False)
    # the shared inputs are the source's own files (hard links), not copies; the scratch arm's 100 % students are the run's
    for f in ("pseudo_labels.csv", "teacher/predictions_test.csv", "eyeq/st/model.pt"):
        assert (tmp_path / "scratch" / f).stat().st_ino == (source / f).stat().st_ino, f
    assert rec["weights"] == "none" and rec["weights_sha256"] is None and [c["seeds"] for c in rec["calls"]] == [[0]]
    table = pd.read_csv(results / "scratch" / "tables" / "ext4_budget.csv")
    assert sorted(set(table["budget"])) == [0.5, 1.0] and set(table["seed"]) == {0}

    # the other arm: students start from a trunk file (here a random one, seeded differently from the run's students)
    trunk = tmp_path / "trunk.pt"
    torch.save(build_model(dataclasses.replace(load_config(source / "config.json"), seed=7), 3, 0).trunk.state_dict(), trunk)
    rec2 = ba.arm(str(tmp_path / "ssl"), str(source), str(trunk), None, str(results / "ssl"), False)
    assert rec2["weights_sha256"] == content_hash(trunk)
    assert (tmp_path / "ssl" / "eyeq" / "st" / "model.pt").stat().st_ino != (source / "eyeq" / "st" / "model.pt").stat().st_ino
    conv1 = lambda f: torch.load(f, weights_only=True)["state_dict"]["trunk.conv1.weight"]   # a model file's first filter bank
    start = torch.load(trunk, weights_only=True)["conv1.weight"]
    # one epoch from the trunk stays nearer it than the source's student (another start) is
    assert (conv1(tmp_path / "ssl" / "eyeq" / "st" / "model.pt") - start).abs().mean() < (conv1(source / "eyeq" / "st" / "model.pt") - start).abs().mean()
    assert _snapshot(source) == before, "an arm changed its source run"

    # a repeated call trains nothing: the same table, one more call recorded; a changed start is refused
    csv = (results / "scratch" / "tables" / "ext4_budget.csv").read_text()
    again = ba.arm(str(tmp_path / "scratch"), str(source), "", None, str(results / "scratch"), False)
    assert len(again["calls"]) == 2 and again["calls"][1]["seconds"] < 60
    assert (results / "scratch" / "tables" / "ext4_budget.csv").read_text() == csv
    with pytest.raises(ValueError, match="weights"):
        ba.arm(str(tmp_path / "scratch"), str(source), str(trunk), None, str(results / "scratch"), False)

    long = ba.compare(str(tmp_path / "scratch"), str(tmp_path / "ssl"), str(results))
    assert len(long) == 2 * 3 and set(long["model"]) == {"ST", "MT", "LEAF head"} and set(long["seed"]) == {0}
    assert ((long["F1 ssl"] - long["F1 scratch"] - long["diff"]).abs() < 1e-9).all()
    assert (long["diff_lo"] <= long["diff"] + 1e-9).all() and (long["diff"] <= long["diff_hi"] + 1e-9).all()
    assert (long["p_holm"] >= long["p_boot"] - 1e-12).all() and long["p_holm"].le(1).all()
    # each arm's F1 in the pairing is the one its own budget table reports
    for arm in ("scratch", "ssl"):
        f1 = pd.read_csv(results / arm / "tables" / "ext4_budget.csv").query("metric == 'F1'").set_index(["budget", "model"])["value"]
        assert len(f1) == len(long) and all(abs(f1[(r.budget, r.model)] - r[f"F1 {arm}"]) < 1e-9 for _, r in long.iterrows())
    assert (results / "arms.md").exists() and not (results / "arms_mean.md").exists()   # one seed: no mean table

    # pooled seed by seed: the means are the arms' own F1 (one seed here); a seed found in two folders is refused
    pooled = ba.pool([str(results)], "eyeq", str(tmp_path / "pooled"), a="scratch", b="ssl").set_index(["budget", "model"])
    assert len(pooled) == len(long) and (pooled["seeds"] == 1).all()
    for _, r in long.iterrows():
        assert abs(pooled.loc[(r.budget, r.model), "mean ssl"] - r["F1 ssl"]) < 1e-9 and abs(pooled.loc[(r.budget, r.model), "diff"] - r["diff"]) < 1e-9
    with pytest.raises(ValueError, match="more than one"):
        ba.pool([str(results), str(results)], "eyeq", str(tmp_path / "pooled2"), a="scratch", b="ssl")

    # arms that finished different seeds have nothing to pair
    other = tmp_path / "other"
    for arm, seed in (("scratch", 0), ("ssl", 1)):
        (other / arm / "tables").mkdir(parents=True)
        pd.read_csv(results / arm / "tables" / "ext4_budget.csv").assign(seed=seed).to_csv(other / arm / "tables" / "ext4_budget.csv", index=False)
    with pytest.raises(ValueError, match="no seed finished in both arms"):
        ba.compare(str(tmp_path / "scratch"), str(tmp_path / "ssl"), str(other))

