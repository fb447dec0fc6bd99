"""One table of what fundus_mtl costs on this CPU, and what the peers' architectures would cost here.

Three parts, written together to results/benchmarks.md (and printed):
  1. training: images/s of `fit` (BoundedRandAugment, 1 loader worker, as the demo and real presets
     run) against the bare forward+backward+step loop, fp32 and bf16, ResNet-18 at 128 px
     (benchmarks/train_throughput.py's functions; random images; first epoch excluded);
  2. predicting: `Predictor.predict` ms/image end to end (decode + FOV crop + model) on DrimDB
     photographs (760x570 JPEG), at 128/224/512 px, without and with the quality CAM;
  3. the peers' architectures with random weights, forward pass only (no decoding), batch 4, against
     our model's forward pass at 224 px in the same precision:
       MCF-Net (Fu et al. 2019): 3 DenseNet-121 branches (RGB, HSV, LAB) at 224 + fusion heads;
       QuickQual (Engelmann et al.): DenseNet-121 features at 512 + a linear model;
       fundus-image-toolbox quality ensemble (Berens lab): its 10 models at its 350 px -- ResNet-34,
         2 x ResNet-50, 2 x ResNet-101, 2 x ResNet-152, EfficientNet-B0, -B1, -B3;
       AutoMorph M1 quality (Zhou et al.): 8 x EfficientNet-B4 with its MLP head at 512.
Every number is the best of several timed runs after a warm-up (the host's speed drifts by up to 30 %).
Weights do not change the cost of a forward pass, so random weights measure the architectures fairly.

    .venv/bin/python benchmarks/cost_table.py [--quick] [--out results/benchmarks.md]
"""
import argparse, datetime, glob, os, platform, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt                    # noqa: E402  (bare / with_fit)
from fundus_mtl.models import QualityNet         # noqa: E402
from fundus_mtl.model_file import export_model   # noqa: E402
from fundus_mtl.predict import Predictor         # noqa: E402
from fundus_mtl.inference import autocast     # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DRIMDB = ROOT.parent / "shared" / "data" / "drimdb"
THREADS = 2


# ---------------------------------------------------------------- 1. training
def training_rows(images:int, epochs:int) -> list:
    rows = []
    for precision in ("fp32", "bf16"):
        n = images if precision == "bf16" else max(images // 2, 160)     # fp32 is half as fast: keep its run short
        bare = max(tt.bare(precision, steps=2) + tt.bare(precision, steps=2))
        fit = max(tt.with_fit(precision, n, epochs, augment=True, workers=1))
        bare = max(bare, max(tt.bare(precision, steps=2)))               # bare windows on both sides of the fit run
        rows.append(dict(part="training", what=f"fit, BoundedRandAugment, 1 worker ({n} images/epoch)", size=128, precision=precision,
                         value=round(fit, 1), unit="img/s", ratio=f"{100 * fit / bare:.0f} % of bare"))
        rows.append(dict(part="training", what="bare forward+backward+step", size=128, precision=precision,
                         value=round(bare, 1), unit="img/s", ratio="100 %"))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    return rows


# ---------------------------------------------------------------- 2. predicting
def predict_rows(files:list, sizes:list, repeats:int, tmp:Path) -> list:
    rows = []
    for size in sizes:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0); net = QualityNet("resnet18", 3, 3)
        f = export_model(net, tmp / f"random_{size}.pt", image_size=size, model="random weights")
        for precision, cam in (("bf16", False), ("bf16", True), ("fp32", False)):
            p = Predictor.from_file(f, device="cpu", precision=precision)
            p.threshold = 0.0            # no detail flagged: the CAM is the quality map of the predicted class only
            p.predict(files[:4], cam=cam, out_dir=tmp / "out")            # warm-up
            best = min((p.predict(files, cam=cam, out_dir=tmp / "out"), p.timing["wall_s"])[1] for _ in range(repeats))
            ms = 1e3 * best / len(files)
            rows.append(dict(part="predict", what="Predictor.predict, end to end" + (", with quality CAM" if cam else ""),
                             size=size, precision=precision, value=round(ms, 1), unit="ms/image", ratio=""))
            print(rows[-1], flush=True)
    return rows


# ---------------------------------------------------------------- 3. the peers' architectures
class _Ensemble(nn.Module):
    "Models applied to the same batch, outputs averaged (softmax), as the ensembles do."
    def __init__(self, models): super().__init__(); self.models = nn.ModuleList(models)
    def forward(self, x): return torch.stack([m(x).float().softmax(1) for m in self.models]).mean(0)

class _MCF(nn.Module):
    "MCF-Net's shape: three DenseNet-121 trunks (one per colour space) + per-branch and fused heads."
    def __init__(self):
        super().__init__()
        self.trunks = nn.ModuleList(torchvision.models.densenet121(weights=None).features for _ in range(3))
        self.heads = nn.ModuleList(nn.Linear(1024, 3) for _ in range(3))
        self.fuse = nn.Linear(3 * 1024, 3)
    def forward(self, x):
        f = [nn.functional.adaptive_avg_pool2d(nn.functional.relu(t(x)), 1).flatten(1) for t in self.trunks]   # x stands for RGB, HSV and LAB
        return torch.stack([h(v) for h, v in zip(self.heads, f)] + [self.fuse(torch.cat(f, 1))]).mean(0)

class _QuickQual(nn.Module):
    "QuickQual's shape: DenseNet-121 features, global pooling, one linear model."
    def __init__(self):
        super().__init__(); self.features = torchvision.models.densenet121(weights=None).features; self.lin = nn.Linear(1024, 3)
    def forward(self, x): return self.lin(nn.functional.adaptive_avg_pool2d(nn.functional.relu(self.features(x)), 1).flatten(1))

def _automorph_member():
    m = torchvision.models.efficientnet_b4(weights=None)
    m.classifier = nn.Sequential(nn.Linear(1792, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 3))
    return m

def _toolbox_member(name):
    return getattr(torchvision.models, name)(weights=None, num_classes=2)

_TOOLBOX = ("resnet34", "resnet50", "resnet50", "resnet101", "resnet101", "resnet152", "resnet152",
            "efficientnet_b0", "efficientnet_b1", "efficientnet_b3")
PEERS = {   # name: (constructor, input size)
    "MCF-Net: 3 x DenseNet-121": (_MCF, 224),
    "QuickQual: DenseNet-121 + linear": (_QuickQual, 512),
    "fundus-image-toolbox: its 10-model ResNet/EfficientNet ensemble": (lambda: _Ensemble([_toolbox_member(n) for n in _TOOLBOX]), 350),
    "the same 10-model ensemble at 512 px (DESIGN.md's setting)": (lambda: _Ensemble([_toolbox_member(n) for n in _TOOLBOX]), 512),
    "AutoMorph M1: 8 x EfficientNet-B4": (lambda: _Ensemble([_automorph_member() for _ in range(8)]), 512),
}

def forward_ms(model:nn.Module, size:int, precision:str, batch:int, repeats:int) -> float:
    "Best ms/image of a no-grad forward pass on a random batch."
    model.eval()
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    dev = torch.device("cpu")
    with torch.inference_mode(), autocast(dev, precision):
        model(x)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter(); model(x); best = min(best, time.perf_counter() - t0)
    return 1e3 * best / batch

def peer_rows(batch:int, repeats:int, peers:dict) -> list:
    rows = []
    for precision in ("fp32", "bf16"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0); ours = forward_ms(QualityNet("resnet18", 3, 3), 224, precision, batch, repeats)
        rows.append(dict(part="architectures", what="fundus_mtl: ResNet-18, quality + 3 details", size=224, precision=precision,
                         value=round(ours, 1), unit="ms/image (forward)", ratio="1.0 x"))
        print(rows[-1], flush=True)
        for name, (make, size) in peers.items():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0); ms = forward_ms(make(), size, precision, batch, repeats)
            rows.append(dict(part="architectures", what=name, size=size, precision=precision, value=round(ms, 1),
                             unit="ms/image (forward)", ratio=f"{ms / ours:.1f} x"))
            print(rows[-1], flush=True)
    return rows


CAMERA = "## At the camera"   # results/benchmarks.md's section from here on belongs to the camera's benchmarks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks.md"))
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (a smoke run, not for the record)")
    a = ap.parse_args()
    if not DRIMDB.is_dir(): raise SystemExit(f"DrimDB not found at {DRIMDB}: the predict part reads real photographs")
    torch.set_num_threads(THREADS)
    t0, load0 = time.time(), os.getloadavg()[0]
    files = sorted(glob.glob(str(DRIMDB / "*" / "*.jpg")))
    n_img = 8 if a.quick else 48
    files = [files[i] for i in np.linspace(0, len(files) - 1, n_img).astype(int)]
    reps = 1 if a.quick else 3
    rows = training_rows(images=160 if a.quick else 640, epochs=2 if a.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        rows += predict_rows(files, [128, 224, 512], reps, Path(tmp))
    rows += peer_rows(batch=2 if a.quick else 4, repeats=reps, peers=PEERS)
    df = pd.DataFrame(rows)
    head = (f"# Benchmarks\n\nMeasured {datetime.date.today()} by `benchmarks/cost_table.py` on {platform.processor() or platform.machine()}, "
            f"{THREADS} torch threads, torch {torch.__version__}, torchvision {torchvision.__version__}; load average {load0:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end; {time.time() - t0:.0f} s in all. Best of several runs after a warm-up; this host's speed "
            f"drifts by up to 30 %, so read ratios, not single numbers.\n\n"
            "- **training**: `fit` with the students' augmentation and one loader worker vs the bare model loop (ResNet-18, batch 32, random images).\n"
            f"- **predict**: `fundus-mtl predict`'s `Predictor` end to end on {len(files)} DrimDB photographs (760x570 JPEG): decode, FOV crop, "
            "resize, model, and for the CAM rows one quality map per image. bf16 is the default on CPUs with AVX-512 BF16/AMX.\n"
            "- **architectures**: forward pass only, random weights, batch 4; ratio = the peer's ms/image over ours at 224 px in the same "
            "precision. Peers as published: MCF-Net 3 DenseNet-121 at 224; QuickQual DenseNet-121 features at 512; fundus-image-toolbox "
            "its 10 models at its 350 px (and at 512 px, the setting DESIGN.md named); AutoMorph 8 EfficientNet-B4 at 512.\n\n")
    body = df.rename(columns={"what": "measurement", "size": "px"}).to_markdown(index=False)
    text = head + body + "\n"
    if not a.quick:
        old = Path(a.out).read_text() if Path(a.out).exists() else ""
        keep = old[old.index(CAMERA):] if CAMERA in old else ""   # the camera's section is written by camera_speed.py and serve_load.py
        Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(text + ("\n" + keep if keep else ""))
    print("\n" + text)


if __name__ == "__main__":
    main()
