"""A killed `fundus-mtl reproduce` resumes: re-running it finishes the run from the last finished stage (and the
interrupted training from its last checkpoint) and produces the same tables as a run that was never interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from fundus_mtl.cli import PeakMemory, read_ledger

EXE = Path(sys.executable).parent / "fundus-mtl"
STAGES = ["data", "teacher", "student", "evaluation"]
# a smaller tiny: one task-B setting, 32 px, about 40 % of tiny's images, fewer bootstrap resamples. The stages
# and their resume logic are the same at any size; the data and its cache go to the test's own folder.
SMALL = ['settings=["eyeq"]', "image_size=32", "synth_size=64", "n_detail=80", "n_eyeq_train=96", "n_eyeq_test=48",
         "n_eyeqd=32", "n_deepdrid=[12,8,8]", "bootstrap=50"]


def _cmd(out, data):
    return [str(EXE), "reproduce", "--preset", "tiny", "--out", str(out), "--stages", *STAGES, "--set", *SMALL, f"data_dir={data}"]


def _histories(run):
    "Every model folder's history.csv under `run`, as text, and the epochs its last.pt has finished."
    out = {}
    for h in run.rglob("history.csv"):
        last = h.parent / "last.pt"
        done = torch.load(last, map_location="cpu", weights_only=True)["epoch"] if last.exists() else 0
        out[h.relative_to(run)] = (h.read_text(), done)
    return out


def test_killed_reproduce_resumes_to_the_same_tables(tmp_path):
    ref, killed, data = tmp_path / "ref", tmp_path / "killed", tmp_path / "data"
    subprocess.run(_cmd(ref, data), check=True, capture_output=True)

    p = subprocess.Popen(_cmd(killed, data), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "eyeq" / "st" / "last.pt"          # the student stage is mid-training: ST has finished an epoch
    deadline = time.time() + 600
    while not target.exists():
        assert p.poll() is None, "reproduce ended before it could be interrupted"
        assert time.time() < deadline, "timed out waiting for the student stage"
        time.sleep(0.02)
    victims = PeakMemory._descendants(p.pid)              # the papermill kernel and any loader workers
    for pid in victims + [p.pid]:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait()
    ledger = read_ledger(killed)
    assert "teacher" in ledger and "student" not in ledger, ledger
    assert not (killed / "eyeq" / "st" / "predictions_test.csv").exists()
    before = _histories(killed)
    st = before[Path("eyeq/st/history.csv")]
    assert 1 <= st[1] < 2, st                             # tiny's epochs_st = 2: killed after the first epoch, before the second

    r = subprocess.run(_cmd(killed, data), check=True, capture_output=True, text=True)
    assert "[teacher] done earlier" in r.stdout and "[student] running" in r.stdout
    assert list(read_ledger(killed)) == STAGES
    # the proof of a resume, not a restart: each killed training keeps its finished epochs' rows byte for byte (a
    # restart would rewrite them, with other `seconds`), and the finished Teacher's history is untouched
    after = _histories(killed)
    for f, (text, done) in before.items():
        lines = text.splitlines(keepends=True)
        assert after[f][0].splitlines(keepends=True)[:1 + done] == lines[:1 + done], f
        if f.parts[0] == "teacher": assert after[f][0] == text, f
    assert len(after[Path("eyeq/st/history.csv")][0].splitlines()) == 1 + 2      # then it trained the remaining epoch
    for f in ("tables/table2_overall.csv", "tables/table3_per_class.csv", "tables/table4_details.csv",
              "eyeq/st/predictions_test.csv", "eyeq/mt/predictions_test.csv", "eyeq/st_ext/predictions_test.csv"):
        assert (killed / f).read_text() == (ref / f).read_text(), f
    assert not list(killed.rglob("*.tmp")), "a temporary file was left behind"
