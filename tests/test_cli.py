"""The fundus-mtl command: the parser generated from the functions, config handling, the papermill pipeline (resume, failures), synth."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fundus_mtl.cli import COMMANDS, command_parser, evaluate, export, main, predict, report, reproduce, serve, synth
from fundus_mtl.config import CLASS_NAMES, DETAILS, get_config, load_config
from fundus_mtl.datasets import read_deepdrid, read_details, read_eyeq, read_eyeq_d
from fundus_mtl.images import fov_crop, read_image
from fundus_mtl.stages import read_ledger
from fundus_mtl.synth import SYNTH_VERSION, synth_hash

EXE = Path(sys.executable).parent / "fundus-mtl"


# the command lines of README.md and scripts/*.sh, and the call each one makes
COMMAND_LINES = [
    ("reproduce --preset demo", reproduce, dict(preset="demo")),
    ("reproduce --preset real --out runs/real --data-root ../shared/data --device cuda --set image_size=96 settings=[\"eyeq\"] --force teacher",
     reproduce, dict(preset="real", out="runs/real", data_root="../shared/data", device="cuda",
                     overrides={"image_size": "96", "settings": '["eyeq"]'}, force=["teacher"])),
    ("reproduce --preset tiny --out runs/ci-tiny --extensions", reproduce, dict(preset="tiny", out="runs/ci-tiny", extensions=True)),
    ("reproduce --preset demo --stages efficiency --force all", reproduce, dict(preset="demo", stages=["efficiency"], force=["all"])),
    ("synth --preset tiny --out DIR --set n_detail=10", synth, dict(preset="tiny", out="DIR", overrides={"n_detail": "10"})),
    ("predict photos/ more.jpg list.csv --model runs/demo/eyeq/mt/lambda_1_1 --out results/ --cam --json --precision fp32 --batch-size 8 --device cpu",
     predict, dict(inputs=["photos/", "more.jpg", "list.csv"], model="runs/demo/eyeq/mt/lambda_1_1", out="results/", cam=True, json=True,
                   precision="fp32", batch_size=8, device="cpu")),
    ("report runs/demo --screenshot shot.png --height 1200", report, dict(run_dir="runs/demo", screenshot="shot.png", height=1200)),
    ("evaluate --labels l.csv --predictions p.csv --bootstrap 1000 --seed 3 --out DIR",
     evaluate, dict(labels="l.csv", predictions="p.csv", bootstrap=1000, seed=3, out="DIR")),
    ("export runs/real/eyeq/mt --onnx m.onnx --int8 --calibration a/ b.csv --n-calibration 64",
     export, dict(model="runs/real/eyeq/mt", onnx="m.onnx", int8=True, calibration=["a/", "b.csv"], n_calibration=64)),
    ("serve --model m.onnx --port 8080 --max-mb 10 --gradable-reject 0.1", serve, dict(model="m.onnx", port=8080, max_mb=10.0, gradable_reject=0.1)),
]


@pytest.mark.parametrize("line,func,given", COMMAND_LINES, ids=[c[0].split()[0] + str(i) for i, c in enumerate(COMMAND_LINES)])
def test_parser_gives_each_function_its_arguments(line, func, given):
    "Every documented command line parses into the function's own parameters: those given, the rest at their defaults."
    args = vars(command_parser(COMMANDS).parse_args(line.split()))
    assert COMMANDS[args.pop("command")] is func
    bound = inspect.signature(func).bind(**args)   # nothing the function does not take
    defaults = {k: p.default for k, p in inspect.signature(func).parameters.items()
                if p.default is not p.empty and k in args}
    assert args == {**defaults, **given}, bound


@pytest.mark.parametrize("cmd,docment", [("reproduce", "run only these stages"), ("synth", "output folder (default data/synth/<preset>)"),
                                         ("predict", "heatmap overlays (needs out)"), ("report", "screenshot height in px"),
                                         ("evaluate", "resamples for 95% CIs (0: none)"),
                                         ("serve", "the address to listen on (0.0.0.0: every network")])
def test_help_is_the_docments(cmd, docment, capsys):
    assert main([cmd, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert docment in out and inspect.getdoc(COMMANDS[cmd]).split()[0] in out


def test_top_level_help_lists_the_commands():
    r = subprocess.run([str(EXE), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and all(c in r.stdout for c in COMMANDS)


@pytest.mark.parametrize("cmd", ["evaluate", "predict"])
def test_a_command_builds_only_its_own_options(cmd):
    "`fundus-mtl evaluate` does not import torch for the options `export` forwards to export_onnx, nor `predict` (an .onnx model runs without torch)."
    code = f"import sys; from fundus_mtl.cli import main; rc = main(['{cmd}', '--help']); print(rc, 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stderr


@pytest.mark.parametrize("argv,message", [
    (["reproduce", "--preset", "huge"], "fundus-mtl reproduce: error: unknown preset 'huge'; choose one of tiny, demo"),
    (["reproduce", "--preset", "tiny", "--device", "gpu"], "fundus-mtl reproduce: error: unknown device 'gpu'"),
    (["synth", "--set", "image_size"], "fundus-mtl synth: error: argument --set: override 'image_size' is not of the form key=value"),
    (["evaluate", "--labels", "l.csv"], "fundus-mtl evaluate: error: the following arguments are required: --predictions"),
    (["predict", "a.jpg"], "fundus-mtl predict: error: input not found: a.jpg"),              # --model is optional: the shipped model
    (["report", "--height", "900"], "fundus-mtl report: error: the following arguments are required: run_dir"),
    (["predict", "a.jpg", "--model", "m.pt", "--json"], "fundus-mtl predict: error: --json writes files: give an output folder"),
])
def test_usage_errors_exit_2_with_one_clear_line(argv, message, tmp_path, capsys):
    argv = argv + (["--out", str(tmp_path / "run")] if argv[0] == "reproduce" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "run").exists()                                             # refused before anything is written


def test_evaluate_command_on_a_small_pair_of_files(tmp_path, capsys):
    pd.DataFrame({"image_name": ["a", "b", "c"], "Good": [.8, .1, .1], "Usable": [.1, .8, .1], "Reject": [.1, .1, .8]}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"image": ["a", "b", "c"], "quality": [0, 1, 2]}).to_csv(tmp_path / "l.csv", index=False)   # EyeQ: 0 = good
    assert main(["evaluate", "--labels", str(tmp_path / "l.csv"), "--predictions", str(tmp_path / "p.csv"), "--out", str(tmp_path / "ev")]) == 0
    assert "3 images scored" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "ev" / "evaluation.csv", index_col=0).loc["Acc", "value"] == 1.0


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


def test_reproduce_merges_through_stage_config(fake_nbs, tmp_path):
    "reproduce asks stage_config: an existing run keeps the overrides it was made with, and what the parameters change redoes it."
    run = tmp_path / "run"
    reproduce("tiny", out=str(run), overrides={"image_size": "48"}, log=False)
    reproduce("tiny", out=str(run), log=False)                                         # no overrides: the run's own config continues
    assert load_config(run).image_size == 48 and (run / "count.txt").read_text() == "1"
    reproduce("tiny", out=str(run), device="cpu", log=False)                           # a new device is a changed config
    assert load_config(run).device == "cpu" and load_config(run).image_size == 48 and (run / "count.txt").read_text() == "2"


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
    # summary.json describes these files: the config that made them, and each set's counts as the readers see them
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["config_hash"], summary["version"]) == (synth_hash(cfg), SYNTH_VERSION)
    sets = summary["sets"]
    assert {k: v["n"] for k, v in sets.items()} == {"mshf": len(det), "eyeq": len(both), "deepdrid": len(dd), "eyeq-d": len(ed)}
    for name, table, k in (("eyeq", both, 3), ("deepdrid", dd, 2), ("eyeq-d", ed, 3)):
        assert sets[name]["overall"] == {c: int((table.overall == i).sum()) for i, c in enumerate(CLASS_NAMES[k])}, name
    for name, table in (("mshf", det), ("eyeq", truth), ("eyeq-d", ed)):       # true details; EyeQ-D: the raters' majority
        assert sets[name]["details"] == {d: {"good": int((table[d] == 1).sum()), "bad": int((table[d] == 0).sum())} for d in DETAILS}, name
    assert sets["mshf"]["splits"] == det.split.value_counts().to_dict()
    # the images read back as colour fundus photographs of the synth size, their field of view found
    for f in (det.path.iloc[0], both.path.iloc[-1], dd.path.iloc[0], ed.path.iloc[-1]):
        c = fov_crop(read_image(f))
        assert c.found and c.image.ndim == 3 and max(read_image(f).shape[:2]) == cfg.synth_size, f
