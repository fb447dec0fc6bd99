"""A killed `fundus-mtl reproduce` resumes: re-running it finishes the run from the last finished stage (and the
interrupted training from its last checkpoint) and produces the same tables as a run that was never interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fundus_mtl.cli import PeakMemory, read_ledger

EXE = Path(sys.executable).parent / "fundus-mtl"
STAGES = ["data", "teacher", "student", "evaluation"]


def _cmd(out):
    # one task-B setting keeps the test short; the stages and their resume logic are the same for both
    return [str(EXE), "reproduce", "--preset", "tiny", "--out", str(out), "--stages", *STAGES, "--set", 'settings=["eyeq"]']


def test_killed_reproduce_resumes_to_the_same_tables(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(ref), check=True, capture_output=True)

    p = subprocess.Popen(_cmd(killed), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "eyeq" / "st" / "last.pt"          # the student stage is mid-training: ST has finished an epoch
    deadline = time.time() + 600
    while not target.exists():
        assert p.poll() is None, "reproduce ended before it could be interrupted"
        assert time.time() < deadline, "timed out waiting for the student stage"
        time.sleep(0.1)
    victims = PeakMemory._descendants(p.pid)              # the papermill kernel and any loader workers
    for pid in victims + [p.pid]:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait()
    ledger = read_ledger(killed)
    assert "teacher" in ledger and "student" not in ledger, ledger
    assert not (killed / "eyeq" / "st" / "predictions_test.csv").exists()

    r = subprocess.run(_cmd(killed), check=True, capture_output=True, text=True)
    assert "[teacher] done earlier" in r.stdout and "[student] running" in r.stdout
    assert list(read_ledger(killed)) == STAGES
    for f in ("tables/table2_overall.csv", "tables/table3_per_class.csv", "tables/table4_details.csv",
              "eyeq/st/predictions_test.csv", "eyeq/mt/predictions_test.csv", "eyeq/st_ext/predictions_test.csv"):
        assert (killed / f).read_text() == (ref / f).read_text(), f
    assert not list(killed.rglob("*.tmp")), "a temporary file was left behind"
