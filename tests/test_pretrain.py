"""The committed pretraining (results/pretrain/): the trunk loads through `weights=` exactly as its card says, and no
validation or test image of the real splits was among the images it saw — proved by content (SHA-256 of every
held-out file against every pool file), not by name."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from fundus_mtl.config import get_config
from fundus_mtl.models import build_model
from fundus_mtl.pretrain import content_hash, WEIGHTS_FILE
from fundus_mtl.registry import get_setting

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "pretrain"

pytestmark = pytest.mark.skipif(not (RESULTS / "card.json").exists(), reason="no committed pretraining in results/pretrain/")


def _pool():
    return pd.read_csv(RESULTS / "pool.csv", keep_default_na=False)


def test_the_committed_trunk_is_the_card_s_and_loads_through_weights():
    card = json.loads((RESULTS / "card.json").read_text())
    f = RESULTS / WEIGHTS_FILE
    assert content_hash(f) == card["sha256"] and f.stat().st_size == card["bytes"]
    sd = torch.load(f, map_location="cpu", weights_only=True)
    model = build_model(get_config("real", weights=str(f)), 3, 3)
    for k, v in model.trunk.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # the card's data table adds up to the images the recipe names, and nothing was trained on an excluded row
    used = _pool().query("excluded == '' and readable")
    assert len(used) == card["recipe"]["images"] == sum(v["used"] for v in card["data"]["by_source"].values())


def test_no_validation_or_test_image_was_pretrained_on(shared):
    cfg = get_config("real", data_root=str(shared))
    pool = _pool()
    used = pool[pool["excluded"] == ""]
    held = []
    for s in cfg.settings:
        t = get_setting(s).read(cfg, shared)
        held += t.loc[t["split"] != "train", "path"].tolist()
        # every labelled image it saw is a training image of its set
        assert set(used.loc[used["source"] == s, "image"]) <= set(t.loc[t["split"] == "train", "image"]), s
        assert (used["source"] == s).sum() > 100, s
    assert len(held) > 500
    assert not {content_hash(p) for p in held} & set(used["sha256"])
    # the unlabelled folder: every image file is in the table, used or excluded with its reason
    folder = shared / cfg.ssl_pool
    n_files = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert (pool["source"] == "unlabelled").sum() == n_files == 1500
