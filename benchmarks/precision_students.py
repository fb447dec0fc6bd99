"""Does bf16 training reach the same F1 as fp32? ST (overall quality, bounded augmentation) on the demo run's EyeQ-like data.

For each seed and precision, trains the ST model of `06_student` with `fit` (same data, same epochs, same seed) and
reports the best validation macro F1, the test macro F1 of that checkpoint, and the training rate. Needs a finished
demo run (`fundus-mtl reproduce --preset demo`, at least the data and teacher stages) in --run.

    .venv/bin/python benchmarks/precision_students.py [--run runs/demo] [--seeds 0 1] [--epochs 6]
"""
import argparse, dataclasses, tempfile, time
from pathlib import Path
import pandas as pd, torch
from fundus_mtl.config import load_config
from fundus_mtl.metrics import overall_f1
from fundus_mtl.models import build_model
from fundus_mtl.losses import ce_overall
from fundus_mtl.metrics import overall_metric
from fundus_mtl.student import setting_data
from fundus_mtl.inference import predict
from fundus_mtl.train import fit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--setting", default="eyeq")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(2)
    base = load_config(Path(a.run) / "config.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            for precision in ("bf16", "fp32"):
                cfg = dataclasses.replace(base, seed=seed, precision=precision)
                d = setting_data(cfg, a.setting)
                t0 = time.time()
                r = fit(build_model(cfg, d.n_classes, 0), d.train, d.val, ce_overall, overall_metric,
                        Path(tmp) / f"{precision}-{seed}", a.epochs, cfg, progress=False)
                test = overall_f1(predict(r.model, d.test, cfg)["overall"], d.df["overall"].to_numpy()[d.rows["test"]])
                rows.append(dict(seed=seed, precision=precision, val_f1=round(r.best_score, 3), best_epoch=r.best_epoch,
                                 test_f1=round(test, 3), img_s=round(r.images_per_s, 1), seconds=round(time.time() - t0)))
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    print(f"\nST on {a.run} ({a.setting}, {base.image_size} px, {a.epochs} epochs, batch {base.batch_size})")
    print(df.to_string(index=False))
    print(df.groupby("precision")[["val_f1", "test_f1"]].agg(["mean", "std"]).round(3).to_string())


if __name__ == "__main__":
    main()
