"""Per-trial overhead of the whole mer-search sweep stack against bare Ray Tune, on no-op trials.

Both sides run the same define-by-run space through OptunaSearch and ASHA, on the same
Ray instance, with trials that only report epochs (no training). Ours adds: the YAML
space, the study in sqlite, ASHA's persisted rungs, the progress callback, a checkpoint
every epoch, the results table in Parquet, and (in the last column) W&B offline runs
written from the driver. Bare Ray is measured twice: with Ray's defaults, and with the
two settings our stack picks (reuse_actors, one pending trial per free CPU), so the
ratio against the latter is the cost of our own code. Runs alternate; medians.

    .venv/bin/python bench/sweep_overhead.py --trials 24 --epochs 4 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

SPACE = """# .venv/bin/python bench/sweep_overhead.py
search: {{metric: dev_wf1, mode: max, max_epochs: {epochs}, grace_period: 1, reduction_factor: 2,
         num_samples: {trials}, sampler: tpe}}
fixed: {{model.name: text_mlp}}
params:
  model.emb_dim: {{type: int, low: 8, high: 64, log: true}}
  model.dropout: {{type: float, low: 0.0, high: 0.5}}
  train.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}
"""


def score(lr: float, dropout: float, epoch: int) -> float:
    """A deterministic stand-in for dev wF1, so ASHA has something to stop on."""
    return 1 - abs(math.log10(lr) + 2.5) / 3 - 0.1 * dropout + 0.01 * epoch


def noop_work(cfg, workdir, reporter, resume=None, seed=0):
    """Our stack's trial, minus the training: a tiny last.pt each epoch, then the report."""
    start = int(resume["epoch"]) + 1 if resume else 1
    for epoch in range(start, cfg["train"]["epochs"] + 1):
        (Path(workdir) / "last.pt").write_bytes(b"0" * 1024)
        reporter.report(epoch, {"epoch": epoch, "dev_wf1": score(cfg["train"]["lr"], cfg["model"]["dropout"], epoch)})


def bare_trainable(config, epochs):
    from ray import tune

    for epoch in range(1, epochs + 1):
        tune.report({"dev_wf1": score(config["lr"], config["dropout"], epoch)})


def define_by_run(trial):
    trial.suggest_int("emb_dim", 8, 64, log=True)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("lr", 1e-4, 3e-2, log=True)


def run_bare(trials: int, epochs: int, tuned: bool, where: Path) -> float:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = "2" if tuned else "auto"
    search = OptunaSearch(space=define_by_run, metric="dev_wf1", mode="max", seed=0)
    t0 = time.perf_counter()
    tune.Tuner(tune.with_resources(tune.with_parameters(bare_trainable, epochs=epochs), {"cpu": 1}),
               tune_config=tune.TuneConfig(metric="dev_wf1", mode="max", search_alg=search, num_samples=trials,
                                           scheduler=ASHAScheduler(max_t=epochs, grace_period=1, reduction_factor=2),
                                           reuse_actors=tuned),
               run_config=tune.RunConfig(storage_path=str(where), verbose=0)).fit()
    return time.perf_counter() - t0


def run_ours(trials: int, epochs: int, prepared: Path, space: Path, where: Path, wandb: bool) -> float:
    from mer_search.search.sweep import SweepOptions, run_sweep

    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = "2"
    t0 = time.perf_counter()
    table = run_sweep(SweepOptions(space=str(space), prepared=str(prepared), out=where, seed=0,
                                   wandb="offline" if wandb else "disabled", work=noop_work))
    assert table.trial_id.nunique() == trials
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import logging

    import ray

    from synthetic import prepared_corpus

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="sweep_overhead_"))
    prepared_corpus(tmp, dialogues=4, text_only=True)
    space = tmp / "space.yaml"
    space.write_text(SPACE.format(trials=args.trials, epochs=args.epochs))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    times = {"bare (Ray defaults)": [], "bare (same settings)": [], "ours": [], "ours + W&B offline": []}
    for r in range(args.repeats):
        times["bare (Ray defaults)"].append(run_bare(args.trials, args.epochs, False, tmp / f"bare_{r}"))
        times["bare (same settings)"].append(run_bare(args.trials, args.epochs, True, tmp / f"tuned_{r}"))
        times["ours"].append(run_ours(args.trials, args.epochs, tmp / "prepared", space, tmp / f"ours_{r}", False))
        times["ours + W&B offline"].append(run_ours(args.trials, args.epochs, tmp / "prepared", space,
                                                    tmp / f"wandb_{r}", True))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    ray.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.trials} no-op trials x <= {args.epochs} epochs, 2 CPUs, 1 CPU per trial; medians of "
          f"{args.repeats}")
    for k, v in med.items():
        print(f"  {k:22s} {v:6.1f} s  {v / args.trials:5.2f} s/trial  {args.trials / v:5.2f} trials/s")
    base = med["bare (same settings)"]
    print(f"ours / bare (same settings): {med['ours'] / base:.2f}x (target <= 1.2); "
          f"with W&B offline: {med['ours + W&B offline'] / base:.2f}x")
    print(f"ours / bare (Ray defaults): {med['ours'] / med['bare (Ray defaults)']:.2f}x")


if __name__ == "__main__":
    main()
