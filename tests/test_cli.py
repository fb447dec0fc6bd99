"""The fundus-mtl command: config handling, the papermill pipeline (resume, failures), synth."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fundus_mtl.cli import main, read_ledger, reproduce
from fundus_mtl.config import get_config, load_config
from fundus_mtl.datasets import read_deepdrid, read_details, read_eyeq, read_eyeq_d

EXE = Path(sys.executable).parent / "fundus-mtl"


def _stage_nb(path, body):
    "A minimal stage notebook: a papermill parameters cell, then `body`."
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('preset = "tiny"\nrun_dir = None\ndata_root = None\ndevice = None')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_nbs(tmp_path, monkeypatch):
    "A notebooks folder whose 'data' stage counts its runs in the run directory."
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _stage_nb(nbs / "02d_prepare.ipynb",
              "from pathlib import Path\nf = Path(run_dir)/'count.txt'\n"
              "f.write_text(str(int(f.read_text()) + 1 if f.exists() else 1))")
    monkeypatch.setenv("FUNDUS_MTL_NBS", str(nbs))
    return nbs


def test_reproduce_writes_config_skips_finished_stages_and_forces(fake_nbs, tmp_path):
    run = tmp_path / "run"
    reproduce("tiny", out=str(run), overrides={"image_size": "48"}, log=False)
    cfg = load_config(run)
    assert cfg.image_size == 48 and cfg.preset == "tiny" and Path(cfg.run_dir) == run
    assert (run / "notebooks/02d_prepare.ipynb").exists()
    assert read_ledger(run)["data"]["seconds"] > 0
    reproduce("tiny", out=str(run), overrides={"image_size": "48"}, log=False)        # finished: skipped
    assert (run / "count.txt").read_text() == "1"
    (run / "data").mkdir(exist_ok=True)
    (run / "data" / "stale.csv").write_text("from the previous run")
    reproduce("tiny", out=str(run), overrides={"image_size": "48"}, force=["data"], log=False)
    assert (run / "count.txt").read_text() == "2"
    assert not (run / "data" / "stale.csv").exists()                                  # a redone stage starts clean
    reproduce("tiny", out=str(run), overrides={"image_size": "56"}, log=False)        # config changed: redone
    assert (run / "count.txt").read_text() == "3" and load_config(run).image_size == 56
    with pytest.raises(ValueError, match="holds a 'tiny' run"):
        reproduce("demo", out=str(run), log=False)


def test_optional_stage_runs_only_when_asked_and_goes_stale(fake_nbs, tmp_path):
    "The label-efficiency stage runs with extensions=True (or by name); redoing an earlier stage without it clears its results."
    _stage_nb(fake_nbs / "14_label_efficiency.ipynb",
              "from pathlib import Path\n(Path(run_dir)/'tables').mkdir(exist_ok=True)\n(Path(run_dir)/'tables'/'ext1_x.md').write_text('x')")
    run = tmp_path / "run"
    reproduce("tiny", out=str(run), log=False)
    assert list(read_ledger(run)) == ["data"] and not (run / "tables").exists()
    reproduce("tiny", out=str(run), extensions=True, log=False)
    assert list(read_ledger(run)) == ["data", "efficiency"] and (run / "tables/ext1_x.md").exists()
    assert (run / "count.txt").read_text() == "1"                                       # data was not redone
    reproduce("tiny", out=str(run), force=["data"], log=False)
    assert list(read_ledger(run)) == ["data"] and not (run / "tables/ext1_x.md").exists()   # stale results removed
    reproduce("tiny", out=str(run), stages=["efficiency"], log=False)
    assert "efficiency" in read_ledger(run) and (run / "count.txt").read_text() == "2"


def test_failing_stage_names_notebook_and_cell(fake_nbs, tmp_path, capsys):
    _stage_nb(fake_nbs / "02d_prepare.ipynb", "x = 1\nraise RuntimeError('the data folder is empty')")
    rc = main(["reproduce", "--preset", "tiny", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "stage 'data' failed in 02d_prepare.ipynb" in err and "RuntimeError: the data folder is empty" in err
    assert "cell [" in err and str(tmp_path / "bad/notebooks/02d_prepare.ipynb") in err
    assert "data" not in read_ledger(tmp_path / "bad")                                  # not recorded as done


def test_cli_refuses_bad_overrides(tmp_path, capsys):
    assert main(["reproduce", "--preset", "tiny", "--out", str(tmp_path), "--set", "image_size=big"]) == 2
    assert "image_size" in capsys.readouterr().err


def test_synth_command_writes_the_real_formats(tmp_path):
    out = tmp_path / "synth"
    r = subprocess.run([str(EXE), "synth", "--preset", "tiny", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = get_config("tiny")
    det = read_details(out / "mshf/details.csv")
    assert len(det) == cfg.n_detail and set(det.split) == {"train", "test"}
    tr, te = read_eyeq(out / "eyeq/Label_EyeQ_train.csv"), read_eyeq(out / "eyeq/Label_EyeQ_test.csv")
    assert (len(tr), len(te)) == (cfg.n_eyeq_train, cfg.n_eyeq_test)
    assert all(os.path.exists(p) for p in pd.concat([tr, te]).path)
    # the file is in EyeQ's encoding (0 = good): the reader's canonical labels match the generator's truth
    truth = pd.read_csv(out / "eyeq/details_truth.csv").set_index("image")
    both = pd.concat([tr, te]).set_index("image")
    assert (both.overall.astype(int) == truth.loc[both.index, "overall"].astype(int)).all()
    dd = pd.concat([read_deepdrid(out / f"deepdrid/regular-fundus-{s}.csv") for s in ("training", "validation", "test")])
    assert len(dd) == sum(cfg.n_deepdrid) and all(os.path.exists(p) for p in dd.path)
    ed = read_eyeq_d(out / "eyeq-d/EyeQ-D-Quality-Details.csv")
    assert len(ed) == cfg.n_eyeqd and all(os.path.exists(p) for p in ed.path)
    raters = pd.read_csv(out / "eyeq-d/raters.csv")
    per_image = raters[raters.repeat == 0].groupby("image").rater.nunique()
    assert (per_image % 2 == 1).all() and per_image.min() >= 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary and "seconds" in json.dumps(summary)
