"""The GPU path, on a machine that has GPUs (not a test; CI has none): the tiny preset's training stages on one GPU,
then under torchrun on every GPU of the machine (NCCL), each from nothing; prints each run's training throughput
(images/s, from the models' history.csv) and checks that the two runs agree: the same outputs, every stage's
`world_size`/backend/device in the ledger, and a validation macro F1 of the students within --band of each other
(per-replica BatchNorm and a different data order make them differ a little; the tiny preset is noisy).

    python benchmarks/gpu_smoke.py [--preset tiny] [--band 0.25] [--out runs/gpu-smoke]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

EXE = Path(sys.executable).parent / "fundus-mtl"


def run(preset, out, nproc):
    cmd = [str(EXE), "reproduce", "--preset", preset, "--out", str(out), "--device", "cuda", "--stages", "data", "teacher", "student",
           "--nproc-per-node", str(nproc), "--force", "all"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0: sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    hist = [pd.read_csv(f) for f in sorted(Path(out).rglob("history.csv"))]
    summary = pd.read_csv(Path(out) / "student_summary.csv")
    return dict(nproc=nproc, wall_s=round(time.time() - t0, 1), images_per_s=round(float(pd.concat(hist)["images_per_s"].mean()), 1),
                ledger=json.loads((Path(out) / "stages.json").read_text()), val_f1=summary.set_index(["setting", "model"])["val_f1"],
                files=sorted(p.relative_to(out).as_posix() for p in Path(out).rglob("*") if p.is_file() and "notebooks" not in p.parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--band", type=float, default=0.25, help="largest allowed |difference| of a student's validation F1")
    ap.add_argument("--out", default="runs/gpu-smoke")
    a = ap.parse_args()
    n = torch.cuda.device_count()
    if n == 0: sys.exit("no CUDA GPU: this smoke test is for a machine with GPUs")
    print(f"{n} GPU(s): {', '.join(torch.cuda.get_device_name(i) for i in range(n))}; torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
    one = run(a.preset, Path(a.out) / "one-gpu", 1)
    many = run(a.preset, Path(a.out) / f"{n}-gpus", n) if n > 1 else None
    for r in filter(None, (one, many)):
        print(f"{r['nproc']} process(es): {r['wall_s']} s for data+teacher+student, training {r['images_per_s']} img/s (mean over models); "
              f"ledger {[(k, v.get('world_size'), v.get('backend'), v.get('device')) for k, v in r['ledger'].items()]}")
    if many is None: print("one GPU only: the torchrun run needs two or more"); return
    problems = []
    if one["files"] != many["files"]: problems.append(f"different outputs: {sorted(set(one['files']) ^ set(many['files']))[:10]}")
    if many["ledger"]["student"].get("backend") != "nccl": problems.append("the students did not train on NCCL")
    gap = (one["val_f1"] - many["val_f1"]).abs().max()
    print(f"largest |validation F1 difference| of a student: {gap:.3f} (band {a.band})")
    if gap > a.band: problems.append(f"validation F1 differs by {gap:.3f} > {a.band}")
    sys.exit("FAIL: " + "; ".join(problems) if problems else 0)


if __name__ == "__main__":
    main()
