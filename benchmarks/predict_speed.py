"""Speed of `fundus_mtl.predict.Predictor.predict` on real photographs (not a test).

Images: DrimDB (760x570 JPEG, ../shared/data/drimdb). Model: a random-weight QualityNet (ResNet-18,
3 classes + 3 details) exported with `export_model` at 128 and 224 px -- weights do not change the cost.
Batch 16 on 2 cores: the Predictor's defaults there (2 decoding threads beside 1 torch thread); every
number is the best of `--repeats` timed runs after one warm-up run. Columns (ms per image):
  wall     end-to-end time of `predict` (decode overlapped with the model)
  decode   read + FOV crop + resize, summed over the decoding threads
  model    the forward pass (normalise, bf16/fp32 forward, softmax/sigmoid)
  cam      overlays of the quality CAM of the predicted class (detail flags switched off, so one map per
           image): `exact` = CAM from the forward pass (ResNet), `gradcam` = fundus_mtl.cam.gradcam
Then: the decoding pipeline (threads 0/1/2/3 vs a DataLoader with worker processes), and where the
decode time goes (Pillow vs OpenCV, reduced-size JPEG decoding and what it would change).

    .venv/bin/python benchmarks/predict_speed.py [--images 64] [--repeats 2] [--sizes 128 224]
"""
import argparse, glob, os, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, cv2
from PIL import Image
from fundus_mtl.models import QualityNet
from fundus_mtl.model_file import export_model
from fundus_mtl.predict import Predictor
from fundus_mtl.scoring import read_for_model
from fundus_mtl.images import read_image, fov_crop, resize_square, preprocess

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "drimdb"
THREADS, BATCH = 2, 16


def best(fn, repeats):
    "Run fn once to warm up, then `repeats` times; the run with the least wall time."
    fn()
    runs = [fn() for _ in range(repeats)]
    return min(runs, key=lambda r: r["wall_s"])


def predictor_table(files, sizes, repeats, tmp):
    rows = []
    for size in sizes:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0); net = QualityNet("resnet18", 3, 3)
        f = export_model(net, Path(tmp) / f"random_{size}.pt", image_size=size, model="random weights")
        for precision in ("fp32", "bf16"):
            for cam in ("none", "exact", "gradcam"):
                p = Predictor.from_file(f, device="cpu", precision=precision, batch_size=BATCH, workers=2)
                p.threshold = 0.0                      # no detail is ever flagged: the quality CAM alone
                p.exact_cam = cam == "exact"
                def run():
                    p.predict(files, cam=cam != "none", out_dir=Path(tmp) / "out")
                    return dict(p.timing)
                t = best(run, repeats)
                n = t["n"]
                rows.append(dict(size=size, precision=precision, cam=cam, wall=1e3 * t["wall_s"] / n, decode=1e3 * t["decode_s"] / n,
                                 model=1e3 * t["model_s"] / n, cam_ms=1e3 * t["cam_s"] / n))
                print(rows[-1], flush=True)
    return pd.DataFrame(rows).rename(columns={"cam_ms": "cam (ms)", "wall": "wall (ms)", "decode": "decode (ms)", "model": "model (ms)"})


class _Files(torch.utils.data.Dataset):
    def __init__(self, files, size): self.files, self.size = files, size
    def __len__(self): return len(self.files)
    def __getitem__(self, i): return read_for_model(self.files[i], self.size)


def pipeline_table(files, repeats, tmp, size=224):
    "wall ms/image of decode + bf16 model at `size`: decoding threads vs a DataLoader's worker processes, torch threads 1 or 2."
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0); net = QualityNet("resnet18", 3, 3)
    f = export_model(net, Path(tmp) / "pipe.pt", image_size=size)
    rows = []
    for w, th in ((0, 2), (1, 1), (2, 1), (2, 2), (3, 1)):
        p = Predictor.from_file(f, device="cpu", precision="bf16", batch_size=BATCH, workers=w, threads=th)
        t = best(lambda: (p.predict(files), dict(p.timing))[1], repeats)
        rows.append(dict(pipeline=f"Predictor: {w} decoding threads, {th} torch thread{'s' * (th > 1)}" + (" (default)" if (w, th) == (2, 1) else ""),
                         wall_ms=1e3 * t["wall_s"] / len(files), model_ms=1e3 * t["model_s"] / len(files)))
    p = Predictor.from_file(f, device="cpu", precision="bf16", batch_size=BATCH)
    for w, th in ((1, 1), (2, 1), (2, 2)):
        def run():
            torch.set_num_threads(th)
            t0 = time.perf_counter(); model_s = 0.0
            dl = torch.utils.data.DataLoader(_Files(files, size), batch_size=BATCH, num_workers=w, collate_fn=list)
            for batch in dl:
                xs = [x for x, _ in batch if x is not None]
                t1 = time.perf_counter()
                if xs: p.probabilities(np.stack(xs))
                model_s += time.perf_counter() - t1
            torch.set_num_threads(THREADS)
            return dict(wall_s=time.perf_counter() - t0, model_s=model_s)
        t = best(run, repeats)
        rows.append(dict(pipeline=f"DataLoader: {w} worker processes (start-up included), {th} torch thread{'s' * (th > 1)}",
                         wall_ms=1e3 * t["wall_s"] / len(files), model_ms=1e3 * t["model_s"] / len(files)))
    return pd.DataFrame(rows)


def decode_table(files, size=224):
    "ms/image of decoders, and how reduced-size JPEG decoding would change the preprocessed image."
    def ms(fn):
        fn(files[0]); t0 = time.perf_counter()
        for p in files: fn(p)
        return 1e3 * (time.perf_counter() - t0) / len(files)
    def pil(p):
        with Image.open(p) as im: return np.asarray(im.convert("RGB"))
    def pil_draft(p):
        with Image.open(p) as im: im.draft("RGB", (im.width // 2, im.height // 2)); return np.asarray(im.convert("RGB"))
    imgs = [read_image(p) for p in files]
    crops = [fov_crop(i) for i in imgs]
    rows = [dict(step="read_image (Pillow, EXIF, to RGB uint8)", ms=ms(read_image)),
            dict(step="  Pillow decode only", ms=ms(pil)),
            dict(step="  OpenCV imread (full size)", ms=ms(lambda p: cv2.imread(p))),
            dict(step="  OpenCV IMREAD_REDUCED_COLOR_2", ms=ms(lambda p: cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_2))),
            dict(step="  Pillow draft (1/2 scale DCT)", ms=ms(pil_draft))]
    t0 = time.perf_counter(); [fov_crop(i) for i in imgs]; rows.append(dict(step="fov_crop", ms=1e3 * (time.perf_counter() - t0) / len(files)))
    t0 = time.perf_counter(); [resize_square(c.image, size) for c in crops]; rows.append(dict(step=f"resize_square to {size}", ms=1e3 * (time.perf_counter() - t0) / len(files)))
    rows.append(dict(step=f"preprocess (all of it) at {size}", ms=ms(lambda p: preprocess(p, size))))
    # what a half-size decode would change: FOV decisions and the final image
    same_found, diffs = 0, []
    for p, c in zip(files, crops):
        half = cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_2)[..., ::-1]
        ch = fov_crop(np.ascontiguousarray(half))
        same_found += ch.found == c.found
        if ch.found and c.found:
            diffs.append(np.abs(resize_square(ch.image, size).astype(int) - resize_square(c.image, size).astype(int)).mean())
    note = (f"half-size decode: FOV found/not found agrees on {same_found}/{len(files)} images; where both found, mean |Δ| of the "
            f"{size} px input {np.mean(diffs):.2f}/255 (max {np.max(diffs):.2f})")
    return pd.DataFrame(rows), note


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    ap.add_argument("--skip", nargs="*", default=[], choices=["predict", "pipeline", "decode"])
    a = ap.parse_args()
    if not DATA.is_dir(): raise SystemExit(f"DrimDB not found at {DATA}")
    torch.set_num_threads(THREADS)
    files = sorted(glob.glob(str(DATA / "*" / "*.jpg")))
    files = [files[i] for i in np.linspace(0, len(files) - 1, a.images).astype(int)]
    print(f"{len(files)} DrimDB images, torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        if "predict" not in a.skip:
            t = predictor_table(files, a.sizes, a.repeats, tmp)
            print("\nPredictor.predict, ms per image (batch 16, 2 threads, warm-up excluded, best of", a.repeats, "runs)")
            print(t.to_markdown(index=False, floatfmt=".1f"))
        if "pipeline" not in a.skip:
            print("\nDecoding pipeline at 224 px, bf16, no CAM: ms per image (wall, and the model's share of it)")
            print(pipeline_table(files, a.repeats, tmp).to_markdown(index=False, floatfmt=".1f"))
    if "decode" not in a.skip:
        t, note = decode_table(files)
        print("\nWhere the decode time goes (one thread), ms per image")
        print(t.to_markdown(index=False, floatfmt=".1f"))
        print(note)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (other processes share the 2 cores: numbers are upper bounds)")


if __name__ == "__main__":
    main()
