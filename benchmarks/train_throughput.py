"""Training throughput of `fundus_mtl.train.fit` against the bare model loop.

Is the data pipeline (cache -> DataLoader -> uint8 batch -> normalize -> channels_last) a bottleneck?
For each precision, compare images/s of
  * bare: forward + backward + SGD step of ResNet-18 on a fixed, already normalised random batch;
  * fit:  `fit` on a CachedDataset of random uint8 images (no augmentation / BoundedRandAugment,
          0 or 1 loader workers); its training throughput per epoch, first epoch (warm-up) excluded.
Same batch size (32), image size (128), threads (2). Target: fit >= 85 % of bare.
The machine's speed drifts (shared host): every number is the best of several short windows
(epochs for fit, groups of steps for bare), and bare windows are interleaved with the fit runs.

    .venv/bin/python benchmarks/train_throughput.py [--images 160] [--epochs 5] [--steps 2] [--precisions fp32 bf16]

Each fit epoch pays a fixed cost (switching from evaluation back to training, the loader's first
batch), so few images per epoch understate fit; use --images 640 or more for a fair ratio.
"""
import argparse, tempfile, time
import numpy as np, pandas as pd, torch
import torch.nn.functional as F
from fundus_mtl.cache import BoundedRandAugment, CachedDataset, CachedImages
from fundus_mtl.config import get_config
from fundus_mtl.models import QualityNet, build_model
from fundus_mtl.inference import autocast, prepare_model, resolve_device
from fundus_mtl.train import fit

BATCH, SIZE, THREADS = 32, 128, 2


def bare(precision, steps, windows=4, warmup=2):
    "images/s of forward+backward+step on one random normalised batch, per window of `steps` steps."
    cfg = get_config("tiny", device="cpu", precision=precision)
    device = resolve_device(cfg.device)
    model = QualityNet("resnet18", 3, 0)
    cl = prepare_model(model, device, precision)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, SIZE, SIZE, device=device)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (BATCH,), device=device)
    model.train()
    def step():
        with autocast(device, precision): out = model(x)
        loss = F.cross_entropy(out["overall"].float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        loss.item()
    for _ in range(warmup): step()
    speeds = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps): step()
        speeds.append(steps * BATCH / (time.perf_counter() - t0))
    return speeds


def with_fit(precision, n_images, epochs, augment, workers):
    "Training images/s of fit in each epoch after the first (warm-up)."
    rng = np.random.default_rng(0)
    n = n_images + BATCH
    cache = CachedImages(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
                         pd.DataFrame(dict(image=[f"{i}.png" for i in range(n)], error="")), "bench")
    targets = dict(overall=rng.integers(0, 3, n))
    train = CachedDataset(cache, range(n_images), targets, transform=BoundedRandAugment(7) if augment else None)
    val = CachedDataset(cache, range(n_images, n), targets)
    cfg = get_config("tiny", device="cpu", precision=precision, batch_size=BATCH, num_workers=workers)
    with tempfile.TemporaryDirectory() as d:
        r = fit(build_model(cfg, 3, 0), train, val, lambda o, t: F.cross_entropy(o["overall"], t["overall"]),
                lambda p, t: float((p["overall"].argmax(1) == t["overall"]).mean()), d, epochs, cfg, progress=False)
    return r.history.images_per_s.iloc[1:].tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=160, help="training images per fit epoch")
    ap.add_argument("--epochs", type=int, default=5, help="fit epochs (the first is warm-up)")
    ap.add_argument("--steps", type=int, default=2, help="steps per timed window of the bare loop")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    rows = []
    t_start = time.perf_counter()
    for precision in a.precisions:
        bares = []
        for augment, workers in ((False, 0), (True, 0), (True, 1)):
            bares += bare(precision, a.steps)     # interleaved with the fit runs
            f = max(with_fit(precision, a.images, a.epochs, augment, workers))
            rows.append(dict(precision=precision, loop=f"fit, {'BoundedRandAugment' if augment else 'no augmentation'}, {workers} workers", img_s=f))
        b = max(bares)
        rows.append(dict(precision=precision, loop="bare model loop (random tensors)", img_s=b))
        for r in rows:
            if r["precision"] == precision: r["vs_bare"] = f"{100 * r['img_s'] / b:.0f} %"
    df = pd.DataFrame(rows)
    df["img_s"] = df.img_s.round(1)
    print(f"ResNet-18 training, batch {BATCH}, {SIZE} px, {THREADS} threads, torch {torch.__version__}")
    print("(best of several windows each; the machine's speed drifts)")
    print(df.to_string(index=False))
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
