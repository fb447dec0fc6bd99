"""`fundus_mtl.predict` and `fundus_mtl.model_file`: the hostile folder, model files that are not ours, usage errors,
outputs, CAM overlays, memory on a huge image, and bf16 vs fp32 decisions on real photographs."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fundus_mtl.cam import gradcam
from fundus_mtl.images import preprocess
from fundus_mtl.model_file import ModelFileError, export_model, load_model_file
from fundus_mtl.models import QualityNet
from fundus_mtl.fixtures import make_hostile_folder
from fundus_mtl.predict import Predictor
from fundus_mtl.camera import run_predict
from fundus_mtl.scoring import NOT_FUNDUS, NOT_READ, expand_inputs, overlay, read_for_model, write_predictions
from fundus_mtl.train import fit_meta

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return QualityNet("resnet18", 3, 3).eval()


@pytest.fixture(scope="module")
def model_pt(net, tmp_path_factory):
    return export_model(net, tmp_path_factory.mktemp("model") / "model.pt", image_size=64, preset="test", model="random")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return d, make_hostile_folder(d, huge=False)   # the 8000-px JPEG: test_huge_image_memory here, and 11b's hostile-folder cell


@pytest.mark.parametrize("module, unwanted", [("fundus_mtl.predict", ("fundus_mtl.synth", "fundus_mtl.fundus", "fundus_mtl.fixtures")),
                                               ("fundus_mtl.scoring", ("torch", "torchvision", "fundus_mtl.synth", "fundus_mtl.fundus", "fundus_mtl.fixtures"))])
def test_camera_modules_do_not_load_the_generator_the_fixtures_or_torch(module, unwanted):
    "The person at the camera installs the predictor: importing it loads neither the synthetic-data generator nor the test fixtures, and the shared scoring half not even torch."
    code = (f"import sys, {module}; "
            f"print(' '.join(sorted(m for m in sys.modules if m in {unwanted!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing {module} loads {r.stdout.strip()}"


def test_hostile_folder_gives_one_row_each(hostile, model_pt):
    d, expected = hostile
    df = run_predict([d], str(model_pt), batch_size=4, progress=False)
    assert len(df) == len(expected) and sorted(df["image"]) == sorted(expected)
    rows = df.set_index("image")
    for name, (kind, what) in expected.items():
        r = rows.loc[name]
        if kind == "error":
            assert what in r["error"], (name, r["error"])
            assert r["overall"] == "" and np.isnan(r["p_good"]) and pd.isna(r["fov_found"]) and r["advice"] == NOT_READ
        else:
            assert r["error"] == "", (name, r["error"])
            assert r["overall"] in ("reject", "usable", "good")
            assert abs(r[["p_reject", "p_usable", "p_good"]].sum() - 1) < 1e-4
            assert bool(r["fov_found"]) is what, name
            assert r["advice"].startswith(NOT_FUNDUS) is (not what), (name, r["advice"])


def test_good_rows_do_not_depend_on_their_neighbours(hostile, model_pt):
    d, expected = hostile
    p = Predictor.from_file(model_pt, device="cpu", precision="fp32", batch_size=3)
    files = sorted(str(f) for f in d.iterdir())
    everything = p.predict(files).set_index("image")
    alone = p.predict([d / "good_1.jpg", d / "good_2.png"]).set_index("image")
    for name in ("good_1.jpg", "good_2.png"):
        np.testing.assert_allclose(everything.loc[name, ["p_reject", "p_usable", "p_good"]].to_numpy(float),
                                   alone.loc[name, ["p_reject", "p_usable", "p_good"]].to_numpy(float), atol=1e-5)


def test_input_order_is_kept_with_threads(hostile, model_pt):
    d, _ = hostile
    files = sorted(str(f) for f in d.iterdir() if "huge" not in f.name) * 2
    df = Predictor.from_file(model_pt, device="cpu", batch_size=5, workers=3).predict(files)
    assert df["path"].tolist() == files


def test_model_files_that_are_not_ours(tmp_path, net):
    import torchvision
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    torch.save(net, tmp_path / "module.pt")
    torch.save({"x": torch.ones(2)}, tmp_path / "random.pt")
    (tmp_path / "text.pt").write_text("not a model")
    torch.save({"state_dict": net.state_dict(), "meta": {"backbone": "resnet18"}}, tmp_path / "partial.pt")
    for name, what in [("resnet18.pth", "torchvision-style backbone"), ("module.pt", "never runs code"), ("random.pt", "bare state_dict"),
                       ("text.pt", "not a PyTorch model file"), ("partial.pt", "meta lacks n_classes, n_details, image_size")]:
        with pytest.raises(ModelFileError, match=what):
            load_model_file(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model_file(tmp_path / "missing.pt")


def test_plain_fit_checkpoint_is_accepted_and_says_what_it_assumed(tmp_path, net):
    torch.save({"state_dict": net.state_dict(), "meta": fit_meta(net, 3, 0.7, 64)}, tmp_path / "model.pt")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = Predictor.from_file(tmp_path, device="cpu")            # the folder holding model.pt works too
    assert p.size == 64 and p.threshold == 0.5 and "detail_threshold" in p.defaults_used
    assert any("plain training checkpoint" in str(x.message) for x in w)
    meta = load_model_file(export_model(tmp_path / "model.pt", tmp_path / "exported.pt", setting="eyeq"))[1]
    assert meta["defaults_used"] == [] and meta["provenance"]["val_score"] == 0.7 and meta["provenance"]["setting"] == "eyeq"
    assert meta["class_names"] == ["reject", "usable", "good"] and meta["preprocessing"] == "fov_crop + resize_square"


def test_run_predict_usage_errors(tmp_path, model_pt, hostile):
    d, _ = hostile
    good = d / "good_1.jpg"
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.csv").write_text("file\nx.jpg\n")
    cases = [(dict(inputs=[tmp_path / "nope.jpg"]), FileNotFoundError, "input not found"),
             (dict(inputs=[tmp_path / "empty"]), ValueError, "no files under"),
             (dict(inputs=[tmp_path / "list.csv"]), ValueError, "'path' column"),
             (dict(inputs=[]), ValueError, "no inputs"),
             (dict(inputs=[good], model=str(tmp_path / "nope.pt")), FileNotFoundError, "model file not found"),
             (dict(inputs=[good], cam=True), ValueError, "--out"),
             (dict(inputs=[good], json=True), ValueError, "--out"),
             (dict(inputs=[good], batch_size=0), ValueError, "batch_size"),
             (dict(inputs=[good], precision="half"), ValueError, "unknown precision"),
             (dict(inputs=[good], device="tpu"), ValueError, "unknown device")]
    for kw, exc, what in cases:
        kw = dict(model=str(model_pt), progress=False) | kw
        with pytest.raises(exc, match=what):
            run_predict(**kw)


def test_csv_list_outputs_and_cams(tmp_path, model_pt, hostile):
    d, _ = hostile
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes((d / "good_1.jpg").read_bytes())
    (tmp_path / "list.csv").write_text(f"path\nimgs/a.jpg\nimgs/missing.jpg\n{d / 'good_2.png'}\n")
    assert expand_inputs(tmp_path / "list.csv")[0] == str(tmp_path / "imgs" / "a.jpg")
    out = tmp_path / "out"
    # fp32: the CAM of the forward pass then equals grad-cam's to a grey level (bf16 would round the maps)
    df = run_predict([tmp_path / "list.csv"], str(model_pt), out=str(out), cam=True, json=True, precision="fp32", progress=False)
    assert df["error"].tolist() == ["", "file not found", ""]
    assert sorted(p.name for p in out.iterdir()) == ["cams", "predictions.csv", "predictions.json"]
    back = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert back["image"].tolist() == ["a.jpg", "missing.jpg", "good_2.png"]
    recs = json.loads((out / "predictions.json").read_text())
    assert recs[1]["cam_files"] == [] and recs[1]["p_good"] is None
    for r in recs[::2]:
        flagged = [k for k in ("illumination", "clarity", "contrast") if r[f"p_good_{k}"] < 0.5]
        stem = Path(r["image"]).stem
        assert [Path(f).name for f in r["cam_files"]] == [f"{stem}_{h}.png" for h in ["overall", *flagged]]
    for r, f in zip(recs[::2], [tmp_path / "imgs" / "a.jpg", d / "good_2.png"]):
        check_overlays(r["cam_files"], f, model_pt, r["overall"])


def check_overlays(pngs, image, model_file, overall):
    """Each overlay PNG is `image` (preprocessed, upscaled to 256 px) under the GradCAM map of its head, computed here
    by the grad-cam package (`cam.gradcam`): the overall map explains the predicted class `overall`, a detail's map its 'bad'."""
    net, meta = load_model_file(model_file)
    x = preprocess(image, meta["image_size"])[0]
    view = cv2.resize(x, (256, 256), interpolation=cv2.INTER_CUBIC)
    for png in pngs:
        head = Path(png).stem.rsplit("_", 1)[1]
        target = meta["class_names"].index(overall) if head == "overall" else None
        expect = overlay(view, gradcam(net, x, head, target=target)[0])
        got = cv2.imread(str(png), cv2.IMREAD_COLOR)[..., ::-1]
        assert got.shape == (256, 256, 3) and np.abs(got.astype(int) - expect).max() <= 2, (png, np.abs(got.astype(int) - expect).max())
        assert np.abs(got.astype(int) - view).mean() > 5, png              # a map is drawn over the image


def test_ordinal_model_file_predicts_and_explains(tmp_path, hostile):
    """A model with the ordinal overall head (14_label_efficiency, item 5) goes through the model file, `predict`
    and the CAM overlays like a softmax one; its overall CAM takes grad-cam's backward path (no linear head weight)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        od = QualityNet("resnet18", 3, 3, overall_head="ordinal").eval()
    f = export_model(od, tmp_path / "ordinal.pt", image_size=64, preset="test", model="random")
    m, meta = load_model_file(f)
    assert meta["overall_head"] == "ordinal" and m.overall_head == "ordinal"
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(m(x)["overall"], od(x)["overall"])
    d, _ = hostile
    p = Predictor.from_file(f, device="cpu", precision="fp32")
    assert p.exact_cam is False
    df = run_predict([d / "good_1.jpg", d / "good_2.png"], str(f), out=str(tmp_path / "out"), cam=True, progress=False)
    assert (df["error"] == "").all()
    assert np.allclose(df[["p_reject", "p_usable", "p_good"]].sum(axis=1), 1, atol=1e-4)
    cams = sorted(q.name for q in (tmp_path / "out" / "cams").iterdir())
    assert {"good_1_overall.png", "good_2_overall.png"} <= set(cams), cams
    for name, r in zip(("good_1", "good_2"), df.itertuples()):
        check_overlays([tmp_path / "out" / "cams" / f"{name}_overall.png"], d / Path(r.image).name, f, r.overall)
    # a file that says softmax but holds ordinal weights is refused, naming the mismatch
    ck = torch.load(f, weights_only=True); ck["meta"]["overall_head"] = "softmax"; torch.save(ck, tmp_path / "lying.pt")
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model_file(tmp_path / "lying.pt")


def test_write_predictions_is_atomic(tmp_path):
    df = pd.DataFrame({"path": ["a"], "image": ["a"], "p_good": [np.nan], "fov_found": pd.array([pd.NA], dtype="boolean")})
    files = write_predictions(df, tmp_path / "o", json=True)
    assert [f.name for f in files] == ["predictions.csv", "predictions.json"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["predictions.csv", "predictions.json"]
    assert json.loads((tmp_path / "o" / "predictions.json").read_text()) == [{"path": "a", "image": "a", "p_good": None, "fov_found": None}]


def test_huge_image_memory(tmp_path):
    "Preprocessing an 8000x8000 JPEG raises the peak resident memory by less than 1.5 GB (measured: about 0.86 GB)."
    code = f"""
import resource, numpy as np, cv2
from fundus_mtl.images import preprocess
big = np.zeros((8000, 8000, 3), np.uint8); cv2.circle(big, (4000, 4000), 3900, (40, 90, 180), -1)
cv2.imwrite({str(tmp_path / 'huge.jpg')!r}, big); del big
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x, info = preprocess({str(tmp_path / 'huge.jpg')!r}, 224)
assert info["fov_found"] and x.shape == (224, 224, 3)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) < 1500, r.stdout


def test_bf16_and_fp32_decisions_agree_on_real_photographs(shared, tmp_path):
    """A model trained here for two epochs on two thirds of DrimDB (64 px) decides the same in bf16 and fp32 on the rest."""
    from fundus_mtl.cache import CachedDataset, build_cache
    from fundus_mtl.config import get_config
    from fundus_mtl.datasets import read_class_folders
    from fundus_mtl.losses import st_loss
    from fundus_mtl.metrics import overall_metric
    from fundus_mtl.models import build_model
    from fundus_mtl.train import fit
    t = read_class_folders(shared / "drimdb").reset_index(drop=True)
    cfg = get_config("tiny", device="cpu", precision="fp32", batch_size=16)
    cache = build_cache(t["path"], 64, tmp_path / "cache", progress=False)
    rows = np.flatnonzero(cache.ok)
    held = rows[::3]; train = np.setdiff1d(rows, held)
    targets = {"overall": t["overall"].to_numpy(np.int64)}
    r = fit(build_model(cfg, 2, 3), CachedDataset(cache, train, targets), CachedDataset(cache, held, targets), st_loss(), overall_metric,
            tmp_path / "st", 2, cfg, progress=False)
    m, meta = load_model_file(export_model(tmp_path / "st", tmp_path / "mt.pt"))
    xs = np.stack([x for x, _ in (read_for_model(f, meta["image_size"]) for f in t["path"].to_numpy()[held]) if x is not None])
    p = {k: Predictor(m, meta, device="cpu", precision=k).probabilities(xs) for k in ("fp32", "bf16")}
    assert (p["fp32"]["overall"].argmax(1) == p["bf16"]["overall"].argmax(1)).mean() >= 0.95
    assert ((p["fp32"]["details"] < 0.5) == (p["bf16"]["details"] < 0.5)).mean(0).min() >= 0.95


def test_exact_cam_equals_gradcam(net, hostile):
    from fundus_mtl.cam import gradcam
    from fundus_mtl.images import preprocess
    d, _ = hostile
    p = Predictor(net, load_model_file_meta(net), device="cpu", precision="fp32")
    xs = np.stack([preprocess(d / n, 64)[0] for n in ("good_1.jpg", "good_2.png", "grayscale.png")])
    probs = p.probabilities(xs, maps=True)
    assert p.exact_cam and probs["maps"].shape == (3, 512, 2, 2)
    p.threshold = 1.0                                  # every detail flagged: every head compared
    for head, sel, maps in p.cam_maps(xs, probs):
        target = probs["overall"].argmax(1)[sel] if head == "overall" else None
        np.testing.assert_allclose(maps, gradcam(net, xs[sel], head, target=target), atol=1e-4)


def load_model_file_meta(net):
    "The meta of `net` as a model file would carry it."
    from fundus_mtl.model_file import complete_meta
    return complete_meta(net, {"image_size": 64})[0]
