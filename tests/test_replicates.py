"""A killed `fundus-mtl replicates` resumes inside the replicate it was training: the protocol is not decided again,
the finished epochs of the interrupted model are kept byte for byte, and the replicate's record and the study's tables
are written when it finishes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from fundus_mtl.rundir import RunDir, REPLICATE_MODELS
from fundus_mtl.stages import PeakMemory

EXE = Path(sys.executable).parent / "fundus-mtl"
# the tiny preset made smaller (one setting, 32 px, fewer images) with the protocol's fixed parts: one λ, the last epoch.
# epochs_st = 3 so that a kill after ST's first epoch leaves work to resume; epochs_mt = 1 keeps the rest cheap.
SMALL = ['settings=["eyeq"]', "lambda_grid=[[1.0,1.0]]", "checkpoint=last", "image_size=32", "synth_size=64", "n_detail=80",
         "n_eyeq_train=96", "n_eyeq_test=48", "n_eyeqd=32", "n_deepdrid=[12,8,8]", "epochs_teacher=1", "epochs_st=3", "epochs_mt=1"]


def _cmd(study, data):
    # min-share 0: one-epoch Teachers call nearly everything good, which the preprocessing rule would rightly refuse
    return [str(EXE), "replicates", str(study), "--preset", "tiny", "--n", "1", "--min-share", "0", "--bootstrap", "50",
            "--set", *SMALL, f"data_dir={data}"]


def test_killed_replicates_resume_inside_the_replicate(tmp_path):
    study, data = tmp_path / "study", tmp_path / "data"
    run = RunDir(study)
    p = subprocess.Popen(_cmd(study, data), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run.replicate_model("scratch", 0, "st") / "last.pt"     # ST of replicate 0 has finished an epoch
    deadline = time.time() + 600
    while not target.exists():
        assert p.poll() is None, "the command ended before it could be interrupted"
        assert time.time() < deadline, "timed out waiting for replicate 0's ST"
        time.sleep(0.02)
    for pid in PeakMemory._descendants(p.pid) + [p.pid]:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    assert p.wait() == -signal.SIGKILL
    done = torch.load(target, map_location="cpu", weights_only=True)["epoch"]
    assert 1 <= done < 3, done                                        # killed inside ST's training
    hist = run.replicate_model("scratch", 0, "st") / "history.csv"
    before = hist.read_text().splitlines()
    protocol = run.protocol.read_bytes()
    assert not run.replicate_record("scratch", 0).exists()

    r = subprocess.run(_cmd(study, data), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert run.protocol.read_bytes() == protocol                     # decided once
    after = hist.read_text().splitlines()
    assert len(after) == 1 + 3 and after[:1 + done] == before[:1 + done]   # the finished epochs kept, byte for byte: resumed, not restarted
    rec = json.loads(run.replicate_record("scratch", 0).read_text())
    assert set(rec["models"]) == set(REPLICATE_MODELS) and rec["images"]["test"] == 48
    assert not list(study.glob("replicates/**/*.pt"))                # model files dropped once the record is written
    summary = pd.read_csv(run.tables / "seeds_summary.csv")
    assert summary["comparison"].tolist() == ["MT − ST-extended", "MT − MT-permuted", "MT − ST"]
    assert summary["verdict"].str.startswith("No verdict").all()     # one replicate: numbers only
    assert "1 finished replicates of arm scratch" in r.stdout


def test_replicates_command_refuses_an_unfair_recipe(tmp_path):
    r = subprocess.run([str(EXE), "replicates", str(tmp_path / "s"), "--preset", "tiny"], capture_output=True, text=True)
    assert r.returncode == 2 and "one task-B setting" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()


def test_the_committed_study_can_be_continued_by_this_code():
    # a replicate's recipe is every Config field not in RECIPE_FREE: a new field that is not listed there makes the
    # committed study refuse its next slice (cudnn_benchmark did, 2026-12-05); a real change of recipe needs a new study
    from fundus_mtl.replicates import RECIPE_FREE, recipe, study_config
    prot = json.loads((Path(__file__).resolve().parents[1] / "results/real/replicates/protocol.json").read_text())
    now = recipe(study_config("replicates"))
    changed = sorted(k for k in set(prot["recipe"]) | set(now) if prot["recipe"].get(k) != now.get(k))
    assert not changed, f"fields {changed} differ from results/real/replicates/protocol.json: list device-only fields in RECIPE_FREE ({RECIPE_FREE})"
