"""Ship the camera's default model: export a finished run's MT-EyeQ model to ONNX (fp32 and int8), measure on the run's
real EyeQ test photographs how far each runtime's answers move from torch's, and write the packaged model and its
card. Not a test: it needs a trained `real` run (hours of CPU) and writes tracked files.

usage: python scripts/ship_model.py RUN [--trained-at COMMIT] [--out fundus_mtl/weights] [--results results/camera]
   e.g. python scripts/ship_model.py runs/real --trained-at e402899

Writes OUT/eyeq-mt.onnx (the int8 file when it meets the agreement bounds below, else fp32), OUT/MODEL_CARD.md and
RESULTS/agreement.csv, RESULTS/scores.csv. Bounds (issue "At the camera"): fp32 ONNX vs torch max |dp| <= 1e-4; int8
vs torch: the same overall class on >= 98 % of images, the same detail flags on >= 97 %, macro F1 within 0.01.
"""
import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fundus_mtl.camera import OnnxPredictor                      # noqa: E402
from fundus_mtl.config import DETAILS, load_config                # noqa: E402
from fundus_mtl.model_file import export_model                    # noqa: E402
from fundus_mtl.onnx_export import export_onnx                    # noqa: E402
from fundus_mtl.predict import Predictor                          # noqa: E402
from fundus_mtl.prepare import load_prepared                      # noqa: E402
from fundus_mtl.scoring import GRADABLE_REJECT                    # noqa: E402
from fundus_mtl.stats import bootstrap_ci                         # noqa: E402
from fundus_mtl.student import model_dir                          # noqa: E402

BOUNDS = dict(fp32_max_dp=1e-4, int8_same_class=0.98, int8_same_flags=0.97, int8_f1_within=0.01)
CLASSES = ["reject", "usable", "good"]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"): return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def scores(name, table, y, groups):
    "Macro F1 (and the rest) of one runtime's table with cluster-bootstrap CIs over patients."
    pred = table["overall"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
    ci = bootstrap_ci(y, pred, 3, B=1000, seed=0, groups=groups)
    return [dict(runtime=name, metric=m, value=r["value"], lo=r["lo"], hi=r["hi"]) for m, r in ci.iterrows()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished real run (runs/real)")
    ap.add_argument("--out", default=str(ROOT / "fundus_mtl" / "weights"))
    ap.add_argument("--results", default=str(ROOT / "results" / "camera"))
    ap.add_argument("--trained-at", default=None, help="the library commit the run was trained with (default: HEAD); results/<run>/README.md names it")
    a = ap.parse_args()
    run, out, res = Path(a.run), Path(a.out), Path(a.results)
    cfg = load_config(run / "config.json")
    commit = a.trained_at or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    df, _ = load_prepared(cfg, "eyeq")
    train = df[df["split"] == "train"]; test = df[df["split"] == "test"].reset_index(drop=True)
    y, groups = test["overall"].to_numpy(int), test["group"].astype(str).to_numpy()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mt = export_model(model_dir(cfg, "eyeq", "mt"), d / "mt.pt", preset=cfg.preset, setting="eyeq", model="mt",
                          run=str(run), commit=commit, trained_on="EyeQ-labelled EyePACS subset (train split) + Teacher pseudo-labels")
        t0 = time.time(); f32 = export_onnx(mt, d / "fp32.onnx"); t_f32 = time.time() - t0
        t0 = time.time(); q8 = export_onnx(mt, d / "int8.onnx", int8=True, calibration=train["path"].tolist(), n_calibration=128); t_q8 = time.time() - t0
        paths = test["path"].tolist()
        tabs = {"torch fp32": Predictor.from_file(mt, device="cpu", precision="fp32").predict(paths),
                "ONNX fp32": OnnxPredictor(f32).predict(paths), "ONNX int8": OnnxPredictor(q8).predict(paths)}
        ok = tabs["torch fp32"]["error"] == ""
        p_cols = [f"p_{c}" for c in CLASSES] + [f"p_good_{x}" for x in DETAILS]
        ref = tabs["torch fp32"][ok]
        agree = []
        for name in ("ONNX fp32", "ONNX int8"):
            t = tabs[name][ok]
            flags = {x: float(((t[f"p_good_{x}"] < 0.5) == (ref[f"p_good_{x}"] < 0.5)).mean()) for x in DETAILS}
            agree.append(dict(runtime=name, images=int(ok.sum()), max_abs_dp=float(np.abs(t[p_cols].to_numpy(float) - ref[p_cols].to_numpy(float)).max()),
                              same_class=float((t["overall"] == ref["overall"]).mean()), **{f"same_flag_{x}": v for x, v in flags.items()},
                              same_flags_min=min(flags.values())))
        m = ok.to_numpy()
        sc = pd.DataFrame([r for name, t in tabs.items() for r in scores(name, t[m], y[m], groups[m])])
        f1 = sc[sc["metric"] == "F1"].set_index("runtime")["value"]
        ag = pd.DataFrame(agree).set_index("runtime")
        ag.loc["ONNX int8", "f1_diff"] = float(f1["ONNX int8"] - f1["torch fp32"]); ag.loc["ONNX fp32", "f1_diff"] = float(f1["ONNX fp32"] - f1["torch fp32"])
        int8_ok = (ag.loc["ONNX int8", "same_class"] >= BOUNDS["int8_same_class"] and ag.loc["ONNX int8", "same_flags_min"] >= BOUNDS["int8_same_flags"]
                   and abs(ag.loc["ONNX int8", "f1_diff"]) <= BOUNDS["int8_f1_within"])
        fp32_ok = ag.loc["ONNX fp32", "max_abs_dp"] <= BOUNDS["fp32_max_dp"]
        ship, kind = (q8, "int8") if int8_ok else (f32, "fp32")
        out.mkdir(parents=True, exist_ok=True); res.mkdir(parents=True, exist_ok=True)
        (out / "eyeq-mt.onnx").write_bytes(ship.read_bytes())
        sizes = {"fp32": f32.stat().st_size, "int8": q8.stat().st_size}
    ag.round(6).to_csv(res / "agreement.csv"); sc.round(4).to_csv(res / "scores.csv", index=False)
    gradable = tabs[f"ONNX {kind}"].loc[ok, "gradable"].astype(bool)
    meta = OnnxPredictor(out / "eyeq-mt.onnx").meta
    row = lambda name: sc[(sc["runtime"] == name)].set_index("metric")
    card = f"""# Model card: `fundus_mtl/weights/eyeq-mt.onnx`

The default model of `fundus-mtl predict` (no `--model`): overall quality of a colour fundus photograph
(reject / usable / good), the probability that its illumination, clarity and contrast are good, and the
heatmaps of where a defect is. It runs on ONNX Runtime without PyTorch (`pip install .` from a clone, or the wheel: the camera's requirements only).

| | |
|---|---|
| what | MT-EyeQ: ResNet-18, trained from scratch (no ImageNet weights), overall head (3 classes) + detail head (3 details), {kind} ONNX ({sizes[kind] / 1e6:.1f} MB; the fp32 export is {sizes['fp32'] / 1e6:.1f} MB) |
| trained by | `fundus-mtl reproduce --preset real` (run `{run}`, library commit `{commit}`, config `results/real/config.json`), exported {date.today().isoformat()} by `scripts/ship_model.py` |
| training data | the EyeQ-labelled EyePACS subset in `../shared/data` (train split {len(train)} images, patient-grouped), with the Teacher's pseudo-labels for the details (Teacher-A trained on 102 DRIVE/IDRiD/HRF photographs degraded 8 ways) |
| input | an RGB photograph (JPEG, PNG, TIFF); the field of view is cropped, padded square, resized to {meta['image_size']} px and FOV-histogram-equalised (`{meta['preprocessing']}`), exactly as in training |
| classes | canonical order, higher is better: 0 = reject, 1 = usable, 2 = good (EyeQ's own CSV counts the other way: 0 = good) |
| details | sigmoid P(detail is good); a detail is flagged bad below {meta['detail_threshold']} |
| gradable rule | `gradable` = good, or usable with P(reject) < {GRADABLE_REJECT} (change with `--gradable-reject`); {gradable.mean():.0%} of the EyeQ test photographs are gradable by it |

## Test metrics (EyeQ test split, n = {int(ok.sum())} photographs; 95 % CI from 1,000 cluster-bootstrap resamples of patients)

| runtime | macro F1 | precision | recall | accuracy |
|---|---|---|---|---|
""" + "\n".join(f"| {name} | {row(name).loc['F1', 'value']:.3f} [{row(name).loc['F1', 'lo']:.3f}, {row(name).loc['F1', 'hi']:.3f}] | {row(name).loc['Pr', 'value']:.3f} | {row(name).loc['Re', 'value']:.3f} | {row(name).loc['Acc', 'value']:.3f} |"
                for name in tabs) + f"""

The paper's MT-EyeQ reaches 0.875 macro F1 on the full EyeQ test set with ImageNet weights at 512 px; this
model is trained from scratch on 1,390 labelled photographs at {meta['image_size']} px and is not comparable to it.

## Agreement of the runtimes (`results/camera/agreement.csv`)

| runtime | max abs(Δp) vs torch | same class | same flags (worst detail) | macro F1 − torch |
|---|---|---|---|---|
""" + "\n".join(f"| {n} | {r.max_abs_dp:.2e} | {r.same_class:.1%} | {r.same_flags_min:.1%} | {r.f1_diff:+.4f} |" for n, r in ag.iterrows()) + f"""

Bounds: fp32 max abs(Δp) ≤ {BOUNDS['fp32_max_dp']:g} ({'met' if fp32_ok else '**not met**'}); int8: the same class on ≥ {BOUNDS['int8_same_class']:.0%}, the same flags on
≥ {BOUNDS['int8_same_flags']:.0%}, macro F1 within {BOUNDS['int8_f1_within']} ({'met: the int8 file is shipped' if int8_ok else '**not met: the fp32 file is shipped**'}). Export took {t_f32:.0f} s (fp32) and {t_q8:.0f} s (int8,
128 calibration photographs from the training split) on {cpu_name()}.

## Known limits

- **Not a diagnostic device.** It says whether a photograph is fit to be graded and what to fix at
  recapture; it says nothing about disease.
- Trained from scratch on 1,390 labelled photographs of one source (EyePACS, via EyeQ's labels): expect
  it to be less sure on other cameras, fields of view and populations; re-measure before relying on it.
- The detail probabilities come from a Teacher trained on synthetically degraded photographs (pseudo-
  labels), not from expert detail labels; on the paper's expert-labelled EyeQ-D their F1 is unmeasured here.
- DICOM input is not read yet; photographs without a circular field of view are scored but flagged.
"""
    (out / "MODEL_CARD.md").write_text(card)
    print(card)
    print(ag.round(5).to_string())


if __name__ == "__main__":
    main()
