"""The method's invariants: add_detail_head keeps the ST model, and a killed training resumes exactly."""
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import torch


from fundus_mtl.config import get_config
from fundus_mtl.models import add_detail_head, build_model, normalize
from fundus_mtl.losses import ce_overall
from fundus_mtl.metrics import overall_metric
from fundus_mtl.train import fit

SETUP = """
import numpy as np, pandas as pd
from fundus_mtl.cache import CachedDataset, CachedImages, BoundedRandAugment
from fundus_mtl.config import get_config
rng = np.random.default_rng(0)
imgs = rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8)
y = np.arange(48) % 3
imgs[y == 0] //= 3                                   # make the classes learnable: dark, mid, bright
cache = CachedImages(imgs, pd.DataFrame({"error": [""] * 48}), "test")
t = {"overall": y.astype(np.int64)}
train = CachedDataset(cache, np.arange(36), t, transform=BoundedRandAugment(7))
val = CachedDataset(cache, np.arange(36, 48), t)
cfg = get_config("tiny", image_size=32, batch_size=8, seed=3, precision="fp32")
"""


def _data():
    ns = {}
    exec(SETUP, ns)
    return ns


def test_add_detail_head_keeps_trunk_and_quality_head():
    cfg = get_config("tiny", image_size=32)
    st = build_model(cfg, 3, 0)
    mt = add_detail_head(st, 3, seed=1)
    sd_st, sd_mt = st.state_dict(), mt.state_dict()
    assert set(sd_st) < set(sd_mt) and all(k.startswith("details") for k in set(sd_mt) - set(sd_st))
    assert all(torch.equal(sd_st[k], sd_mt[k]) for k in sd_st)
    x = normalize(torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8))
    st.eval(); mt.eval()
    with torch.no_grad():
        assert torch.equal(st(x)["overall"], mt(x)["overall"])
        assert mt(x)["details"].shape == (4, 3)


def test_killed_training_resumes_to_the_same_result(tmp_path):
    d = _data()
    ref = fit(build_model(d["cfg"], 3, 0), d["train"], d["val"], ce_overall, overall_metric,
              tmp_path / "uninterrupted", 4, d["cfg"], progress=False)
    run = tmp_path / "killed"
    script = SETUP + textwrap.dedent(f"""
        from fundus_mtl.models import build_model
        from fundus_mtl.losses import ce_overall
        from fundus_mtl.metrics import overall_metric
        from fundus_mtl.train import fit
        import time
        fit(build_model(cfg, 3, 0), train, val, ce_overall, overall_metric, {str(run)!r}, 4, cfg, progress=False)
    """)
    # the child trains 4 epochs; we kill it (SIGKILL, no cleanup) as soon as its first epoch is on disk
    p = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "history.csv").exists():
        time.sleep(0.05)
    while time.time() < deadline and len(pd.read_csv(run / "history.csv")) < 1:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    done = len(pd.read_csv(run / "history.csv"))
    assert 1 <= done < 4, f"the child finished {done} epochs before the kill; the test did not interrupt it"
    res = fit(build_model(d["cfg"], 3, 0), d["train"], d["val"], ce_overall, overall_metric, run, 4, d["cfg"], progress=False)
    assert res.epochs == 4 and res.best_epoch == ref.best_epoch
    cols = ["epoch", "lr", "train_loss", "val_metric"]
    pd.testing.assert_frame_equal(res.history[cols], ref.history[cols])
    a, b = ref.model.state_dict(), res.model.state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    finished = torch.load(run / "last.pt", weights_only=True)   # a finished run keeps its record, not its resume state
    assert finished["epoch"] == 4 and "model" not in finished and "optimizer" not in finished
