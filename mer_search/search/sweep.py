"""`mer-search sweep`: a YAML space -> Optuna (in an RDB) -> Ray Tune trials, early-stopped by ASHA.

The sweep dir holds: optuna.db (the study), tune/ (Ray's trial dirs and checkpoints),
trials.parquet (every trial's config and per-epoch metrics), sweep.json (settings),
and wandb/ (offline runs, written from the results table after the trials).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from mer_search.search.space import Space, load_space
from mer_search.search.trainable import trainable

log = logging.getLogger(__name__)
SCHEDULERS = ("asha", "hyperband", "median", "none")


class SweepError(RuntimeError):
    """A sweep that cannot start; the message says why and what to do."""


@dataclass
class SweepOptions:
    space: str
    prepared: str
    out: Path
    num_samples: int | None = None
    sampler: str | None = None
    scheduler: str = "asha"
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int | None = None
    address: str | None = None
    study_storage: str | None = None        # SQLAlchemy URL; default sqlite in the sweep dir
    seed: int = 0
    max_epochs: int | None = None           # override the space's search.max_epochs (ASHA's max_t)
    max_failures: int = 2
    wandb: str = "offline"                  # offline | online | disabled
    feature_dirs: dict = field(default_factory=dict)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
            "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed)}[name]()


def make_scheduler(name: str, space: Space):
    s = space.search
    if name == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=s["max_epochs"], grace_period=s["grace_period"],
                             reduction_factor=s["reduction_factor"])
    if name == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=s["max_epochs"],
                                  reduction_factor=s["reduction_factor"])
    if name == "median":
        return MedianStoppingRule(time_attr="training_iteration", grace_period=s["grace_period"])
    if name == "none":
        return FIFOScheduler()
    raise SweepError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")


class ProgressLine(tune.Callback):
    """One line per finished epoch batch: trials done / running / stopped early, best so far."""

    def __init__(self, metric: str, mode: str, total: int):
        self.metric, self.mode, self.total = metric, mode, total
        self.best: float | None = None
        self.done = self.stopped = 0
        self.last = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        v = result.get(self.metric)
        if v is not None and (self.best is None or (v > self.best if self.mode == "max" else v < self.best)):
            self.best = v
        if time.time() - self.last > 5:
            self._print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        self._print(trials)

    def _print(self, trials):
        self.last = time.time()
        running = sum(t.status == "RUNNING" for t in trials)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        log.info("[sweep] %d/%d done, %d running, best %s %s", self.done, self.total, running, self.metric, best)


def _init_ray(opts: SweepOptions) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # a checkpoint every epoch is the point (resume); Ray's "too many snapshots" warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    try:
        if opts.address:
            ray.init(address=opts.address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     dashboard_host="127.0.0.1")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SweepError(f"cannot start or reach Ray ({str(e).splitlines()[0][:160]})") from None
    if opts.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) == 0:
        raise SweepError(f"--gpus-per-trial {opts.gpus_per_trial} but the Ray cluster has no GPU; "
                         f"use --gpus-per-trial 0 to train on CPUs")


def run_sweep(opts: SweepOptions) -> pd.DataFrame:
    """Run the whole sweep; returns the per-epoch results table (also written to trials.parquet)."""
    space = load_space(opts.space)
    if opts.max_epochs:
        space.search["max_epochs"] = opts.max_epochs
        space.search["grace_period"] = min(space.search["grace_period"], opts.max_epochs)
    num_samples = opts.num_samples or space.search["num_samples"]
    if num_samples < 1:
        raise SweepError("--num-samples must be at least 1")
    sampler_name = opts.sampler or space.search["sampler"]
    from data_prep.reader import load_manifest

    load_manifest(opts.prepared)   # prepared data missing or unfinished: a clear error now, not in every trial
    out = Path(opts.out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".probe").write_text("")
        (out / ".probe").unlink()
    except OSError as e:
        raise SweepError(f"{out}: sweep dir is not writable ({e.strerror})") from None
    metric, mode = space.search["metric"], space.search["mode"]
    base = {**space.fixed, "data.prepared": str(Path(opts.prepared).resolve()),
            "train.epochs": space.search["max_epochs"], "train.patience": 0, "train.metric": metric}
    if opts.feature_dirs:
        base["data.feature_dirs"] = {k: str(Path(v).resolve()) for k, v in opts.feature_dirs.items()}
    if opts.gpus_per_trial > 0:
        base["train.device"] = "cuda"
    (out / "sweep.json").write_text(json.dumps({"space": str(Path(opts.space).resolve()), "metric": metric,
                                                "mode": mode, "num_samples": num_samples, "sampler": sampler_name,
                                                "scheduler": opts.scheduler, "seed": opts.seed, "base": base},
                                               indent=1))
    _init_ray(opts)
    storage = optuna.storages.RDBStorage(opts.study_storage or f"sqlite:///{out / 'optuna.db'}")
    search = OptunaSearch(space=space.sample, metric=metric, mode=mode, sampler=make_sampler(sampler_name, opts.seed),
                          study_name=f"{space.name}-{out.name}", storage=storage, seed=opts.seed)
    search_alg = ConcurrencyLimiter(search, max_concurrent=opts.max_concurrent) if opts.max_concurrent else search
    fn = tune.with_resources(tune.with_parameters(trainable, base=base, seed=opts.seed),
                             {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    tuner = tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg,
                                    scheduler=make_scheduler(opts.scheduler, space), num_samples=num_samples),
        run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  callbacks=[ProgressLine(metric, mode, num_samples)]))
    grid = tuner.fit()
    table = results_table(grid, space)
    table.to_parquet(out / "trials.parquet", index=False)
    if opts.wandb != "disabled":
        from mer_search.search.wandb_log import log_offline

        log_offline(table, out, space.name, mode=opts.wandb)
    return table


def results_table(grid, space: Space) -> pd.DataFrame:
    """One row per trial and epoch: trial id, status, every sampled parameter, every metric."""
    frames = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        trial_id = result.metrics.get("trial_id") or Path(result.path).name
        df = df.assign(trial_id=trial_id, error=str(result.error) if result.error else "")
        for key, value in result.config.items():
            if "." in key:
                df[f"config/{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    keep = [c for c in table.columns if c in ("trial_id", "error", "training_iteration", "time_total_s")
            or c.startswith(("config/", "dev_", "train_", "epoch")) or c in ("data_wait_share", "lr")]
    return table[keep].sort_values(["trial_id", "training_iteration"]).reset_index(drop=True)
