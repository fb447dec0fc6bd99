"""Speed of the camera's runtimes, one photograph at a time (not a test).

End to end per photograph — decode, FOV crop, resize, model, and with `--cam` the quality heatmap written as a PNG —
for the torch `Predictor` in fp32 (the reference of every ratio, measured in the same run), ONNX Runtime fp32 and
ONNX Runtime int8 (`fundus-mtl export --int8`, calibrated on other DrimDB photographs), at the shipped model's size
(160 px) and at 224 px; and the model's share alone (`probabilities` on one preprocessed photograph). ResNet-18 with
both heads and random weights (weights do not change the cost); 2 threads for the model, decoding in the same
thread (a camera scores the photograph it just took). Best of `--repeats` passes over `--images` DrimDB photographs
(760x570 JPEG) after a warm-up pass. Writes results/camera/speed.md and its block in results/benchmarks.md.

    .venv/bin/python benchmarks/camera_speed.py [--images 24] [--repeats 3] [--sizes 160 224]
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fundus_mtl.camera import OnnxPredictor                  # noqa: E402
from fundus_mtl.model_file import export_model                # noqa: E402
from fundus_mtl.models import QualityNet                      # noqa: E402
from fundus_mtl.onnx_export import export_onnx                # noqa: E402
from fundus_mtl.predict import Predictor                      # noqa: E402
from fundus_mtl.scoring import read_for_model                 # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "drimdb"
THREADS = 2


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"): return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_units() -> str:
    "The CPU's vector units that matter to ONNX Runtime's int8 and to bf16."
    flags = set(next((l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")), ":").split(":", 1)[1].split())
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "avx512_vnni", "avx512_bf16", "amx_tile"))


def publish(name:str, text:str) -> Path:
    "Write results/camera/<name>.md and the same text (its title one level down) into results/benchmarks.md's camera-<name> block."
    from fundus_mtl.replicate_tables import update_block
    out = ROOT / "results" / "camera" / f"{name}.md"
    out.write_text(text)
    update_block(ROOT / "results" / "benchmarks.md", f"camera-{name}", "###" + text[1:] if text.startswith("# ") else text)
    return out


def best_ms(fn, n, repeats):
    "Best over `repeats` of the time of fn() divided by n, in ms (one warm-up call first)."
    fn(); out = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); out.append((time.perf_counter() - t0) / n * 1000)
    return min(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    a = ap.parse_args()
    files = sorted(str(p) for p in DATA.rglob("*.jpg"))
    if len(files) < 2 * a.images: sys.exit(f"need {2 * a.images} DrimDB photographs under {DATA}")
    photos, calib = files[::2][:a.images], files[1::2][:64]
    torch.set_num_threads(THREADS)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0); net = QualityNet("resnet18", 3, 3).eval()
        for size in a.sizes:
            pt = export_model(net, d / f"m{size}.pt", image_size=size, preset="benchmark", model="random")
            runtimes = {"torch fp32": Predictor.from_file(pt, device="cpu", precision="fp32", batch_size=1, workers=0, threads=THREADS),
                        "ONNX fp32": OnnxPredictor(export_onnx(pt, d / f"m{size}.onnx"), batch_size=1, workers=0, threads=THREADS),
                        "ONNX int8": OnnxPredictor(export_onnx(pt, d / f"m{size}-int8.onnx", int8=True, calibration=calib), batch_size=1, workers=0, threads=THREADS)}
            x = read_for_model(photos[0], size)[0][None]
            for name, sc in runtimes.items():
                model = best_ms(lambda: [sc.probabilities(x) for _ in range(a.images)], a.images, a.repeats)
                e2e = best_ms(lambda: sc.predict(photos), len(photos), a.repeats)
                cam = best_ms(lambda: sc.predict(photos, cam=True, out_dir=d / "out"), len(photos), a.repeats)
                rows.append(dict(px=size, runtime=name, model_ms=model, end_to_end_ms=e2e, with_heatmap_ms=cam))
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    for c in ("model_ms", "end_to_end_ms", "with_heatmap_ms"):
        ref = df[df["runtime"] == "torch fp32"].set_index("px")[c]
        df[c.replace("_ms", "_x_torch")] = (ref.reindex(df["px"]).to_numpy() / df[c]).round(2)
    text = (f"# The camera's runtimes, one photograph at a time\n\nMeasured {date.today().isoformat()} by `benchmarks/camera_speed.py` on a {len(os.sched_getaffinity(0))}-core {cpu_name()} ({cpu_units()}), "
            f"{THREADS} threads for the model, torch {torch.__version__.split('+')[0]}, best of {a.repeats} passes over {a.images} DrimDB photographs "
            f"(760x570 JPEG) after a warm-up. fp32 everywhere except the int8 rows (torch's bf16 path is not the camera's: a camera PC "
            f"seldom has bf16 units). Ratios are torch fp32's time over the row's, in the same run (> 1: faster). `end_to_end`: decode, FOV crop, "
            f"resize, model; `with_heatmap`: also the quality heatmap overlay written as PNG.\n\n"
            + df.round(1).to_markdown(index=False) + "\n")
    publish("speed", text); print(text)


if __name__ == "__main__":
    main()
