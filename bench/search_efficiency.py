"""TPE + ASHA against random search without early stopping, on the real MELD text (space text_any).

For each seed both searches get the same number of trials and epochs per trial (and
the same sampler seed); TPE's random start-up is a quarter of the trials, so TPE guides
the other three quarters. Epochs are counted over all trials in the order they finished.
Random's epochs: how many it trained until it first reached its own best dev weighted
F1, and its whole budget (what it costs to know it has its best). TPE + ASHA's epochs:
how many it trained until its best so far came within --tolerance (0.005 = 0.5 point)
of random's best. Target: <= 1/4 of random's. To split the credit, two more searches run:
random + ASHA (the scheduler alone) and TPE without early stopping (the sampler alone).

    .venv/bin/python bench/search_efficiency.py --prepared runs/meld --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_MODE", "disabled")


ARMS = ("random", "tpe_asha", "random_asha", "tpe")    # sampler[_scheduler]: the last two split the credit


def bench_space(src: Path, dst: Path, max_epochs: int, grace: int, rf: int) -> Path:
    raw = yaml.safe_load(src.read_text())
    raw["search"].update(max_epochs=max_epochs, grace_period=grace, reduction_factor=rf)
    # the space the recorded results were measured on: from-scratch models only (text_pretrained joined later)
    p = raw["params"]
    p["model.name"]["choices"] = ["text_mlp", "text_lstm", "text_transformer"]
    p["model.emb_dim"].pop("when", None)
    p["model.hidden"] = {"type": "categorical", "choices": [[128], [128, 128]], "when": {"model.name": "text_mlp"}}
    dst.write_text(f"# .venv/bin/python bench/search_efficiency.py (generated from {src})\n" + yaml.safe_dump(raw, sort_keys=False))
    return dst


def epochs_in_order(out: Path) -> pd.DataFrame:
    """Every epoch of every trial, in the order they finished (trials ran side by side)."""
    rows = []
    for result in (out / "tune").glob("*/result.json"):
        for line in result.read_text().splitlines():
            r = json.loads(line)
            rows.append({"trial": r["trial_id"], "epoch": r["training_iteration"], "t": r["timestamp"],
                         "dev_wf1": r["dev_wf1"], "seconds": r["epoch_s"]})
    df = pd.DataFrame(rows).sort_values(["t", "trial", "epoch"]).reset_index(drop=True)
    df["best_so_far"] = df.dev_wf1.cummax()
    return df


def epochs_to_reach(df: pd.DataFrame, target: float) -> float:
    hit = np.nonzero(df.best_so_far.to_numpy() >= target)[0]
    return float(hit[0] + 1) if len(hit) else float("inf")


def seconds_to_reach(df: pd.DataFrame, target: float) -> float:
    """Training seconds (every epoch's, summed in finishing order) until the best so far reached `target`:
    epochs differ in cost (a 3-layer transformer's against an MLP's), so epochs alone can flatter a sampler."""
    n = epochs_to_reach(df, target)
    return float(df.seconds.iloc[: int(n)].sum()) if np.isfinite(n) else float("inf")


def run(kind: str, seed: int, space: Path, args) -> Path:

    from mer_search.search.sweep import SweepOptions, run_sweep

    out = args.out / f"{kind}_seed{seed}"
    if not (out / "trials.parquet").exists():
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        sampler, _, scheduler = kind.partition("_")
        t0 = time.time()
        run_sweep(SweepOptions(space=str(space), prepared=args.prepared, out=out, num_samples=args.num_samples,
                               sampler=sampler, scheduler=scheduler or "none", seed=seed, wandb="disabled",
                               startup_trials=args.startup_trials))       # the sweep shuts its Ray down
        print(f"  {kind} seed {seed}: {time.time() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", default="runs/meld")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--num-samples", type=int, default=48)
    p.add_argument("--startup-trials", type=int, help="TPE's random start [default: a quarter of the trials]")
    p.add_argument("--max-epochs", type=int, default=9)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=0.005)
    p.add_argument("--out", type=Path, default=Path("runs/bench_search_efficiency"))
    args = p.parse_args()
    if args.startup_trials is None:
        args.startup_trials = args.num_samples // 4
    args.out.mkdir(parents=True, exist_ok=True)
    space = bench_space(Path("spaces/text_any.yaml"), args.out / "text_any_bench.yaml", args.max_epochs,
                        args.grace_period, args.reduction_factor)
    print(f"space text_any, {args.num_samples} trials x <= {args.max_epochs} epochs; ASHA grace "
          f"{args.grace_period}, reduction {args.reduction_factor}; tolerance {args.tolerance}", flush=True)
    rows = []
    for seed in map(int, args.seeds.split(",")):
        curves = {arm: epochs_in_order(run(arm, seed, space, args)) for arm in ARMS}
        rnd = curves["random"]
        target = rnd.dev_wf1.max() - args.tolerance
        row = {"seed": seed, "random_epochs_to_its_best": epochs_to_reach(rnd, rnd.dev_wf1.max())}
        for arm, df in curves.items():
            row[f"{arm}_best"] = df.dev_wf1.max()
            row[f"{arm}_epochs"] = len(df)
            row[f"{arm}_epochs_to_target"] = epochs_to_reach(df, target)
            row[f"{arm}_ratio"] = row[f"{arm}_epochs_to_target"] / len(rnd)
            row[f"{arm}_seconds_ratio"] = seconds_to_reach(df, target) / rnd.seconds.sum()
        rows.append(row)
        print(pd.DataFrame([row]).set_index("seed").T.to_string(float_format=lambda v: f"{v:.3f}"), flush=True)
    df = pd.DataFrame(rows).set_index("seed")
    print("\nall seeds (one column each; target = random's best - tolerance; ratio = epochs to the target / "
          "random's whole budget; seconds_ratio = the same in training seconds):")
    print(df.T.to_string(float_format=lambda v: f"{v:.3f}"))
    print()
    for arm in ARMS:
        best, ratio = df[f"{arm}_best"], df[f"{arm}_ratio"]
        print(f"{arm:12s} best dev wF1 {best.mean():.4f} +- {best.std(ddof=0):.4f}; reached the target in "
              f"{np.isfinite(ratio).sum()}/{len(df)} seeds; to it / random's budget: epochs median "
              f"{ratio.median():.3f}, training seconds median {df[f'{arm}_seconds_ratio'].median():.3f}")
    tpe = df.tpe_asha_epochs_to_target
    print(f"TPE + ASHA's epochs to the target / random's epochs to its own best: median "
          f"{(tpe / df.random_epochs_to_its_best).median():.3f}; / random's whole budget: median "
          f"{df.tpe_asha_ratio.median():.3f} (target <= 0.25)")


if __name__ == "__main__":
    main()
