"""The camera install: scoring with an ONNX model needs no torch. A child process that cannot import torch or any other
training-only package (an import hook refuses them, as on a PC with only the camera's requirements) scores real-looking photographs through the library
and through the `fundus-mtl predict` command, with heatmaps, and gives the rows the torch runtime gives."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fundus_mtl.fixtures import PATIENT, write_dicom, write_fundus
from fundus_mtl.model_file import export_model
from fundus_mtl.models import QualityNet
from fundus_mtl.onnx_export import export_onnx
from fundus_mtl.predict import Predictor
from fundus_mtl.camera import DEFAULT_MODEL

EXE = Path(sys.executable).parent / "fundus-mtl"
# what only training needs (settings.ini's train_requirements, by import name): none of it is installed at the camera
TRAIN_ONLY = ("torch", "torchvision", "sklearn", "scipy", "statsmodels", "seaborn", "tabulate", "papermill", "ipykernel",
              "pytorch_grad_cam", "openTSNE", "onnx", "onnxscript")
NO_TORCH = f"""
import sys, importlib.abc
class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAIN_ONLY!r}: raise ImportError(f"{{name}} is not installed at the camera")
sys.meta_path.insert(0, _Refuse())
"""


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    d = tmp_path_factory.mktemp("camera")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = QualityNet("resnet18", 3, 3).eval()
    pt = export_model(net, d / "model.pt", image_size=64, preset="test", model="random")
    (d / "photos").mkdir()
    for s in range(3): write_fundus(d / "photos" / f"photo_{s}.jpg", s)
    (d / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    return d, pt, export_onnx(pt, d / "model.onnx")


def _child(code, d):
    return subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, timeout=300, cwd=d)


def test_the_hook_really_refuses_torch(tmp_path):
    r = _child("import torch", tmp_path)
    assert r.returncode != 0 and "not installed at the camera" in r.stderr


def test_predict_with_an_onnx_model_runs_without_torch(camera):
    d, pt, onnx = camera
    code = f"""
from fundus_mtl.camera import run_predict
df = run_predict([{str(d / 'photos')!r}], {str(onnx)!r}, out={str(d / 'out')!r}, cam=True, progress=False)
print("torch" in sys.modules, len(df))
"""
    r = _child(code, d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["False", "4"]
    got = pd.read_csv(d / "out" / "predictions.csv", keep_default_na=False).set_index("image")
    ref = Predictor.from_file(pt, device="cpu", precision="fp32").predict(sorted(str(p) for p in (d / "photos").glob("*.jpg"))).set_index("image")
    assert sorted(got.index) == sorted(ref.index)
    assert got.loc["broken.jpg", "error"] != "" and got.loc["broken.jpg", "overall"] == ""   # its own error row
    ok = [i for i in ref.index if not ref.loc[i, "error"]]
    assert (got.loc[ok, "overall"] == ref.loc[ok, "overall"]).all()
    p = [c for c in ref.columns if c.startswith("p_")]
    assert np.abs(got.loc[ok, p].to_numpy(float) - ref.loc[ok, p].to_numpy(float)).max() <= 1e-4
    assert all((d / "out" / "cams" / f"{Path(i).stem}_overall.png").exists() for i in ok)   # heatmaps without torch


def test_the_command_runs_without_torch(camera):
    d, _, onnx = camera
    code = f"""
from fundus_mtl.cli import main
rc = main(["predict", {str(d / 'photos' / 'photo_0.jpg')!r}, "--model", {str(onnx)!r}, "--out", {str(d / 'cli')!r}, "--json"])
print("torch" in sys.modules, rc)
"""
    r = _child(code, d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["False", "0"]
    recs = json.loads((d / "cli" / "predictions.json").read_text())
    assert len(recs) == 1 and recs[0]["overall"] in ("reject", "usable", "good") and recs[0]["error"] == ""


def test_export_command_writes_a_file_the_runtime_reads(camera, tmp_path):
    d, pt, _ = camera
    r = subprocess.run([str(EXE), "export", str(pt), "--onnx", str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from fundus_mtl.camera import OnnxPredictor
    po = OnnxPredictor(tmp_path / "m.onnx")
    assert po.meta["provenance"]["model"] == "random" and po.meta["onnx"]["precision"] == "fp32"
    r = subprocess.run([str(EXE), "export", str(pt), "--onnx", str(tmp_path / "m.onnx"), "--int8"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "calibrated on training photographs" in r.stderr


def test_dicom_from_real_photographs_without_torch(shared, tmp_path):
    """A camera's folder: real photographs wrapped in DICOM as cameras write them (no extension; RGB, YBR_FULL_422, JPEG
    baseline, secondary capture), one without pixel data, the JPEG itself and a text file. `fundus-mtl predict` with the
    shipped model, without torch, scores every photograph (the RGB ones exactly as the JPEG they came from), names the
    two files it cannot score with their reasons, carries each DICOM's SOP Instance UID, and writes no patient identifier."""
    from PIL import Image
    src = sorted((shared / "drimdb" / "Good").glob("*.jpg"))[:2] + sorted((shared / "eyeq-subset256" / "images").glob("*.jpeg"))[:1]
    cam = tmp_path / "camera"; cam.mkdir()
    uids, origin = {}, {}
    for k, f in enumerate(src):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        rgb = rgb[:, : rgb.shape[1] // 2 * 2]                        # YBR_FULL_422 pairs pixels
        Image.fromarray(rgb).save(cam / f"photo{k}.png")              # the photograph itself, losslessly
        for kind, kw in dict(rgb={}, ybr=dict(photometric="YBR_FULL_422"), jpeg=dict(compressed=True), sc=dict(sop_class="sc")).items():
            name = f"IM{k}{kind.upper()}"
            uids[name], origin[name] = write_dicom(cam / name, rgb, **kw), f"photo{k}.png"
    uids["IM9NOPIX"] = write_dicom(cam / "IM9NOPIX", rgb, pixels=False)
    (cam / "export_log.txt").write_text("exported by the camera\n")
    code = f"""
from fundus_mtl.cli import main
rc = main(["predict", {str(cam)!r}, "--out", {str(tmp_path / 'out')!r}, "--json", "--cam"])
print("torch" in sys.modules, rc)
"""
    r = _child(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["False", "0"]
    got = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False, dtype={"sop_instance_uid": str}).set_index("image")
    assert sorted(got.index) == sorted(p.name for p in cam.iterdir())                      # every file has its row
    assert got.loc["IM9NOPIX", "error"] == "a DICOM file without pixel data: nothing to score"
    assert got.loc["export_log.txt", "error"] == "not an image (format not recognised)"
    assert dict(got.loc[list(uids), "sop_instance_uid"]) == uids and (got.loc[got.index.str.startswith("photo"), "sop_instance_uid"] == "").all()
    ok = [n for n in origin]
    assert (got.loc[ok, "error"] == "").all() and (got.loc[ok, "fov_found"] == "True").all()
    p = [c for c in got.columns if c.startswith("p_")]
    diff = {n: np.abs(got.loc[n, p].to_numpy(float) - got.loc[origin[n], p].to_numpy(float)).max() for n in ok}
    assert max(v for n, v in diff.items() if n.endswith(("RGB", "SC"))) == 0, diff       # the same pixels, the same answer
    # YCbCr 4:2:2 and JPEG q95 change the pixels a little (measured: |dp| up to 0.09 with the shipped int8 model): the same verdict
    assert max(diff.values()) <= 0.15 and (got.loc[ok, "overall"].to_numpy() == got.loc[[origin[n] for n in ok], "overall"].to_numpy()).all(), diff
    secrets = [v.encode() for v in PATIENT.values()] + [b"Doe", b"Jane", b"PID-0042"]
    written = [f for f in (tmp_path / "out").rglob("*") if f.is_file()]
    assert len(written) > 2 + len(ok)                                                     # the tables and the heatmaps
    leaks = [(f.name, s) for f in written for s in secrets if s in f.read_bytes() or s.decode() in f.name]
    assert not leaks and not any(s.decode() in r.stdout + r.stderr for s in secrets), leaks


def test_the_wheel_carries_the_shipped_model(tmp_path):
    "The wheel a camera PC installs holds the shipped model and its card, byte for byte, and setuptools does not warn that it would drop them."
    import shutil, zipfile
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"   # a copy: building writes build/ and egg-info beside setup.py, never into the checkout
    src.mkdir()
    for f in ("setup.py", "settings.ini", "README.md", "pyproject.toml"): shutil.copy2(root / f, src / f)
    shutil.copytree(root / "fundus_mtl", src / "fundus_mtl", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "-v"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "would be ignored" not in r.stdout + r.stderr, "setuptools would drop a data folder from the wheel"
    with zipfile.ZipFile(next((tmp_path / "dist").glob("fundus_mtl-*.whl"))) as z:
        for f in (DEFAULT_MODEL, DEFAULT_MODEL.parent / "MODEL_CARD.md"):
            assert z.read(f"fundus_mtl/weights/{f.name}") == f.read_bytes(), f.name
