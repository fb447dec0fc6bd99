"""`fundus-mtl reproduce --nproc-per-node 2` on CPU (Gloo): the training stages run as two processes and leave the
same kind of outputs as one process would — every file each stage promises, every model folder complete — with
`world_size`, backend and device in the ledger, and nothing of rank 1 left in the temporary folder. (That two
processes train the same weights as one is `nbs/04_train.ipynb`'s test; a stage on two processes, `nbs/11c_stages`.)"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from fundus_mtl.rundir import RunDir
from fundus_mtl.stages import stage_outputs

EXE = Path(sys.executable).parent / "fundus-mtl"


def test_training_stages_on_two_processes(tmp_path):
    run = tmp_path / "ddp"
    before = set(Path(tempfile.gettempdir()).glob("fundus-mtl-rank*"))
    r = subprocess.run([str(EXE), "reproduce", "--preset", "tiny", "--out", str(run), "--device", "cpu", "--nproc-per-node", "2",
                        "--stages", "data", "teacher", "student"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    ledger = json.loads((run / "stages.json").read_text())
    assert {k: (v["world_size"], v.get("backend"), v["device"]) for k, v in ledger.items()} == \
           {"data": (1, None, "cpu"), "teacher": (2, "gloo", "cpu"), "student": (2, "gloo", "cpu")}
    for stage in ("teacher", "student"):
        missing = [p for p in stage_outputs(stage) if not list(run.glob(p))]
        assert not missing, (stage, missing)
    rd = RunDir(run)
    for setting in ("eyeq", "deepdrid"):
        for name in ("st", "st_ext"):
            assert {"model.pt", "last.pt", "history.csv", "predictions_test.csv"} <= {p.name for p in rd.student_dir(setting, name).iterdir()}
        h = pd.read_csv(rd.student_dir(setting, "st") / "history.csv")
        assert len(h) > 0 and h["train_loss"].notna().all() and h["val_metric"].between(0, 1).all()
    assert set(Path(tempfile.gettempdir()).glob("fundus-mtl-rank*")) == before
