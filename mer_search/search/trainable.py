"""The Ray Tune trainable: a thin adapter from `train_trial` to tune.report, with a checkpoint each epoch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ray import tune

from data_prep.reader import private_tmp
from mer_search.core.dirs import RunDir, nest


class TuneReporter:
    """Reports each epoch's metrics with the checkpoint fit has just written (last.pt)."""

    def __init__(self, workdir: Path):
        import ray

        self.workdir = workdir
        self.node_id = ray.get_runtime_context().get_node_id()     # where each epoch ran (faults, placement)

    def report(self, epoch: float, metrics: dict) -> None:
        """Inside an epoch (evals_per_epoch > 1) there is no new checkpoint: a retried trial restarts that epoch."""
        done = float(epoch).is_integer()
        tune.report({**{k: float(v) for k, v in metrics.items()}, "node_id": self.node_id},
                    checkpoint=tune.Checkpoint.from_directory(str(self.workdir)) if done else None)


def trainable(config: dict, base: dict, seed: int = 0, work: Callable | None = None) -> None:
    """config: the flat sampled parameters (dotted keys); base: the sweep's fixed settings (dotted keys);
    work: what a trial runs, `train_trial` unless a benchmark swaps in a no-op."""
    if work is None:     # imported here: a worker pays for torch and the models only when it trains
        from mer_search.training.experiment import train_trial as work
        from mer_search.training.train import pin_threads

        pin_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))      # Ray sets it to the trial's CPUs
    cfg = nest({**base, **{k: v for k, v in config.items() if "." in k}})
    # fit writes last.pt/best.pt here; each report copies them into Tune's storage
    workdir = private_tmp("trials") / tune.get_context().get_trial_id()
    shutil.rmtree(workdir, ignore_errors=True)
    resume = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:        # a retried or resumed trial: continue after its last finished epoch
        with ckpt.as_directory() as d:
            shutil.copytree(d, workdir)
        from mer_search.training.train import load_checkpoint

        resume = load_checkpoint(RunDir(workdir).last)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        work(cfg, workdir, TuneReporter(workdir), resume=resume, seed=seed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
