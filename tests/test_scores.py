"""Evaluation on real published data: MCF-Net's EyeQ test predictions (the golden numbers of data/README.md and the
paper's Table 3, MCF row), the `fundus-mtl evaluate` command, and the significance machinery's guarantees."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fundus_mtl.scores import evaluate_files, read_labels
from fundus_mtl.stats import bootstrap_ci, compare

EXE = Path(sys.executable).parent / "fundus-mtl"


def test_mcf_net_golden(shared):
    lab = shared / "eyeq-labels" / "Label_EyeQ_test.csv"
    pred = shared / "eyeq-labels" / "MCF-Net_DenseNet121_v3_v1_test_predictions.csv"
    r = evaluate_files(lab, pred)
    assert (r["n"], r["missing"], r["extra"], r["encoding"]) == (16249, [], [], "eyeq")
    for k, v in dict(F1=0.8606, Pr=0.8651, Re=0.8574, Acc=0.8800).items():
        assert r["scores"][k] == pytest.approx(v, abs=5e-5), k
    for k, v in dict(reject=0.864, usable=0.783, good=0.935).items():
        assert r["per_class"][k] == pytest.approx(v, abs=5e-4), k


def test_evaluate_command_prints_the_golden_rows(shared, tmp_path):
    lab = shared / "eyeq-labels" / "Label_EyeQ_test.csv"
    pred = shared / "eyeq-labels" / "MCF-Net_DenseNet121_v3_v1_test_predictions.csv"
    out = subprocess.run([str(EXE), "evaluate", "--labels", str(lab), "--predictions", str(pred), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "16249 images scored" in out
    table = pd.read_csv(tmp_path / "evaluation.csv", index_col=0)["value"].round(4)
    assert table[["F1", "Pr", "Re", "Acc"]].tolist() == [0.8606, 0.8651, 0.8574, 0.8800]
    assert table[["F1 reject", "F1 usable", "F1 good"]].round(3).tolist() == [0.864, 0.783, 0.935]


def test_evaluate_refuses_swapped_label_file(shared, tmp_path):
    "Labels of other images (EyeQ train) are refused, not scored as empty; EyeQ-D (0 = reject) is read with its own encoding."
    pred = shared / "eyeq-labels" / "MCF-Net_DenseNet121_v3_v1_test_predictions.csv"
    r = subprocess.run([str(EXE), "evaluate", "--labels", str(shared / "eyeq-labels" / "Label_EyeQ_train.csv"), "--predictions", str(pred)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no image name is in both files" in r.stderr
    # EyeQ-D (0 = reject) read with its own encoding agrees with MCF-Net on its 160 test images
    ed = evaluate_files(shared / "eyeq-d" / "EyeQ-D-Quality-Details.csv", pred)
    assert ed["n"] == 160 and ed["encoding"] == "eyeq-d" and ed["scores"]["Acc"] > 0.7


def test_eyeq_encoding_inverted(shared):
    lab, enc = read_labels(shared / "eyeq-labels" / "Label_EyeQ_test.csv")
    raw = pd.read_csv(shared / "eyeq-labels" / "Label_EyeQ_test.csv")
    assert enc == "eyeq" and ((raw["quality"] == 0) == (lab["label"] == 2)).all()   # 0 = good in the file, 2 = good canonically


def test_bootstrap_ci_contains_estimate_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (150, 600, 2400):
        y = rng.integers(0, 3, n); p = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
        ci = bootstrap_ci(y, p, 3, B=400, seed=1)
        assert ((ci["lo"] <= ci["value"]) & (ci["value"] <= ci["hi"])).all()
        widths.append(ci.loc["F1", "hi"] - ci.loc["F1", "lo"])
    assert widths[0] > widths[1] > widths[2] and widths[0] / widths[2] == pytest.approx(4, rel=0.35)


def test_identical_predictions_are_never_significant():
    rng = np.random.default_rng(2)
    for k in (2, 3):
        y = rng.integers(0, k, 500); p = np.where(rng.random(500) < 0.7, y, rng.integers(0, k, 500))
        c = compare(y, p, p.copy(), k, B=300, seed=0)
        assert (c["p_wilcoxon"] >= 0.05).all() and (c["p_boot"] >= 0.05).all() and (c["diff"] == 0).all()
