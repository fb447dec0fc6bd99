"""The label-budget item (`14d_budget`: ST, MT and the LEAF-style head with 10 / 30 / 100 % of the task-B labels) for
one arm of the pretraining comparison (issue 16), and the comparison of two arms.

An arm is a run directory whose students start from `--weights` (empty: from scratch). Its data tables, Teacher and
pseudo-labels are hard links to a finished run's (`--from`), so two arms differ only in where the students start --
the replicate protocol's arms do the same (`07e_replicates`: the Teacher is shared, `weights=` starts the students).
Everything resumes: a killed call picks up at the last finished epoch (`train.fit`), finished variants are read back.

    python scripts/budget_arm.py arm runs/budget/scratch --from runs/real --results results/real/budget/scratch
    python scripts/budget_arm.py arm runs/budget/fundus-ssl --from runs/real --weights results/pretrain/trunk.pt ...
    python scripts/budget_arm.py compare runs/budget/scratch runs/budget/fundus-ssl --results results/real/budget

`--settings deepdrid` makes an arm of one task-B setting only (more seeds where a setting is cheap to train);
`pool results/real/budget results/real/budget/deepdrid --setting deepdrid --out ...` compares the arms seed by seed
over every seed those folders hold.
"""
from __future__ import annotations
import argparse, dataclasses, json, os, shutil, subprocess, sys, time
from pathlib import Path

SHARED = ("data", "teacher", "pseudo_labels.csv")   # what both arms read from the finished run, never write
OUTPUTS = ("tables/ext4_budget.csv", "tables/ext4_budget.md", "tables/ext4_calibration.csv", "tables/ext4_calibration.md",
           "figures/ext4_label_budget.png", "figures/ext4_label_budget.md")


def _link_tree(src:Path, dst:Path):
    "Hard-link `src` (file or folder) to `dst`: no copy on disk, and every writer of ours replaces files by rename, so `src` stays as it is."
    if src.is_dir(): shutil.copytree(src, dst, copy_function=os.link)
    else: os.link(src, dst)


def arm(run:str, src:str, weights:str, seeds:list[int]|None, results:str, progress:bool, settings:list[str]|None=None) -> dict:
    "Prepare the arm's run directory once, train what the budget item needs, copy its tables and figure to `results`."
    from fundus_mtl.config import get_config, load_config, save_config, resolve_paths
    from fundus_mtl.rundir import RunDir
    from fundus_mtl.student import ensure_students
    from fundus_mtl.budget import write_budget
    from fundus_mtl.pretrain import content_hash
    from fundus_mtl.replicates import host_info
    from fundus_mtl.inference import resolve_precision, resolve_device
    run, src = Path(run).resolve(), RunDir(Path(src).resolve())
    missing = [n for n in SHARED if not (src/n).exists()] + [p for p in ("teacher/predictions_test.csv",) if not (src/p).exists()]
    if missing: raise FileNotFoundError(f"{src.root} lacks {missing}: finish its data and teacher stages first")
    w = str(Path(weights).resolve()) if weights else "none"   # Config.weights: none | imagenet | a state_dict file
    if w != "none" and not Path(w).is_file(): raise FileNotFoundError(f"weights file {w} does not exist")
    base = load_config(src.config)
    stored = {k: v for k, v in json.loads(base.to_json()).items() if k != "preset"}
    if settings and set(settings) - set(base.settings): raise ValueError(f"{src.root} has no setting(s) {sorted(set(settings) - set(base.settings))}: it has {list(base.settings)}")
    cfg = resolve_paths(get_config(base.preset, **{**stored, "run_dir": str(run), "weights": w,
                                                   **({"budget_seeds": seeds} if seeds else {}), **({"settings": tuple(settings)} if settings else {})}))
    rd = RunDir(run)
    if rd.config.exists():   # a later call may add seeds (each seed's variants are trained apart); nothing else may change
        old = load_config(rd.config)
        if dataclasses.replace(old, budget_seeds=cfg.budget_seeds) != cfg:
            changed = sorted(k for k in json.loads(cfg.to_json()) if getattr(old, k, None) != getattr(cfg, k, None))
            raise ValueError(f"{run} was started with another config ({', '.join(changed)} differ): use another folder")
        save_config(cfg)
    else:
        run.mkdir(parents=True, exist_ok=True)
        for n in SHARED: _link_tree(src/n, run/n)
        if w == base.weights == "none":   # the finished run's students started from scratch too: they are this arm's own
            for s in cfg.settings: _link_tree(src/s, run/s)
        save_config(cfg)
    t0 = time.time()
    ensure_students(cfg, progress)   # the arm's own ST, MT, ST-extended (the 100 % budget of seed 0 is them)
    write_budget(cfg, progress)
    out = Path(results); (out/"tables").mkdir(parents=True, exist_ok=True); (out/"figures").mkdir(exist_ok=True)
    for f in OUTPUTS: shutil.copy2(rd/f, out/f)
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    checkout = Path(git("rev-parse", "--git-common-dir")).resolve().parent   # the main checkout, also from a worktree
    f = out/"arm.json"
    calls = json.loads(f.read_text())["calls"] if f.exists() else []   # a call that finds its seeds done costs seconds: keep what earlier calls cost
    calls.append(dict(seeds=list(cfg.budget_seeds), seconds=round(time.time() - t0, 1), **host_info(),
                      precision=resolve_precision(cfg.precision, resolve_device(cfg.device)), commit=git("rev-parse", "HEAD")))
    rec = dict(run=str(run), shared_from=str(src.root), weights=w if w == "none" else os.path.relpath(w, checkout),
               weights_sha256=None if w == "none" else content_hash(w), fractions=list(cfg.budget_fractions), calls=calls)
    f.write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def compare(a:str, b:str, results:str) -> "pd.DataFrame":
    "Arm `b` against arm `a` (the reference) per setting, budget, seed and model: test F1 of both, the paired bootstrap difference and p."
    import pandas as pd
    from fundus_mtl.config import load_config, CLASS_NAMES
    from fundus_mtl.registry import get_setting
    from fundus_mtl.variants import train_variant, aligned_predictions
    from fundus_mtl.leaf import calibrated_predictions
    from fundus_mtl.evaluation import compare_models
    from fundus_mtl.files import write_table
    from statsmodels.stats.multitest import multipletests
    ca, cb = load_config(a), load_config(b)
    names = {Path(a).name: ca, Path(b).name: cb}
    ra, rb = names
    if (ca.budget_fractions, ca.settings) != (cb.budget_fractions, cb.settings):
        raise ValueError("the two arms trained different budgets or settings: nothing to pair")
    # the seeds both arms finished: those in both arms' copied ext4_budget.csv (written once every seed of a call is done),
    # so nothing here trains -- an arm whose latest call was cut off still has its earlier seeds' table
    done = [set(pd.read_csv(Path(results)/k/"tables"/"ext4_budget.csv")["seed"]) for k in names]
    seeds = sorted(done[0] & done[1])
    if not seeds: raise ValueError(f"no seed finished in both arms (copied tables under {results}): run the arms first")
    rows = []
    for s in ca.settings:
        n = get_setting(s).n_classes
        for seed in seeds:
            leaf = {k: calibrated_predictions(c, s, seed, c.budget_fractions) for k, c in names.items()}
            for f in ca.budget_fractions:
                p = {k: train_variant(c, s, dict(label_budget=f, seed=seed)) for k, c in names.items()}
                for m, label in (("st", "ST"), ("mt", "MT"), ("leaf", "LEAF head")):
                    q = aligned_predictions({k: (leaf[k][f] if m == "leaf" else p[k][m]) for k in names})
                    y = q[ra]["label"].to_numpy()
                    cls = {k: t[[f"p_{c}" for c in CLASS_NAMES[n]]].to_numpy().argmax(1) for k, t in q.items()}
                    r = compare_models(y, cls, ra, n, ca, ["F1"]).set_index("model")
                    rows.append(dict(setting=s, budget=f, seed=seed, model=label, n=len(y), **{f"F1 {ra}": r.loc[ra, "value"], f"F1 {rb}": r.loc[rb, "value"]},
                                     diff=r.loc[rb, "diff"], diff_lo=r.loc[rb, "diff_lo"], diff_hi=r.loc[rb, "diff_hi"], p_boot=r.loc[rb, "p_boot"]))
    long = pd.DataFrame(rows)
    long["p_holm"] = multipletests(long["p_boot"], method="holm")[1]   # the table asks as many questions as it has rows
    show = long.assign(budget=long.budget.map("{:.0%}".format),
                       **{"F1 − " + ra: [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]{'*' if p < ca.alpha else ''}" for d, lo, hi, p in zip(long["diff"], long.diff_lo, long.diff_hi, long.p_holm)]})
    show = show[["setting", "budget", "seed", "model", "n", f"F1 {ra}", f"F1 {rb}", "F1 − " + ra, "p_boot", "p_holm"]].round(3)
    write_table(Path(results)/"arms", show, f"Label budget, arm `{rb}` (students start from the pretrained trunk) against arm `{ra}` "
                f"(from scratch); the Teacher, its pseudo-labels and the data are the same run's in both. Test macro F1 (eyeq) / bad-positive F1 "
                f"(deepdrid) per seed ({', '.join(map(str, seeds))}); the difference with its 95 % CI from {ca.bootstrap} paired bootstrap resamples of the "
                f"test images; p_boot: its two-sided bootstrap p; p_holm: adjusted by Holm over the table's {len(long)} rows; * = p_holm < {ca.alpha}. "
                f"The LEAF head is refitted on each arm's own signal trunk.", csv=long)
    if len(seeds) > 1:
        g = long.groupby(["setting", "budget", "model"], sort=False)
        mean = g.agg(**{f"F1 {ra}": (f"F1 {ra}", "mean"), f"F1 {rb}": (f"F1 {rb}", "mean"), "mean diff": ("diff", "mean")}).reset_index()
        mean["seeds better / worse"] = [f"{((h.p_holm < ca.alpha) & (h['diff'] > 0)).sum()} / {((h.p_holm < ca.alpha) & (h['diff'] < 0)).sum()} of {len(h)}" for _, h in g]
        write_table(Path(results)/"arms_mean", mean.assign(budget=mean.budget.map("{:.0%}".format)).round(3),
                    f"The table `arms` averaged over seeds {', '.join(map(str, seeds))}: mean test F1 of each arm, the mean difference "
                    f"`{rb}` − `{ra}`, and in how many seeds `{rb}` was better / worse (p_holm < {ca.alpha}).")
    return long


def pool(dirs:list[str], setting:str, out:str, a:str="scratch", b:str="fundus-ssl") -> "pd.DataFrame":
    "Seed-level comparison of arm `b` with arm `a` for one setting over every seed of the result folders `dirs` (each with `a/` and `b/` tables)."
    import numpy as np, pandas as pd
    from statsmodels.stats.multitest import multipletests
    from fundus_mtl.files import write_table
    from fundus_mtl.replicate_stats import paired_summary   # the replicate study's paired t over seeds
    per = []
    for d in dirs:
        for arm in (a, b):
            t = pd.read_csv(Path(d)/arm/"tables"/"ext4_budget.csv").query("metric == 'F1' and setting == @setting")
            per.append(t[["budget", "model", "seed", "value"]].assign(arm=arm))
    per = pd.concat(per)
    if per.duplicated(["arm", "budget", "model", "seed"]).any(): raise ValueError(f"a seed appears in more than one of {dirs}: pool folders with distinct seeds")
    long = per.pivot_table(index=["budget", "model", "seed"], columns="arm", values="value").dropna().reset_index()   # seeds both arms finished
    rows = []
    for (f, m), g in long.groupby(["budget", "model"], sort=False):
        d = (g[b] - g[a]).to_numpy()   # one seed: the difference alone, no interval or test
        s = paired_summary(g[b], g[a]) if len(d) > 1 else dict(mean_diff=d.mean(), ci_lo=d.mean(), ci_hi=d.mean(), p_t=np.nan, wins=int((d > 0).sum()), losses=int((d < 0).sum()))
        rows.append(dict(budget=f, model=m, seeds=len(d), **{f"mean {a}": g[a].mean(), f"mean {b}": g[b].mean(), f"min {a}": g[a].min(), f"min {b}": g[b].min()},
                         diff=s["mean_diff"], diff_lo=s["ci_lo"], diff_hi=s["ci_hi"], p_t=s["p_t"], wins=f"{s['wins']} / {s['losses']}"))
    res = pd.DataFrame(rows)
    ok = res["p_t"].notna()
    res.loc[ok, "p_holm"] = multipletests(res.loc[ok, "p_t"], method="holm")[1]
    seeds = sorted(long["seed"].unique())
    show = res.assign(budget=res.budget.map("{:.0%}".format), **{f"{b} − {a}": [f"{x:+.3f} [{lo:+.3f}, {hi:+.3f}]" for x, lo, hi in zip(res["diff"], res.diff_lo, res.diff_hi)]})
    show = show[["budget", "model", "seeds", f"mean {a}", f"mean {b}", f"min {a}", f"min {b}", f"{b} − {a}", "wins", "p_t", "p_holm"]].round(3)
    write_table(Path(out), show, f"Label budget on `{setting}`, seed by seed: test F1 of arm `{b}` against arm `{a}` over seeds "
                f"{', '.join(map(str, seeds))} (from {', '.join(dirs)}). Mean and lowest F1 of each arm; the mean paired difference "
                f"with its 95 % t interval over seeds; wins: seeds where `{b}` was higher / lower; p_t: paired t test over seeds, "
                f"p_holm: Holm over the table's {int(ok.sum())} tests. A seed is the unit: each trains its own models.", csv=res)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("arm", help="train one arm's budget item and copy its outputs")
    p.add_argument("run"); p.add_argument("--from", dest="src", required=True)
    p.add_argument("--weights", default=""); p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--results", required=True); p.add_argument("--progress", action="store_true")
    p.add_argument("--settings", nargs="+", help="only these task-B settings of the source run (default: all of them)")
    c = sub.add_parser("compare", help="pair two finished arms")
    c.add_argument("a"); c.add_argument("b"); c.add_argument("--results", required=True)
    q = sub.add_parser("pool", help="seed-level comparison of two arms over the seeds of several result folders")
    q.add_argument("dirs", nargs="+"); q.add_argument("--setting", required=True); q.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "arm": print(json.dumps(arm(a.run, a.src, a.weights, a.seeds, a.results, a.progress, a.settings), indent=1))
    elif a.cmd == "compare": print(compare(a.a, a.b, a.results).round(3).to_string())
    else: print(pool(a.dirs, a.setting, a.out).round(3).to_string())


if __name__ == "__main__":
    sys.exit(main())
